"""Reconstruction pretraining of an autoencoder (MSE, Adam), with optional augmented views."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.checkpointing import Checkpointer, Interrupted, restore_rng_state, rng_state, stop_on_signals
from brb.cluster.trainer import _batches, check_finite, embed, make_augmenter, new_model
from brb.config import Config
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.runtime import Progress, autocast, setup_run


@dataclass
class PretrainResult:
    model: nn.Module
    history: pd.DataFrame
    wall_time_s: float
    checkpointer: Checkpointer


def pretrain_autoencoder(
    config: Config, data: PreparedData, progress: bool = True, checkpoint_dir: Optional[Path] = None
) -> PretrainResult:
    """Reconstruction pretraining; with ``checkpoint_dir`` resumable (see :mod:`brb.checkpointing`)."""
    device = setup_run(config.run)
    ddata = DeviceData(data, device, config.data.normalize, config.data.resize)
    n_clusters = config.cluster.n_clusters or ddata.n_classes
    model = new_model(config, ddata, n_clusters).to(device)
    p = config.pretrain
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    augmenter = make_augmenter(config, ddata, device) if p.augment else None
    gen = torch.Generator().manual_seed(config.run.seed)
    generators = {"batches": gen, "augment": augmenter.generator if augmenter else None}
    checkpointer = Checkpointer(checkpoint_dir, config.run.checkpoint_every, {"pretrain": config.fingerprint()})
    rows: list[dict] = []
    start_epoch, elapsed = 0, 0.0
    saved = checkpointer.load()
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        restore_rng_state(saved["rng"], generators)
        rows, start_epoch, elapsed = saved["history"], saved["epoch"], saved["elapsed"]
    label = f"pretrain {data.name} seed {config.run.seed}"
    bar = Progress(label, p.epochs, enabled=progress)
    if saved is not None and progress:
        print(f"[{label}] resumed from {checkpointer.path} at epoch {start_epoch}", file=sys.stderr)
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
        for epoch in range(start_epoch, p.epochs):
            model.train()
            total, n = torch.zeros((), device=device), 0
            for idx in _batches(len(ddata), p.batch_size, gen, device):
                x = ddata.batch(idx)
                if augmenter is not None:
                    x = torch.cat([x, ddata.batch(idx, augmenter)])
                with autocast(device, config.run.precision):
                    _, rec = model(x)
                loss = F.mse_loss(rec.float(), x.reshape(len(x), -1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()
                n += 1
            check_finite(total, "reconstruction", epoch)  # one synchronisation per epoch
            rows.append({"epoch": epoch + 1, "loss": float(total) / max(n, 1), "time_s": time.perf_counter() - start})
            bar.update(epoch + 1, loss=rows[-1]["loss"])
            if stop.requested is not None:
                checkpointer.save(state(epoch + 1))
                raise Interrupted(
                    f"stopped by signal {stop.requested} after epoch {epoch + 1}/{p.epochs}; "
                    f"checkpoint {checkpointer.path} (re-run the same command to resume)"
                )
            if checkpointer.due(epoch + 1, p.epochs):
                checkpointer.save(state(epoch + 1))
    history = pd.DataFrame(rows, columns=["epoch", "loss", "time_s"])
    model.eval()
    return PretrainResult(model=model, history=history, wall_time_s=time.perf_counter() - start, checkpointer=checkpointer)


__all__ = ["PretrainResult", "pretrain_autoencoder", "embed"]
