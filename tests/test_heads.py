"""Heads from a block spec (brb/models/heads.py) and the self-supervised methods built from them."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from test_selfsup import build  # tests/ is on sys.path (pytest rootdir-relative, as cifar_files)

from brb.config import ConfigError, make_config
from brb.engine.loop import TrainingError
from brb.methods.byol import BYOLMethod
from brb.methods.selfsup import CCMethod, MoCoMethod
from brb.models.heads import HeadSpecError, build_head, mlp_spec, parse_head_spec


def test_a_spec_builds_the_layers_it_names():
    head, out = build_head(["linear:8", "bn:noaffine", "relu", "dropout:0.5", "linear:in:nobias", "gelu",
                            "linear:K", "tanh"], in_dim=5, n_clusters=3)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "GELU", "Linear", "Tanh"]
    assert out == 3 and head[0].in_features == 5 and head[4].out_features == 5 and head[4].bias is None
    assert head[1].weight is None and head[3].p == 0.5
    assert head(torch.randn(4, 5)).shape == (4, 3)
    assert mlp_spec(16, 4) == ["linear:16", "bn", "relu", "linear:4"]
    assert mlp_spec(16, 4, bias=False, out_bn=True, layers=3) == ["linear:16:nobias", "bn", "relu", "linear:16:nobias",
                                                                  "bn", "relu", "linear:4:nobias", "bn"]


def test_init_std_draws_every_linear_from_a_normal_with_zero_bias():
    torch.manual_seed(0)
    head, _ = build_head(["linear:400", "relu", "linear:300"], 200, init_std=0.01)
    for m in (head[0], head[2]):
        assert m.weight.std().item() == pytest.approx(0.01, rel=0.05) and torch.all(m.bias == 0)


@pytest.mark.parametrize("spec,match", [
    (["lineer:8"], "unknown layer"), (["linear"], "takes a width"), (["linear:0"], "positive integer"),
    (["linear:8:bias"], "takes a width"), (["relu", "linear:8"], "starts with a linear"), (["bn:x"], "noaffine"),
    (["linear:8", "dropout:1.5"], "probability"), (["linear:8", "relu:2"], "takes no argument"), ([], "non-empty"),
    ("linear:8", "non-empty list"),
])
def test_bad_specs_name_the_token(spec, match):
    with pytest.raises(HeadSpecError, match=match):
        parse_head_spec(spec)


def test_width_k_needs_a_cluster_head():
    with pytest.raises(HeadSpecError, match="not a cluster head"):
        build_head(["linear:K"], 4)


def test_a_typo_fails_when_the_configuration_is_read():
    with pytest.raises(ConfigError, match="token 'bnn': unknown layer"):
        make_config({"pretrain": {"method": "byol", "projector_spec": ["linear:64", "bnn"]}})


def test_methods_take_their_heads_from_specs():
    byol = build(BYOLMethod, "byol", projector_spec=["linear:48", "bn", "relu", "linear:24"],
                 predictor_spec=["linear:12", "relu", "linear:24"])
    assert [m.out_features for m in byol.online.projector if isinstance(m, nn.Linear)] == [48, 24]
    assert [m.out_features for m in byol.predictor if isinstance(m, nn.Linear)] == [12, 24]
    assert byol.head_specs["predictor"] == ["linear:12", "relu", "linear:24"]
    assert byol.head_specs["projector"] == ["linear:48", "bn", "relu", "linear:24"]
    default = build(BYOLMethod, "byol")  # null: their shape from hidden_dim / feature_dim (64 / 32 here)
    assert default.head_specs["projector"] == ["linear:64", "bn", "relu", "linear:32"]

    moco = build(MoCoMethod, "moco", queue_size=128, projector_spec=["linear:40", "relu", "linear:20"])
    assert moco.queue.shape == (128, 20)  # the queue holds keys of the head's width

    with pytest.raises(TrainingError, match="must end with 24 .the projector's output width"):
        build(BYOLMethod, "byol", projector_spec=["linear:24"], predictor_spec=["linear:16"])
    with pytest.raises(TrainingError, match="must end with 10 .the number of clusters"):
        build(CCMethod, "cc", cluster_head_spec=["linear:16", "relu", "linear:12"])
    cc = build(CCMethod, "cc", cluster_head_spec=["linear:16", "bn", "relu", "linear:K"])
    assert cc.cluster_head[-1].out_features == 10
