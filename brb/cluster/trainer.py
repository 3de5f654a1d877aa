"""The one training loop shared by every centroid-based algorithm, with BRB hooks.

Per epoch: (BRB at the start of epochs T, 2T, ...) → mini-batches drawn by index from the
device-resident dataset → loss = cluster_weight · clustering loss + the network's regulariser →
evaluation (labels are used only here) → one history row.

The regulariser depends on the network: reconstruction MSE (weight ``reconstruction_weight``) for
autoencoders, NT-Xent between two augmented views' projections (weight ``contrastive_weight``) for
contrastive networks (``resnet18``). Contrastive networks always see two augmented views; autoencoders
see the clean batch and, with ``cluster.augment``, an augmented view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.checkpointing import Checkpointer, Interrupted, ResumableTraining, stop_on_signals
from brb.cluster.brb_ops import recluster, soft_reset, subsample_indices
from brb.cluster.losses import CentroidObjective
from brb.config import Config
from brb.contrastive import nt_xent
from brb.data.augment import ColourAugment, RandomAffine
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.metrics import cluster_change, clustering_metrics
from brb.models import architecture, build_model
from brb.registry import REGISTRY
from brb.runtime import autocast, setup_run


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an impossible cluster count); the message says where."""


@torch.inference_mode()
def embed(model: nn.Module, data: DeviceData, batch_size: int = 4096, precision: str = "fp32") -> torch.Tensor:
    """Embedding of the whole dataset in eval mode, in large batches (float32 result)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with autocast(device, precision):
        z = torch.cat([model.encode(x).float() for x in data.iter_batches(batch_size)])
    model.train(was_training)
    return z


def make_augmenter(config: Config, data: DeviceData, device: torch.device):
    """The batch augmentation of ``config.augment`` (None for feature data), seeded from ``run.seed``."""
    if not data.is_image:
        return None
    gen = torch.Generator(device=device)
    gen.manual_seed(config.run.seed + 7919)
    a = config.augment
    kind = a.kind if a.kind != "auto" else ("colour" if data.sample_shape[0] == 3 else "affine")
    if kind == "colour":
        return ColourAugment(
            (a.crop_scale_min, 1.0), a.flip, a.jitter, a.jitter_p, a.grey_p, a.solarize_p, generator=gen
        )
    return RandomAffine(a.degrees, a.translate, a.shear, generator=gen, interpolation=a.interpolation,
                        pixel_translate=a.pixel_translate)


def new_model(config: Config, data: DeviceData, n_clusters: int) -> nn.Module:
    """A freshly initialised network of ``config.model`` (with ``model.weights`` loaded, when set)."""
    m = config.model
    kwargs = {"input_shape": data.sample_shape, "embedding_dim": m.embedding_dim or n_clusters,
              "hidden": m.hidden, "batch_norm": m.batch_norm}
    if hasattr(architecture(m.arch), "project"):
        kwargs["projection"] = m.projection
    model = build_model(m.arch, **kwargs)
    if m.weights is not None:
        from brb.models.resnet import load_external_weights

        if not hasattr(model, "project"):
            raise TrainingError(f"model.weights is for the resnet18 network, not {m.arch!r}")
        load_external_weights(model, m.weights)
    return model


def is_contrastive(model: nn.Module) -> bool:
    return hasattr(model, "project")


def check_finite(value: torch.Tensor, term: str, epoch: int) -> None:
    if not torch.isfinite(value).all():
        raise TrainingError(
            f"non-finite {term} loss ({value.item()}) at epoch {epoch}; lower the learning rate or check the "
            "input data. The run's outputs were not written; its last resume checkpoint (if any) is kept."
        )


@dataclass
class ClusterResult:
    labels: np.ndarray
    centroids: np.ndarray
    history: pd.DataFrame
    metrics: dict
    model: nn.Module
    objective: CentroidObjective
    extra: dict = field(default_factory=dict)


def _batches(n: int, batch_size: int, generator: torch.Generator, device=None,
             drop_last: bool = False) -> list[torch.Tensor]:
    """Shuffled index batches (drawn on the CPU for reproducibility, moved to ``device`` at once). With
    ``drop_last`` a last partial batch is dropped (unless it is the only one)."""
    perm = torch.randperm(n, generator=generator)
    if device is not None:
        perm = perm.to(device)
    parts = list(perm.split(batch_size))
    if drop_last and len(parts) > 1 and len(parts[-1]) < batch_size:
        parts.pop()
    if len(parts) > 1 and len(parts[-1]) < 2:  # BatchNorm cannot train on a single sample
        parts[-2] = torch.cat([parts[-2], parts.pop()])
    return parts


class ClusterTrainer(ResumableTraining):
    """Deep clustering of one dataset with one algorithm; BRB parts switched by ``config.brb``."""

    def __init__(
        self,
        config: Config,
        data: PreparedData | DeviceData,
        model: Optional[nn.Module] = None,
        checkpoint_dir: Optional[Path] = None,
        eval_data: Optional[DeviceData] = None,
    ):
        """``data`` trains; ``eval_data`` (default: ``data``) is what the history and the final labels are
        computed on. A :class:`PreparedData` is split as ``config.data.split`` says."""
        self.config = config
        self.checkpointer = Checkpointer(checkpoint_dir, config.run.checkpoint_every, config.fingerprint())
        self.device = setup_run(config.run)
        if isinstance(data, PreparedData):
            data, eval_data = device_splits(config, data, self.device)
        self.data = data
        self.eval_data = eval_data if eval_data is not None else data
        c = config.cluster
        self.n_clusters = c.n_clusters or data.n_classes
        if self.n_clusters > len(data):
            raise TrainingError(f"cluster.n_clusters={self.n_clusters} exceeds the number of samples ({len(data)})")
        self.model = (model or new_model(config, data, self.n_clusters)).to(self.device)
        self.weights = c.resolved_weights()
        self.contrastive = is_contrastive(self.model)
        if self.contrastive and self.weights["contrastive_weight"] > 0 and not c.augment:
            raise TrainingError(
                "the contrastive regulariser needs two augmented views: set cluster.augment: true "
                "(or cluster.contrastive_weight: 0)"
            )
        # the configuration was resolved against the network's declared capabilities (Config._fill_defaults),
        # so the weights recorded in metrics.json are the applied ones; a model passed in must match them
        if (self.weights["contrastive_weight"] > 0 and not self.contrastive) or (
            self.weights["reconstruction_weight"] > 0 and self.model.decoder is None
        ):
            raise TrainingError(f"the model passed in is not a {config.model.arch} network, as model.arch says")
        self.cpu_gen = torch.Generator().manual_seed(config.run.seed)
        self.augmenter = make_augmenter(config, data, self.device) if c.augment else None
        self.parts = config.brb.parts()

        z = embed(self.model, data, c.eval_batch_size, config.run.precision)
        init = recluster(z, self.n_clusters, "kmeans", config.run.seed, c.kmeans_n_init, backend=config.run.kmeans)
        if self.eval_data is not data:
            z = embed(self.model, self.eval_data, c.eval_batch_size, config.run.precision)
        objective = REGISTRY.load("method", c.algorithm)
        self.objective = objective(c, torch.from_numpy(init)).to(self.device)
        params = [{"params": list(self.model.parameters()), "name": "network"}]
        if self.objective.learned_centroids:
            params.append({"params": [self.objective.centroids], "name": "centroids"})
        self.optimizer = torch.optim.Adam(params, lr=c.lr)
        self.history: list[dict] = []
        self.labels = self.objective.predict(z).cpu().numpy()
        self._record(0, self.labels, z, losses={})

    # --- BRB -------------------------------------------------------------------------------------
    def brb_due(self, epoch: int) -> bool:
        return epoch > 0 and epoch % self.config.brb.interval == 0 and any(self.parts.values())

    def apply_brb(self, epoch: int) -> None:
        b = self.config.brb
        if self.parts["soft_reset"]:
            named = self.model.named_reset_blocks(include_embedding=b.reset_embedding)
            for (_, block), alpha in zip(named, b.block_alphas([name for name, _ in named])):
                soft_reset(block, alpha, init=b.reset_init, batchnorm=b.reset_batchnorm)
        if self.parts["recluster"]:
            idx = subsample_indices(len(self.data), b.subsample, self.config.run.seed * 100003 + epoch,
                                    b.subsample_mode)
            sub = DeviceSubset(self.data, idx)
            z = embed(self.model, sub, self.config.cluster.eval_batch_size, self.config.run.precision)
            centers = recluster(
                z, self.n_clusters, b.recluster_method, self.config.run.seed + epoch, b.kmeans_n_init,
                backend=self.config.run.kmeans,
            )
            self.objective.set_centroids(torch.from_numpy(centers))
        if self.parts["momentum_reset"]:
            self.objective.reset_momentum(self.optimizer, steps=b.reset_momentum_steps)

    # --- one epoch -------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        c = self.config.cluster
        self.model.train()
        target_full = None
        if c.target == "dataset" and self.weights["cluster_weight"] > 0:
            z_full = embed(self.model, self.data, c.eval_batch_size, self.config.run.precision)
            target_full = self.objective.full_target(z_full)
        w = self.weights
        use_reconstruction = w["reconstruction_weight"] > 0
        use_contrastive = w["contrastive_weight"] > 0
        zero = torch.zeros((), device=self.device)
        sums = {k: zero.clone() for k in ("loss", "loss_cluster", "loss_reconstruction", "loss_contrastive")}
        n_batches = 0
        for idx in _batches(len(self.data), c.batch_size, self.cpu_gen, self.device, c.drop_last):
            x, x_aug = self._views(idx)
            inputs = torch.cat([x, x_aug]) if x_aug is not None else x
            if c.bn_logging_pass:
                self._logging_pass(inputs)
            z_all, rec_all = self._forward(x, x_aug, use_reconstruction)
            with autocast(self.device, self.config.run.precision):
                proj = self.model.project(z_all).float() if use_contrastive else None
            z, z_aug = (z_all.split(len(x)) if x_aug is not None else (z_all, None))
            target = target_full[idx] if target_full is not None else None
            loss_c = self.objective.loss(z, z_aug, target)
            loss = w["cluster_weight"] * loss_c
            loss_r = loss_s = zero
            if use_reconstruction:
                loss_r = F.mse_loss(rec_all, inputs.reshape(len(inputs), -1))
                loss = loss + w["reconstruction_weight"] * loss_r
            if use_contrastive:
                loss_s = nt_xent(*proj.split(len(x)), temperature=self.config.pretrain.temperature)
                loss = loss + w["contrastive_weight"] * loss_s
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip is not None:  # the network's gradient only, as the BRB code clips the autoencoder
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            self.optimizer.step()
            self.objective.after_step(z.detach())
            for key, value in (("loss", loss), ("loss_cluster", loss_c), ("loss_reconstruction", loss_r),
                               ("loss_contrastive", loss_s)):
                sums[key] += value.detach()
            n_batches += 1
        if self.objective.updates_after_epoch:
            self._centroid_pass()
        # one device synchronisation per epoch; a non-finite batch loss makes its epoch sum non-finite
        check_finite(sums["loss_cluster"], "clustering", epoch)
        check_finite(sums["loss_reconstruction"], "reconstruction", epoch)
        check_finite(sums["loss_contrastive"], "contrastive", epoch)
        return {k: float(v) / max(n_batches, 1) for k, v in sums.items()}

    def _forward(self, x: torch.Tensor, x_aug: Optional[torch.Tensor], reconstruct: bool):
        """(embedding, flat reconstruction or None) of the views, float32, clean rows first. With
        ``cluster.view_passes: separate`` each view is its own forward pass (its own BatchNorm batch), the
        augmented view first, as the BRB code's DEC encodes them."""
        separate = x_aug is not None and self.config.cluster.view_passes == "separate"
        passes = [x_aug, x] if separate else [torch.cat([x, x_aug]) if x_aug is not None else x]
        zs, recs = [], []
        with autocast(self.device, self.config.run.precision):
            for inputs in passes:
                if reconstruct:
                    z, rec = self.model(inputs)
                    recs.append(rec.float())
                else:  # DEC, contrastive networks: no decoder pass
                    z = self.model.encode(inputs)
                zs.append(z.float())
        if separate:  # back to clean rows first
            zs, recs = zs[::-1], recs[::-1]
        return torch.cat(zs), (torch.cat(recs) if recs else None)

    @torch.no_grad()
    def _logging_pass(self, inputs: torch.Tensor) -> None:
        """The BRB code's DEC logs its autoencoder loss with a train-mode forward pass (encoder and decoder) of
        the concatenated views under ``inference_mode``; its only effect is one more update of every
        BatchNorm layer's running statistics, which this reproduces."""
        with autocast(self.device, self.config.run.precision):
            if self.model.decoder is not None:
                self.model(inputs)
            else:
                self.model.encode(inputs)

    @torch.no_grad()
    def _centroid_pass(self) -> None:
        """The BRB code's DCN centroid update: after the gradient pass, the clean training data in shuffled
        batches (its loader's, so ``drop_last`` applies), network in eval mode, no gradient."""
        c = self.config.cluster
        self.model.eval()
        with autocast(self.device, self.config.run.precision):
            for idx in _batches(len(self.data), c.batch_size, self.cpu_gen, self.device, c.drop_last):
                self.objective.update_centroids(self.model.encode(self.data.batch(idx)).float())
        self.model.train()

    def _views(self, idx: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The batch's two views: (clean, augmented or None) for autoencoders; two augmented views for
        contrastive networks trained with augmentation."""
        if self.augmenter is None:
            return self.data.batch(idx), None
        first = self.data.batch(idx, self.augmenter if self.contrastive else None)
        return first, self.data.batch(idx, self.augmenter)

    def _record(self, epoch: int, labels: np.ndarray, z: torch.Tensor, losses: dict) -> dict:
        """History row of the state after ``epoch`` epochs. ``brb`` becomes True when BRB is applied to
        this state, i.e. at the start of (0-indexed) epoch ``epoch``; so BRB rows are T, 2T, ..."""
        previous = self.labels  # the previous epoch's labels
        n_used = len(np.unique(labels))
        row = {
            "epoch": epoch,
            "loss": losses.get("loss", np.nan),
            "loss_cluster": losses.get("loss_cluster", np.nan),
            "loss_reconstruction": losses.get("loss_reconstruction", np.nan),
            "loss_contrastive": losses.get("loss_contrastive", np.nan),
            **clustering_metrics(self.eval_data.y, labels),
            "cluster_change": cluster_change(previous, labels),
            "brb": False,
            "n_empty_clusters": self.n_clusters - n_used,
            "n_reseeded": 0,
            "time_s": time.perf_counter(),
        }
        self.history.append(row)
        return row

    def reseed_empty(self, z: torch.Tensor, labels: np.ndarray) -> int:
        """Move each empty cluster's centroid onto the point farthest from its own centroid."""
        with torch.no_grad():
            centroids = self.objective.centroids
            assigned = torch.as_tensor(labels, device=z.device)
            dist = (z - centroids[assigned]).pow(2).sum(dim=1)
            empty = sorted(set(range(self.n_clusters)) - set(np.unique(labels).tolist()))
            far = dist.argsort(descending=True)[: len(empty)]
            for j, i in zip(empty, far.tolist()):
                centroids[j] = z[i]
        return len(empty)

    # --- resumable state ---------------------------------------------------------------------------
    def _generators(self) -> dict:
        return {"batches": self.cpu_gen, "augment": self.augmenter.generator if self.augmenter else None}

    def stateful(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "objective": self.objective}

    def fit(self, progress: bool = True) -> ClusterResult:
        c = self.config.cluster
        label = f"{c.algorithm}/{self.config.brb.variant} seed {self.config.run.seed}"
        start_epoch, start, bar = self.resume(label, c.epochs, progress)
        with stop_on_signals() as stop:
            for epoch in range(start_epoch, c.epochs):
                fired = self.brb_due(epoch)
                if fired:
                    self.apply_brb(epoch)
                    self.history[-1]["brb"] = True  # the row of the state BRB was applied to
                losses = self.train_epoch(epoch)
                z = embed(self.model, self.eval_data, c.eval_batch_size, self.config.run.precision)
                labels = self.objective.predict(z).cpu().numpy()
                row = self._record(epoch + 1, labels, z, losses)  # compares with self.labels
                self.labels = labels
                if c.empty_clusters == "reseed" and row["n_empty_clusters"] > 0:
                    row["n_reseeded"] = self.reseed_empty(z, labels)
                bar.update(epoch + 1, loss=row["loss"], acc=row["acc"], brb=int(fired))
                if stop.requested is not None:
                    self.checkpointer.save(self.state(epoch + 1, time.perf_counter() - start))
                    raise Interrupted(
                        f"stopped by signal {stop.requested} after epoch {epoch + 1}/{c.epochs}; "
                        f"checkpoint {self.checkpointer.path} (re-run the same command to resume)"
                    )
                if self.checkpointer.due(epoch + 1, c.epochs):
                    self.checkpointer.save(self.state(epoch + 1, time.perf_counter() - start))
        wall = time.perf_counter() - start
        history = pd.DataFrame(self.history)
        history["time_s"] = history["time_s"] - history["time_s"].iloc[0]
        final = clustering_metrics(self.eval_data.y, self.labels)
        metrics = {
            **final,
            "n_clusters": self.n_clusters,
            "n_nonempty_clusters": int(len(np.unique(self.labels))),
            "epochs": c.epochs,
            "brb_epochs": [int(r["epoch"]) for r in self.history if r["brb"]],
            "wall_time_s": wall,
            "initial_acc": float(self.history[0]["acc"]),
            "resumed_from_epoch": self.resumed_from,
        }
        return ClusterResult(
            labels=self.labels,
            centroids=self.objective.centroids.detach().cpu().numpy(),
            history=history,
            metrics=metrics,
            model=self.model,
            objective=self.objective,
        )


def device_splits(config: Config, data: PreparedData, device) -> tuple[DeviceData, DeviceData]:
    """(training data, evaluation data) on ``device`` as ``config.data.split`` says: the same object for
    ``combined``; the train split and the test split (normalised with the train split's statistics) for
    ``train_test``."""
    d = config.data
    if d.split == "combined":
        both = DeviceData(data, device, d.normalize, d.resize)
        return both, both
    train = DeviceData(data.part("train"), device, d.normalize, d.resize)
    test = DeviceData(data.part("test"), device, d.normalize, d.resize, statistics=(train.mean, train.std))
    return train, test


class DeviceSubset:
    """A view of some rows of a :class:`DeviceData` (for embedding a reclustering subsample)."""

    def __init__(self, data: DeviceData, index: np.ndarray):
        self.data = data
        self.index = torch.as_tensor(index, device=data.device)

    def __len__(self) -> int:
        return len(self.index)

    def iter_batches(self, batch_size: int):
        for part in self.index.split(batch_size):
            yield self.data.batch(part)


def run_clustering(
    config: Config,
    data: PreparedData,
    model: Optional[nn.Module] = None,
    progress: bool = True,
    checkpoint_dir: Optional[Path] = None,
) -> ClusterResult:
    """Python API: cluster ``data`` as ``config`` says, starting from ``model`` (e.g. a pretrained autoencoder).

    With ``checkpoint_dir``, resume state is saved there every ``run.checkpoint_every`` epochs (and on
    SIGTERM) and picked up by the next call with the same configuration.
    """
    return ClusterTrainer(config, data, model, checkpoint_dir).fit(progress=progress)
