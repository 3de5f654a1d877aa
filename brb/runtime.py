"""Device selection, seeding, threads and a record of the job's environment."""

from __future__ import annotations

import logging
import os
import platform
import random
import sys
import time

import numpy as np
import torch

from brb.config import RunConfig

log = logging.getLogger(__name__)


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
    """Progress of an epoch loop: a tqdm bar when stderr is a terminal, else a log line (logger ``brb``) every
    ``every`` epochs and at the last, with the epoch rate; nothing when ``enabled`` is False (``--quiet``)."""

    def __init__(self, label: str, total: int, enabled: bool = True, every: int | None = None, initial: int = 0):
        self.label = label
        self.total = total
        self.enabled = enabled
        self.every = every or max(1, total // 20)
        self.start = time.perf_counter()
        self.initial = initial
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=label, unit="epoch", dynamic_ncols=True, leave=True)

    def update(self, epoch: int, **values) -> None:
        if not self.enabled:
            return
        shown = {k: f"{v:.4f}" if isinstance(v, float) else v for k, v in values.items()}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(epoch - self.bar.n)
            if epoch == self.total:
                self.bar.close()
            return
        if epoch % self.every and epoch != self.total:
            return
        rate = (time.perf_counter() - self.start) / max(epoch - self.initial, 1)
        parts = " ".join(f"{k} {v}" for k, v in shown.items())
        log.info("[%s] epoch %d/%d %s (%.2f s/epoch)", self.label, epoch, self.total, parts, rate)
