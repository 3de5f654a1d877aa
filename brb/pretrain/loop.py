"""The epoch loop every pretraining method shares: resume, progress, checkpoints, SIGTERM."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
import torch
import torch.nn as nn

from brb.checkpointing import Checkpointer, Interrupted, restore_rng_state, rng_state, stop_on_signals
from brb.config import Config
from brb.runtime import Progress

log = logging.getLogger(__name__)

@dataclass
class PretrainResult:
    model: nn.Module
    history: pd.DataFrame
    wall_time_s: float
    checkpointer: Checkpointer
    #: the epoch this run continued from (0: it started afresh)
    resumed_from: int = 0


def run_pretraining(
    config: Config,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: dict,
    train_epoch: Callable[[int], dict[str, float]],
    label: str,
    progress: bool = True,
    checkpoint_dir: Optional[Path] = None,
) -> PretrainResult:
    """Call ``train_epoch(epoch)`` for ``config.pretrain.epochs`` epochs; it returns the epoch's history values
    (``loss`` first). With ``checkpoint_dir`` the model, optimiser, ``generators`` and history are saved every
    ``run.checkpoint_every`` epochs and on SIGTERM (then :class:`Interrupted`), and picked up again."""
    epochs = config.pretrain.epochs
    checkpointer = Checkpointer(checkpoint_dir, config.run.checkpoint_every, {"pretrain": config.fingerprint()})
    rows: list[dict] = []
    start_epoch, elapsed = 0, 0.0
    saved = checkpointer.load()
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        restore_rng_state(saved["rng"], generators)
        rows, start_epoch, elapsed = saved["history"], saved["epoch"], saved["elapsed"]
    if saved is not None and progress:
        log.info("[%s] resumed from %s at epoch %d", label, checkpointer.path, start_epoch)
    bar = Progress(label, epochs, enabled=progress, initial=start_epoch)
    start = time.perf_counter() - elapsed

    def state(epoch: int) -> dict:
        return {
            "epoch": epoch,
            "elapsed": time.perf_counter() - start,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": rows,
            "rng": rng_state(generators),
        }

    with stop_on_signals() as stop:
        for epoch in range(start_epoch, epochs):
            model.train()
            values = train_epoch(epoch)
            rows.append({"epoch": epoch + 1, **values, "time_s": time.perf_counter() - start})
            bar.update(epoch + 1, **{k: v for k, v in values.items() if k == "loss"})
            if stop.requested is not None:
                checkpointer.save(state(epoch + 1))
                raise Interrupted(
                    f"stopped by signal {stop.requested} after epoch {epoch + 1}/{epochs}; "
                    f"checkpoint {checkpointer.path} (re-run the same command to resume)"
                )
            if checkpointer.due(epoch + 1, epochs):
                checkpointer.save(state(epoch + 1))
    history = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["epoch", "loss", "time_s"])
    model.eval()
    return PretrainResult(model=model, history=history, wall_time_s=time.perf_counter() - start, checkpointer=checkpointer,
                          resumed_from=start_epoch)
