"""Pretraining methods on the training engine: a method supplies its network, optimiser, generators and one
epoch of training; :class:`brb.engine.loop.Engine` does the rest (resume, checkpoints, SIGTERM, NaN guard)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import torch
import torch.nn as nn

from brb.checkpointing import Checkpointer
from brb.config import Config
from brb.engine.loop import Engine, Method
from brb.engine.tracking import fit_on_engine


@dataclass
class PretrainResult:
    model: nn.Module
    history: pd.DataFrame
    wall_time_s: float
    checkpointer: Checkpointer
    #: the epoch this run continued from (0: it started afresh)
    resumed_from: int = 0
    #: what the method records beside the history (processes, global batch, scaled learning rate)
    extra: dict = field(default_factory=dict)
    #: the method's own clustering of its training rows after the last epoch, where it has one (the E-step of the
    #: self-supervised family: what ProPos's Table 2 reports): ``labels`` (int64 array), ``scores``, ``how``
    clustering: Optional[dict] = None


class PretrainMethod(Method):
    """A pretraining method as the engine sees it: ``batches(epoch)`` its mini-batches, ``step(batch)`` one
    optimisation step returning ``{"loss": ...}``, checked by the NaN guard under the name ``term``."""

    def __init__(self, label: str, epochs: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                 generators: dict, batches: Callable[[int], list], step: Callable[[Any], dict], term: str,
                 lr_decay: float = 1.0):
        self.label, self.epochs = label, epochs
        self.model, self.optimizer = model, optimizer
        #: the learning rate times ``lr_decay`` after every epoch (Aljalbout et al.'s 0.9999), resumed with the rest
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, lr_decay) if lr_decay != 1.0 else None
        self._generators, self._batches, self._step = generators, batches, step
        self.finite_terms = {"loss": term}

    def stateful(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer,
                **({"scheduler": self.scheduler} if self.scheduler is not None else {})}

    def on_epoch_end(self, engine: Engine, epoch: int, row: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.step()

    def generators(self) -> dict:
        return self._generators

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        self.model.train()

    def batches(self, epoch: int) -> list:
        return self._batches(epoch)

    def training_step(self, batch) -> dict:
        return self._step(batch)


def run_pretraining(config: Config, method: PretrainMethod, progress: bool = True,
                    checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    """Run ``method`` for ``config.pretrain.epochs`` epochs on the engine; with ``checkpoint_dir`` resumable."""
    fit = fit_on_engine(method, config, checkpoint_dir, progress, fingerprint={"pretrain": config.fingerprint()})
    history = pd.DataFrame(fit.history) if fit.history else pd.DataFrame(columns=["epoch", "loss", "time_s"])
    method.model.eval()
    return PretrainResult(model=method.model, history=history, wall_time_s=fit.wall_time_s,
                          checkpointer=method.checkpointer, resumed_from=fit.resumed_from)


def pretrain(config: Config, data, progress: bool = True, checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    """Pretraining by ``config.pretrain.method`` (``auto``: the network's own), the registry's entry of that name."""
    from brb.registry import REGISTRY

    method = REGISTRY.load("pretraining", config.pretrain.resolved_method(config.model.arch))
    return method(config, data, progress=progress, checkpoint_dir=checkpoint_dir)
