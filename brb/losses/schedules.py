"""Target-network EMA and the learning-rate / momentum schedules of ProPos (Huang et al., TPAMI 2022), as read from
Hzzone/ProPos (``models/moco/moco_wrapper.py: _momentum_update_key_encoder``, ``models/propos/byol.py:
adjust_learning_rate``, ``models/basic_template.py: cosine_annealing_LR``, ``TrainTask.__init__``); see
``shared/methods/propos.md``.

* EMA: ``ξ ← m ξ + (1 − m) θ`` on the parameters; momentum fixed (0.996, CIFAR-10 config) or increasing
  ``m_t = 1 − (1 − m_0)(cos(π t/T) + 1)/2`` with t, T in iterations (``momentum_increase``).
* Learning rate: ``lr = base_lr × total_batch / 256``; linear warm-up ``lr·e/w`` for e < w epochs, then ProPos's
  ``lr_min + (lr − lr_min)·½(1 + cos((e − w)·π / E))`` — divided by E, not E − w, so with E = 1000, w = 50 it ends at
  ``½(1 + cos(0.95π)) = sin²(π/40) ≈ 0.00616`` of the peak (lr_min = 0 in the shipped configs; the code's default
  ``learning_eta_min`` would be 0.01·lr) — or the usual warm-up + cosine over E − w that ends at lr_min.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, m: float, buffers: str = "copy") -> None:
    """In place ``ξ ← m·ξ + (1 − m)·θ`` for the parameters ξ of ``target`` and θ of ``online``, paired in
    ``parameters()`` order (same architecture; shapes checked). ``m = 1`` keeps the target, ``m = 0`` copies.

    ``buffers`` (BatchNorm running statistics, ``num_batches_tracked``):

    * ``"copy"`` (default): the target's buffers are overwritten with the online ones (one of the usual choices of
      BYOL/EMA ports). Chosen because it is safe whatever mode the caller runs the target in: a target forwarded only
      in eval mode would otherwise keep its initial running statistics, and the E-step clusters eval-mode target
      features.
    * ``"keep"``: parameters only, buffers untouched: what ProPos / MoCo (``q_params``/``k_params`` are parameter
      lists) and lucidrains/byol-pytorch do. Faithful to ProPos only if the target is forwarded in train mode each
      step (ProPos calls ``train()`` on the whole wrapper), so its BN running stats track its own batch statistics.
    * ``"ema"``: floating-point buffers averaged with the same m, the others copied (timm ModelEmaV2 style).
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"EMA momentum must lie in [0, 1], got {m}")
    if buffers not in ("copy", "keep", "ema"):
        raise ValueError(f"unknown buffer policy {buffers!r} (copy, keep, ema)")
    _ema_pairs(list(target.parameters()), list(online.parameters()), m, "parameters")
    if buffers == "keep":
        return
    target_buffers, online_buffers = list(target.buffers()), list(online.buffers())
    _check_pairs(target_buffers, online_buffers, "buffers")
    for t, o in zip(target_buffers, online_buffers):
        if buffers == "ema" and t.is_floating_point():
            t.mul_(m).add_(o.to(t.dtype), alpha=1.0 - m)
        else:
            t.copy_(o)


def _check_pairs(targets: list[torch.Tensor], onlines: list[torch.Tensor], what: str) -> None:
    if len(targets) != len(onlines):
        raise ValueError(f"target and online networks differ: {len(targets)} vs {len(onlines)} {what}")
    for i, (t, o) in enumerate(zip(targets, onlines)):
        if t.shape != o.shape:
            raise ValueError(f"target and online {what} #{i} differ in shape: {tuple(t.shape)} vs {tuple(o.shape)}")


def _ema_pairs(targets: list[torch.Tensor], onlines: list[torch.Tensor], m: float, what: str) -> None:
    _check_pairs(targets, onlines, what)
    for t, o in zip(targets, onlines):
        t.mul_(m).add_(o.detach().to(t.dtype), alpha=1.0 - m)


def momentum_at(step: float, total_steps: float, base: float = 0.996, schedule: str = "fixed", final: float = 1.0) -> float:
    """EMA momentum at iteration ``step`` of ``total_steps``: ``fixed`` → ``base``; ``cosine`` (BYOL / ProPos
    ``momentum_increase``) → ``final − (final − base)·(cos(π t/T) + 1)/2``, t clamped to [0, T]: ``base`` at t = 0,
    ``final`` (1) at t = T. ProPos passes its 1-based iteration counter as t and ``epochs × iters_per_epoch`` as T."""
    if schedule == "fixed":
        return base
    if schedule == "cosine":
        t = min(max(step, 0.0), total_steps)
        return final - (final - base) * (math.cos(math.pi * t / total_steps) + 1.0) / 2.0
    raise ValueError(f"unknown momentum schedule {schedule!r} (fixed, cosine)")


def lr_at(
    epoch_float: float, base_lr: float, epochs: float, warmup_epochs: float, kind: str = "propos", min_lr_ratio: float = 0.0
) -> float:
    """Learning rate at fractional epoch e (per iteration: ``epoch + step / steps_per_epoch``; ProPos uses its
    1-based iteration counter, i.e. ``(n_iter) / iters_per_epoch`` with n_iter ≥ 1, so its first step is not at 0).

    Warm-up (e < w): ``base_lr · e / w`` from 0. Afterwards, with ``lr_min = min_lr_ratio · base_lr`` (ProPos's
    ``learning_eta_min``, 0 in its configs):

    * ``propos``: ``lr_min + (base_lr − lr_min)·½(1 + cos((e − w)·π / E))`` (divided by E: ≈ 0.006·base_lr at
      e = E = 1000, w = 50);
    * ``cosine``: ``lr_min + (base_lr − lr_min)·½(1 + cos((e − w)·π / (E − w)))``, e clamped to E (ends at lr_min).
    """
    if kind not in ("propos", "cosine"):
        raise ValueError(f"unknown learning-rate schedule {kind!r} (propos, cosine)")
    if warmup_epochs > 0 and epoch_float < warmup_epochs:
        return base_lr * epoch_float / warmup_epochs
    min_lr = min_lr_ratio * base_lr
    if kind == "propos":
        progress = (epoch_float - warmup_epochs) / epochs
    else:
        span = epochs - warmup_epochs
        progress = 1.0 if span <= 0 else min(epoch_float - warmup_epochs, span) / span
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def scaled_lr(base_lr: float, total_batch: int) -> float:
    """Linear scaling rule of ProPos/MoCo/SimSiam: ``base_lr × total_batch / 256`` (total = per-device batch ×
    devices × gradient-accumulation steps)."""
    return base_lr * total_batch / 256.0
