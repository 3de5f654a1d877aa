"""The self-supervised family of ProPos's repository on the training engine (issue 15): the shared machinery
(:class:`SelfSupervisedMethod`) and SimSiam, MoCo v2, PCL and Contrastive Clustering; BYOL and ProPos build on
the same base in ``brb/methods/byol.py``. Registry names ``simsiam``, ``moco``, ``pcl``, ``cc`` (pretraining
kind), options in ``brb/methods/options.py``; the losses are in ``brb/losses/ssl.py``, the schedules in
``brb/losses/schedules.py``; the facts read from their code are in ``../shared/methods/propos.md``.

Shared (:class:`SelfSupervisedMethod`): the network of ``model.arch`` is the backbone f (its ``encode`` is what
the clustering stages use afterwards); each method adds its heads. Two augmented views per batch (the
pretraining augmentation), the last partial batch dropped. Optimiser: SGD (momentum 0.9, no Nesterov), Adam or
AdamW over parameter groups with learning-rate multipliers; the lr scaled by batch / 256 when ``lr_scaling`` is
linear, set every iteration from a linear warm-up then ProPos's cosine (``lr_at``; 1-based iterations as theirs);
a group marked ``fixed`` keeps the constant scaled lr (SimSiam's ``fix_predictor_lr``). E-step: before the first
epoch, after every ``reassign``-th epoch and after the last, spherical k-means (k-means++, ``kmeans_n_init``
restarts, k = the number of classes or ``cluster.n_clusters``) on the method's normalised features of the whole
training set (eval mode, no augmentation): its ACC / NMI / ARI are the history row's scores (NaN between), as
ProPos evaluates every method; the pseudo-labels feed the methods that use them (ProPos, PCL).

Per method (one step on views x_1, x_2):

* **SimSiam**: ``z_i = g(f(x_i))`` (projector, 2 or 3 layers, last BN), ``p_i = q(z_i)``;
  ``L = ½ D(p_1, z_2) + ½ D(p_2, z_1)``, ``D = −cos(p, stopgrad z)``. Features: normalised z.
* **MoCo v2**: key encoder (f_k, g_k) = EMA of the query encoder, updated **before** the forward pass;
  ``q_i = normalize(g(f(x_i)))``, ``k_i = normalize(g_k(f_k(x_i)))`` (no gradient);
  ``L = InfoNCE(q_1, k_2, queue) + InfoNCE(q_2, k_1, queue)`` (symmetric: the sum), then k_1 and k_2 enqueued
  (2 x batch keys a step, the queue a multiple of that). The queue starts as random unit vectors (MoCo's randn,
  normalised). Features: the key encoder's normalised output.
* **PCL**: MoCo + ``proto_weight · (ProtoNCE(q_1) + ProtoNCE(q_2))`` after warm-up, ProtoNCE the mean over the
  granularities ``num_clusters`` of k-means (spherical) on the key features at every E-step, prototypes
  normalised, concentration φ scaled to mean ``moco_temperature``, ``queue_size`` negatives drawn with
  replacement from the prototypes not in the batch. Applying ProtoNCE to both query views (as the symmetric
  InfoNCE) is our reading of ProPos's symmetric PCL, whose E-step code does not run as shipped.
* **CC**: instance head ``z = normalize(I(f(x)))``, cluster head ``c = softmax(C(f(x)))``;
  ``L = NT-Xent(z_1, z_2; τ_I) + NT-Xent(c_1ᵀ, c_2ᵀ; τ_C) + w · H``. Scores: the cluster head's argmax (CC) and
  k-means on the instance features (ProPos's wrapper), both logged; ``cc_predict`` picks the reported one.

Several processes (``brb pretrain --nproc-per-node N``, :mod:`brb.engine.distributed`): ``batch_size`` is the
global batch, each process trains on its share, gradients are averaged, BatchNorm uses the global batch's
statistics (``sync_bn``), ProPos's PSL, CC's losses and MoCo's enqueued keys see the gathered global batch, the
E-step's pseudo-labels (and PCL's prototypes) are rank 0's; the learning rate is scaled by the global batch.
PCL draws its negative prototypes among those absent from the process's own share (its original code: the
process's batch too).
"""

from __future__ import annotations

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
from brb.data.stream import device_data
from brb.data.tensors import DeviceData
from brb.engine import distributed as dist
from brb.engine.common import make_augmenter, new_model, shuffled_batches
from brb.engine.loop import Engine, TrainingError
from brb.losses.schedules import ema_update_, lr_at, momentum_at, scaled_lr
from brb.losses.ssl import (
    cc_cluster_loss,
    cc_entropy,
    cc_instance_loss,
    dequeue_and_enqueue,
    moco_infonce,
    pcl_concentration,
    proto_nce_multi,
    simsiam_loss,
)
from brb.methods.options import CCOptions, MoCoOptions, PCLOptions, SimSiamOptions, SSLOptions
from brb.methods.pretraining import PretrainMethod, PretrainResult, run_pretraining
from brb.metrics import clustering_metrics
from brb.models.heads import build_head, mlp_spec
from brb.registry import REGISTRY
from brb.runtime import autocast, setup_run


class Encoder(nn.Module):
    """Backbone f + head g: ``g(f.encode(x))`` (the part a momentum twin copies)."""

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone, self.projector = backbone, projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone.encode(x))


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` that gets no gradient (a momentum twin)."""
    import copy

    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


#: seed offset between the processes' k-means restarts (kmeans_per_process)
KMEANS_RANK_STRIDE = 7919


class SelfSupervisedMethod(PretrainMethod):
    """The shared part (module notes above); a subclass sets ``build`` (its heads and parameter groups),
    ``features``, ``step`` and the ``networks`` of its state."""

    def __init__(self, config: Config, data: DeviceData, options: SSLOptions, label: str):
        self.config, self.data, self.o = config, data, options
        o = options
        device = data.device
        self.n_clusters = config.cluster.n_clusters or data.n_classes
        backbone = new_model(config, data, self.n_clusters).to(device)
        with torch.no_grad():
            backbone.eval()
            dim = backbone.encode(data.batch(slice(0, 2))).shape[1]
            backbone.train()
        self.backbone = backbone
        #: the scored rows (pretrain_extra's images, label -1, are clustered with the rest but never scored)
        self.labelled = np.asarray(data.y) >= 0
        self.head_specs: dict[str, list[str]] = {}
        groups = self.build(backbone, dim)
        self.dist = dist.context()
        if self.dist.enabled:
            if self.o.batch_size % self.dist.world_size:
                raise TrainingError(f"{label}: pretrain.batch_size {self.o.batch_size} (the global batch) must be a "
                                    f"multiple of the {self.dist.world_size} processes")
            for net in self.networks().values():
                if self.o.sync_bn:
                    dist.convert_sync_batchnorm_(net)
            dist.broadcast_modules_(self.networks().values())
        for group in groups:
            group.setdefault("lr_mult", 1.0)
            group.setdefault("fixed", False)
        self.base_lr = scaled_lr(o.lr, o.batch_size) if o.lr_scaling == "linear" else o.lr
        if o.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=self.base_lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                        nesterov=o.nesterov and o.momentum > 0)
        elif o.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=self.base_lr, weight_decay=o.weight_decay)
        else:
            optimizer = torch.optim.Adam(groups, lr=self.base_lr, weight_decay=o.weight_decay)
        self.augmenter = make_augmenter(config, data, device)
        if self.augmenter is None:
            raise TrainingError(f"{label}: self-supervised pretraining needs image data for its augmented views")
        if len(data) < o.batch_size:
            raise TrainingError(f"{label}: {len(data)} training samples are fewer than one batch of {o.batch_size} "
                                "(pretrain.batch_size)")
        self.gen = torch.Generator().manual_seed(config.run.seed)
        self.noise = torch.Generator(device=device).manual_seed(config.run.seed + 31)
        self.steps_per_epoch = max(len(data) // o.batch_size, 1)
        self.step_count = 0
        self.pseudo_labels: Optional[torch.Tensor] = None
        self.scores: dict = {}
        self.epoch = 0
        super().__init__(label, o.epochs, self.backbone, optimizer,
                         {"batches": self.gen, "augment": self.augmenter.generator, "noise": self.noise},
                         self._epoch_batches, self._train_step, "self-supervised")
        self.e_step(0)  # the pseudo-labels of the first epochs, and the score of the untrained network

    # --- what a method supplies ------------------------------------------------------------------------
    def build(self, backbone: nn.Module, dim: int) -> list[dict]:
        """Create the heads (and twins); return the optimiser's parameter groups (``lr_mult``, ``fixed``)."""
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        """Every network of the method's state (trained or momentum twins), by name."""
        raise NotImplementedError

    def head(self, name: str, spec: list[str], in_dim: int, init_std: Optional[float] = None,
             out_dim: Optional[int] = None) -> tuple[nn.Module, int]:
        """(head ``name`` built from its block spec, its output width), the spec recorded in ``self.head_specs``;
        ``out_dim``: the width the method needs it to end with."""
        head, out = build_head(spec, in_dim, n_clusters=self.n_clusters, init_std=init_std)
        if out_dim is not None and out != out_dim:
            why = "the number of clusters: linear:K" if name == "cluster_head" else "the projector's output width"
            raise TrainingError(f"{type(self).__name__}: the {name} head {list(spec)} ends with width {out}, but it "
                                f"must end with {out_dim} ({why})")
        self.head_specs[name] = list(spec)
        return head, out

    def feature_net(self) -> nn.Module:
        """The network whose normalised output the E-step clusters."""
        raise NotImplementedError

    def step(self, x1: torch.Tensor, x2: torch.Tensor, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The losses of one batch (``loss`` first; the backward pass and the optimiser step are the base's)."""
        raise NotImplementedError

    def before_step(self) -> None:
        """Called before the forward pass (MoCo's key update)."""

    def after_backward(self) -> None:
        """Called between the backward pass and the optimiser step (BYOL v1's EMA on the pre-step weights)."""

    def after_step(self) -> None:
        """Called after the optimiser step (MoCo's enqueue)."""

    def after_e_step(self, features: torch.Tensor, epoch: int) -> None:
        """Extra work of the E-step (PCL's granularities, CC's head scores)."""

    def handed_on(self) -> nn.Module:
        """The backbone written for the clustering stages."""
        return self.backbone

    def final_clustering(self) -> dict:
        """The clustering this method reports after its last epoch (the last E-step's spherical k-means of the
        feature network's output; CC overrides it with its head): ``labels``, ``scores``, ``how``."""
        labels = self.pseudo_labels.cpu().numpy().astype(np.int64)[self.labelled]
        net = self.feature_net()
        name = next((k for k, v in self.networks().items() if v is net), type(net).__name__)
        return {"labels": labels, "scores": dict(self.scores),
                "how": f"spherical k-means (k = {self.n_clusters}, n_init {self.o.kmeans_n_init}) of the normalised "
                       f"output of the {name} network"}

    # --- E-step ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def features(self) -> torch.Tensor:
        """The feature network's normalised output on the whole training set (eval mode, no augmentation)."""
        net = self.feature_net()
        net.eval()
        feats = torch.cat([F.normalize(net(x).float(), dim=1)
                           for x in self.data.iter_batches(self.config.cluster.eval_batch_size)])
        net.train()
        return feats

    def e_step(self, epoch: int) -> None:
        """Spherical k-means on the features: the pseudo-labels and the scores ProPos reports."""
        feats = self.features()
        per_process = self.dist.enabled and self.o.kmeans_per_process
        seed = self.config.run.seed + epoch + (KMEANS_RANK_STRIDE * self.dist.rank if per_process else 0)
        centers = kmeans_torch(feats, self.n_clusters, seed, n_init=self.o.kmeans_n_init, metric="cosine")
        similarity, self.pseudo_labels = (feats @ F.normalize(centers.to(feats), dim=1).T).max(dim=1)
        # every process takes the labels of the lowest (1 - cos) inertia (torch_clustering's distributed k-means:
        # kmeans_n_init restarts per process), or rank 0's (a GPU k-means may differ in the last bits)
        src = dist.lowest_rank(float((1 - similarity).sum()), feats.device) if per_process else 0
        dist.broadcast_([self.pseudo_labels], src=src)
        labels = self.pseudo_labels.cpu().numpy()[self.labelled]
        self.scores = {**clustering_metrics(self.data.y[self.labelled], labels),
                       "n_nonempty_clusters": int(len(np.unique(labels)))}
        self.after_e_step(feats, epoch)

    # --- the engine's hooks ---------------------------------------------------------------------------
    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        self.epoch = epoch
        for net in self.networks().values():
            net.train()

    def start_history(self) -> list[dict]:
        return [{"epoch": 0, "loss": math.nan, **self.scores, "time_s": 0.0}]

    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        return shuffled_batches(len(self.data), self.o.batch_size, self.gen, self.data.device, drop_last=True)

    def warm(self) -> bool:
        """In the warm-up epochs (ProPos's PSL / PSA and PCL's ProtoNCE start after them)."""
        return self.epoch < self.o.warmup_epochs

    def schedule(self) -> None:
        """Set this iteration's learning rates (1-based iterations, as ProPos counts them)."""
        o = self.o
        t = self.epoch + (self.step_count % self.steps_per_epoch + 1) / self.steps_per_epoch
        if o.lr_schedule == "constant" and t >= o.warmup_epochs:
            lr = self.base_lr
        else:
            lr = lr_at(t, self.base_lr, o.epochs, o.warmup_epochs, "cosine" if o.lr_schedule == "cosine" else "propos")
        for group in self.optimizer.param_groups:
            group["lr"] = (self.base_lr if group["fixed"] else lr) * group["lr_mult"]

    def ema_momentum(self) -> float:
        """The momentum twin's EMA momentum at this iteration."""
        total = max(self.o.epochs * self.steps_per_epoch, 1)
        return momentum_at(self.step_count, total, self.o.ema_momentum, self.o.ema_schedule)

    def _train_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        self.schedule()
        local = dist.shard(idx, self.dist)
        x1, x2 = self.data.batch(local, self.augmenter), self.data.batch(local, self.augmenter)
        losses = self.optimise(x1, x2, local)
        self.step_count += 1
        return dist.mean_over_processes(losses)

    def optimise(self, x1: torch.Tensor, x2: torch.Tensor, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on this process's views (``idx``: their dataset rows): losses, backward, the
        gradients averaged over the processes, the optimiser step and the method's hooks around them."""
        self.before_step()
        with autocast(self.data.device, self.config.run.precision):
            losses = self.step(x1, x2, idx)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        dist.all_reduce_gradients_([p for group in self.optimizer.param_groups for p in group["params"]])
        self.after_backward()
        self.optimizer.step()
        self.after_step()
        return losses

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

    # --- resumable state ---------------------------------------------------------------------------------
    def stateful(self) -> dict:
        return {**self.networks(), "optimizer": self.optimizer}

    def extra_state(self) -> dict:
        return {"pseudo_labels": self.pseudo_labels, "scores": self.scores, "step_count": self.step_count,
                **self.more_state()}

    def load_extra_state(self, state: dict) -> None:
        self.pseudo_labels, self.scores, self.step_count = state["pseudo_labels"], state["scores"], state["step_count"]
        self.load_more_state(state)

    def more_state(self) -> dict:
        """A method's own tensors beyond its networks (a queue and its pointer, PCL's prototypes)."""
        return {}

    def load_more_state(self, state: dict) -> None:
        pass


def pretrain_with(cls: type[SelfSupervisedMethod], name: str, config: Config, data: PreparedData, progress: bool,
                  checkpoint_dir: Optional[Path]) -> PretrainResult:
    """Run the registry's pretraining method ``name`` (class ``cls``) with its options from ``config.pretrain``;
    the result's model is the network the method hands on (:meth:`SelfSupervisedMethod.handed_on`)."""
    ctx = dist.init_from_env(config.run.device)
    device = dist.local_device(setup_run(config.run))
    progress = progress and ctx.is_main
    train = data.part("train" if config.data.split == "train_test" else "all")
    if config.data.subset is not None:
        train = subset_of(train, config.data.subset)
    ddata = device_data(train, device, config.data.normalize, config.data.resize)
    options_cls = REGISTRY.entry("pretraining", name).options
    options = options_cls.model_validate({k: getattr(config.pretrain, k) for k in options_cls.model_fields})
    method = cls(config, ddata, options, f"{name} {data.name} seed {config.run.seed}")
    result = run_pretraining(config, method, progress, checkpoint_dir)
    result.clustering = {**method.final_clustering(), "epoch": method.epochs,
                         "evaluated_on": "train" if config.data.split == "train_test" else "all"}
    model = method.handed_on()
    model.eval()
    result.model = model
    result.extra = {"processes": ctx.world_size, "global_batch": options.batch_size,
                    "batch_per_process": options.batch_size // ctx.world_size, "base_lr": method.base_lr,
                    "sync_bn": bool(options.sync_bn and ctx.enabled), "heads": method.head_specs}
    return result


# ---------------------------------------------------------------------------------------------- SimSiam


def simsiam_projector(in_dim: int, hidden: int, out: int, layers: int) -> nn.Sequential:
    """SimSiam's projector: Linear (no bias) → BN → ReLU, [again], → Linear (no bias) → BN."""
    mods: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
    if layers == 3:
        mods += [nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
    mods += [nn.Linear(hidden, out, bias=False), nn.BatchNorm1d(out)]
    return nn.Sequential(*mods)


class SimSiamMethod(SelfSupervisedMethod):
    o: SimSiamOptions

    def build(self, backbone: nn.Module, dim: int) -> list[dict]:
        o = self.o
        device = self.data.device
        spec = o.projector_spec or mlp_spec(o.hidden_dim, o.feature_dim, bias=False, out_bn=True,
                                            layers=o.projector_layers)
        projector, out = self.head("projector", spec, dim)
        self.online = Encoder(backbone, projector).to(device)
        spec = o.predictor_spec or [f"linear:{o.predictor_hidden_dim}:nobias", "bn", "relu", f"linear:{out}"]
        self.predictor = self.head("predictor", spec, out, out_dim=out)[0].to(device)
        return [{"params": list(self.online.parameters()), "name": "online"},
                {"params": list(self.predictor.parameters()), "name": "predictor", "fixed": o.fix_predictor_lr}]

    def networks(self) -> dict[str, nn.Module]:
        return {"online": self.online, "predictor": self.predictor}

    def feature_net(self) -> nn.Module:
        return self.online

    def step(self, x1, x2, idx):
        z1, z2 = self.online(x1).float(), self.online(x2).float()
        p1, p2 = self.predictor(z1).float(), self.predictor(z2).float()
        return {"loss": simsiam_loss(p1, p2, z1, z2)}


def pretrain_simsiam(config: Config, data: PreparedData, progress: bool = True,
                     checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    return pretrain_with(SimSiamMethod, "simsiam", config, data, progress, checkpoint_dir)


# ---------------------------------------------------------------------------------------------- MoCo v2 / PCL


class MoCoMethod(SelfSupervisedMethod):
    o: MoCoOptions

    def build(self, backbone: nn.Module, dim: int) -> list[dict]:
        o = self.o
        device = self.data.device
        head, self.feature_width = self.head("projector", o.projector_spec or ["linear:in", "relu",
                                                                               f"linear:{o.feature_dim}"], dim)
        self.query = Encoder(backbone, head).to(device)
        self.key = frozen_copy(self.query)
        keys_per_step = o.batch_size * (2 if o.symmetric else 1)
        if o.queue_size % keys_per_step:
            raise TrainingError(f"pretrain.queue_size {o.queue_size} must be a multiple of the keys enqueued per step, "
                                f"{keys_per_step} ({'2 x ' if o.symmetric else ''}pretrain.batch_size), as MoCo's")
        gen = torch.Generator().manual_seed(self.config.run.seed + 101)
        self.queue = F.normalize(torch.randn(o.queue_size, self.feature_width, generator=gen), dim=1).to(device)
        self.queue_ptr = 0
        self._keys: Optional[torch.Tensor] = None
        return [{"params": list(self.query.parameters()), "name": "query"}]

    def networks(self) -> dict[str, nn.Module]:
        return {"query": self.query, "key": self.key}

    def feature_net(self) -> nn.Module:
        return self.key

    def before_step(self) -> None:
        ema_update_(self.key, self.query, self.ema_momentum(), buffers="keep")

    def step(self, x1, x2, idx):
        o = self.o
        q1 = F.normalize(self.query(x1).float(), dim=1)
        with torch.no_grad():
            k2 = F.normalize(self.key(x2).float(), dim=1)
        loss_ins = moco_infonce(q1, k2, self.queue, o.moco_temperature)
        keys, queries = [k2], [q1]
        if o.symmetric:
            q2 = F.normalize(self.query(x2).float(), dim=1)
            with torch.no_grad():
                k1 = F.normalize(self.key(x1).float(), dim=1)
            loss_ins = loss_ins + moco_infonce(q2, k1, self.queue, o.moco_temperature)
            keys, queries = [k1, k2], [q1, q2]
        self._keys = torch.cat([dist.gather(k, grad=False) for k in keys])  # the global batch's keys, view by view
        losses = {"loss": loss_ins, "loss_instance": loss_ins}
        losses.update(self.extra_losses(queries, idx))
        return losses

    def extra_losses(self, queries: list[torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def after_step(self) -> None:
        self.queue_ptr = dequeue_and_enqueue(self.queue, self.queue_ptr, self._keys)
        self._keys = None

    def handed_on(self) -> nn.Module:
        return self.key.backbone  # ProPos clusters the key encoder's features

    def more_state(self) -> dict:
        return {"queue": self.queue, "queue_ptr": self.queue_ptr}

    def load_more_state(self, state: dict) -> None:
        self.queue = state["queue"].to(self.data.device)
        self.queue_ptr = int(state["queue_ptr"])


class PCLMethod(MoCoMethod):
    o: PCLOptions

    def build(self, backbone: nn.Module, dim: int) -> list[dict]:
        groups = super().build(backbone, dim)
        self.prototypes: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.proto_gen = torch.Generator(device=self.data.device).manual_seed(self.config.run.seed + 211)
        too_many = [k for k in self.o.num_clusters if k > len(self.data)]
        if too_many:
            raise TrainingError(f"pretrain.num_clusters {too_many} exceed the {len(self.data)} training samples")
        if min(self.o.num_clusters) <= self.o.batch_size:
            raise TrainingError(f"pretrain.num_clusters {self.o.num_clusters}: every granularity must exceed "
                                f"pretrain.batch_size {self.o.batch_size}, as PCL draws its negative prototypes from "
                                "the clusters absent from the batch")
        return groups

    def generators(self) -> dict:
        return {**super().generators(), "prototypes": self.proto_gen}

    def after_e_step(self, features: torch.Tensor, epoch: int) -> None:
        """k-means at every granularity on the key features; normalised prototypes and their concentrations."""
        self.prototypes = []
        for m, k in enumerate(self.o.num_clusters):
            centers = F.normalize(kmeans_torch(features, k, self.config.run.seed + 1009 * (m + 1) + epoch,
                                               n_init=1, metric="cosine").to(features), dim=1)
            labels = (features @ centers.T).argmax(dim=1)
            phi = pcl_concentration(features, labels, centers, self.o.moco_temperature)
            dist.broadcast_([labels, centers, phi])
            self.prototypes.append((labels, centers, phi))

    def extra_losses(self, queries: list[torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        zero = queries[0].new_zeros(())
        if self.o.proto_weight == 0 or self.warm():
            return {"loss_proto": zero}
        labels = [p[0][idx] for p in self.prototypes]
        centers = [p[1] for p in self.prototypes]
        phis = [p[2] for p in self.prototypes]
        loss_proto = sum(proto_nce_multi(q, labels, centers, phis, self.o.queue_size, self.proto_gen) for q in queries)
        return {"loss_proto": loss_proto}

    def step(self, x1, x2, idx):
        losses = super().step(x1, x2, idx)
        losses["loss"] = losses["loss"] + self.o.proto_weight * losses["loss_proto"]
        return losses

    def more_state(self) -> dict:
        return {**super().more_state(), "prototypes": self.prototypes}

    def load_more_state(self, state: dict) -> None:
        super().load_more_state(state)
        self.prototypes = [tuple(t.to(self.data.device) for t in p) for p in state["prototypes"]]


def pretrain_moco(config: Config, data: PreparedData, progress: bool = True,
                  checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    return pretrain_with(MoCoMethod, "moco", config, data, progress, checkpoint_dir)


def pretrain_pcl(config: Config, data: PreparedData, progress: bool = True,
                 checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    return pretrain_with(PCLMethod, "pcl", config, data, progress, checkpoint_dir)


# ---------------------------------------------------------------------------------------------- CC


class CCMethod(SelfSupervisedMethod):
    o: CCOptions

    def build(self, backbone: nn.Module, dim: int) -> list[dict]:
        o = self.o
        device = self.data.device
        projector, _ = self.head("projector", o.projector_spec or mlp_spec(o.hidden_dim, o.feature_dim, bn=False), dim)
        self.instance = Encoder(backbone, projector).to(device)
        self.cluster_head = self.head("cluster_head", o.cluster_head_spec or mlp_spec(o.hidden_dim, "K", bn=False),
                                      dim, out_dim=self.n_clusters)[0].to(device)
        return [{"params": list(self.instance.parameters()) + list(self.cluster_head.parameters()), "name": "cc"}]

    def networks(self) -> dict[str, nn.Module]:
        return {"instance": self.instance, "cluster_head": self.cluster_head}

    def feature_net(self) -> nn.Module:
        return self.instance

    def step(self, x1, x2, idx):
        o = self.o
        h1, h2 = self.backbone.encode(x1), self.backbone.encode(x2)
        z1 = dist.gather(F.normalize(self.instance.projector(h1).float(), dim=1))  # the global batch
        z2 = dist.gather(F.normalize(self.instance.projector(h2).float(), dim=1))
        c1 = dist.gather(self.cluster_head(h1).float().softmax(dim=1))
        c2 = dist.gather(self.cluster_head(h2).float().softmax(dim=1))
        loss_ins = cc_instance_loss(z1, z2, o.instance_temperature)
        loss_clu = cc_cluster_loss(c1, c2, o.cluster_temperature)
        entropy = cc_entropy(c1, c2)
        return {"loss": loss_ins + loss_clu + o.entropy_weight * entropy, "loss_instance": loss_ins,
                "loss_cluster": loss_clu, "loss_entropy": entropy}

    @torch.no_grad()
    def head_labels(self) -> np.ndarray:
        """The cluster head's argmax on the whole training set (eval mode)."""
        self.backbone.eval()
        self.cluster_head.eval()
        labels = torch.cat([self.cluster_head(self.backbone.encode(x)).argmax(dim=1)
                            for x in self.data.iter_batches(self.config.cluster.eval_batch_size)])
        self.backbone.train()
        self.cluster_head.train()
        return labels.cpu().numpy()

    def after_e_step(self, features: torch.Tensor, epoch: int) -> None:
        """Both clusterings are logged; the reported one (acc, nmi, ari) is ``cc_predict``'s."""
        labels = self.head_labels()[self.labelled]
        head = {**clustering_metrics(self.data.y[self.labelled], labels),
                "n_nonempty_clusters": int(len(np.unique(labels)))}
        kmeans = dict(self.scores)
        chosen, other, other_name = (head, kmeans, "kmeans") if self.o.cc_predict == "head" else (kmeans, head, "head")
        self.scores = {**chosen, **{f"{other_name}_{k}": v for k, v in other.items()}}

    def handed_on(self) -> nn.Module:
        return self.backbone

    def final_clustering(self) -> dict:
        if self.o.cc_predict != "head":
            return super().final_clustering()
        return {"labels": self.head_labels().astype(np.int64)[self.labelled], "scores": dict(self.scores),
                "how": f"argmax of the cluster head ({self.n_clusters} columns; cc_predict: head)"}


def pretrain_cc(config: Config, data: PreparedData, progress: bool = True,
                checkpoint_dir: Optional[Path] = None) -> PretrainResult:
    return pretrain_with(CCMethod, "cc", config, data, progress, checkpoint_dir)
