"""Centroid-based deep clustering (DEC, IDEC, DCN, DKM: a :class:`CentroidObjective` each) as a method of the
training engine, with BRB as an intervention hook.

Per epoch (brb/engine/loop.py): BRB at the start of epochs T, 2T, ... → mini-batches drawn by index from the
device-resident dataset → loss = cluster_weight · clustering loss + the network's regulariser, one optimiser
step each → (DCN ``epoch_end``: the centroid pass) → evaluation (labels are used only here) → one history row.

The regulariser depends on the network: reconstruction MSE (weight ``reconstruction_weight``) for
autoencoders, NT-Xent between two augmented views' projections (weight ``contrastive_weight``) for
contrastive networks (``resnet18``). Contrastive networks always see two augmented views; autoencoders
see the clean batch and, with ``cluster.augment``, an augmented view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.config import Config
from brb.contrastive import nt_xent
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.engine.common import (
    DeviceSubset,
    device_splits,
    embed,
    make_augmenter,
    new_model,
    optimizer_step,
    shuffled_batches,
)
from brb.engine.loop import Engine, Method, TrainingError
from brb.engine.tracking import fit_on_engine
from brb.interventions.brb import BRB
from brb.interventions.brb_ops import recluster
from brb.methods.base import PROJECTION, RECONSTRUCTION, HasCentroids, HasResetBlocks, provides
from brb.methods.objective import CentroidObjective
from brb.metrics import cluster_change, clustering_metrics, nmi_geometric
from brb.registry import REGISTRY
from brb.runtime import autocast, setup_run


@dataclass
class ClusterResult:
    labels: np.ndarray
    centroids: np.ndarray
    history: pd.DataFrame
    metrics: dict
    model: nn.Module
    objective: CentroidObjective
    extra: dict = field(default_factory=dict)


class ClusterTrainer(Method, HasResetBlocks, HasCentroids):
    """Deep clustering of one dataset with one centroid-based method, as an engine :class:`Method`; BRB (an
    intervention hook, parts switched by ``config.brb``) acts on it through the capabilities it declares
    (:class:`brb.methods.base.HasResetBlocks`, :class:`~brb.methods.base.HasCentroids`)."""

    finite_terms = {"loss_cluster": "clustering", "loss_reconstruction": "reconstruction",
                    "loss_contrastive": "contrastive"}

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
        self.checkpoint_dir = checkpoint_dir
        self.label = f"{config.cluster.algorithm}/{config.brb.variant} seed {config.run.seed}"
        self.epochs = config.cluster.epochs
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
        self.contrastive = provides(self.model, PROJECTION)
        if self.contrastive and self.weights["contrastive_weight"] > 0 and not c.augment:
            raise TrainingError(
                "the contrastive regulariser needs two augmented views: set cluster.augment: true "
                "(or cluster.contrastive_weight: 0)"
            )
        # the configuration was resolved against the network's declared capabilities (Config._fill_defaults),
        # so the weights recorded in metrics.json are the applied ones; a model passed in must match them
        if (self.weights["contrastive_weight"] > 0 and not self.contrastive) or (
            self.weights["reconstruction_weight"] > 0 and not provides(self.model, RECONSTRUCTION)
        ):
            raise TrainingError(f"the model passed in is not a {config.model.arch} network, as model.arch says")
        self.cpu_gen = torch.Generator().manual_seed(config.run.seed)
        self.augmenter = make_augmenter(config, data, self.device) if c.augment else None
        self.brb = BRB(config.brb, config.run.seed, config.run.kmeans)
        self._zero = torch.zeros((), device=self.device)
        self._target = None

        z = embed(self.model, data, c.eval_batch_size, config.run.precision)
        init = recluster(z, self.n_clusters, "kmeans", config.run.seed, c.kmeans_n_init, backend=config.run.kmeans)
        if self.eval_data is not data:
            z = embed(self.model, self.eval_data, c.eval_batch_size, config.run.precision)
        objective = REGISTRY.load("method", c.algorithm)
        self.objective = objective(c, torch.from_numpy(init)).to(self.device)
        self._companions = None
        if self.objective.uses_companions:
            from brb.methods.ddc import companion_names

            if c.view_passes == "separate" and c.augment:
                raise TrainingError(f"{c.algorithm}'s companion terms need cluster.view_passes: joint")
            self.companions = companion_names(self.model)
        params = [{"params": list(self.model.parameters()), "name": "network"}]
        if self.objective.learned_centroids:
            params.append({"params": [self.objective.centroids], "name": "centroids"})
        if c.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0)
        else:
            self.optimizer = torch.optim.Adam(params, lr=c.lr)
        self.labels = self.objective.predict(z).cpu().numpy()
        self._initial = self._row(self.labels, losses={})

    # --- what BRB needs (HasResetBlocks, HasCentroids: brb/methods/base.py) ----------------------------
    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        return self.model.named_reset_blocks(include_embedding=include_embedding)

    def n_train(self) -> int:
        return len(self.data)

    def embed_rows(self, index: np.ndarray) -> torch.Tensor:
        return embed(self.model, DeviceSubset(self.data, index), self.config.cluster.eval_batch_size,
                     self.config.run.precision)

    def set_centroids(self, centroids: torch.Tensor) -> None:
        self.objective.set_centroids(centroids)

    def reset_centroid_momentum(self, steps: bool) -> None:
        self.objective.reset_momentum(self.optimizer, steps=steps)

    def apply_brb(self, epoch: int) -> None:
        """BRB's parts as ``config.brb`` switches them, now (the engine calls it through the BRB hook)."""
        self.brb.apply(self, epoch)

    # --- one epoch -------------------------------------------------------------------------------
    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        c = self.config.cluster
        self.objective.start_epoch(epoch)
        self.model.train()
        if c.recluster_every and epoch > 0 and epoch % c.recluster_every == 0:
            self._recluster_all(epoch)
        # DEC's dataset-wide target, when asked for, over the data as the epoch starts (every target_every epochs)
        if c.target != "dataset" or self.weights["cluster_weight"] == 0:
            self._target = None
        elif self._target is None or epoch % c.target_every == 0:
            z_full = embed(self.model, self.data, c.eval_batch_size, self.config.run.precision)
            self._target = self.objective.full_target(z_full)

    def _recluster_all(self, epoch: int) -> None:
        """``cluster.recluster_every``: k-means on the embedding of all training data, written back as the
        centroids (as Aljalbout et al.'s paper describes for the k-means loss)."""
        c = self.config.cluster
        z = embed(self.model, self.data, c.eval_batch_size, self.config.run.precision)
        centers = recluster(z, self.n_clusters, "kmeans", self.config.run.seed + epoch, c.kmeans_n_init,
                            backend=self.config.run.kmeans)
        self.objective.set_centroids(torch.from_numpy(centers))

    def final_kmeans(self) -> np.ndarray:
        """Labels of k-means (``cluster.kmeans_n_init`` restarts) on the final embedding of the evaluation data."""
        c = self.config.cluster
        z = embed(self.model, self.eval_data, c.eval_batch_size, self.config.run.precision)
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=self.n_clusters, n_init=c.kmeans_n_init, random_state=self.config.run.seed)
        return km.fit_predict(z.cpu().numpy()).astype(np.int64)

    def batches(self, epoch: int) -> list[torch.Tensor]:
        c = self.config.cluster
        return shuffled_batches(len(self.data), c.batch_size, self.cpu_gen, self.device, c.drop_last)

    def training_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """loss = cluster_weight · clustering loss + the network's regulariser, one optimiser step, then the
        objective's per-step centroid update (DCN ``step`` mode)."""
        c, w = self.config.cluster, self.weights
        use_reconstruction = w["reconstruction_weight"] > 0
        use_contrastive = w["contrastive_weight"] > 0
        x, x_aug = self._views(idx)
        inputs = torch.cat([x, x_aug]) if x_aug is not None else x
        if c.bn_logging_pass:
            self._logging_pass(inputs)
        z_all, rec_all = self._forward(x, x_aug, use_reconstruction)
        with autocast(self.device, self.config.run.precision):
            proj = self.model.project(z_all).float() if use_contrastive else None
        z, z_aug = (z_all.split(len(x)) if x_aug is not None else (z_all, None))
        target = self._target[idx] if self._target is not None else None
        loss_c = self.objective.loss(z, z_aug, target)
        loss = w["cluster_weight"] * loss_c
        losses = {}
        if self._companions is not None:  # tk-uco's companion objectives on the clean view's intermediate outputs
            loss_u = self.objective.companion_loss(z, [t[: len(x)] for t in self._companions])
            loss = loss + self.objective.options.uco_weight * loss_u
            losses["loss_uco"] = loss_u
            self._companions = None
        loss_r = loss_s = self._zero
        if use_reconstruction:
            loss_r = F.mse_loss(rec_all, inputs.reshape(len(inputs), -1))
            loss = loss + w["reconstruction_weight"] * loss_r
        if use_contrastive:
            loss_s = nt_xent(*proj.split(len(x)), temperature=self.config.pretrain.temperature)
            loss = loss + w["contrastive_weight"] * loss_s
        # the network's gradient only is clipped, as the BRB code clips the autoencoder's
        optimizer_step(self.optimizer, loss, c.grad_clip, self.model.parameters())
        self.objective.after_step(z.detach())
        return {"loss": loss, "loss_cluster": loss_c, "loss_reconstruction": loss_r, "loss_contrastive": loss_s,
                **losses}

    def epoch_losses(self, epoch: int, sums: dict, n_steps: int) -> dict[str, float]:
        if self.objective.updates_after_epoch:
            self._centroid_pass()
        # a non-finite batch loss makes its epoch sum non-finite: the engine's NaN guard checks finite_terms
        return super().epoch_losses(epoch, sums, n_steps)

    def _forward(self, x: torch.Tensor, x_aug: Optional[torch.Tensor], reconstruct: bool):
        """(embedding, flat reconstruction or None) of the views, float32, clean rows first. With
        ``cluster.view_passes: separate`` each view is its own forward pass (its own BatchNorm batch), the
        augmented view first, as the BRB code's DEC encodes them."""
        separate = x_aug is not None and self.config.cluster.view_passes == "separate"
        passes = [x_aug, x] if separate else [torch.cat([x, x_aug]) if x_aug is not None else x]
        zs, recs = [], []
        self._companions = None
        with autocast(self.device, self.config.run.precision):
            for inputs in passes:
                if self.objective.uses_companions and not separate:  # one pass gives the embedding and the layers
                    outs = dict(self.model.intermediate(inputs))
                    z = list(outs.values())[-1]
                    self._companions = [outs[name].float() for name in self.companions]
                    if reconstruct:
                        recs.append(self.model.decode(z).reshape(len(z), -1).float())
                elif reconstruct:
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
            if provides(self.model, RECONSTRUCTION):
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
            for idx in shuffled_batches(len(self.data), c.batch_size, self.cpu_gen, self.device, c.drop_last):
                self.objective.update_centroids(self.model.encode(self.data.batch(idx)).float())
        self.model.train()

    def _views(self, idx: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The batch's two views: (clean, augmented or None) for autoencoders; two augmented views for
        contrastive networks trained with augmentation."""
        if self.augmenter is None:
            return self.data.batch(idx), None
        first = self.data.batch(idx, self.augmenter if self.contrastive else None)
        return first, self.data.batch(idx, self.augmenter)

    def _row(self, labels: np.ndarray, losses: dict) -> dict:
        """History values of the state whose labels are ``labels`` (compared with the previous ``self.labels``).
        ``brb`` becomes True when BRB is applied to this state, i.e. at the start of the next epoch."""
        n_used = len(np.unique(labels))
        return {
            **({"epoch": 0} if not losses else {}),
            "loss": losses.get("loss", np.nan),
            "loss_cluster": losses.get("loss_cluster", np.nan),
            "loss_reconstruction": losses.get("loss_reconstruction", np.nan),
            "loss_contrastive": losses.get("loss_contrastive", np.nan),
            **({"loss_uco": losses.get("loss_uco", np.nan)} if self.objective.uses_companions else {}),
            **clustering_metrics(self.eval_data.y, labels),
            "cluster_change": cluster_change(self.labels, labels),
            "brb": False,
            "n_empty_clusters": self.n_clusters - n_used,
            "n_reseeded": 0,
            **({"time_s": 0.0} if not losses else {}),
        }

    def start_history(self) -> list[dict]:
        return [self._initial]

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        c = self.config.cluster
        z = embed(self.model, self.eval_data, c.eval_batch_size, self.config.run.precision)
        labels = self.objective.predict(z).cpu().numpy()
        row = self._row(labels, losses)
        self.labels = labels
        if c.empty_clusters == "reseed" and row["n_empty_clusters"] > 0:
            row["n_reseeded"] = self.reseed_empty(z, labels)
        return row

    def progress_values(self, row: dict) -> dict:
        return {"loss": row["loss"], "acc": row["acc"]}

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
    def generators(self) -> dict:
        return {"batches": self.cpu_gen, "augment": self.augmenter.generator if self.augmenter else None}

    def stateful(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "objective": self.objective}

    def extra_state(self) -> dict:
        return {"labels": self.labels, "target": self._target}

    def load_extra_state(self, state: dict) -> None:
        self.labels = state["labels"]
        self._target = state.get("target")

    def fit(self, progress: bool = True) -> ClusterResult:
        """Train on the engine with the BRB hook; resumable when the trainer has a checkpoint directory."""
        fit = fit_on_engine(self, self.config, self.checkpoint_dir, progress, hooks=[self.brb])
        history = pd.DataFrame(fit.history)
        labels, extra = self.labels, {}
        if self.config.cluster.final_kmeans:  # k-means on the final embedding is the reported assignment
            extra = {f"centroid_{k}": v for k, v in clustering_metrics(self.eval_data.y, self.labels).items()}
            labels = self.final_kmeans()
        metrics = {
            **clustering_metrics(self.eval_data.y, labels),
            "nmi_geometric": nmi_geometric(self.eval_data.y, labels),
            **extra,
            "n_clusters": self.n_clusters,
            "n_nonempty_clusters": int(len(np.unique(labels))),
            "epochs": self.epochs,
            "brb_epochs": [int(r["epoch"]) for r in fit.history if r["brb"]],
            "wall_time_s": fit.wall_time_s,
            "initial_acc": float(fit.history[0]["acc"]),
            "resumed_from_epoch": fit.resumed_from,
        }
        return ClusterResult(
            labels=labels,
            centroids=self.objective.centroids.detach().cpu().numpy(),
            history=history,
            metrics=metrics,
            model=self.model,
            objective=self.objective,
        )


def clustering_trainer(algorithm: str) -> type[Method]:
    """The engine method that trains ``algorithm``: :class:`ClusterTrainer` for a centroid objective, else the
    registered class itself (a method with its own head, e.g. DDC), constructed with the same arguments."""
    cls = REGISTRY.load("method", algorithm)
    return ClusterTrainer if issubclass(cls, CentroidObjective) else cls


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
    return clustering_trainer(config.cluster.algorithm)(config, data, model, checkpoint_dir).fit(progress=progress)
