"""The one training loop: every stage (pretraining, clustering, self-labeling) runs on :class:`Engine`.

The engine owns what every training run needs once: resuming from ``resume.pt`` (every piece of state the
method and its hooks name, the random generators, the history), the periodic and SIGTERM checkpoints,
progress, the NaN guard on the epoch's losses and the history rows. A :class:`Method` says what one epoch
does; :class:`Hook` objects (interventions such as BRB, a method's own lifecycle) are called around it:

    on_fit_start -> for each epoch: on_epoch_start (hooks, then the method)
                 -> for each batch of method.batches(epoch): method.training_step(batch) -> {name: loss}
                    (the method steps its optimiser), on_batch_end (hooks, then the method)
                 -> method.epoch_losses (the epoch's means) -> NaN guard -> method.evaluate (the history row)
                 -> on_epoch_end (the method, then hooks) -> progress, checkpoint -> ... -> on_fit_end
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from brb.checkpointing import Checkpointer, Interrupted, restore_rng_state, rng_state, stop_on_signals
from brb.runtime import Progress

log = logging.getLogger(__name__)

#: Part of every checkpoint fingerprint: a resume.pt written by another checkpoint layout is set aside.
STATE_FORMAT = 2


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an impossible cluster count); the message says where."""


class Hook:
    """Lifecycle callbacks of a training run; ``state_dict`` / ``load_state_dict`` put a hook's own state into
    the resume checkpoint."""

    def on_fit_start(self, engine: Engine) -> None:
        pass

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        pass

    def on_batch_end(self, engine: Engine, batch: Any, losses: dict) -> None:
        pass

    def on_epoch_end(self, engine: Engine, epoch: int, row: dict) -> None:
        pass

    def on_fit_end(self, engine: Engine) -> None:
        """After the last epoch, and when the run stops early (error, signal): release what the hook holds."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Method(Hook):
    """What the engine trains. ``epochs`` and ``label`` name the run; ``stateful`` the objects with
    ``state_dict`` / ``load_state_dict`` (networks, heads, optimisers, objectives); ``generators`` the
    random generators; ``finite_terms`` which epoch losses the NaN guard checks (key -> term name)."""

    label: str = "train"
    epochs: int = 0
    finite_terms: dict[str, str] = {"loss": "training"}

    def stateful(self) -> dict[str, Any]:
        return {}

    def generators(self) -> dict:
        return {}

    def start_history(self) -> list[dict]:
        """History rows of the state before the first epoch (none by default)."""
        return []

    def batches(self, epoch: int):
        """The epoch's mini-batches (e.g. index tensors), in order."""
        raise NotImplementedError

    def training_step(self, batch) -> Optional[dict]:
        """One optimisation step on ``batch``; returns its named losses (tensors; ``loss`` is the total), or None
        when the step was skipped (it is then not counted)."""
        raise NotImplementedError

    def epoch_losses(self, epoch: int, sums: dict, n_steps: int) -> dict[str, float]:
        """The epoch's losses from the per-step sums (default: the means); work after the last step (e.g. an
        eval-mode centroid pass) goes here."""
        return {key: float(value) / max(n_steps, 1) for key, value in sums.items()}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch outside a fit (tests, benchmarks): the method's epoch start, then :meth:`Engine.run_epoch`."""
        engine = Engine(self)
        self.on_epoch_start(engine, epoch)
        return engine.run_epoch(epoch)

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        """The history row of the state after ``epoch + 1`` epochs (the engine adds ``epoch`` and ``time_s``)."""
        return dict(losses)

    def progress_values(self, row: dict) -> dict:
        return {"loss": row.get("loss")}

    def extra_state(self) -> dict:
        """State beyond ``stateful`` and the generators (e.g. the latest labels)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


@dataclass
class FitResult:
    history: list[dict]
    wall_time_s: float
    #: the epoch the run continued from (0: it started afresh)
    resumed_from: int


def check_finite(value: float, term: str, epoch: int) -> None:
    if not math.isfinite(value):
        raise TrainingError(
            f"non-finite {term} loss ({value}) at epoch {epoch}; lower the learning rate or check the "
            "input data. The run's outputs were not written; its last resume checkpoint (if any) is kept."
        )


class Engine:
    """Runs ``method`` for its epochs with ``hooks``; with ``checkpoint_dir`` resumable (``run.checkpoint_every``
    epochs between checkpoints, and on SIGTERM), the checkpoint tagged with ``fingerprint``."""

    def __init__(self, method: Method, hooks: Sequence[Hook] = (), checkpoint_dir: Optional[Path] = None,
                 checkpoint_every: int = 10, fingerprint: Optional[dict] = None, progress: bool = True):
        self.method = method
        self.hooks = list(hooks)
        self.checkpointer = Checkpointer(checkpoint_dir, checkpoint_every, {"format": STATE_FORMAT, **(fingerprint or {})})
        self.progress = progress
        self.history: list[dict] = method.start_history()
        self.epoch = 0
        self._start = time.perf_counter()

    # --- resumable state ---------------------------------------------------------------------------
    def state(self) -> dict:
        m = self.method
        return {
            "epoch": self.epoch,
            "elapsed": time.perf_counter() - self._start,
            "history": self.history,
            "rng": rng_state(m.generators()),
            "stateful": {name: part.state_dict() for name, part in m.stateful().items()},
            "method": m.extra_state(),
            "hooks": [hook.state_dict() for hook in self.hooks],
        }

    def restore(self, state: dict) -> None:
        m = self.method
        for name, part in m.stateful().items():
            part.load_state_dict(state["stateful"][name])
        m.load_extra_state(state["method"])
        for hook, hook_state in zip(self.hooks, state["hooks"]):
            hook.load_state_dict(hook_state)
        restore_rng_state(state["rng"], m.generators())
        self.history = state["history"]
        self.epoch = int(state["epoch"])
        self._start = time.perf_counter() - float(state["elapsed"])

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """The batch loop: every step's losses summed on the device (one synchronisation per epoch)."""
        m = self.method
        sums: dict = {}
        n_steps = 0
        for batch in m.batches(epoch):
            losses = m.training_step(batch)
            if losses is None:
                continue
            for key, value in losses.items():
                value = value.detach()
                sums[key] = sums[key] + value if key in sums else value
            n_steps += 1
            for hook in [*self.hooks, m]:
                hook.on_batch_end(self, batch, losses)
        return m.epoch_losses(epoch, sums, n_steps)

    def _all_hooks(self) -> list[Hook]:
        return [*self.hooks, self.method]

    # --- the loop ----------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        m = self.method
        saved = self.checkpointer.load()
        if saved is not None:
            self.restore(saved)
            if self.progress:
                log.info("[%s] resumed from %s at epoch %d", m.label, self.checkpointer.path, self.epoch)
        resumed_from = self.epoch
        bar = Progress(m.label, m.epochs, enabled=self.progress, initial=resumed_from)
        for hook in self._all_hooks():
            hook.on_fit_start(self)
        try:
            self._epochs(resumed_from, bar)
        finally:
            for hook in self._all_hooks():
                hook.on_fit_end(self)
        return FitResult(history=self.history, wall_time_s=time.perf_counter() - self._start, resumed_from=resumed_from)

    def _epochs(self, resumed_from: int, bar: Progress) -> None:
        m = self.method
        with stop_on_signals() as stop:
            for epoch in range(resumed_from, m.epochs):
                for hook in self._all_hooks():
                    hook.on_epoch_start(self, epoch)
                losses = self.run_epoch(epoch)
                for key, term in m.finite_terms.items():  # the NaN guard
                    if key in losses:
                        check_finite(losses[key], term, epoch)
                row = {"epoch": epoch + 1, **m.evaluate(epoch, losses), "time_s": time.perf_counter() - self._start}
                self.history.append(row)
                self.epoch = epoch + 1
                for hook in [m, *self.hooks]:
                    hook.on_epoch_end(self, epoch, row)
                bar.update(epoch + 1, **m.progress_values(row))
                if stop.requested is not None:
                    self.checkpointer.save(self.state())
                    raise Interrupted(
                        f"stopped by signal {stop.requested} after epoch {epoch + 1}/{m.epochs} of {m.label}; "
                        f"checkpoint {self.checkpointer.path} (re-run the same command to resume)"
                    )
                if self.checkpointer.due(epoch + 1, m.epochs):
                    self.checkpointer.save(self.state())
