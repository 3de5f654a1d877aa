"""Helpers every training method shares: networks, augmentation, batches, embeddings, data splits."""

from __future__ import annotations

import inspect
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from brb.config import Config
from brb.data.augment import ColourAugment, RandomAffine
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.engine.loop import TrainingError
from brb.models import architecture, build_model
from brb.models.blocks import PROJECTION, provides
from brb.runtime import autocast, setup_run


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
    cls = architecture(m.arch)
    kwargs = {"input_shape": data.sample_shape, "embedding_dim": m.embedding_dim or n_clusters,
              "hidden": m.hidden, "batch_norm": m.batch_norm}
    if "spec" in inspect.signature(cls).parameters:  # a layer-spec network: its spec fixes the code size
        kwargs.update(spec=m.spec, embedding_dim=m.embedding_dim)
    if provides(cls, PROJECTION):
        kwargs["projection"] = m.projection
    model = build_model(m.arch, **kwargs)
    if m.weights is not None:
        from brb.models.resnet import load_external_weights

        if not provides(model, PROJECTION):
            raise TrainingError(f"model.weights is for the resnet18 network, not {m.arch!r}")
        load_external_weights(model, m.weights)
    return model


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, device=None,
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


def device_splits(config: Config, data: PreparedData, device) -> tuple[DeviceData, DeviceData]:
    """(training data, evaluation data) on ``device`` as ``config.data.split`` says: the same object for
    ``combined``; the train split and the test split (normalised with the train split's statistics) for
    ``train_test``."""
    from brb.data.prepared import subset_of
    from brb.data.stream import device_data

    d = config.data
    if d.split == "combined":
        both = device_data(data if d.subset is None else subset_of(data, d.subset), device, d.normalize, d.resize)
        return both, both
    parts = [data.part(p) if d.subset is None else subset_of(data.part(p), d.subset) for p in ("train", "test")]
    train = device_data(parts[0], device, d.normalize, d.resize)
    test = device_data(parts[1], device, d.normalize, d.resize, statistics=(train.mean, train.std))
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


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: Optional[float] = None,
                   clip_params=None) -> None:
    """One gradient step on ``loss``: zero the gradients, backpropagate, optionally clip the L2 norm of the
    gradient of ``clip_params`` (e.g. the network, not the centroids) to ``clip``, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip_params, clip)
    optimizer.step()


def setup_cluster_method(method, config: Config, data, eval_data, checkpoint_dir, options_type: type, what: str) -> None:
    """What a clustering method with its own training (DDC, DeepCluster) sets up first: ``config``, its typed
    ``options`` (a TrainingError when ``cluster.algorithm`` is not ``what``), ``checkpoint_dir``, ``label``,
    ``epochs``, the ``device`` (seeded), ``data`` / ``eval_data`` on it and ``n_clusters``."""
    c = config.cluster
    method.config = config
    method.options = c.method_options()
    if not isinstance(method.options, options_type):
        raise TrainingError(f"cluster.algorithm {c.algorithm!r} is not {what}")
    method.checkpoint_dir = checkpoint_dir
    method.label = f"{c.algorithm}/{config.brb.variant} seed {config.run.seed}"
    method.epochs = c.epochs
    method.device = setup_run(config.run)
    if isinstance(data, PreparedData):
        data, eval_data = device_splits(config, data, method.device)
    method.data = data
    method.eval_data = eval_data if eval_data is not None else data
    method.n_clusters = c.n_clusters or data.n_classes
    if method.n_clusters > len(data):
        raise TrainingError(f"cluster.n_clusters={method.n_clusters} exceeds the number of samples ({len(data)})")
