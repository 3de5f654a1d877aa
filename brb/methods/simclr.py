"""SimCLR pretraining: two augmented views of every image, NT-Xent on their projections, AdamW without
decay on biases and norms. Augmentation runs on whole batches on the training device."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from brb.config import Config
from brb.contrastive import make_optimizer, nt_xent
from brb.data.prepared import PreparedData, subset_of
from brb.data.stream import device_data
from brb.engine.common import make_augmenter, new_model, optimizer_step, shuffled_batches
from brb.engine.loop import TrainingError
from brb.methods.pretraining import PretrainMethod, PretrainResult, run_pretraining
from brb.models.blocks import PROJECTION, provides
from brb.runtime import autocast, setup_run


def pretrain_simclr(
    config: Config, data: PreparedData, progress: bool = True, checkpoint_dir: Optional[Path] = None
) -> PretrainResult:
    """SimCLR on ``data`` (its train split when ``data.split`` is ``train_test``); resumable like
    reconstruction pretraining."""
    device = setup_run(config.run)
    train = data.part("train" if config.data.split == "train_test" else "all")
    if config.data.subset is not None:
        train = subset_of(train, config.data.subset)
    ddata = device_data(train, device, config.data.normalize, config.data.resize)
    if not ddata.is_image:
        raise TrainingError(f"SimCLR needs image data; {data.name} holds feature vectors")
    n_clusters = config.cluster.n_clusters or ddata.n_classes
    model = new_model(config, ddata, n_clusters).to(device)
    backbone = model
    if not provides(model, PROJECTION):
        # a network without its own projector (cnn_small, a conv autoencoder's encoder) gets SimCLR's MLP head
        # d -> d -> ReLU -> 128 (as ProPos's SimCLR baseline); the head is trained and resumed, not handed on
        from brb.methods.selfsup import Encoder

        with torch.no_grad():
            model.eval()
            dim = model.encode(ddata.batch(slice(0, 2))).shape[1]
            model.train()
        model = ProjectedBackbone(Encoder(backbone, torch.nn.Sequential(
            torch.nn.Linear(dim, dim), torch.nn.ReLU(inplace=True), torch.nn.Linear(dim, 128)))).to(device)
    p = config.pretrain
    optimizer = make_optimizer(p.optimizer, model, p.lr, p.weight_decay, p.momentum, p.nesterov)
    augmenter = make_augmenter(config, ddata, device)
    gen = torch.Generator().manual_seed(config.run.seed)

    def batches(epoch: int) -> list[torch.Tensor]:
        return shuffled_batches(len(ddata), p.batch_size, gen, device)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        views = torch.cat([ddata.batch(idx, augmenter), ddata.batch(idx, augmenter)])
        with autocast(device, config.run.precision):
            proj = model.project(model.encode(views))
        loss = nt_xent(*proj.float().split(len(idx)), temperature=p.temperature)
        optimizer_step(optimizer, loss)
        return {"loss": loss}

    generators = {"batches": gen, "augment": augmenter.generator}
    label = f"simclr {data.name} seed {config.run.seed}"
    method = PretrainMethod(label, p.epochs, model, optimizer, generators, batches, step, "contrastive",
                            lr_decay=p.lr_decay)
    result = run_pretraining(config, method, progress, checkpoint_dir)
    result.model = backbone  # the clustering stages start from the backbone (a head added here stays behind)
    backbone.eval()
    return result


class ProjectedBackbone(torch.nn.Module):
    """A backbone with an added projection head, seen as SimCLR sees a resnet18: ``encode`` and ``project``."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.backbone.encode(x)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return self.net.projector(h)
