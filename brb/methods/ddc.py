"""DDC (Kampffmeyer et al. 2019) with tk-uco's unsupervised companion objectives (Trosten et al.), as their
TensorFlow code trains it, as a method of the training engine: registry names ``ddc``, ``ddc_uco``, ``ddc_ae``.

The network (``cnn_small``, or the MLP) is the backbone; this method adds the clustering head: Dense
``ddc_hidden`` (100) → ReLU → BatchNorm = h, Dense K → softmax = A (Keras initialisation, BatchNorm momentum 0.99,
eps 1e-3, as theirs). Per batch:

    loss = L1 + L2 + L3                              (brb.losses.ddc: Cauchy–Schwarz terms on A with a kernel on h)
         + uco_weight · Σ_l w_l d_cs(A, K^(l))       (DDC-UCO: tensor kernels on the backbone's out1 / out2)
         + reconstruction_weight · MSE               (DDC-AE: the transposed decoder on the backbone's output map)

Adam (Keras epsilon 1e-7), each parameter's gradient clipped to norm ``clipnorm`` (Keras ``clipnorm``, per variable),
no centroids. Every ``eval_every`` epochs (and at the last) the total loss on the evaluation data (eval mode, in
training-size batches of one fixed shuffled order) is computed; with ``select: lowest_loss`` the state with the
lowest one is restored at the end and reported, as tk-uco restores its best checkpoint. Predictions: argmax A.
Metrics add the unadjusted Rand index and NMI with geometric normalisation (theirs) to ours.

The objective-function-mismatch diagnostic (``ofm``): the cosine between the gradients w.r.t. the backbone's
parameters of the clustering terms (L1 + L2 + L3) and of the companion terms (UCO, or the reconstruction of
DDC-AE), averaged over ``ofm_batches`` evaluation batches, every ``ofm_every`` epochs: the paper's argument is that
UCO's companion gradients agree with the clustering gradients more than reconstruction's do.

BRB: the backbone has reset blocks (soft reset) and the head can be re-seeded from k-means centroids of h
(:meth:`DDC.reseed_cluster_head`: the last Dense set so that its argmax is the nearest centroid), but there are no
centroids with optimiser state, so the momentum reset does not apply: use the variants ``reset`` or
``reset_recluster``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from brb.config import Config
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.engine.common import DeviceSubset, new_model, setup_cluster_method, shuffled_batches
from brb.engine.loop import Engine, Method, TrainingError
from brb.engine.tracking import fit_on_engine
from brb.interventions.brb import BRB
from brb.losses.ddc import ddc_loss
from brb.losses.kernels import uco_loss
from brb.methods.base import HasClusterHead, HasResetBlocks
from brb.methods.options import DDCAEOptions, DDCOptions, DDCUCOOptions
from brb.metrics import cluster_change, clustering_metrics, nmi_geometric

#: Keras defaults of tk-uco's layers
KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99 = torch 1 − 0.99
KERAS_BN_EPS = 1e-3
KERAS_ADAM_EPS = 1e-7


def keras_init_(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases (Keras defaults) for every Linear / Conv layer in ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DDCHead(nn.Module):
    """DDC's clustering module: Dense ``hidden`` → ReLU → BatchNorm (= h), Dense K → softmax (= A)."""

    def __init__(self, in_features: int, n_clusters: int, hidden: int = 100):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.norm = nn.BatchNorm1d(hidden, momentum=KERAS_BN_MOMENTUM, eps=KERAS_BN_EPS)
        self.out = nn.Linear(hidden, n_clusters)
        keras_init_(self)

    def hidden_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.norm(F.relu(self.hidden(f)))

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A (N, K) softmax assignments, h (N, hidden))."""
        h = self.hidden_features(f)
        return torch.softmax(self.out(h), dim=1), h

    @torch.no_grad()
    def reseed(self, centroids: torch.Tensor) -> None:
        """Set the output layer so that argmax A is the nearest of ``centroids`` (in h): logits 2μ_jᵀh − ‖μ_j‖²
        (= −‖h − μ_j‖² + ‖h‖²), scaled by 1 / the mean squared centroid norm to keep the softmax soft."""
        mu = centroids.to(self.out.weight)
        scale = 1.0 / mu.pow(2).sum(dim=1).mean().clamp_min(1e-6)
        self.out.weight.copy_(2.0 * scale * mu)
        self.out.bias.copy_(-scale * mu.pow(2).sum(dim=1))


def companion_names(model: nn.Module) -> tuple[str, ...]:
    """The intermediate outputs tk-uco's UCO terms use: the network's ``companion_outputs`` (cnn_small: out1,
    out2), else its last two hidden blocks (the MLP D–500–500–[out]–2000–[out] of their DEC family)."""
    names = getattr(model, "companion_outputs", None)
    if names is None:
        names = tuple(name for name, _ in model.named_reset_blocks())[-2:]
    return tuple(names)


def rand_index(y: np.ndarray, labels: np.ndarray) -> float:
    """The unadjusted Rand index (tk-uco reports it as "Rand")."""
    from sklearn.metrics import rand_score

    return float(rand_score(y, labels))


class DDC(Method, HasResetBlocks, HasClusterHead):
    """DDC / DDC-UCO / DDC-AE on the engine (module notes above); the options class is the registry entry's."""

    Options = DDCOptions
    finite_terms = {"loss": "training"}

    def __init__(self, config: Config, data: PreparedData | DeviceData, model: Optional[nn.Module] = None,
                 checkpoint_dir: Optional[Path] = None, eval_data: Optional[DeviceData] = None):
        setup_cluster_method(self, config, data, eval_data, checkpoint_dir, DDCOptions, "a DDC method")
        data = self.data
        self.model = (model or new_model(config, data, self.n_clusters)).to(self.device)
        self.head_input = getattr(self.model, "head_input", None)
        self.companions = companion_names(self.model)
        o = self.options
        with torch.no_grad():
            self.model.eval()
            features = self._head_features(dict(self.model.intermediate(self.data.batch(slice(0, 2)))))
        self.head = DDCHead(features.shape[1], self.n_clusters, o.ddc_hidden).to(self.device)
        if o.reconstruction_weight > 0 and not hasattr(self.model, "decode_features") and self.head_input is not None:
            raise TrainingError(f"the {config.model.arch} network has no decoder for DDC-AE's reconstruction")
        self.optimizer = torch.optim.Adam([{"params": list(self.model.parameters()), "name": "network"},
                                           {"params": list(self.head.parameters()), "name": "head"}],
                                          lr=o.lr, eps=KERAS_ADAM_EPS)
        self.cpu_gen = torch.Generator().manual_seed(config.run.seed)
        self.brb = BRB(config.brb, config.run.seed, config.run.kmeans)
        self._zero = torch.zeros((), device=self.device)
        # evaluation batches (loss, diagnostic) in one fixed shuffled order: a dataset stored class by class would
        # otherwise give one-class batches, whose DDC loss says nothing about the clustering
        order = torch.randperm(len(self.eval_data), generator=torch.Generator().manual_seed(config.run.seed + 1))
        self.eval_batches = DeviceSubset(self.eval_data, order.numpy())
        self.labels = self._predict()
        self.best: Optional[dict] = None
        self._initial = self._row(self.labels, {}, epoch_zero=True)

    # --- forward ---------------------------------------------------------------------------------
    def _head_features(self, outs: dict) -> torch.Tensor:
        """The head's input: the backbone's output map flattened (cnn_small ``out2``), or the embedding."""
        key = self.head_input if self.head_input is not None else list(outs)[-1]
        x = outs[key]
        return x.reshape(len(x), -1)

    def _terms(self, x: torch.Tensor, companions: bool, reconstruction: bool) -> dict[str, torch.Tensor]:
        """The named loss terms of a batch (unweighted) and the assignments ``a``."""
        o = self.options
        outs = dict(self.model.intermediate(x))
        a, h = self.head(self._head_features(outs))
        terms = ddc_loss(a, h, o.rel_sigma, tf_gradient=o.tf_gradient)
        out = {"a": a, "ddc": terms["total"], "ddc_1": terms["ddc_1"], "ddc_2": terms["ddc_2"], "ddc_3": terms["ddc_3"]}
        if companions:
            a_u = a if o.uco_assignment_gradient else a.detach()
            layers = [outs[name] for name in self.companions]
            out["uco"] = uco_loss(a_u, layers, o.uco_layer_weights, o.uco_kernel, o.rel_sigma)["total"]
        if reconstruction:
            if self.head_input is not None:
                rec = self.model.decode_features(outs[self.head_input])
            else:
                rec = self.model.decode(list(outs.values())[-1])
            out["reconstruction"] = F.mse_loss(rec.reshape(len(x), -1), x.reshape(len(x), -1))
        return out

    def _total(self, terms: dict) -> torch.Tensor:
        o = self.options
        loss = terms["ddc"]
        if "uco" in terms:
            loss = loss + o.uco_weight * terms["uco"]
        if "reconstruction" in terms:
            loss = loss + o.reconstruction_weight * terms["reconstruction"]
        return loss

    @torch.no_grad()
    def _predict(self, data: Optional[DeviceData] = None) -> np.ndarray:
        data = data or self.eval_data
        self.model.eval()
        self.head.eval()
        labels = []
        for x in data.iter_batches(self.config.cluster.eval_batch_size):
            labels.append(self.head(self._head_features(dict(self.model.intermediate(x))))[0].argmax(dim=1))
        self.model.train()
        self.head.train()
        return torch.cat(labels).cpu().numpy()

    # --- one epoch -------------------------------------------------------------------------------
    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        self.model.train()
        self.head.train()

    def batches(self, epoch: int) -> list[torch.Tensor]:
        c = self.config.cluster
        return shuffled_batches(len(self.data), c.batch_size, self.cpu_gen, self.device, c.drop_last)

    def training_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.options
        x = self.data.batch(idx)
        terms = self._terms(x, o.uco_weight > 0, o.reconstruction_weight > 0)
        loss = self._total(terms)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if o.clipnorm is not None:  # Keras clipnorm: each variable's gradient on its own
            for group in self.optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        torch.nn.utils.clip_grad_norm_([p], o.clipnorm)
        self.optimizer.step()
        return {"loss": loss, "loss_ddc_1": terms["ddc_1"], "loss_ddc_2": terms["ddc_2"], "loss_ddc_3": terms["ddc_3"],
                "loss_uco": terms.get("uco", self._zero), "loss_reconstruction": terms.get("reconstruction", self._zero)}

    @torch.no_grad()
    def eval_loss(self) -> float:
        """Total loss on the evaluation data in eval mode, in training-size batches (tk-uco's validation loss)."""
        o, c = self.options, self.config.cluster
        self.model.eval()
        self.head.eval()
        total, n = 0.0, 0
        for x in self.eval_batches.iter_batches(c.batch_size):
            if len(x) < 2:
                continue
            total += float(self._total(self._terms(x, o.uco_weight > 0, o.reconstruction_weight > 0))) * len(x)
            n += len(x)
        self.model.train()
        self.head.train()
        return total / max(n, 1)

    def companion_kind(self) -> Optional[str]:
        """What the diagnostic compares the clustering terms with: ``uco``, ``reconstruction`` or None."""
        o = self.options
        if o.uco_weight > 0:
            return "uco"
        if o.reconstruction_weight > 0:
            return "reconstruction"
        return None

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for _, block in self.model.named_reset_blocks() for m in block for p in m.parameters()]

    def objective_mismatch(self) -> float:
        """Mean over ``ofm_batches`` evaluation batches of cos(∇_θ clustering terms, ∇_θ companion terms), θ the
        backbone's parameters (eval mode, no update); NaN without companion terms."""
        kind = self.companion_kind()
        if kind is None:
            return math.nan
        o, c = self.options, self.config.cluster
        params = self.backbone_parameters()
        self.model.eval()
        self.head.eval()
        cosines = []
        for i, x in enumerate(self.eval_batches.iter_batches(c.batch_size)):
            if i >= o.ofm_batches or len(x) < 2:
                break
            terms = self._terms(x, kind == "uco", kind == "reconstruction")
            g1 = torch.autograd.grad(terms["ddc"], params, retain_graph=True, allow_unused=True)
            g2 = torch.autograd.grad(terms[kind], params, allow_unused=True)
            flat1 = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(g1, params)])
            flat2 = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(g2, params)])
            cosines.append(float(F.cosine_similarity(flat1, flat2, dim=0)))
        self.model.train()
        self.head.train()
        return float(np.mean(cosines)) if cosines else math.nan

    def _row(self, labels: np.ndarray, losses: dict, epoch_zero: bool = False) -> dict:
        y = self.eval_data.y
        n_used = len(np.unique(labels))
        return {
            **({"epoch": 0} if epoch_zero else {}),
            "loss": losses.get("loss", np.nan),
            **{k: losses.get(k, np.nan) for k in ("loss_ddc_1", "loss_ddc_2", "loss_ddc_3", "loss_uco",
                                                   "loss_reconstruction")},
            **clustering_metrics(y, labels),
            "nmi_geometric": nmi_geometric(y, labels),
            "cluster_change": cluster_change(self.labels, labels),
            "brb": False,
            "n_empty_clusters": self.n_clusters - n_used,
            "eval_loss": np.nan,
            "ofm": np.nan,
            **({"time_s": 0.0} if epoch_zero else {}),
        }

    def start_history(self) -> list[dict]:
        return [self._initial]

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        o = self.options
        labels = self._predict()
        row = self._row(labels, losses)
        self.labels = labels
        last = epoch + 1 == self.epochs
        if (epoch + 1) % o.eval_every == 0 or last:
            row["eval_loss"] = self.eval_loss()
            if self.best is None or row["eval_loss"] < self.best["eval_loss"]:
                self.best = {"epoch": epoch + 1, "eval_loss": row["eval_loss"], "labels": labels,
                             "model": copy.deepcopy(self.model.state_dict()),
                             "head": copy.deepcopy(self.head.state_dict())}
        if o.ofm_every and ((epoch + 1) % o.ofm_every == 0 or last):
            row["ofm"] = self.objective_mismatch()
        return row

    def progress_values(self, row: dict) -> dict:
        return {"loss": row["loss"], "acc": row["acc"]}

    # --- what BRB needs (HasResetBlocks, HasClusterHead) -------------------------------------------
    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        return self.model.named_reset_blocks(include_embedding=include_embedding)

    def n_train(self) -> int:
        return len(self.data)

    @torch.no_grad()
    def embed_rows(self, index: np.ndarray) -> torch.Tensor:
        """The head's hidden representation h (eval mode) of the training rows ``index``."""
        self.model.eval()
        self.head.eval()
        subset = DeviceSubset(self.data, index)
        h = torch.cat([self.head.hidden_features(self._head_features(dict(self.model.intermediate(x))))
                       for x in subset.iter_batches(self.config.cluster.eval_batch_size)])
        self.model.train()
        self.head.train()
        return h

    def reseed_cluster_head(self, centroids: torch.Tensor) -> None:
        self.head.reseed(centroids)

    # --- resumable state ---------------------------------------------------------------------------
    def generators(self) -> dict:
        return {"batches": self.cpu_gen}

    def stateful(self) -> dict:
        return {"model": self.model, "head": self.head, "optimizer": self.optimizer}

    def extra_state(self) -> dict:
        return {"labels": self.labels, "best": self.best}

    def load_extra_state(self, state: dict) -> None:
        self.labels = state["labels"]
        self.best = state["best"]

    def fit(self, progress: bool = True):
        """Train on the engine with the BRB hook; restore the lowest-loss state (``select``); the result."""
        from brb.methods.centroid import ClusterResult

        fit = fit_on_engine(self, self.config, self.checkpoint_dir, progress, hooks=[self.brb])
        history = pd.DataFrame(fit.history)
        selected = self.epochs
        if self.options.select == "lowest_loss" and self.best is not None:
            self.model.load_state_dict(self.best["model"])
            self.head.load_state_dict(self.best["head"])
            self.labels, selected = self.best["labels"], self.best["epoch"]
        y, labels = self.eval_data.y, self.labels
        ofm = history["ofm"].dropna() if "ofm" in history else pd.Series(dtype=float)
        metrics = {
            **clustering_metrics(y, labels),
            "nmi_geometric": nmi_geometric(y, labels),
            "rand_index": rand_index(y, labels),
            "n_clusters": self.n_clusters,
            "n_nonempty_clusters": int(len(np.unique(labels))),
            "epochs": self.epochs,
            "selected_epoch": int(selected),
            "selected_loss": float(self.best["eval_loss"]) if self.best is not None else None,
            "final_ofm": float(ofm.iloc[-1]) if len(ofm) else None,
            "brb_epochs": [int(r["epoch"]) for r in fit.history if r["brb"]],
            "wall_time_s": fit.wall_time_s,
            "initial_acc": float(fit.history[0]["acc"]),
            "resumed_from_epoch": fit.resumed_from,
        }
        return ClusterResult(labels=labels, centroids=None, history=history, metrics=metrics, model=self.model,
                             objective=None, extra={"head": self.head.state_dict()})


class DDCUCO(DDC):
    """DDC-UCO: DDC + tensor-kernel companion objectives (its options: :class:`DDCUCOOptions`)."""

    Options = DDCUCOOptions


class DDCAE(DDC):
    """DDC-AE: DDC + reconstruction through the transposed decoder (its options: :class:`DDCAEOptions`)."""

    Options = DDCAEOptions
