"""Device selection, seeding, threads and a record of the job's environment."""

from __future__ import annotations

import os
import platform
import random
import sys
import time

import numpy as np
import torch

from brb.config import RunConfig


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable explicit CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available here (use device: auto or cpu)")
    return device


def setup_run(run: RunConfig) -> torch.device:
    """Seed every generator, set threads and return the training device. On CUDA, cuDNN picks the fastest
    convolution algorithms for the (fixed) batch shapes; results then match within floating-point noise
    rather than bit for bit (CPU runs stay bit-identical)."""
    if run.threads:
        torch.set_num_threads(run.threads)
    random.seed(run.seed)
    np.random.seed(run.seed)
    torch.manual_seed(run.seed)
    torch.set_float32_matmul_precision(run.matmul_precision)
    device = resolve_device(run.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def autocast(device: torch.device, precision: str):
    """Mixed-precision context for the network's forward pass (a no-op for fp32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def job_environment(device: torch.device) -> dict:
    """What ran this job: SLURM ids, visible GPUs, host, versions."""
    env = {key: os.environ.get(key) for key in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "CUDA_VISIBLE_DEVICES")}
    env.update(
        hostname=platform.node(),
        device=str(device),
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        torch=torch.__version__,
        python=sys.version.split()[0],
        started=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    return env


class Progress:
    """Prints one line per ``every`` epochs (and the last) to stderr, with the epoch rate."""

    def __init__(self, label: str, total: int, enabled: bool = True, every: int | None = None):
        self.label = label
        self.total = total
        self.enabled = enabled
        self.every = every or max(1, total // 20)
        self.start = time.perf_counter()

    def update(self, epoch: int, **values) -> None:
        if not self.enabled or (epoch % self.every and epoch != self.total):
            return
        elapsed = time.perf_counter() - self.start
        rate = elapsed / max(epoch, 1)
        parts = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(f"[{self.label}] epoch {epoch}/{self.total} {parts} ({rate:.2f} s/epoch)", file=sys.stderr, flush=True)
