"""Typed, validated configuration: the one place where every option, its default and its range live.

A :class:`Config` has one section per concern. Unknown keys and out-of-range values are rejected with
a :class:`ConfigError` whose message names the offending key (``cluster.epochs``, ``brb.alpha``...).
Per-algorithm defaults (loss weights) are filled in by :data:`ALGORITHM_DEFAULTS` when a run does not
set them, and the resolved values are what gets written into every run's ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from brb.methods.options import MethodOptions
from brb.registry import REGISTRY

#: The seeds of the paper's configs (public BRB code, config/autoencoder/*.py); `seeds: paper` in a study.
PAPER_SEEDS = (400, 148, 820, 214, 40, 805, 111, 491, 215, 513)

# Every name and its defaults come from the one registry (brb/registry.py); these are read-only views of it.
VARIANTS = REGISTRY.names("variant")
RECLUSTER_METHODS = ("kmeans", "kmeans++", "kmedoids", "em", "random")
_WEIGHTS = ("cluster_weight", "reconstruction_weight", "contrastive_weight")
#: Default loss weights per clustering method (from its options class, brb/methods/options.py).
ALGORITHM_DEFAULTS: dict[str, dict[str, float]] = {
    e.name: {k: e.defaults[k] for k in _WEIGHTS if k in e.defaults} for e in REGISTRY.entries("method", tag="clustering")
}
#: Per-network defaults of the model section, used where a run leaves them unset.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    e.name: {k: v for k, v in e.defaults.items() if k != "pretraining"} for e in REGISTRY.entries("network")
}
#: The pretraining method of each network when ``pretrain.method`` is ``auto``.
ARCH_PRETRAIN_METHOD = {e.name: e.defaults["pretraining"] for e in REGISTRY.entries("network")}
#: The network capability (registry tag) each regulariser needs, and what that capability is.
_WEIGHT_NEEDS = {"reconstruction_weight": "autoencoder", "contrastive_weight": "contrastive"}
_CAPABILITY = {"autoencoder": "decoder (reconstruction)", "contrastive": "projector (contrastive loss)"}
#: Which BRB parts each variant switches on (the paper's ablations are ``reset`` and ``recluster``).
VARIANT_PARTS: dict[str, dict[str, bool]] = {e.name: dict(e.defaults) for e in REGISTRY.entries("variant")}


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names the key."""


def _registered(value: str, kind: str, tag: Optional[str] = None) -> str:
    """``value`` if it names a registry entry of ``kind`` (with ``tag``), else a ValueError listing the known names."""
    known = REGISTRY.names(kind, tag)
    if value not in known:
        what = f"{tag} {kind}" if tag else kind
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(known)}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    dataset: str = Field("digits", description="dataset name from the registry (see `brb info`)")
    normalize: Literal["channel", "global", "none", "symmetric"] = Field(
        "channel", description="z-score per channel (paper), over all pixels, none ([0,1] scaling only) or "
        "symmetric ([-1, 1]: (x - 0.5) / 0.5, tk-uco's preprocessing)"
    )
    resize: Optional[int] = Field(None, gt=0, description="resize images to this side length (None: keep)")
    subset: Optional[int] = Field(
        None, gt=1, description="train and evaluate on a random subset of this many samples, the same draw (seed 0) "
        "for every run, method and baseline of the dataset (None: all samples; with split train_test, of each part)"
    )
    split: Literal["combined", "train_test"] = Field(
        "combined",
        description="combined: train and test splits together for training and evaluation (paper, autoencoders); "
        "train_test: train on the train split, evaluate on the test split (paper, contrastive setting)",
    )
    pretrain_extra: list[str] = Field(
        [], description="datasets whose images join the pretraining set, unscored (e.g. [stl10-unlabeled]: STL-10's "
        "100,000 unlabelled images); clustering and evaluation keep to `dataset`"
    )

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        import brb.data  # noqa: F401  (registers the datasets)

        return _registered(value, "dataset")

    @field_validator("pretrain_extra")
    @classmethod
    def _known_extras(cls, value: list[str]) -> list[str]:
        import brb.data  # noqa: F401  (registers the datasets)

        return [_registered(v, "dataset") for v in value]


class ModelConfig(_Section):
    arch: str = Field("mlp", description="network architecture from the registry (see `brb info`)")
    hidden: Optional[list[int]] = Field(
        None,
        description="hidden widths of the encoder (mlp) or of the MLP head on the ResNet features (resnet18); "
        "None: per-architecture default (mlp [1024, 512, 256]; resnet18 [512, 256])",
    )
    embedding_dim: Optional[int] = Field(
        None, gt=0, description="embedding size (None: mlp the number of clusters, as in the paper; resnet18 128)"
    )
    batch_norm: Optional[bool] = Field(
        None, description="BatchNorm after each hidden layer (None: the network's default; mlp and resnet18 on, "
        "conv as its layer spec says)"
    )
    spec: Optional[str] = Field(
        None, description="conv: the layer spec, a shipped name (`brb info`; brb/models/specs) or a .json/.yaml "
        "file; the spec fixes the code size (leave embedding_dim unset or equal to it)"
    )
    projection: list[int] = Field(
        default_factory=lambda: [2048, 128],
        description="widths of the contrastive projector on the embedding (resnet18; paper 128 -> 2048 -> 128)",
    )
    weights: Optional[str] = Field(
        None,
        description="resnet18: start from external weights: a torchvision-layout ResNet-18 state dict or a "
        "SimCLR checkpoint of the paper's release (.pt/.pth); missing or unexpected keys are an error",
    )

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, value: Optional[list[int]]) -> Optional[list[int]]:
        if value is not None and (not value or any(w <= 0 for w in value)):
            raise ValueError("hidden widths must be a non-empty list of positive integers")
        return value

    @field_validator("projection")
    @classmethod
    def _projection_widths(cls, value: list[int]) -> list[int]:
        if not value or any(w <= 0 for w in value):
            raise ValueError("projection widths must be a non-empty list of positive integers")
        return value

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        return _registered(value, "network")


class AugmentConfig(_Section):
    kind: Literal["auto", "affine", "colour"] = Field(
        "auto", description="auto: random affine for grey images, crop/colour views for colour images; colour "
        "also works on grey images (crop, flip, brightness and contrast)"
    )
    degrees: float = Field(16.0, ge=0, le=180, description="random rotation range in degrees (±)")
    translate: float = Field(0.1, ge=0, le=1, description="random translation as a fraction of the side")
    shear: float = Field(8.0, ge=0, le=90, description="random shear in degrees (±)")
    interpolation: Literal["bilinear", "nearest"] = Field(
        "bilinear", description="affine: resampling of the warped image (torchvision's RandomAffine default, used "
        "by the public BRB code: nearest)",
    )
    pixel_translate: bool = Field(
        False, description="affine: translations rounded to whole pixels, as torchvision's RandomAffine draws "
        "them (public BRB code); off: continuous shifts",
    )
    crop_scale_min: float = Field(0.08, gt=0, le=1, description="colour: smallest crop area fraction")
    flip: bool = Field(True, description="colour: random horizontal flips (off for digits and text)")
    jitter: list[float] = Field(
        default_factory=lambda: [0.4, 0.4, 0.2, 0.1], description="colour: brightness, contrast, saturation, hue"
    )
    jitter_p: float = Field(0.8, ge=0, le=1, description="colour: probability of colour jitter")
    grey_p: float = Field(0.2, ge=0, le=1, description="colour: probability of greyscale")
    solarize_p: float = Field(0.0, ge=0, le=1, description="colour: probability of solarize")

    @field_validator("jitter")
    @classmethod
    def _four_strengths(cls, value: list[float]) -> list[float]:
        if len(value) != 4 or any(v < 0 for v in value) or value[3] > 0.5:
            raise ValueError("jitter must be 4 non-negative strengths [brightness, contrast, saturation, hue<=0.5]")
        return value


class _PretrainCommon(_Section):
    """The `pretrain` keys every pretraining method shares; each method's own keys are added from its options."""

    method: Literal[("auto", *REGISTRY.names("pretraining"))] = Field(  # type: ignore[valid-type]
        "auto", description="auto: the network's own (reconstruction for autoencoders, SimCLR for resnet18)"
    )
    lr_decay: float = Field(
        1.0, gt=0, le=1, description="learning rate multiplied by this after every epoch (Aljalbout et al.: 0.9999)"
    )
    temperature: float = Field(0.5, gt=0, description="NT-Xent temperature (SimCLR, and the contrastive regulariser)")
    augment: bool = Field(False, description="reconstruct augmented views as well (augmentation invariance)")

    def resolved_method(self, arch: str) -> str:
        return ARCH_PRETRAIN_METHOD.get(arch, "reconstruction") if self.method == "auto" else self.method


class _ClusterCommon(_Section):
    """The `cluster` keys every clustering method shares; each method's own keys are added from its options."""

    algorithm: str = Field("dec", description="clustering method from the registry (see `brb info`): dec | idec | dcn")
    n_clusters: Optional[int] = Field(None, gt=0, description="number of clusters (None: number of classes)")
    epochs: int = Field(400, ge=0, description="clustering epochs (paper: 400)")
    batch_size: int = Field(256, gt=0, description="mini-batch size")
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd: momentum")
    nesterov: bool = Field(True, description="sgd: Nesterov momentum")
    augment: bool = Field(False, description="augmentation invariance: losses on a clean and an augmented view")
    recluster_every: int = Field(
        0, ge=0, description="re-run k-means on the whole embedding every this many epochs and write the "
        "centroids back (0: never; Aljalbout et al.'s paper: 10 for the k-means loss, their code computes it and "
        "discards it)"
    )
    view_passes: Literal["joint", "separate"] = Field(
        "joint",
        description="with two views: 'joint' = one forward pass of both views concatenated (one BatchNorm batch; "
        "the BRB code's IDEC/DCN); 'separate' = one pass per view, augmented view first (the BRB code's DEC)",
    )
    bn_logging_pass: bool = Field(
        False,
        description="an extra train-mode forward pass without gradient before each step (both views concatenated) "
        "that only updates BatchNorm running statistics: the public BRB code's DEC logs the autoencoder loss "
        "this way (2 running-statistics updates per step, 3 with augmentation); off = the published DEC",
    )
    grad_clip: Optional[float] = Field(
        None, gt=0, description="clip the network's gradient (not the centroids') to this L2 norm before each "
        "step (None: no clipping; public BRB code: 500)",
    )
    drop_last: bool = Field(
        False, description="drop the last partial mini-batch of each epoch (public BRB code's augmented loader); "
        "off: it is trained on (a single leftover sample is merged into the previous batch)",
    )
    kmeans_n_init: int = Field(10, gt=0, description="k-means restarts for the initial centroids")
    empty_clusters: Literal["keep", "reseed"] = Field(
        "keep",
        description="a cluster left without points after an epoch: 'keep' its centroid (paper), or 'reseed' it "
        "on the point farthest from its own centroid; counted in the history either way",
    )
    eval_batch_size: int = Field(4096, gt=0, description="batch size for whole-dataset embedding")

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        return _registered(value, "method", "clustering")

    def resolved_weights(self) -> dict[str, float]:
        """The loss weights (resolved by :class:`Config` from the method's options and the network; 0 for a
        weight the method does not have)."""
        return {key: getattr(self, key) or 0.0 for key in _WEIGHTS}

    def method_options(self) -> MethodOptions:
        """This run's method options as the method's typed options class."""
        cls = REGISTRY.entry("method", self.algorithm).options
        return cls.model_validate({key: getattr(self, key) for key in cls.model_fields})


def _method_option_fields(kind: str = "method", tag: Optional[str] = "clustering") -> dict[str, Any]:
    """Every option key of the registered ``kind`` (clustering methods, pretraining methods), as optional flat
    section keys (None: the method's default), with the description of the first class declaring them and the
    methods that have them."""
    owners: dict[str, list[str]] = {}
    first: dict[str, Any] = {}
    for entry in REGISTRY.entries(kind, tag):
        for key, info in entry.options.model_fields.items():
            owners.setdefault(key, []).append(entry.name)
            first.setdefault(key, info)
    return {
        key: (Optional[info.annotation], Field(None, description=f"{info.description} ({', '.join(owners[key])}; "
                                                                     "None: the method's default)"))
        for key, info in first.items()
    }


#: The ``cluster`` section: the shared keys and every method's option keys (validated, and filled with the
#: method's defaults, against the run's method in :class:`Config`; other methods' keys are recorded as null).
ClusterConfig = create_model("ClusterConfig", __base__=_ClusterCommon, __module__=__name__, **_method_option_fields())
METHOD_OPTION_KEYS = frozenset(ClusterConfig.model_fields) - frozenset(_ClusterCommon.model_fields)
#: The ``pretrain`` section: the shared keys and every pretraining method's option keys (as ``cluster``).
PretrainConfig = create_model("PretrainConfig", __base__=_PretrainCommon, __module__=__name__,
                              **_method_option_fields("pretraining", None))
PRETRAIN_OPTION_KEYS = frozenset(PretrainConfig.model_fields) - frozenset(_PretrainCommon.model_fields)


def _resolve_options(section: BaseModel, cls: type[MethodOptions], keys: frozenset, where: str, name: str) -> MethodOptions:
    """Validate the keys of ``section`` that method ``name``'s options class has (its ranges), fill its defaults
    and write them back; the keys of other methods (``keys`` not in the class) are set to None: they do not run."""
    given = {key: getattr(section, key) for key in cls.model_fields if getattr(section, key) is not None}
    try:
        options = cls.model_validate(given)
    except ValidationError as err:
        item = err.errors()[0]
        raise ValueError(f"{where}.{item['loc'][0]}: {item['msg']} (an option of {name})") from None
    for key in keys:
        object.__setattr__(section, key, getattr(options, key) if key in cls.model_fields else None)
    return options


class BRBConfig(_Section):
    variant: Literal[VARIANTS] = Field(  # type: ignore[valid-type]
        "baseline", description="baseline | brb | reset (soft reset only) | recluster (reclustering only)"
    )
    interval: int = Field(20, gt=0, description="T: BRB fires at the start of epochs T, 2T, ... (never 0)")
    alpha: float = Field(0.8, ge=0, le=1, description="soft reset: θ ← α·θ + (1−α)·φ, φ a fresh init")
    alpha_step: float = Field(
        0.0, ge=0, le=1, description="per-block increase of alpha towards the embedding (block i: alpha + i·step, "
        "capped at 1), so deeper blocks are reset less"
    )
    block_alpha: dict[str, float] = Field(
        default_factory=dict,
        description="alpha of named reset blocks, overriding alpha + i*alpha_step (resnet18 blocks: layer4, "
        "head0, head1, ...; mlp blocks: block0, block1, ...), e.g. {layer4: 0.9} (paper, contrastive setting)",
    )
    reset_embedding: bool = Field(False, description="also soft-reset the embedding (last encoder) layer")
    recluster_method: Literal["kmeans", "kmeans++", "kmedoids", "em", "random"] = Field(
        "kmeans", description="how new centroids are found on the embedding"
    )
    subsample: int = Field(10000, gt=0, description="subsample size used for reclustering")
    subsample_mode: Literal["random", "first"] = Field(
        "random",
        description="which samples are embedded for reclustering: 'random' = a fresh random subsample each "
        "time; 'first' = the first `subsample` samples in dataset order, the same every time (public BRB code)",
    )
    reset_batchnorm: bool = Field(
        False,
        description="soft reset also pulls BatchNorm weight/bias towards 1/0 (running statistics are never "
        "touched); off = BatchNorm left alone, as in the public BRB code's default and the paper's configs",
    )
    reset_init: Literal["kaiming", "default"] = Field(
        "kaiming",
        description="fresh weights φ of Linear/Conv layers: 'kaiming' = kaiming_uniform_(a=0), U(±√(6/fan_in)), "
        "biases U(±1/√fan_in) (public BRB code); 'default' = the layer's reset_parameters(), U(±1/√fan_in)",
    )
    kmeans_n_init: int = Field(10, gt=0, description="k-means restarts when reclustering")
    reset_momentum_steps: bool = Field(False, description="momentum reset also zeroes Adam's step count")

    @field_validator("block_alpha")
    @classmethod
    def _alphas_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"block alphas must lie in [0, 1]: {bad}")
        return value

    def parts(self) -> dict[str, bool]:
        return dict(VARIANT_PARTS[self.variant])

    def block_alphas(self, names: list[str]) -> list[float]:
        """alpha of each reset block (input side first): ``block_alpha[name]``, else alpha + i*alpha_step."""
        return [self.block_alpha.get(n, min(1.0, self.alpha + i * self.alpha_step)) for i, n in enumerate(names)]


class SelfLabelConfig(_Section):
    epochs: int = Field(25, ge=0, description="self-labeling epochs after clustering (SCAN)")
    batch_size: int = Field(512, gt=0, description="mini-batch size")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate (network and cluster head)")
    weight_decay: float = Field(1e-4, ge=0, description="Adam weight decay")
    threshold: float = Field(
        0.99, gt=0, lt=1, description="a weakly augmented view whose top cluster probability exceeds this "
        "becomes a pseudo-label for its strongly augmented view"
    )
    balanced: bool = Field(True, description="class-balanced cross-entropy (weights ∝ 1/frequency of the labels)")
    weak_crop_scale_min: float = Field(0.5, gt=0, le=1, description="weak view: smallest crop area (+ flip)")
    cutout: int = Field(16, ge=0, description="strong view: side of one random square erased (0: none)")


class RunConfig(_Section):
    seed: int = Field(0, ge=0, description="random seed (torch, numpy, k-means)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    threads: Optional[int] = Field(None, gt=0, description="torch CPU threads (None: torch's default)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="fp32, or bf16 autocast of the network's matrix products (losses stay fp32): several "
        "times faster on GPUs and on CPUs with bf16 units; results differ within seed noise",
    )
    kmeans: Literal["auto", "sklearn", "torch"] = Field(
        "auto",
        description="k-means implementation for initial clustering and reclustering: sklearn (CPU), torch (on "
        "the training device), auto (torch on a GPU for inputs of 20,000 points or more, else sklearn)",
    )
    matmul_precision: Literal["highest", "high", "medium"] = Field(
        "highest",
        description="torch.set_float32_matmul_precision for fp32 runs: 'highest' = true fp32; 'high'/'medium' let "
        "GPUs use TF32 (the public BRB code sets 'medium'); no effect on CPU matrix products here",
    )
    tracking: Literal["none", "tensorboard", "wandb", "mlflow"] = Field(
        "none", description="experiment tracking of every epoch's history row: tensorboard, wandb (offline unless "
        "WANDB_MODE says otherwise) or mlflow (a local SQLite store unless MLFLOW_TRACKING_URI is set); needs "
        "pip install 'brb[tracking]'",
    )
    tracking_dir: Optional[str] = Field(None, description="where tracking writes (None: <run directory>/tracking)")
    checkpoint_every: int = Field(
        10, ge=0, description="write a resume checkpoint every N epochs (0: never; SIGTERM always writes one)"
    )

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda", "mps") and not value.startswith("cuda:"):
            raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda or cuda:N")
        return value


class Config(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    brb: BRBConfig = Field(default_factory=BRBConfig)
    selflabel: SelfLabelConfig = Field(default_factory=SelfLabelConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Config:
        """Per-algorithm, per-architecture and per-method defaults for the keys a run left unset, resolved
        against what the network declares it can do (registry tags), so that the recorded configuration is
        the applied one: a loss term the network cannot compute gets weight 0, and setting one is an error."""
        c = self.cluster
        cls = REGISTRY.entry("method", c.algorithm).options
        options = _resolve_options(c, cls, frozenset(), "cluster", c.algorithm)
        tags = REGISTRY.entry("network", self.model.arch).tags
        for key in (k for k in _WEIGHTS if k in cls.model_fields):
            needs = _WEIGHT_NEEDS.get(key)
            if needs is not None and needs not in tags:
                if getattr(c, key):
                    raise ValueError(
                        f"cluster.{key}: the {self.model.arch} network has no {_CAPABILITY[needs]}; leave it unset or 0"
                    )
                setattr(options, key, 0.0)
        for key in METHOD_OPTION_KEYS:  # the method's resolved options; other methods' keys did not run
            object.__setattr__(c, key, getattr(options, key) if key in cls.model_fields else None)
        for key, value in ARCH_DEFAULTS.get(self.model.arch, {}).items():
            if getattr(self.model, key) is None:
                object.__setattr__(self.model, key, value)
        method = self.pretrain.resolved_method(self.model.arch)
        _resolve_options(self.pretrain, REGISTRY.entry("pretraining", method).options, PRETRAIN_OPTION_KEYS,
                         "pretrain", method)
        return self

    def with_network(self, arch: str) -> Config:
        """This configuration for the network ``arch`` (e.g. the one a pretrained checkpoint holds): the keys
        that were set explicitly are kept, every default is resolved again for that network."""
        if arch == self.model.arch:
            return self
        values = self.model_dump(mode="json", exclude_unset=True)
        values.setdefault("model", {})["arch"] = arch
        return make_config(values)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one (threads and checkpoint cadence may differ)."""
        values = self.to_dict()
        ignored = ("threads", "checkpoint_every", "device", "tracking", "tracking_dir")
        values["run"] = {k: v for k, v in values["run"].items() if k not in ignored}
        return values


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation for name, field in Config.model_fields.items()  # type: ignore[misc]
}


def _format_error(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<config>"
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            section = item["loc"][0] if len(item["loc"]) > 1 else None
            known = SECTIONS[section].model_fields if section in SECTIONS else Config.model_fields
            msg = f"unknown key; known keys here: {', '.join(known)}"
        lines.append(f"{key}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def make_config(values: dict[str, Any] | None = None) -> Config:
    """Build a validated :class:`Config` from nested dicts, raising :class:`ConfigError`."""
    try:
        return Config.model_validate(values or {})
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML/JSON config file (optional) and apply nested ``overrides`` on top."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}")
        values = loaded
    return make_config(deep_merge(values, overrides or {}))
