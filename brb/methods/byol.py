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

The shared machinery (optimiser, schedules, E-step, resume, data-parallel training with SyncBatchNorm in place of
their shuffle-BN) is :class:`brb.methods.selfsup.SelfSupervisedMethod`; ``data_resample`` is their class-balanced
resampling. The heads may be given as block specs (``pretrain.projector_spec`` / ``predictor_spec``,
brb/models/heads.py); unset, they are theirs, from ``hidden_dim`` / ``feature_dim``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.config import Config
from brb.data.prepared import PreparedData
from brb.engine.distributed import gather
from brb.losses.schedules import ema_update_
from brb.losses.ssl import positive_sampling, prototype_scattering_loss, regression_loss
from brb.methods.options import BYOLOptions
from brb.methods.pretraining import PretrainResult
from brb.methods.selfsup import Encoder, SelfSupervisedMethod, frozen_copy, pretrain_with
from brb.models.heads import mlp_spec

__all__ = ["BYOLMethod", "Encoder", "pretrain_byol", "pretrain_propos"]


class BYOLMethod(SelfSupervisedMethod):
    """BYOL / ProPos on the engine (module notes above)."""

    o: BYOLOptions

    def build(self, backbone: nn.Module, dim: int) -> list[dict]:
        o = self.o
        device = self.data.device
        projector, out = self.head("projector", o.projector_spec or mlp_spec(o.hidden_dim, o.feature_dim), dim)
        self.online = Encoder(backbone, projector).to(device)
        predictor, _ = self.head("predictor", o.predictor_spec or mlp_spec(o.hidden_dim, out), out, init_std=0.01,
                                 out_dim=out)
        self.predictor = predictor.to(device)
        self.target = frozen_copy(self.online)
        self._m = o.ema_momentum
        return [{"params": list(self.online.parameters()), "name": "online"},
                {"params": list(self.predictor.parameters()), "name": "predictor", "lr_mult": o.predictor_lr_mult}]

    def networks(self) -> dict[str, nn.Module]:
        return {"online": self.online, "predictor": self.predictor, "target": self.target}

    def feature_net(self) -> nn.Module:
        return self.target

    def handed_on(self) -> nn.Module:
        return self.target.backbone  # ProPos clusters (and we hand on) the target network

    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """A shuffled pass, or with ``data_resample`` N // batch batches drawn with replacement, each sample weighted
        1 / (its pseudo-cluster's size): batches balanced over the pseudo-clusters (ProPos's ``data_resample``)."""
        if not self.o.data_resample:
            return super()._epoch_batches(epoch)
        labels = self.pseudo_labels.cpu()
        weights = 1.0 / torch.bincount(labels, minlength=self.n_clusters).double()[labels]
        steps = len(self.data) // self.o.batch_size
        idx = torch.multinomial(weights, steps * self.o.batch_size, replacement=True, generator=self.gen)
        return list(idx.to(self.data.device).split(self.o.batch_size))

    def before_step(self) -> None:
        self._m = self.ema_momentum()
        if self.o.forward == "v2":  # v2: the EMA before the forward pass
            ema_update_(self.target, self.online, self._m, buffers="keep")

    def after_backward(self) -> None:
        if self.o.forward != "v2":  # v1: the target follows the pre-step online weights
            ema_update_(self.target, self.online, self._m, buffers="keep")

    def step(self, x1, x2, idx):
        o = self.o
        std = 0.0 if self.warm() else o.latent_std
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
        if o.psl_weight > 0 and not self.warm():
            # the prototypes of the global batch (gathered over the processes, as ProPos's concat_all_gather)
            y = gather(self.pseudo_labels[idx], grad=False)
            g1, g2, t1, t2 = gather(v1), gather(v2), gather(z1, grad=False), gather(z2, grad=False)
            loss_psl = 0.5 * (prototype_scattering_loss(g1, t2, y, self.n_clusters, o.psl_temperature)
                              + prototype_scattering_loss(g2, t1, y, self.n_clusters, o.psl_temperature))
            loss = loss + o.psl_weight * loss_psl
        return {"loss": loss, "loss_alignment": loss_psa, "loss_scattering": loss_psl}


def pretrain_byol(config: Config, data: PreparedData, progress: bool = True,
                  checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    return pretrain_with(BYOLMethod, "byol", config, data, progress, checkpoint_dir)


def pretrain_propos(config: Config, data: PreparedData, progress: bool = True,
                    checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    return pretrain_with(BYOLMethod, "propos", config, data, progress, checkpoint_dir)
