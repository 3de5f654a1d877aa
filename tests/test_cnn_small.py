"""tk-uco's cnn_small autoencoder (brb/models/cnn_small.py): the shapes of Trosten et al.'s layer table, the
input-size rule, Keras initialisation and BatchNorm settings, the bottleneck, reset blocks, checkpoints."""

import copy
import math

import pytest
import torch
import torch.nn as nn

from brb.interventions.brb_ops import soft_reset
from brb.models.blocks import RECONSTRUCTION, provides
from brb.models.checkpoint import read_checkpoint, save_checkpoint
from brb.models.cnn_small import CNNSmall, feature_shape_of

# input shape -> (conv0, out1, conv2, out2) map shapes and the flattened size: the table of the layers
SHAPES = {
    (1, 28, 28): ((32, 24, 24), (32, 20, 20), (32, 8, 8), (32, 3, 3), 288),
    (1, 32, 32): ((32, 28, 28), (32, 24, 24), (32, 10, 10), (32, 4, 4), 512),
    (3, 64, 64): ((32, 60, 60), (32, 56, 56), (32, 26, 26), (32, 12, 12), 4608),
}


def _model(shape=(1, 28, 28), **kwargs) -> CNNSmall:
    torch.manual_seed(0)
    return CNNSmall(shape, **kwargs)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_layer_table_shapes_and_decoder_returns_to_the_input(shape):
    conv0, out1, conv2, out2, flat = SHAPES[shape]
    model = _model(shape, embedding_dim=6)
    x = torch.randn(3, *shape)
    outs = model.intermediate(x)
    assert [name for name, _ in outs] == ["conv0", "out1", "conv2", "out2", "embedding"]
    assert [tuple(t.shape[1:]) for _, t in outs] == [conv0, out1, conv2, out2, (6,)]
    assert model.feature_shape == out2 and model.flat_dim == flat
    assert tuple(model.features(x).shape) == (3, *out2)
    assert tuple(model.flat_features(x).shape) == (3, flat)
    z, rec = model(x)
    assert tuple(z.shape) == (3, 6) and tuple(rec.shape) == (3, math.prod(shape))
    assert tuple(model.decode(z).shape) == (3, *shape)
    assert tuple(model.decode_features(model.features(x)).shape) == (3, *shape)


def test_decoder_stages_follow_the_transposed_layer_list():
    model = _model((1, 32, 32))
    seen = []
    hooks = [m.register_forward_hook(lambda mod, args, out: seen.append(tuple(out.shape[1:]))) for m in model.decoder]
    model.decode_features(torch.randn(2, 32, 4, 4))
    for h in hooks:
        h.remove()
    # upsample, tconv 3x3, tconv 3x3 (+BN), upsample, tconv 5x5, tconv 5x5 -> C: 4 -> 8 -> 10 -> 12 -> 24 -> 28 -> 32
    assert seen == [(32, 8, 8), (32, 10, 10), (32, 12, 12), (32, 24, 24), (32, 28, 28), (1, 32, 32)]
    assert isinstance(model.decoder[-1].act, nn.Identity)  # linear output
    assert [type(b.layer) for b in model.decoder if hasattr(b, "layer")] == [nn.ConvTranspose2d] * 4


def test_flat_inputs_non_square_sizes_and_the_common_constructor_call():
    model = CNNSmall(input_shape=(1, 28, 32), embedding_dim=None, hidden=None, batch_norm=None)
    assert model.embedding_dim == 10 and model.batch_norm is True
    assert model.feature_shape == (32, 3, 4) and model.flat_dim == 384
    model.eval()
    x = torch.randn(4, 1, 28, 32)
    torch.testing.assert_close(model.encode(x.reshape(4, -1)), model.encode(x))
    z, rec = model(x.reshape(4, -1))
    assert rec.shape == (4, 28 * 32)
    torch.testing.assert_close(rec, model.decode(z).reshape(4, -1))
    assert provides(model, RECONSTRUCTION)
    assert CNNSmall.companion_outputs == ("out1", "out2") and CNNSmall.head_input == "out2"


def test_last_intermediate_output_is_the_embedding():
    model = _model()
    x = torch.randn(5, 1, 28, 28)
    for mode in (model.train, model.eval):
        mode()
        name, last = model.intermediate(x)[-1]
        assert name == "embedding"
        torch.testing.assert_close(last, model.encode(x))
    outs = dict(model.intermediate(x))
    torch.testing.assert_close(outs["out2"], model.features(x))
    assert (outs["out1"] >= 0).all() and (outs["out2"] >= 0).all()  # post-ReLU maps


def test_every_parameter_is_trained_by_the_reconstruction():
    model = _model()
    x = torch.randn(4, 1, 28, 28)
    z, rec = model(x)
    ((rec - x.reshape(4, -1)) ** 2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_input_size_rule_matches_a_real_pass():
    for side in range(20, 41):
        shape = (1, side, 24)
        if side % 4:
            with pytest.raises(ValueError, match=rf"\(1, {side}, 24\)"):
                CNNSmall(shape)
            continue
        model = CNNSmall(shape).eval()
        assert tuple(model(torch.randn(2, *shape))[1].shape) == (2, side * 24)
        assert feature_shape_of(shape) == tuple(model.features(torch.randn(2, *shape)).shape[1:])


def test_too_small_or_flat_inputs_raise_naming_the_shape():
    with pytest.raises(ValueError, match=r"\(1, 16, 16\) is too small"):
        CNNSmall((1, 16, 16))
    with pytest.raises(ValueError, match=r"\(3, 64, 19\) is too small"):
        CNNSmall((3, 64, 19))
    with pytest.raises(ValueError, match=r"cannot return to input shape \(1, 30, 30\)"):
        CNNSmall((1, 30, 30))
    with pytest.raises(ValueError, match=r"\(784,\)"):
        CNNSmall((784,))


def test_hidden_is_rejected():
    with pytest.raises(ValueError, match="fixed"):
        CNNSmall((1, 28, 28), hidden=[500, 500])


def test_keras_initialisation_and_batchnorm_settings():
    model = _model()
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    assert len(weighted) == 4 + 2 + 4  # convolutions, bottleneck Dense pair, transposed convolutions
    for m in weighted:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = m.weight.detach().abs()
        # Glorot-uniform fills its range (torch's default conv/linear init stops at 1/sqrt(fan_in), well below it)
        assert w.max() <= bound and w.max() > 0.9 * bound, m
        assert torch.count_nonzero(m.bias) == 0, m
    conv1 = model.encoder["conv1"].layer
    assert tuple(conv1.weight.shape) == (32, 32, 5, 5) and conv1.bias is not None  # Keras keeps the bias before BN
    assert conv1.weight.abs().max() <= math.sqrt(6.0 / 1600)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 3  # conv1, conv3, the decoder's second transposed convolution
    assert all(isinstance(m, nn.BatchNorm2d) and m.momentum == 0.01 and m.eps == 1e-3 for m in norms)
    assert all(torch.equal(m.weight, torch.ones(32)) and torch.count_nonzero(m.bias) == 0 for m in norms)


def test_batch_norm_false_has_no_batchnorm():
    model = _model(batch_norm=False)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert model.batch_norm is False and model.arch_kwargs()["batch_norm"] is False
    assert [len(block) for _, block in model.named_reset_blocks()] == [1, 1, 1, 1]
    z, rec = model(torch.randn(2, 1, 28, 28))
    assert z.shape == (2, 10) and rec.shape == (2, 784)


def test_reset_blocks_and_soft_reset_of_a_conv_block():
    model = _model()
    blocks = model.named_reset_blocks()
    assert [name for name, _ in blocks] == ["conv0", "conv1", "conv2", "conv3"]
    assert [[type(m) for m in block] for _, block in blocks] == [
        [nn.Conv2d],
        [nn.Conv2d, nn.BatchNorm2d],
        [nn.Conv2d],
        [nn.Conv2d, nn.BatchNorm2d],
    ]
    assert blocks[1][1][0] is model.encoder["conv1"].layer
    with_embedding = model.named_reset_blocks(include_embedding=True)
    assert with_embedding[-1][0] == "embedding" and with_embedding[-1][1] == [model.embedding]
    assert model.reset_layers(include_embedding=True)[-1] is model.embedding

    with torch.no_grad():  # move the BatchNorm off its reset values (weight 1, bias 0)
        model.encoder["conv1"].norm.weight.fill_(2.0)
        model.encoder["conv1"].norm.bias.fill_(1.0)
    before = copy.deepcopy(model.state_dict())
    torch.manual_seed(1)
    assert soft_reset(blocks[1][1], alpha=0.5) == 4  # conv weight and bias, BN weight and bias
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"encoder.conv1.{k}" for k in ("layer.weight", "layer.bias", "norm.weight", "norm.bias")}
    torch.testing.assert_close(after["encoder.conv1.norm.weight"], torch.full((32,), 1.5))
    torch.testing.assert_close(after["encoder.conv1.norm.bias"], torch.full((32,), 0.5))
    # the conv weight is the midpoint of the old one and a fresh draw
    delta = after["encoder.conv1.layer.weight"] - 0.5 * before["encoder.conv1.layer.weight"]
    assert delta.abs().max() <= 0.5 * math.sqrt(6.0 / 800) + 1e-6  # half a kaiming-uniform draw, U(±sqrt(6/fan_in))


def test_checkpoint_round_trip(tmp_path):
    model = _model((1, 32, 32), embedding_dim=7, batch_norm=False)
    assert model.arch_kwargs() == {"input_shape": [1, 32, 32], "embedding_dim": 7, "batch_norm": False}
    with torch.no_grad():  # move off the initial values so that a fresh network cannot pass
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(tmp_path / "cnn_small.pt", model, "cnn_small")
    try:
        from brb.registry import REGISTRY

        registered = ("network", "cnn_small") in REGISTRY
    except Exception:  # the registry is being edited elsewhere; rebuild from the stored arguments
        registered = False
    if registered:
        from brb.models.checkpoint import load_model

        rebuilt, _ = load_model(path, input_shape=(1, 32, 32))
    else:
        payload = read_checkpoint(path)
        rebuilt = CNNSmall(**payload["arch_kwargs"])
        rebuilt.load_state_dict(payload["state_dict"])
    assert type(rebuilt) is CNNSmall and rebuilt.arch_kwargs() == model.arch_kwargs()
    x = torch.randn(3, 1, 32, 32)
    model.eval()
    rebuilt.eval()
    for a, b in zip(model(x), rebuilt(x)):
        torch.testing.assert_close(a, b)
