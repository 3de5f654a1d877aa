"""SCAN-style self-labeling after deep clustering: confident clusters teach the network on strong views.

A linear cluster head is put on the clustered network's embedding, initialised from the centroids so
that its argmax is the nearest-centroid assignment. Each step draws a weakly and a strongly augmented
view of one batch; weak-view cluster probabilities above ``selflabel.threshold`` become pseudo-labels,
and the cross-entropy of the strong view against them (class-balanced if asked) trains network and
head together (Van Gansbeke et al., SCAN, ECCV 2020; used after clustering in the BRB paper).

Evaluation uses the clean embedding of the evaluation data (labels only there), one history row per
epoch plus row 0, the state before training. Resumable from a checkpoint like the other stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.checkpointing import Checkpointer
from brb.config import Config
from brb.data.augment import ColourAugment, Cutout, RandomAffine
from brb.data.tensors import DeviceData
from brb.engine.common import embed, optimizer_step, shuffled_batches
from brb.engine.loop import Engine, Method, TrainingError
from brb.engine.tracking import fit_on_engine
from brb.metrics import cluster_change, clustering_metrics
from brb.runtime import autocast, setup_run

Transform = Callable[[torch.Tensor], torch.Tensor]

#: Offsets added to ``run.seed`` for the generators of the views (distinct from the clustering ones).
_SEED_OFFSETS = {"weak": 104729, "strong": 130363, "cutout": 155921}


@dataclass
class SelfLabelResult:
    labels: np.ndarray
    history: pd.DataFrame
    metrics: dict
    model: nn.Module
    head: nn.Linear
    #: where the resume checkpoint lives; the caller clears it once the outputs are written
    checkpointer: Optional[Checkpointer] = field(default=None, repr=False)


@dataclass
class Views:
    """The weak and the strong augmentation of a batch, and the generators behind them (for resuming)."""

    weak: Transform
    strong: Transform
    generators: dict[str, torch.Generator]


# --- cluster head ---------------------------------------------------------------------------------


def centroid_head(centroids: torch.Tensor) -> nn.Linear:
    """Linear head whose argmax is the nearest centroid: logits_j = 2·μ_j·z − ||μ_j||².

    These logits equal −||z − μ_j||² + ||z||², and ||z||² is the same for every cluster, so the softmax
    and the argmax of the head start out as those of the (negative squared) centroid distances.
    """
    centroids = centroids.detach().float()
    if centroids.ndim != 2:
        raise TrainingError(f"centroids must be a (k, d) matrix, got shape {tuple(centroids.shape)}")
    if not torch.isfinite(centroids).all():
        raise TrainingError("centroids contain non-finite values; self-labeling cannot start from them")
    k, d = centroids.shape
    head = nn.Linear(d, k)
    with torch.no_grad():
        head.weight.copy_(2 * centroids)
        head.bias.copy_(-centroids.pow(2).sum(dim=1))
    return head


# --- augmented views ------------------------------------------------------------------------------


def _generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _then(first: Transform, second: Optional[Transform]) -> Transform:
    """``second`` applied after ``first`` (``first`` alone when ``second`` is None)."""
    if second is None:
        return first
    return lambda x: second(first(x))


def make_views(config: Config, data: DeviceData, device: torch.device) -> Views:
    """SCAN's weak and strong views for ``data``, on ``device``, seeded from ``run.seed``.

    Colour: weak = random resized crop (area ``selflabel.weak_crop_scale_min``..1) + flip; strong = the
    colour augmentation of ``config.augment``. Grey: weak = random affine at half of ``config.augment``'s
    ranges; strong = the full ranges. The strong view ends with a cutout of side ``selflabel.cutout``
    (erased to the data mean, i.e. 0 after normalising). The image kind follows ``augment.kind``
    (auto: colour for 3 channels), as the clustering augmentation does.
    """
    if not data.is_image:
        raise TrainingError("self-labeling needs image data (its views are image augmentations)")
    a, s, seed = config.augment, config.selflabel, config.run.seed
    gens = {name: _generator(seed + offset, device) for name, offset in _SEED_OFFSETS.items()}
    kind = a.kind if a.kind != "auto" else ("colour" if data.sample_shape[0] == 3 else "affine")
    if kind == "colour":
        weak = ColourAugment((s.weak_crop_scale_min, 1.0), a.flip, a.jitter, 0.0, 0.0, 0.0, generator=gens["weak"])
        strong = ColourAugment(
            (a.crop_scale_min, 1.0), a.flip, a.jitter, a.jitter_p, a.grey_p, a.solarize_p, generator=gens["strong"]
        )
    else:
        weak = RandomAffine(a.degrees / 2, a.translate / 2, a.shear / 2, generator=gens["weak"])
        strong = RandomAffine(a.degrees, a.translate, a.shear, generator=gens["strong"])
    cutout = Cutout(s.cutout, fill=data.mean, generator=gens["cutout"]) if s.cutout > 0 else None
    return Views(weak=weak, strong=_then(strong, cutout), generators=gens)


# --- loss -----------------------------------------------------------------------------------------


def balanced_weights(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-sample weights n / (n_present · count[label]): every pseudo-label present weighs the same.

    This is SCAN's class balancing (class weights n/count inside a weighted mean) written per sample,
    so that the plain mean of weight · cross-entropy is the mean over classes of each class's mean loss.
    """
    counts = torch.bincount(target, minlength=n_classes).float()
    n_present = (counts > 0).sum()
    return len(target) / (n_present * counts[target])


def self_label_loss(
    weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float, balanced: bool
) -> tuple[torch.Tensor, int]:
    """Confidence-masked cross-entropy of the strong view against the weak view's pseudo-labels.

    Returns the loss and the number of confident samples (weak top probability > ``threshold``). With
    no confident sample the loss is a zero without gradient, and the caller skips the step.
    """
    with torch.no_grad():
        confidence, target = weak_logits.detach().float().softmax(dim=1).max(dim=1)
        mask = confidence > threshold
    n_confident = int(mask.sum())  # the one synchronisation of a step: it decides whether to step
    if n_confident == 0:
        return torch.zeros((), device=strong_logits.device), 0
    target = target[mask]
    losses = F.cross_entropy(strong_logits[mask].float(), target, reduction="none")
    if balanced:
        losses = losses * balanced_weights(target, strong_logits.shape[1])
    return losses.mean(), n_confident


# --- training -------------------------------------------------------------------------------------


class _SelfLabeler(Method):
    """One self-labeling run as an engine :class:`Method`: network, head, optimiser, views."""

    finite_terms = {"loss": "self-labeling"}

    def __init__(
        self,
        config: Config,
        model: nn.Module,
        centroids: torch.Tensor,
        train: DeviceData,
        evaluate: DeviceData,
        checkpoint_dir: Optional[Path],
    ):
        setup_run(config.run)  # seeds and threads; the device is the data's
        self.config = config
        self.device = train.device
        self.train, self.evaluate_data = train, evaluate
        self.views = make_views(config, train, self.device)
        self.model = model.to(self.device)
        self.head = centroid_head(torch.as_tensor(centroids)).to(self.device)
        s = config.selflabel
        self.optimizer = torch.optim.Adam(
            [*self.model.parameters(), *self.head.parameters()], lr=s.lr, weight_decay=s.weight_decay
        )
        self.cpu_gen = torch.Generator().manual_seed(config.run.seed)
        self.checkpoint_dir = checkpoint_dir
        self.epochs = s.epochs
        self.label = f"selflabel {train.name} seed {config.run.seed}"
        self.labels, eval_confident = self.predict(epoch=0)
        self._initial = {"epoch": 0, **self._row(self.labels, eval_confident, {}), "time_s": 0.0}

    @property
    def n_clusters(self) -> int:
        return self.head.out_features

    def predict(self, epoch: int) -> tuple[np.ndarray, float]:
        """Head argmax on the clean embedding of the evaluation data, and the fraction above threshold."""
        c = self.config.cluster
        z = embed(self.model, self.evaluate_data, c.eval_batch_size, self.config.run.precision)
        if z.shape[1] != self.head.in_features:
            raise TrainingError(
                f"centroids have dimension {self.head.in_features} but the embedding has {z.shape[1]}"
            )
        if not torch.isfinite(z).all():
            raise TrainingError(f"non-finite embedding after self-labeling epoch {epoch}; lower selflabel.lr")
        with torch.no_grad():
            probs = self.head(z).softmax(dim=1)
        confidence, labels = probs.max(dim=1)
        return labels.cpu().numpy(), float((confidence > self.config.selflabel.threshold).float().mean())

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Head logits of a batch (network under autocast, head in float32)."""
        with autocast(self.device, self.config.run.precision):
            z = self.model.encode(x)
        return self.head(z.float())

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        self.model.train()
        self._seen = self._confident = 0

    def batches(self, epoch: int) -> list[torch.Tensor]:
        return shuffled_batches(len(self.train), self.config.selflabel.batch_size, self.cpu_gen, self.device)

    def training_step(self, idx: torch.Tensor) -> dict | None:
        """Pseudo-labels from the weak view, cross-entropy on the strong view; no step (None) without a
        confident sample in the batch."""
        s = self.config.selflabel
        with torch.no_grad():
            weak_logits = self._logits(self.train.batch(idx, self.views.weak))
        strong_logits = self._logits(self.train.batch(idx, self.views.strong))
        loss, n_conf = self_label_loss(weak_logits, strong_logits, s.threshold, s.balanced)
        self._seen += len(idx)
        self._confident += n_conf
        if n_conf == 0:
            return None
        optimizer_step(self.optimizer, loss)
        return {"loss": loss}

    def epoch_losses(self, epoch: int, sums: dict, n_steps: int) -> dict[str, float]:
        """The mean loss of the steps taken, the confident fraction of the weak views, the number of steps."""
        return {
            "loss": float(sums["loss"]) / n_steps if n_steps else 0.0,
            "confident_fraction": self._confident / max(self._seen, 1),
            "n_steps": n_steps,
        }

    def _row(self, labels: np.ndarray, eval_confident: float, losses: dict) -> dict:
        """History values of the state whose head labels are ``labels`` (compared with ``self.labels``)."""
        return {
            "loss": losses.get("loss", np.nan),
            "confident_fraction": losses.get("confident_fraction", np.nan),
            "n_steps": losses.get("n_steps", 0),
            "eval_confident_fraction": eval_confident,
            **clustering_metrics(self.evaluate_data.y, labels),
            "cluster_change": cluster_change(self.labels, labels),
            "n_empty_clusters": self.n_clusters - len(np.unique(labels)),
        }

    def start_history(self) -> list[dict]:
        return [self._initial]

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        labels, eval_confident = self.predict(epoch + 1)
        row = self._row(labels, eval_confident, losses)
        self.labels = labels
        return row

    def progress_values(self, row: dict) -> dict:
        return {"loss": row["loss"], "acc": row["acc"], "confident": row["confident_fraction"]}

    # --- resumable state -------------------------------------------------------------------------
    def generators(self) -> dict[str, torch.Generator]:
        return {"batches": self.cpu_gen, **self.views.generators}

    def stateful(self) -> dict:
        return {"model": self.model, "head": self.head, "optimizer": self.optimizer}

    def extra_state(self) -> dict:
        return {"labels": self.labels}

    def load_extra_state(self, state: dict) -> None:
        self.labels = state["labels"]

    def fit(self, progress: bool) -> SelfLabelResult:
        fit = fit_on_engine(self, self.config, self.checkpoint_dir, progress,
                            fingerprint={"selflabel": self.config.fingerprint()})  # never mistaken for another stage's
        self.history, self.resumed_from = fit.history, fit.resumed_from
        return self._result(fit.wall_time_s)

    def _result(self, wall: float) -> SelfLabelResult:
        history = pd.DataFrame(self.history)
        last = self.history[-1]
        metrics = {
            "resumed_from_epoch": self.resumed_from,
            **clustering_metrics(self.evaluate_data.y, self.labels),
            "n_clusters": self.n_clusters,
            "n_nonempty_clusters": int(len(np.unique(self.labels))),
            "epochs": self.config.selflabel.epochs,
            "wall_time_s": wall,
            "initial_acc": float(self.history[0]["acc"]),
            # fraction of weak training views above threshold in the last epoch (None without epochs)
            "confident_fraction": None if len(self.history) == 1 else float(last["confident_fraction"]),
            "eval_confident_fraction": float(last["eval_confident_fraction"]),
        }
        self.model.eval()
        self.head.eval()
        return SelfLabelResult(
            labels=self.labels, history=history, metrics=metrics, model=self.model, head=self.head,
            checkpointer=self.checkpointer,
        )


def self_label(
    config: Config,
    model: nn.Module,
    centroids: torch.Tensor | np.ndarray,
    train: DeviceData,
    evaluate: Optional[DeviceData] = None,
    progress: bool = True,
    checkpoint_dir: Optional[Path] = None,
) -> SelfLabelResult:
    """Python API: SCAN self-labeling of ``train`` starting from a clustered ``model`` and its ``centroids``.

    ``model`` (anything with ``encode``) is trained in place and moved to ``train``'s device; pass a copy
    to keep the original. ``evaluate`` (default ``train``) is labelled by the head after every epoch.
    With ``checkpoint_dir`` the run writes ``resume.pt`` there every ``run.checkpoint_every`` epochs (and
    on SIGTERM) and the next call with the same configuration resumes from it; the caller clears it
    (``result.checkpointer.clear()``) after writing its outputs. Raises :class:`TrainingError` for
    feature data, non-finite centroids, a non-finite loss or embedding.
    """
    evaluate = train if evaluate is None else evaluate
    labeler = _SelfLabeler(config, model, torch.as_tensor(centroids), train, evaluate, checkpoint_dir)
    return labeler.fit(progress)


__all__ = [
    "SelfLabelResult",
    "Views",
    "balanced_weights",
    "centroid_head",
    "make_views",
    "self_label",
    "self_label_loss",
]
