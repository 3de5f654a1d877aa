"""Self-supervised pieces shared by SimCLR pretraining and contrastive deep clustering."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def nt_xent(p1: torch.Tensor, p2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent (SimCLR) loss of two views' projections ``(N, d)``: for each of the 2N samples, cross-entropy
    of its cosine similarities / ``temperature`` to the 2N − 1 others, with its other view as the target."""
    if p1.shape != p2.shape or len(p1) < 2:
        raise ValueError(f"nt_xent needs two views of the same N >= 2 samples, got {tuple(p1.shape)} and {tuple(p2.shape)}")
    n = len(p1)
    p = F.normalize(torch.cat([p1, p2]).float(), dim=1)
    logits = p @ p.T / temperature
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(p.device)
    return F.cross_entropy(logits, target)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups with weight decay on weights only: biases and normalisation parameters (every
    tensor with fewer than two dimensions) get none."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "network"},
        {"params": no_decay, "weight_decay": 0.0, "name": "network (no decay)"},
    ]


def make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float, momentum: float = 0.9,
                   nesterov: bool = True) -> torch.optim.Optimizer:
    """adam (decay on every tensor, as torch's Adam does), adamw (decoupled decay, not on biases/norms) or sgd
    (momentum, Nesterov; L2 decay not on biases/norms: a Lasagne penalty c·Σθ² is ``weight_decay`` = 2c)."""
    if name == "adamw":
        return torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr)
    if name == "sgd":
        return torch.optim.SGD(decay_groups(model, weight_decay), lr=lr, momentum=momentum,
                               nesterov=nesterov and momentum > 0)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
