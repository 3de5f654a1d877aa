"""ResNet-18 with the CIFAR stem, an MLP embedding head and a contrastive projector (the paper's
contrastive setting): backbone → head ([512, *hidden, embedding_dim] + BatchNorm) → embedding z, on which
clustering works; projector (z → 2048 → 128) only for the NT-Xent loss.

The backbone is torchvision's ResNet-18 with its stem changed for 32×32 images (3×3 first convolution,
stride 1, no max-pool) and its classifier removed, so torchvision-layout weights load into it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from brb.models.autoencoder import _mlp
from brb.models.blocks import PROJECTION, ResetBlocksMixin, linear_blocks, sequential_outputs
from brb.models.checkpoint import CheckpointError


def cifar_resnet18(in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-18 with the CIFAR stem; outputs the 512 pooled features."""
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


class ResNetEmbedding(ResetBlocksMixin, nn.Module):
    """Encoder (ResNet-18 + MLP head) and projector; ``decoder`` is None (no reconstruction)."""

    FEATURES = 512
    decoder = None

    ARCH_FIELDS = ("input_shape", "embedding_dim", "hidden", "batch_norm", "projection")
    provides = frozenset({PROJECTION})

    def __init__(
        self,
        input_shape,
        embedding_dim: int = 128,
        hidden=(512, 256),
        batch_norm: bool = True,
        projection=(2048, 128),
    ):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"resnet18 needs image data (C, H, W); got samples of shape {self.input_shape}")
        self.embedding_dim = int(embedding_dim)
        self.hidden = [int(h) for h in hidden]
        self.batch_norm = bool(batch_norm)
        self.projection = [int(p) for p in projection]
        self.backbone = cifar_resnet18(self.input_shape[0])
        self.head = _mlp([self.FEATURES, *self.hidden, self.embedding_dim], batch_norm)
        self.projector = _mlp([self.embedding_dim, *self.projection], batch_norm=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:  # channels-last convolutions are markedly faster on tensor-core GPUs
            if not getattr(self, "_channels_last", False):
                self.backbone.to(memory_format=torch.channels_last)
                self._channels_last = True
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.backbone(x))

    def intermediate(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Outputs of the stem, ``layer1`` ... ``layer4``, the pooled 512 features and the head's blocks
        (``head0``, ...; the last is the embedding), for losses on hidden layers."""
        b = self.backbone
        out = [("stem", b.maxpool(b.relu(b.bn1(b.conv1(x)))))]
        for name in ("layer1", "layer2", "layer3", "layer4"):
            out.append((name, getattr(b, name)(out[-1][1])))
        out.append(("pool", torch.flatten(b.avgpool(out[-1][1]), 1)))
        return out + sequential_outputs(self.head, out[-1][1], nn.Linear, "head")

    def project(self, z: torch.Tensor) -> torch.Tensor:
        return self.projector(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.encode(x), None

    def named_reset_blocks(self, include_embedding: bool = False) -> list[tuple[str, list[nn.Module]]]:
        """What BRB's soft reset may touch, input side first: ResNet ``layer4`` (its convolutions and norms;
        earlier stages are never reset, as in the paper) and the head's blocks ``head0``, ``head1``, ... (a
        Linear and its BatchNorm); the last head block is the embedding layer."""
        layer4 = [m for m in self.backbone.layer4.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        head = linear_blocks(self.head)
        if not include_embedding:
            head = head[:-1]
        return [("layer4", layer4)] + [(f"head{i}", block) for i, block in enumerate(head)]


class WeightsError(CheckpointError):
    """External weights do not fit the network; the message lists the missing and unexpected keys."""


#: Wrappers other trainers put around a state dict, and prefixes they put before the keys.
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")
_PREFIXES = ("module.", "model.", "encoder.", "backbone.", "net.", "resnet.", "feature_extractor.")
#: torchvision's ImageNet classifier, which our backbone replaces (ignored when present).
_IGNORED = ("fc.weight", "fc.bias")


def _unwrap(payload) -> dict[str, torch.Tensor]:
    while isinstance(payload, dict):
        if payload and all(torch.is_tensor(v) for v in payload.values()):
            return payload
        inner = next((payload[k] for k in _CONTAINER_KEYS if isinstance(payload.get(k), dict)), None)
        if inner is None:
            break
        payload = inner
    raise WeightsError("the file holds no state dict (a mapping of parameter names to tensors)")


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes shared by all keys (``module.``, ``backbone.``, ...), repeatedly."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def load_external_weights(model: ResNetEmbedding, path: str | Path) -> dict[str, list[str]]:
    """Load a torchvision-layout ResNet-18 state dict (backbone only; ``fc`` ignored) or a full state dict of
    this network (backbone + head + projector, e.g. a released SimCLR checkpoint), from ``path``.

    Returns which parts were loaded; raises :class:`WeightsError` listing missing, unexpected and
    mis-shaped keys (nothing is changed in that case)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors differ between torch versions
        raise WeightsError(f"weights file {path} cannot be read as a torch checkpoint: {err}") from None
    state = _strip_prefixes(_unwrap(payload))
    own = model.state_dict()
    if not any(k.startswith(("backbone.", "head.", "projector.")) for k in state):
        # torchvision layout: backbone keys without prefix
        state = {f"backbone.{k}": v for k, v in state.items() if k not in _IGNORED}
        target = {k: v for k, v in own.items() if k.startswith("backbone.")}
        parts = ["backbone"]
    else:
        parts = sorted({k.split(".", 1)[0] for k in state if k.split(".", 1)[0] in ("backbone", "head", "projector")})
        target = {k: v for k, v in own.items() if k.split(".", 1)[0] in parts}
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    mis_shaped = sorted(
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(target[k].shape)}"
        for k in set(state) & set(target)
        if state[k].shape != target[k].shape
    )
    if missing or unexpected or mis_shaped:
        def listing(title: str, keys: list[str]) -> str:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
            return f"\n  {title}: {shown}" if keys else ""

        raise WeightsError(
            f"weights in {path} do not fit the resnet18 network (CIFAR stem):"
            + listing("missing keys", missing)
            + listing("unexpected keys", unexpected)
            + listing("shape mismatches", mis_shaped)
        )
    model.load_state_dict(state, strict=False)
    return {"loaded": parts}
