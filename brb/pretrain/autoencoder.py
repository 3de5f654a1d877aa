"""Reconstruction pretraining of an autoencoder (MSE, Adam), with optional augmented views."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.cluster.trainer import _batches, check_finite, embed, make_augmenter, new_model
from brb.config import Config
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.runtime import Progress, setup_run


@dataclass
class PretrainResult:
    model: nn.Module
    history: pd.DataFrame
    wall_time_s: float


def pretrain_autoencoder(config: Config, data: PreparedData, progress: bool = True) -> PretrainResult:
    device = setup_run(config.run)
    ddata = DeviceData(data, device, config.data.normalize, config.data.resize)
    n_clusters = config.cluster.n_clusters or ddata.n_classes
    model = new_model(config, ddata, n_clusters).to(device)
    p = config.pretrain
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    augmenter = make_augmenter(config, ddata, device) if p.augment else None
    gen = torch.Generator().manual_seed(config.run.seed)
    rows = []
    bar = Progress(f"pretrain {data.name} seed {config.run.seed}", p.epochs, enabled=progress)
    start = time.perf_counter()
    for epoch in range(p.epochs):
        model.train()
        total, n = 0.0, 0
        for idx in _batches(len(ddata), p.batch_size, gen):
            idx = idx.to(device)
            x = ddata.batch(idx)
            if augmenter is not None:
                x = torch.cat([x, ddata.batch(idx, augmenter)])
            _, rec = model(x)
            loss = F.mse_loss(rec, x.reshape(len(x), -1))
            check_finite(loss, "reconstruction", epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            n += 1
        rows.append({"epoch": epoch + 1, "loss": total / max(n, 1), "time_s": time.perf_counter() - start})
        bar.update(epoch + 1, loss=rows[-1]["loss"])
    history = pd.DataFrame(rows, columns=["epoch", "loss", "time_s"])
    model.eval()
    return PretrainResult(model=model, history=history, wall_time_s=time.perf_counter() - start)


__all__ = ["PretrainResult", "pretrain_autoencoder", "embed"]
