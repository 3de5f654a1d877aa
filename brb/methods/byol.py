"""BYOL and ProPos (Huang et al., TPAMI 2022) as pretraining methods of the training engine: registry names
``byol`` and ``propos`` (pretraining kind), options :class:`~brb.methods.options.BYOLOptions` /
:class:`~brb.methods.options.ProPosOptions`. Formulas: ``brb/losses/ssl.py``; schedules: ``brb/losses/schedules.py``.

The network of ``model.arch`` is the backbone f (its ``encode``: what clustering uses afterwards); this method adds
the projector g (Linear d → hidden → BN → ReLU → Linear → feature) and the predictor q (same shape, weights
N(0, 0.01), biases 0, as theirs) and keeps a target copy (f_ξ, g_ξ) updated by EMA. Per batch of two augmented
views x_1, x_2:

    v_i = g(f(x_i)),  z_i = normalize(g_ξ(f_ξ(x_i)))           (target: train mode, no gradient)
    L_psa = ½ [reg(q(v_1 + σε), z_2) + reg(q(v_2 + σε), z_1)]   (positive sampling alignment; σ = 0 in warm-up)
    L_psl = ½ [PSL(v_1, z_2, y) + PSL(v_2, z_1, y)]            (prototype scattering on pseudo-labels y)
    L = L_psa + λ · L_psl · [epoch ≥ warmup_epochs]

BYOL is the same code with λ = σ = 0, k-means every 10 epochs and an increasing EMA (their BYOL baseline). The
E-step: before the first epoch and after every ``reassign``-th epoch (and the last), spherical k-means (k-means++,
``kmeans_n_init`` restarts) on the normalised target features of the whole training set (eval mode, no
augmentation) gives the pseudo-labels; its ACC / NMI / ARI against the labels is the history row's score, the
clustering ProPos reports. v1 forward (theirs for CIFAR-10): one pass per view, reg = −2 cos, EMA after the loss
with the pre-step online weights; v2: both views in one pass, reg = 2 − 2 cos, EMA before the forward pass. SGD
with lr × batch / 256, predictor lr × ``predictor_lr_mult``, linear warm-up then ProPos's cosine per iteration. The
checkpoint written for the clustering stages is the **target** network (ProPos clusters and reports its features).

Not yet here (issue 15): the class-balanced resampling option, shuffle-BN / SyncBN and multi-GPU DDP; the
target's BatchNorm runs in train mode on the whole batch (one process: what shuffle-BN approximates).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.cluster.kmeans_torch import kmeans_torch
from brb.config import Config
from brb.data.prepared import PreparedData, subset_of
from brb.data.tensors import DeviceData
from brb.engine.common import make_augmenter, new_model, shuffled_batches
from brb.engine.loop import Engine, TrainingError
from brb.losses.schedules import ema_update_, lr_at, momentum_at, scaled_lr
from brb.losses.ssl import positive_sampling, prototype_scattering_loss, regression_loss
from brb.methods.options import BYOLOptions
from brb.methods.pretraining import PretrainMethod, PretrainResult, run_pretraining
from brb.metrics import clustering_metrics
from brb.registry import REGISTRY
from brb.runtime import autocast, setup_run


def mlp_head(in_dim: int, hidden: int, out: int, init_std: Optional[float] = None) -> nn.Sequential:
    """Linear → BatchNorm → ReLU → Linear (their projector / predictor); ``init_std``: N(0, std) weights, zero biases."""
    head = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))
    if init_std is not None:
        for m in head:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=init_std)
                nn.init.zeros_(m.bias)
    return head


class Online(nn.Module):
    """Backbone f + projector g (the part the target copies)."""

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone, self.projector = backbone, projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone.encode(x))


class BYOLMethod(PretrainMethod):
    """BYOL / ProPos on the engine (module notes above)."""

    def __init__(self, config: Config, data: DeviceData, options: BYOLOptions, label: str):
        self.config, self.data, self.o = config, data, options
        o = options
        device = data.device
        n_clusters = config.cluster.n_clusters or data.n_classes
        backbone = new_model(config, data, n_clusters).to(device)
        with torch.no_grad():
            backbone.eval()
            dim = backbone.encode(data.batch(slice(0, 2))).shape[1]
            backbone.train()
        self.online = Online(backbone, mlp_head(dim, o.hidden_dim, o.feature_dim)).to(device)
        self.predictor = mlp_head(o.feature_dim, o.hidden_dim, o.feature_dim, init_std=0.01).to(device)
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.base_lr = scaled_lr(o.lr, o.batch_size) if o.lr_scaling == "linear" else o.lr
        groups = [{"params": list(self.online.parameters()), "name": "online", "lr_mult": 1.0},
                  {"params": list(self.predictor.parameters()), "name": "predictor", "lr_mult": o.predictor_lr_mult}]
        if o.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=self.base_lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                        nesterov=o.nesterov and o.momentum > 0)
        elif o.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=self.base_lr, weight_decay=o.weight_decay)
        else:
            optimizer = torch.optim.Adam(groups, lr=self.base_lr, weight_decay=o.weight_decay)
        self.n_clusters = n_clusters
        self.augmenter = make_augmenter(config, data, device)
        if self.augmenter is None:
            raise TrainingError(f"{label}: BYOL / ProPos need image data for their augmented views")
        self.gen = torch.Generator().manual_seed(config.run.seed)
        self.noise = torch.Generator(device=device).manual_seed(config.run.seed + 31)
        self.steps_per_epoch = max(len(data) // o.batch_size, 1)
        self.step_count = 0
        self.pseudo_labels: Optional[torch.Tensor] = None
        self.scores: dict = {}
        self.epoch = 0
        super().__init__(label, o.epochs, self.online, optimizer,
                         {"batches": self.gen, "augment": self.augmenter.generator, "noise": self.noise},
                         self._epoch_batches, self._step, "self-supervised")
        self.finite_terms = {"loss": "self-supervised"}
        self.e_step(0)  # the pseudo-labels of the first epochs, and the score of the untrained network

    # --- E-step --------------------------------------------------------------------------------------
    @torch.no_grad()
    def target_features(self) -> torch.Tensor:
        """Normalised g_ξ(f_ξ(x)) of the whole training set (eval mode, no augmentation)."""
        self.target.eval()
        feats = torch.cat([F.normalize(self.target(x).float(), dim=1)
                           for x in self.data.iter_batches(self.config.cluster.eval_batch_size)])
        self.target.train()
        return feats

    def e_step(self, epoch: int) -> None:
        """Spherical k-means on the target features: the pseudo-labels and the scores ProPos reports."""
        feats = self.target_features()
        centers = kmeans_torch(feats, self.n_clusters, self.config.run.seed + epoch, n_init=self.o.kmeans_n_init,
                               metric="cosine")
        self.pseudo_labels = (feats @ F.normalize(centers.to(feats), dim=1).T).argmax(dim=1)
        labels = self.pseudo_labels.cpu().numpy()
        self.scores = {**clustering_metrics(self.data.y, labels), "n_nonempty_clusters": int(len(np.unique(labels)))}

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        self.epoch = epoch
        self.online.train()
        self.predictor.train()

    def start_history(self) -> list[dict]:
        return [{"epoch": 0, "loss": math.nan, **self.scores, "time_s": 0.0}]

    # --- one step ------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        return shuffled_batches(len(self.data), self.o.batch_size, self.gen, self.data.device, drop_last=True)

    def _schedule(self) -> float:
        """Set this iteration's learning rates; return the EMA momentum."""
        o = self.o
        # ProPos counts iterations from 1: the first step of the run is already 1/steps into the warm-up (not lr 0)
        t = self.epoch + (self.step_count % self.steps_per_epoch + 1) / self.steps_per_epoch
        factor = 1.0 if o.lr_schedule == "constant" and t >= o.warmup_epochs else None
        lr = self.base_lr * factor if factor is not None else lr_at(t, self.base_lr, o.epochs, o.warmup_epochs,
                                                                     "cosine" if o.lr_schedule == "cosine" else "propos")
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        total = max(o.epochs * self.steps_per_epoch, 1)
        return momentum_at(self.step_count, total, o.ema_momentum, o.ema_schedule)

    def _step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.o
        m = self._schedule()
        warm = self.epoch < o.warmup_epochs
        std = 0.0 if warm else o.latent_std
        x1, x2 = self.data.batch(idx, self.augmenter), self.data.batch(idx, self.augmenter)
        if o.forward == "v2":
            ema_update_(self.target, self.online, m, buffers="keep")
        with autocast(self.data.device, self.config.run.precision):
            if o.forward == "v2":
                v1, v2 = self.online(torch.cat([x1, x2])).float().split(len(idx))
            else:
                v1, v2 = self.online(x1).float(), self.online(x2).float()
            with torch.no_grad():
                z1, z2 = (F.normalize(self.target(x).float(), dim=1) for x in (x1, x2))
            p1 = self.predictor(positive_sampling(v1, std, self.noise)).float()
            p2 = self.predictor(positive_sampling(v2, std, self.noise)).float()
        kind = "v2" if o.forward == "v2" else "v1"
        loss_psa = 0.5 * (regression_loss(p1, z2, kind) + regression_loss(p2, z1, kind))
        loss = loss_psa
        loss_psl = torch.zeros((), device=loss.device)
        if o.psl_weight > 0 and not warm:
            y = self.pseudo_labels[idx]
            loss_psl = 0.5 * (prototype_scattering_loss(v1, z2, y, self.n_clusters, o.psl_temperature)
                              + prototype_scattering_loss(v2, z1, y, self.n_clusters, o.psl_temperature))
            loss = loss + o.psl_weight * loss_psl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if o.forward != "v2":  # v1: the target follows the pre-step online weights
            ema_update_(self.target, self.online, m, buffers="keep")
        self.optimizer.step()
        self.step_count += 1
        return {"loss": loss, "loss_alignment": loss_psa, "loss_scattering": loss_psl}

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        """The epoch's losses; every ``reassign`` epochs (and after the last) the E-step on the state after this
        epoch: new pseudo-labels for the next epochs, and their scores (NaN on the other rows)."""
        row = {**losses, "lr": self.optimizer.param_groups[0]["lr"]}
        if (epoch + 1) % self.o.reassign == 0 or epoch + 1 == self.epochs:
            self.e_step(epoch + 1)
            row.update(self.scores)
        return row

    def progress_values(self, row: dict) -> dict:
        return {"loss": row["loss"], "acc": row.get("acc", math.nan)}

    # --- resumable state -----------------------------------------------------------------------------
    def stateful(self) -> dict:
        return {"online": self.online, "predictor": self.predictor, "target": self.target, "optimizer": self.optimizer}

    def extra_state(self) -> dict:
        return {"pseudo_labels": self.pseudo_labels, "scores": self.scores, "step_count": self.step_count}

    def load_extra_state(self, state: dict) -> None:
        self.pseudo_labels, self.scores, self.step_count = state["pseudo_labels"], state["scores"], state["step_count"]


def _pretrain(name: str, config: Config, data: PreparedData, progress: bool,
              checkpoint_dir: Optional[Path]) -> PretrainResult:
    device = setup_run(config.run)
    train = data.part("train" if config.data.split == "train_test" else "all")
    if config.data.subset is not None:
        train = subset_of(train, config.data.subset)
    ddata = DeviceData(train, device, config.data.normalize, config.data.resize)
    cls = REGISTRY.entry("pretraining", name).options
    options = cls.model_validate({k: getattr(config.pretrain, k) for k in cls.model_fields})
    method = BYOLMethod(config, ddata, options, f"{name} {data.name} seed {config.run.seed}")
    result = run_pretraining(config, method, progress, checkpoint_dir)
    method.target.eval()
    result.model = method.target.backbone  # ProPos clusters (and we hand on) the target network
    return result


def pretrain_byol(config: Config, data: PreparedData, progress: bool = True,
                  checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    return _pretrain("byol", config, data, progress, checkpoint_dir)


def pretrain_propos(config: Config, data: PreparedData, progress: bool = True,
                    checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    return _pretrain("propos", config, data, progress, checkpoint_dir)
