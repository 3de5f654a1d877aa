"""Heads from a block spec: the projection, prediction and cluster heads of the self-supervised methods written as a
list of layer tokens, input side first, e.g. BYOL's projector ``["linear:4096", "bn", "relu", "linear:256"]``.

Tokens (case-insensitive):

* ``linear:<width>`` (``linear:<width>:nobias`` without bias); ``<width>`` is a positive integer, ``in`` (the
  head's input width) or ``K`` (the number of clusters: a cluster head);
* ``bn`` (BatchNorm1d), ``bn:noaffine`` (without learned scale and shift);
* ``relu``, ``gelu``, ``tanh``;
* ``dropout:<p>`` with 0 <= p < 1.

A head must contain at least one ``linear`` and may not start with an activation or normalisation before it
(nothing would be learned there). :func:`parse_head_spec` checks a spec without building it (the options
classes call it, so a typo fails when the configuration is read; this module imports torch only to build);
:func:`build_head` builds it for an input width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch.nn as nn

#: what each layer token takes: (the argument's kind, whether the argument is required)
TOKENS = {"linear": "width", "bn": "flag", "relu": None, "gelu": None, "tanh": None, "dropout": "p"}


class HeadSpecError(ValueError):
    """A head spec that cannot be built; the message names the token and what is allowed."""


def _fail(spec, token, why: str) -> HeadSpecError:
    return HeadSpecError(f"head spec {list(spec)}: token {token!r}: {why} (tokens: linear:<width>[:nobias] with "
                         "width an integer, 'in' or 'K'; bn[:noaffine]; relu; gelu; tanh; dropout:<p>)")


def parse_head_spec(spec: Sequence[str]) -> list[tuple[str, tuple]]:
    """``[(kind, args), ...]`` of a spec; raises :class:`HeadSpecError` on an unknown or malformed token."""
    if isinstance(spec, str) or not spec:
        raise HeadSpecError(f"head spec must be a non-empty list of layer tokens, got {spec!r}")
    layers: list[tuple[str, tuple]] = []
    for token in spec:
        if not isinstance(token, str):
            raise _fail(spec, token, "not a string")
        parts = token.strip().lower().split(":")
        kind, args = parts[0], parts[1:]
        if kind not in TOKENS:
            raise _fail(spec, token, "unknown layer")
        if kind == "linear":
            if not args or len(args) > 2 or (len(args) == 2 and args[1] != "nobias"):
                raise _fail(spec, token, "linear takes a width and optionally ':nobias'")
            width = args[0]
            if width not in ("in", "k"):
                if not width.isdigit() or int(width) <= 0:
                    raise _fail(spec, token, "the width must be a positive integer, 'in' or 'K'")
                width = int(width)
            layers.append(("linear", (width, len(args) == 1)))
        elif kind == "bn":
            if args not in ([], ["noaffine"]):
                raise _fail(spec, token, "bn takes only ':noaffine'")
            layers.append(("bn", (not args,)))
        elif kind == "dropout":
            try:
                p = float(args[0]) if len(args) == 1 else None
            except ValueError:
                p = None
            if p is None or not 0 <= p < 1:
                raise _fail(spec, token, "dropout takes a probability 0 <= p < 1")
            layers.append(("dropout", (p,)))
        else:
            if args:
                raise _fail(spec, token, f"{kind} takes no argument")
            layers.append((kind, ()))
    if layers[0][0] != "linear":
        raise _fail(spec, spec[0], "a head starts with a linear layer")
    return layers


def build_head(spec: Sequence[str], in_dim: int, n_clusters: Optional[int] = None,
               init_std: Optional[float] = None) -> tuple[nn.Sequential, int]:
    """(the head, its output width) for inputs of width ``in_dim``; ``n_clusters`` resolves the width ``K``;
    ``init_std``: every Linear's weights N(0, init_std²) and biases 0 (BYOL's predictor)."""
    import torch.nn as nn

    modules: list[nn.Module] = []
    width = in_dim
    for kind, args in parse_head_spec(spec):
        if kind == "linear":
            out, bias = args
            if out == "k":
                if n_clusters is None:
                    raise HeadSpecError(f"head spec {list(spec)}: width 'K' (the number of clusters) in a head that "
                                        "is not a cluster head")
                out = n_clusters
            elif out == "in":
                out = in_dim
            modules.append(nn.Linear(width, out, bias=bias))
            width = out
        elif kind == "bn":
            modules.append(nn.BatchNorm1d(width, affine=args[0]))
        elif kind == "relu":
            modules.append(nn.ReLU(inplace=True))
        elif kind == "gelu":
            modules.append(nn.GELU())
        elif kind == "tanh":
            modules.append(nn.Tanh())
        else:
            modules.append(nn.Dropout(args[0]))
    if init_std is not None:  # after building, in layer order (the random draws of BYOL's own head code)
        for m in modules:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=init_std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return nn.Sequential(*modules), width


def mlp_spec(hidden: int, out: int | str, *, bn: bool = True, bias: bool = True, out_bn: bool = False,
             layers: int = 2) -> list[str]:
    """The spec of a ``layers``-layer MLP ``-> hidden [-> BN] -> ReLU -> ... -> out [-> BN]``: how the methods
    write their default heads."""
    nb = "" if bias else ":nobias"
    spec: list[str] = []
    for _ in range(layers - 1):
        spec += [f"linear:{hidden}{nb}"] + (["bn"] if bn else []) + ["relu"]
    return spec + [f"linear:{out}{nb}"] + (["bn"] if out_bn else [])
