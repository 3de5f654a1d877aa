"""DeepCluster (Caron et al., ECCV 2018) on the training engine (issue 16): registry name ``deepcluster``, options
:class:`~brb.methods.options.DeepClusterOptions`, networks ``alexnet_bn`` / ``vgg16_bn`` / ``dc_small`` / ``dc_resnet18``
(:mod:`brb.models.deepcluster`), the per-epoch pieces in :mod:`brb.cluster.deepcluster_ops`; the facts read from
their code are in ``../shared/methods/deepcluster.md``.

One epoch, as their ``main.py`` (at the engine's epoch start, so a BRB soft reset of this epoch comes first):

1. the features of the whole training set: the last classifier Linear **before** its ReLU, eval mode, no
   augmentation, dataset order;
2. PCA to ``pca_dim`` with whitening, then L2-normalised rows;
3. k-means into ``dc_k`` clusters (random initial points, ``kmeans_niter`` iterations, faiss's empty-cluster split;
   faiss when installed and ``kmeans_backend`` allows, else our torch k-means), a new seed every epoch;
4. pseudo-labels = the assignment; NMI with the previous epoch's assignment and with the true labels logged;
5. ``reassign_size`` × N indices uniform over the non-empty clusters (shuffled), in batches of ``cluster.batch_size``;
6. a **new** top layer Linear(features, dc_k), N(0, 0.01) weights, zero bias, with its own SGD (``top_lr``, weight
   decay, no momentum), recreated every epoch;
7. one pass of cross-entropy of ``top_layer(ReLU(features(x)))`` on the pseudo-labels, x the augmented view
   (``augment`` section: their RandomResizedCrop + flip), network SGD (``lr``, ``dc_momentum``, weight decay,
   constant).

Evaluation (every ``eval_every`` epochs and after the last): k-means (``cluster.kmeans_n_init`` restarts) to
``cluster.n_clusters`` (the number of classes) on the same PCA-whitened features: its ACC / NMI / ARI are the
row's scores and the run's labels. The pseudo-label clustering is scored too, with k > classes: ``pseudo_nmi``
(NMI with the labels, the paper's Figure 2a), ``pseudo_purity`` (the many-to-one ACC: every cluster mapped to its
majority class; high by construction when k is large), ``nmi_consecutive`` (NMI(t−1, t), Figure 2b). Epoch 0
scores the untrained network.

BRB (our extension): DeepCluster reclusters every epoch already and has no persistent centroids or head, so only
the soft reset applies (variant ``reset``: the conv/fc blocks of ``named_reset_blocks``); the variants that
recluster or reset centroid momentum are refused with a clear message by the BRB hook.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.cluster.deepcluster_ops import fit_pca_whitening, kmeans, nmi_consecutive, uniform_cluster_indices
from brb.cluster.kmeans_torch import kmeans_torch
from brb.config import Config
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.engine.common import make_augmenter, setup_cluster_method
from brb.engine.loop import Engine, Method, TrainingError
from brb.engine.tracking import fit_on_engine
from brb.interventions.brb import BRB
from brb.methods.base import HasResetBlocks
from brb.methods.options import DeepClusterOptions
from brb.metrics import clustering_metrics, nmi_geometric, purity
from brb.models import architecture


class DeepCluster(Method, HasResetBlocks):
    """DeepCluster on the engine (module notes above)."""

    Options = DeepClusterOptions
    finite_terms = {"loss": "pseudo-label cross-entropy"}

    def __init__(self, config: Config, data: PreparedData | DeviceData, model: Optional[nn.Module] = None,
                 checkpoint_dir: Optional[Path] = None, eval_data: Optional[DeviceData] = None):
        setup_cluster_method(self, config, data, eval_data, checkpoint_dir, DeepClusterOptions, "DeepCluster")
        o, data = self.options, self.data
        if not data.is_image:
            raise TrainingError("DeepCluster needs image data (its networks are convolutional)")
        if o.dc_k > len(data):
            raise TrainingError(f"cluster.dc_k={o.dc_k} exceeds the number of training samples ({len(data)})")
        if model is None:
            cls = architecture(config.model.arch)
            if not hasattr(cls, "reset_top_layer"):
                raise TrainingError("DeepCluster needs one of its networks (alexnet_bn, vgg16_bn, dc_small, "
                                    f"dc_resnet18), not model.arch {config.model.arch!r}")
            model = cls(input_shape=data.sample_shape, embedding_dim=config.model.embedding_dim, sobel=o.sobel)
        if not hasattr(model, "reset_top_layer"):
            raise TrainingError(f"DeepCluster needs a network with a replaceable top layer, not {type(model).__name__}")
        self.model = model.to(self.device)
        self.top_gen = torch.Generator(device=self.device).manual_seed(config.run.seed + 17)
        self.model.reset_top_layer(o.dc_k, self.top_gen)  # so a checkpoint's top layer fits on resume
        body = [p for name, p in self.model.named_parameters() if not name.startswith("top_layer.")]
        self.optimizer = torch.optim.SGD(body, lr=o.lr, momentum=o.dc_momentum, weight_decay=o.weight_decay)
        self.top_optimizer: Optional[torch.optim.Optimizer] = None
        self.augmenter = make_augmenter(config, data, self.device)
        self.cpu_gen = torch.Generator().manual_seed(config.run.seed)
        self.brb = BRB(config.brb, config.run.seed, config.run.kmeans)
        self.assignment: Optional[np.ndarray] = None  # the current epoch's pseudo-labels (dc_k clusters)
        self.previous: Optional[np.ndarray] = None
        self.pseudo_scores: dict = {}
        self.indices: Optional[torch.Tensor] = None
        self.labels = self._evaluate_labels()
        self._initial = {"epoch": 0, "loss": math.nan, **self._scores(self.labels), "nmi_consecutive": math.nan,
                         "pseudo_nmi": math.nan, "pseudo_purity": math.nan, "n_empty_pseudo": math.nan,
                         "brb": False, "time_s": 0.0}

    # --- features -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, data: Optional[DeviceData] = None) -> torch.Tensor:
        """Pre-ReLU features of ``data`` (default the training set), eval mode, no augmentation, dataset order."""
        data = data or self.data
        self.model.eval()
        feats = torch.cat([self.model.features(x).float() for x in data.iter_batches(self.config.cluster.eval_batch_size)])
        self.model.train()
        return feats

    def _whitened(self, feats: torch.Tensor) -> torch.Tensor:
        dim = min(self.options.pca_dim, feats.shape[1], feats.shape[0] - 1)
        return fit_pca_whitening(feats, dim).apply(feats, normalize=True)

    def _evaluate_labels(self) -> np.ndarray:
        """k-means to ``n_clusters`` on the PCA-whitened features of the evaluation data."""
        z = self._whitened(self.features(self.eval_data))
        centers = kmeans_torch(z, self.n_clusters, self.config.run.seed, n_init=self.config.cluster.kmeans_n_init)
        d = torch.cdist(z, centers.to(z))
        return d.argmin(dim=1).cpu().numpy()

    def _scores(self, labels: np.ndarray) -> dict:
        y = self.eval_data.y
        return {**clustering_metrics(y, labels), "nmi_geometric": nmi_geometric(y, labels),
                "n_empty_clusters": self.n_clusters - int(len(np.unique(labels)))}

    # --- the epoch ------------------------------------------------------------------------------------------
    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        """Cluster the features (steps 1-4), draw the epoch's indices (5), a new top layer and its SGD (6)."""
        o = self.options
        z = self._whitened(self.features())
        seed = self.config.run.seed * 1009 + epoch
        result = kmeans(z, o.dc_k, seed, backend=o.kmeans_backend, niter=o.kmeans_niter)
        assignment = result.labels.cpu().numpy()
        self.previous, self.assignment = self.assignment, assignment
        y = self.data.y
        self.pseudo_scores = {
            "nmi_consecutive": nmi_consecutive(self.previous, assignment) if self.previous is not None else math.nan,
            "pseudo_nmi": clustering_metrics(y, assignment)["nmi"],
            "pseudo_purity": purity(y, assignment),
            "n_empty_pseudo": o.dc_k - int(len(np.unique(assignment))),
        }
        n = max(int(round(o.reassign_size * len(self.data))), 1)
        self.indices = uniform_cluster_indices(assignment, n, self.cpu_gen).to(self.device)
        self.pseudo = torch.as_tensor(assignment, dtype=torch.long, device=self.device)
        top = self.model.reset_top_layer(o.dc_k, self.top_gen)
        self.top_optimizer = torch.optim.SGD(top.parameters(), lr=o.top_lr, weight_decay=o.weight_decay)
        self.model.train()

    def batches(self, epoch: int) -> list[torch.Tensor]:
        return list(self.indices.split(self.config.cluster.batch_size))

    def training_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.data.batch(idx, self.augmenter)
        loss = F.cross_entropy(self.model(x), self.pseudo[idx])
        self.optimizer.zero_grad(set_to_none=True)
        self.top_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.top_optimizer.step()
        return {"loss": loss}

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        row = {**losses, **self.pseudo_scores, "brb": False}
        last = epoch + 1 == self.epochs
        if (epoch + 1) % self.options.eval_every == 0 or last:
            self.labels = self._evaluate_labels()
            row.update(self._scores(self.labels))
        return row

    def progress_values(self, row: dict) -> dict:
        return {"loss": row["loss"], "nmi_t-1": row.get("nmi_consecutive"), "acc": row.get("acc", math.nan)}

    def start_history(self) -> list[dict]:
        return [self._initial]

    # --- BRB (soft reset only) ----------------------------------------------------------------------------------
    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        return self.model.named_reset_blocks(include_embedding=include_embedding)

    # --- resumable state ----------------------------------------------------------------------------------------
    def generators(self) -> dict:
        gens = {"batches": self.cpu_gen, "top_layer": self.top_gen}
        if self.augmenter is not None:
            gens["augment"] = self.augmenter.generator
        return gens

    def stateful(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer}

    def extra_state(self) -> dict:
        return {"assignment": self.assignment, "labels": self.labels}

    def load_extra_state(self, state: dict) -> None:
        self.assignment, self.labels = state["assignment"], state["labels"]

    def fit(self, progress: bool = True):
        """Train on the engine (with the BRB hook: soft reset only); the final k-means labels and metrics."""
        from brb.methods.centroid import ClusterResult

        fit = fit_on_engine(self, self.config, self.checkpoint_dir, progress, hooks=[self.brb])
        history = pd.DataFrame(fit.history)
        labels = self.labels
        last = fit.history[-1]
        metrics = {
            **self._scores(labels),
            "n_clusters": self.n_clusters,
            "n_nonempty_clusters": int(len(np.unique(labels))),
            "dc_k": self.options.dc_k,
            "final_nmi_consecutive": float(last.get("nmi_consecutive", math.nan)),
            "final_pseudo_nmi": float(last.get("pseudo_nmi", math.nan)),
            "final_pseudo_purity": float(last.get("pseudo_purity", math.nan)),
            "epochs": self.epochs,
            "brb_epochs": [int(r["epoch"]) for r in fit.history if r.get("brb")],
            "wall_time_s": fit.wall_time_s,
            "initial_acc": float(fit.history[0]["acc"]),
            "resumed_from_epoch": fit.resumed_from,
        }
        self.model.eval()
        return ClusterResult(labels=labels, centroids=None, history=history, metrics=metrics, model=self.model,
                             objective=None, extra={})
