"""The one registry of named things: datasets, networks, pretraining methods, clustering methods, variants.

Every list of names in the project derives from here: configuration validation, the console script and
``brb info --json``, the workflow's wildcard constraints and study checks, the report's row orders and
colours; ``tests/test_registry.py`` checks the workflow schema's enums against it.

An entry is a name, a ``"module:attribute"`` target resolved only on use (so the registry is read without
importing torch), a one-line summary, tags, a rank (the order tables and plots use), an optional colour and
per-entry defaults. Datasets enter through :func:`brb.data.registry.register_dataset`; the other kinds are
declared at the bottom of this module, one entry per line, which is the only edit a new method needs here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional

from brb.methods import options as opt

KINDS = ("dataset", "network", "pretraining", "method", "variant")


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    target: Optional[str] = None
    summary: str = ""
    tags: frozenset = frozenset()
    rank: float = 0.0
    colour: Optional[str] = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: a Python object registered directly (datasets: their loader spec) rather than by a target string
    obj: Any = None
    #: methods: the typed options class (brb/methods/options.py); the entry's defaults are its defaults
    options: Any = None

    def load(self) -> Any:
        """The registered object: ``obj``, or the target imported on first use."""
        if self.obj is not None:
            return self.obj
        if self.target is None:
            raise UnknownNameError(f"{self.kind} {self.name!r} has nothing to load")
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "tags": sorted(self.tags),
            **({"target": self.target} if self.target else {}),
            **({"colour": self.colour} if self.colour else {}),
            **({"defaults": dict(self.defaults)} if self.defaults else {}),
        }


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, name: str, target: Optional[str] = None, *, summary: str = "", tags=(),
            rank: Optional[float] = None, colour: Optional[str] = None, defaults: Optional[Mapping] = None,
            obj: Any = None, options: Any = None) -> Entry:
        table = self._table(kind)
        if name in table:
            raise ValueError(f"{kind} {name!r} registered twice")
        if options is not None:
            if defaults is not None:
                raise ValueError(f"{kind} {name!r}: its defaults come from its options class")
            defaults = options().model_dump()
        entry = Entry(kind, name, target, summary, frozenset(tags), float(len(table) if rank is None else rank),
                      colour, MappingProxyType(dict(defaults or {})), obj, options)
        table[name] = entry
        return entry

    def _table(self, kind: str) -> dict[str, Entry]:
        try:
            return self._entries[kind]
        except KeyError:
            raise UnknownNameError(f"unknown registry kind {kind!r}; known: {', '.join(KINDS)}") from None

    def entry(self, kind: str, name: str) -> Entry:
        table = self._table(kind)
        if name not in table:
            known = ", ".join(self.names(kind)) or "none"
            raise UnknownNameError(f"unknown {kind} {name!r}; known: {known}")
        return table[name]

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._table(kind)

    def entries(self, kind: str, tag: Optional[str] = None) -> list[Entry]:
        """The entries of ``kind`` (with ``tag``, if given) in rank order (ties: registration order)."""
        found = [e for e in self._table(kind).values() if tag is None or tag in e.tags]
        return sorted(found, key=lambda e: e.rank)

    def names(self, kind: str, tag: Optional[str] = None) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries(kind, tag))

    def load(self, kind: str, name: str) -> Any:
        return self.entry(kind, name).load()

    def defaults(self, kind: str, name: str) -> dict[str, Any]:
        return dict(self.entry(kind, name).defaults)

    def __iter__(self) -> Iterator[Entry]:
        for kind in KINDS:
            yield from self.entries(kind)

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        """Everything registered, per kind, in rank order (what `brb info --json` prints)."""
        return {kind: [e.describe() for e in self.entries(kind)] for kind in KINDS}


REGISTRY = Registry()

# --- networks -------------------------------------------------------------------------------------------
REGISTRY.add("network", "mlp", "brb.models.autoencoder:FeedForwardAutoencoder",
             summary="the paper's feed-forward autoencoder: encoder [D, 1024, 512, 256, K] + BatchNorm + ReLU, "
                     "mirrored decoder", tags={"autoencoder"}, defaults={"hidden": [1024, 512, 256], "embedding_dim": None,
                                                                         "batch_norm": True,
                                                                         "pretraining": "reconstruction"})
REGISTRY.add("network", "resnet18", "brb.models.resnet:ResNetEmbedding",
             summary="ResNet-18 with the CIFAR stem + MLP head [512, 512, 256, 128] + BatchNorm, projector "
                     "128 -> 2048 -> 128", tags={"contrastive"},
             defaults={"hidden": [512, 256], "embedding_dim": 128, "batch_norm": True, "pretraining": "simclr"})
REGISTRY.add("network", "conv", "brb.models.conv:ConvAutoencoder",
             summary="convolutional autoencoder built from a layer spec, decoder generated by mirroring "
                     "(Aljalbout et al. 2018; specs: brb/models/specs)", tags={"autoencoder"},
             defaults={"embedding_dim": None, "pretraining": "reconstruction", "spec": "digits_small"})
REGISTRY.add("network", "cnn_small", "brb.models.cnn_small:CNNSmall",
             summary="tk-uco's cnn_small (Trosten et al.): 4 convs (5x5, 5x5+BN, pool, 3x3, 3x3+BN, pool) with "
                     "the companion outputs out1/out2, a linear bottleneck and the transposed decoder",
             tags={"autoencoder"}, defaults={"embedding_dim": None, "batch_norm": True,
                                             "pretraining": "reconstruction"})
for _name, _cls, _what in (("bigresnet18", "BigResNet18", "ResNet-18, CIFAR stem"),
                           ("bigresnet34", "BigResNet34", "ResNet-34, CIFAR stem"),
                           ("resnet18_std", "ResNet18Std", "ResNet-18, standard stem (96-224 px)"),
                           ("resnet34_std", "ResNet34Std", "ResNet-34, standard stem (96-224 px)")):
    REGISTRY.add("network", _name, f"brb.models.resnet_backbone:{_cls}",
                 summary=f"{_what}: the pooled 512 features, no head (the self-supervised family's backbone, "
                         "ProPos's naming)", tags={"self-supervised"},
                 defaults={"embedding_dim": 512, "batch_norm": True, "pretraining": "propos"})
for _name, _cls, _what, _width in (
        ("alexnet_bn", "AlexNetBNNetwork", "DeepCluster's AlexNet with BatchNorm (their 2012 configuration)", 4096),
        ("vgg16_bn", "VGG16BNNetwork", "DeepCluster's VGG-16 with BatchNorm", 4096),
        ("dc_small", "SmallConvNetwork", "AlexNet-BN's layout at a quarter width for 28-32 px images (CPU)", 256),
        ("dc_resnet18", "DCResNet18Network", "ResNet-18 (CIFAR stem) + Linear 512 for 32 px images", 512)):
    REGISTRY.add("network", _name, f"brb.models.deepcluster:{_cls}",
                 summary=f"{_what}, Sobel input filter (cluster.sobel), features = the last Linear ({_width}) pre-ReLU",
                 tags={"deepcluster"}, defaults={"embedding_dim": _width, "batch_norm": True, "pretraining": "simclr"})

# --- pretraining methods ----------------------------------------------------------------------------------
REGISTRY.add("pretraining", "reconstruction", "brb.methods.reconstruction:pretrain_autoencoder",
             summary="reconstruction (MSE) of an autoencoder, Adam", tags={"autoencoder"},
             options=opt.ReconstructionOptions)
REGISTRY.add("pretraining", "simclr", "brb.methods.simclr:pretrain_simclr",
             summary="SimCLR: NT-Xent between two augmented views, AdamW", tags={"contrastive"},
             options=opt.SimCLROptions)
REGISTRY.add("pretraining", "byol", "brb.methods.byol:pretrain_byol",
             summary="BYOL as ProPos's repository runs it: online + predictor vs EMA target, SGD with warm-up + "
                     "cosine, k-means on the target features every 10 epochs", tags={"self-supervised"},
             options=opt.BYOLOptions)
REGISTRY.add("pretraining", "propos", "brb.methods.byol:pretrain_propos",
             summary="ProPos (Huang et al.): BYOL + prototype scattering loss on k-means pseudo-labels every epoch "
                     "+ positive sampling alignment", tags={"self-supervised"}, options=opt.ProPosOptions)
REGISTRY.add("pretraining", "simsiam", "brb.methods.selfsup:pretrain_simsiam",
             summary="SimSiam: symmetric negative cosine of predictor vs stop-gradient projector, no twin",
             tags={"self-supervised"}, options=opt.SimSiamOptions)
REGISTRY.add("pretraining", "moco", "brb.methods.selfsup:pretrain_moco",
             summary="MoCo v2: InfoNCE of queries against an EMA key encoder and a queue of keys, symmetric",
             tags={"self-supervised"}, options=opt.MoCoOptions)
REGISTRY.add("pretraining", "pcl", "brb.methods.selfsup:pretrain_pcl",
             summary="PCL: MoCo + ProtoNCE over k-means prototypes at several granularities, concentration-scaled",
             tags={"self-supervised"}, options=opt.PCLOptions)
REGISTRY.add("pretraining", "cc", "brb.methods.selfsup:pretrain_cc",
             summary="Contrastive Clustering: instance NT-Xent + cluster-column NT-Xent + entropy, Adam",
             tags={"self-supervised"}, options=opt.CCOptions)

# --- clustering methods: each with its typed options class (defaults, ranges: brb/methods/options.py) -------
# contrastive_weight: weight of NT-Xent for networks with a projector (DEC trains on its clustering loss
# only; IDEC and DCN keep the self-supervised loss as their regulariser, in place of reconstruction).
# tag "clustering": a clustering method of `cluster.algorithm` (the workflow's `algorithms`).
REGISTRY.add("method", "dec", "brb.methods.dec:DEC", summary="DEC: KL(P || Q), Student-t soft assignments",
             tags={"clustering", "centroids"}, options=opt.DECOptions)
REGISTRY.add("method", "idec", "brb.methods.dec:IDEC", summary="IDEC: DEC's loss + reconstruction",
             tags={"clustering", "centroids"}, options=opt.IDECOptions)
REGISTRY.add("method", "dcn", "brb.methods.dcn:DCN",
             summary="DCN: k-means loss with hard assignments + reconstruction; centroids by running means",
             tags={"clustering", "centroids"}, options=opt.DCNOptions)
REGISTRY.add("method", "dkm", "brb.methods.dkm:DKM",
             summary="Deep k-Means: soft k-means loss (softmax of -alpha * distance) + reconstruction",
             tags={"clustering", "centroids"}, options=opt.DKMOptions)
REGISTRY.add("method", "ae_kl", "brb.methods.aljalbout:AEKL",
             summary="Aljalbout et al. 2018 AE + KL: DEC's KL summed over the batch (target over the dataset "
                     "every epoch) + reconstruction, Nesterov SGD; k-means on the final embedding",
             tags={"clustering", "centroids"}, options=opt.AEKLOptions)
REGISTRY.add("method", "ae_kmeans", "brb.methods.aljalbout:AEKMeans",
             summary="Aljalbout et al. 2018 AE + k-means loss: 0.1 * mean distance to the nearest centroid "
                     "(Euclidean) + reconstruction, centroids fixed as their code, Nesterov SGD",
             tags={"clustering", "centroids"}, options=opt.AEKMeansOptions)
REGISTRY.add("method", "dec_uco", "brb.methods.dec:DECUCO",
             summary="tk-uco's DEC-UCO: DEC's KL + 0.01 * companion objectives d_cs(Q, K) on the network's "
                     "intermediate outputs (naive kernel on the MLP, tensor kernel on cnn_small), Adam 1e-4",
             tags={"clustering", "centroids"}, options=opt.DECUCOOptions)
REGISTRY.add("method", "ddc", "brb.methods.ddc:DDC",
             summary="DDC (Kampffmeyer et al.), as tk-uco trains it: three Cauchy-Schwarz divergence terms on a "
                     "softmax clustering head; no centroids", tags={"clustering", "cluster_head"},
             options=opt.DDCOptions)
REGISTRY.add("method", "ddc_uco", "brb.methods.ddc:DDCUCO",
             summary="DDC-UCO (Trosten et al.): DDC + 0.01 * tensor-kernel companion objectives on out1/out2",
             tags={"clustering", "cluster_head"}, options=opt.DDCUCOOptions)
REGISTRY.add("method", "ddc_ae", "brb.methods.ddc:DDCAE",
             summary="DDC-AE: DDC + 0.1 * reconstruction through the transposed decoder",
             tags={"clustering", "cluster_head"}, options=opt.DDCAEOptions)
REGISTRY.add("method", "deepcluster", "brb.methods.deepcluster:DeepCluster",
             summary="DeepCluster (Caron et al.): every epoch PCA-whitened k-means pseudo-labels of the features, a "
                     "cluster-uniform sampler, a new top layer, cross-entropy; k-means to the classes to evaluate",
             tags={"clustering", "deepcluster"}, options=opt.DeepClusterOptions)

# --- variants: which BRB parts each switches on (the paper's ablations are reset and recluster) -----------
REGISTRY.add("variant", "baseline", summary="no intervention", colour="#4C72B0",
             defaults={"soft_reset": False, "recluster": False, "momentum_reset": False})
REGISTRY.add("variant", "brb", summary="soft reset + reclustering + momentum reset", colour="#C44E52",
             defaults={"soft_reset": True, "recluster": True, "momentum_reset": True})
REGISTRY.add("variant", "reset", summary="soft reset only", colour="#55A868",
             defaults={"soft_reset": True, "recluster": False, "momentum_reset": False})
REGISTRY.add("variant", "recluster", summary="reclustering + momentum reset", colour="#DD8452",
             defaults={"soft_reset": False, "recluster": True, "momentum_reset": True})
REGISTRY.add("variant", "reset_recluster", summary="soft reset + reclustering, no momentum reset (BRB for a "
             "method without centroid optimiser state: DDC's cluster head is re-seeded)", colour="#8172B3",
             defaults={"soft_reset": True, "recluster": True, "momentum_reset": False})
