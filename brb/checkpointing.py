"""Resumable training: periodic atomic checkpoints of the whole run state, and SIGTERM handling.

A checkpoint holds everything the next epoch depends on (network, optimiser, centroids and counts,
random generators, epoch, history so far), so a run resumed from it on the CPU ends with exactly the
labels of an uninterrupted run. SIGTERM (what SLURM sends before a time limit or pre-emption) asks the
loop to stop at the end of the current epoch, write a checkpoint and exit with :class:`Interrupted`.
"""

from __future__ import annotations

import logging
import pickle
import random
import signal
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from brb.io import atomic_path

#: Name of the resume file inside a run's output directory; removed when the run completes.
RESUME_FILE = "resume.pt"


log = logging.getLogger(__name__)

class Interrupted(RuntimeError):
    """The run stopped on a signal after writing a checkpoint; re-running the same command resumes it."""


class ResumeError(RuntimeError):
    """A resume checkpoint exists but cannot be used (corrupt, or written under another configuration)."""


def rng_state(generators: dict[str, Optional[torch.Generator]]) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "generators": {k: g.get_state() for k, g in generators.items() if g is not None},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generators: dict[str, Optional[torch.Generator]]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for key, gen in generators.items():
        if gen is not None and key in state["generators"]:
            gen.set_state(state["generators"][key])


class Checkpointer:
    """Saves ``state_fn()`` every ``every`` epochs to ``directory/resume.pt``; loads it back on start."""

    def __init__(self, directory: Optional[Path], every: int, fingerprint: dict):
        self.path = Path(directory) / RESUME_FILE if directory is not None else None
        self.every = every
        self.fingerprint = fingerprint

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def load(self) -> Optional[dict]:
        if self.path is None or not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as err:
            raise ResumeError(
                f"resume checkpoint {self.path} is corrupt or truncated ({err}); delete it to start the run afresh"
            ) from None
        if payload.get("fingerprint") != self.fingerprint:
            # a changed setting (e.g. a study re-run by Snakemake after an edit) starts afresh; the old
            # checkpoint is kept aside, never overwritten, never resumed into the new configuration
            stale = self.path.with_name(f"{self.path.stem}.stale-{time.strftime('%Y%m%d-%H%M%S')}.pt")
            self.path.rename(stale)
            log.warning(
                "warning: resume checkpoint %s was written by a run with another configuration; moved to %s, "
                "starting afresh", self.path, stale.name
            )
            return None
        return payload["state"]

    def due(self, epoch: int, total: int) -> bool:
        return self.enabled and self.every > 0 and epoch % self.every == 0 and epoch < total

    def save(self, state: dict) -> None:
        from brb.engine.distributed import is_main_process

        if self.path is None or not is_main_process():  # with several processes rank 0 writes, all read
            return
        with atomic_path(self.path) as tmp:
            torch.save({"fingerprint": self.fingerprint, "state": state}, tmp)

    def clear(self) -> None:
        from brb.engine.distributed import is_main_process

        if self.path is not None and self.path.exists() and is_main_process():
            self.path.unlink()


class StopFlag:
    """Set by SIGTERM/SIGINT while :func:`stop_on_signals` is active; polled at epoch ends."""

    requested: Optional[int] = None


@contextmanager
def stop_on_signals(signals=(signal.SIGTERM,)) -> Iterator[type[StopFlag]]:
    previous = {}

    def handler(signum, frame):
        StopFlag.requested = signum

    StopFlag.requested = None
    for sig in signals:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield StopFlag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        StopFlag.requested = None
