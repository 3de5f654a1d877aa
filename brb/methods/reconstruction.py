"""Reconstruction pretraining of an autoencoder (MSE, Adam), with optional augmented views."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from brb.config import Config
from brb.contrastive import make_optimizer
from brb.data.prepared import PreparedData, subset_of
from brb.data.stream import device_data
from brb.engine.common import embed, make_augmenter, new_model, optimizer_step, shuffled_batches
from brb.methods.pretraining import PretrainMethod, PretrainResult, run_pretraining
from brb.runtime import autocast, setup_run


def pretrain_autoencoder(
    config: Config, data: PreparedData, progress: bool = True, checkpoint_dir: Optional[Path] = None
) -> PretrainResult:
    """Reconstruction pretraining; with ``checkpoint_dir`` resumable (see :mod:`brb.checkpointing`)."""
    device = setup_run(config.run)
    train = data.part("train" if config.data.split == "train_test" else "all")
    if config.data.subset is not None:
        train = subset_of(train, config.data.subset)
    ddata = device_data(train, device, config.data.normalize, config.data.resize)
    n_clusters = config.cluster.n_clusters or ddata.n_classes
    model = new_model(config, ddata, n_clusters).to(device)
    p = config.pretrain
    optimizer = make_optimizer(p.optimizer, model, p.lr, p.weight_decay, p.momentum, p.nesterov)
    augmenter = make_augmenter(config, ddata, device) if p.augment else None
    gen = torch.Generator().manual_seed(config.run.seed)

    def batches(epoch: int) -> list[torch.Tensor]:
        return shuffled_batches(len(ddata), p.batch_size, gen, device)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = ddata.batch(idx)
        if augmenter is not None:
            x = torch.cat([x, ddata.batch(idx, augmenter)])
        with autocast(device, config.run.precision):
            _, rec = model(x)
        loss = F.mse_loss(rec.float(), x.reshape(len(x), -1))
        optimizer_step(optimizer, loss)
        return {"loss": loss}

    generators = {"batches": gen, "augment": augmenter.generator if augmenter else None}
    label = f"pretrain {data.name} seed {config.run.seed}"
    method = PretrainMethod(label, p.epochs, model, optimizer, generators, batches, step, "reconstruction",
                            lr_decay=p.lr_decay)
    return run_pretraining(config, method, progress, checkpoint_dir)


__all__ = ["PretrainResult", "pretrain_autoencoder", "embed"]
