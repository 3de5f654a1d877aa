"""Model checkpoints: architecture name + constructor arguments + weights, written atomically."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from brb.io import atomic_path
from brb.models import build_model


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, or does not fit the data/architecture; the message names the file."""


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, **extra: Any) -> Path:
    payload = {"arch": arch, "arch_kwargs": model.arch_kwargs(), "state_dict": model.state_dict(), **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {err}") from None
    if not isinstance(payload, dict) or not {"arch", "arch_kwargs", "state_dict"} <= set(payload):
        raise CheckpointError(f"checkpoint {path} was not written by brb (lacks arch, arch_kwargs or state_dict)")
    return payload


def load_model(path: str | Path, input_shape: tuple[int, ...] | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the network stored in ``path``; ``input_shape`` (one sample) must match when given."""
    payload = read_checkpoint(path)
    kwargs = payload["arch_kwargs"]
    stored_shape = tuple(kwargs.get("input_shape", ()))
    if input_shape is not None and stored_shape and stored_shape != tuple(input_shape):
        raise CheckpointError(
            f"checkpoint {path} was trained on inputs of shape {stored_shape}, but the data has shape "
            f"{tuple(input_shape)} (a checkpoint of another dataset or resize setting?)"
        )
    try:
        model = build_model(payload["arch"], **kwargs)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit architecture {payload['arch']!r}: {err}") from None
    return model, payload
