"""The convolutional autoencoder of a layer spec (brb/models/conv.py, after Aljalbout et al. 2018): the mirrored
decoder of the published specs, un-pooling, the layer string, spec errors, reset blocks, checkpoints."""

import json
import math

import pytest
import torch
import torch.nn as nn
import yaml

from brb.models.conv import (
    ArgMaxUnpool2d,
    ConvAutoencoder,
    LayerBlock,
    NearestUnpool2d,
    SpecError,
    describe,
    layer_table,
    list_specs,
    load_spec,
)

# the authors' archs/mnist.json (elieJalbout/Clustering-with-Deep-learning@95eae15), their key names and values
AUTHORS_MNIST = [
    {"name": "c-3-32_p_c-3-64_p_fc-32", "batch_size": 50, "layers": [
        {"type": "Input", "output_shape": [1, 28, 28]},
        {"type": "Conv2D", "num_filters": 32, "filter_size": [3, 3], "non_linearity": "rectify", "conv_mode": "same"},
        {"type": "MaxPool2D", "filter_size": [2, 2]},
        {"type": "Conv2D", "num_filters": 64, "filter_size": [3, 3], "non_linearity": "rectify", "conv_mode": "same"},
        {"type": "MaxPool2D", "filter_size": [2, 2]},
        {"type": "Dense", "num_units": 3136, "non_linearity": "rectify"},
        {"type": "Dense", "num_units": 32, "non_linearity": "rectify"}]},
    {"name": "c-5-6_p_c-5-16_p_c-4-120", "use_batch_norm": 1, "batch_size": 100, "layers": [
        {"type": "Input", "output_shape": [1, 28, 28]},
        {"type": "Conv2D", "num_filters": 50, "filter_size": [5, 5], "non_linearity": "rectify"},
        {"type": "MaxPool2D*", "filter_size": [2, 2]},
        {"type": "Conv2D", "num_filters": 50, "filter_size": [5, 5], "non_linearity": "rectify"},
        {"type": "MaxPool2D*", "filter_size": [2, 2]},
        {"type": "Conv2D", "num_filters": 120, "filter_size": [4, 4], "non_linearity": "linear"}]},
]


def real_shapes(model: ConvAutoencoder, x: torch.Tensor) -> tuple[list, list]:
    """Output shape (one sample) of every encoder and decoder module during a real forward pass."""
    seen = {"encoder": [], "decoder": []}
    hooks = []
    for part in seen:
        for m in getattr(model, part):
            def hook(mod, args, out, part=part):
                out = out[0] if isinstance(out, tuple) else out
                seen[part].append(tuple(out.shape[1:]))
            hooks.append(m.register_forward_hook(hook))
    model(x)
    for h in hooks:
        h.remove()
    return seen["encoder"], seen["decoder"]


def test_mnist_arch1_decoder_mirrors_the_encoder():
    torch.manual_seed(0)
    model = ConvAutoencoder((1, 28, 28), spec="mnist_arch1")
    encoder = [("Conv2D", (50, 24, 24)), ("MaxPool2D*", (50, 12, 12)), ("Conv2D", (50, 8, 8)), ("MaxPool2D*", (50, 4, 4)),
               ("Conv2D", (120, 1, 1))]
    decoder = [("Deconv2D", (50, 4, 4)), ("Unpool2D*", (50, 8, 8)), ("Deconv2D", (50, 12, 12)), ("Unpool2D*", (50, 24, 24)),
               ("Deconv2D", (1, 28, 28))]
    assert model.layer_shapes() == {"encoder": encoder, "decoder": decoder}
    x = torch.randn(3, 1, 28, 28)
    assert real_shapes(model, x) == ([s for _, s in encoder], [s for _, s in decoder])
    z, rec = model(x)
    assert z.shape == (3, 120) and rec.shape == (3, 784) and model.embedding_dim == 120
    # deconvolutions: num_filters = channels of the mirrored conv's input, same filter sizes
    deconvs = [m.layer for m in model.decoder if isinstance(m, LayerBlock)]
    assert [type(d) for d in deconvs] == [nn.ConvTranspose2d] * 3
    assert [tuple(d.weight.shape) for d in deconvs] == [(120, 50, 4, 4), (50, 50, 5, 5), (50, 1, 5, 5)]
    # BN on every conv/deconv (no bias there) except the output layer; non-linearities mirrored, output = first's
    blocks = [m for m in model.encoder if isinstance(m, LayerBlock)] + [m for m in model.decoder if isinstance(m, LayerBlock)]
    assert [m.norm is not None for m in blocks] == [True] * 5 + [False]
    assert [m.layer.bias is None for m in blocks] == [True] * 5 + [False]
    assert [type(m.act) for m in blocks] == [nn.ReLU, nn.ReLU, nn.Identity, nn.Identity, nn.ReLU, nn.ReLU]
    assert all(m.norm.eps == 1e-4 for m in blocks[:5])
    assert [m.source for m in model.decoder if isinstance(m, ArgMaxUnpool2d)] == [3, 1]


def test_coil_arch0_encodes_128_pixels_to_320_and_back():
    model = ConvAutoencoder((1, 128, 128), spec="coil_arch0")
    encoder = [(20, 120, 120), (20, 60, 60), (20, 56, 56), (20, 28, 28), (20, 24, 24), (20, 12, 12), (40, 8, 8),
               (40, 4, 4), (320, 1, 1)]
    decoder = [(40, 4, 4), (40, 8, 8), (20, 12, 12), (20, 24, 24), (20, 28, 28), (20, 56, 56), (20, 60, 60),
               (20, 120, 120), (1, 128, 128)]
    assert [s for _, s in model.layer_shapes()["encoder"]] == encoder
    assert [k for k, _ in model.layer_shapes()["decoder"]] == [
        "Deconv2D", "Unpool2D*", "Deconv2D", "Unpool2D", "Deconv2D", "Unpool2D*", "Deconv2D", "Unpool2D*", "Deconv2D"]
    x = torch.randn(2, 1, 128, 128)
    assert real_shapes(model, x) == (encoder, decoder)
    z, rec = model(x)
    assert z.shape == (2, 320) and rec.shape == (2, 128 * 128)
    assert isinstance(model.decoder[3], NearestUnpool2d)  # the plain MaxPool2D of the trunk


# a 4×4 image whose 2×2 windows have their maxima at (1, 0), (0, 3), (3, 1), (2, 2)
HAND = torch.tensor([[1.0, -2.0, 3.0, 8.0],
                     [9.0, 0.5, -1.0, 2.0],
                     [-3.0, 4.0, 6.0, 5.0],
                     [2.0, 7.0, 1.0, -4.0]]).reshape(1, 1, 4, 4)
ARGMAX = torch.tensor([[0.0, 0.0, 0.0, 8.0],
                       [9.0, 0.0, 0.0, 0.0],
                       [0.0, 0.0, 6.0, 0.0],
                       [0.0, 7.0, 0.0, 0.0]]).reshape(1, 1, 4, 4)
NEAREST = torch.tensor([[9.0, 9.0, 8.0, 8.0],
                        [9.0, 9.0, 8.0, 8.0],
                        [7.0, 7.0, 6.0, 6.0],
                        [7.0, 7.0, 6.0, 6.0]]).reshape(1, 1, 4, 4)


def identity_network(pool: str) -> ConvAutoencoder:
    """1×1 convolutions of weight 1 around one pooling: the reconstruction is the un-pooled maxima."""
    spec = {"name": "identity", "layers": [
        {"type": "Input", "output_shape": [1, 4, 4]},
        {"type": "Conv2D", "num_filters": 1, "filter_size": 1, "non_linearity": "linear"},
        {"type": pool, "pool_size": 2},
        {"type": "Conv2D", "num_filters": 1, "filter_size": 1, "non_linearity": "linear"}]}
    model = ConvAutoencoder((1, 4, 4), spec=spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
    return model


def test_unpooling_to_the_argmax_positions_of_the_encoder_pass():
    model = ConvAutoencoder((1, 28, 28), spec="mnist_arch1")
    pool, unpool = model.encoder[1], model.decoder[3]
    assert unpool.source == 1
    y, idx = pool(HAND)
    assert torch.equal(y, torch.tensor([[[[9.0, 8.0], [7.0, 6.0]]]]))
    assert torch.equal(unpool(y, idx, output_size=(4, 4)), ARGMAX)
    # other values go to the same positions: where the encoder's maxima were
    moved = unpool(torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]]), idx, output_size=(4, 4))
    assert torch.equal(moved, (ARGMAX > 0) * torch.tensor([[10.0, 10.0, 20.0, 20.0], [10.0, 10.0, 20.0, 20.0],
                                                           [30.0, 30.0, 40.0, 40.0], [30.0, 30.0, 40.0, 40.0]]))
    # end to end through a whole network
    net = identity_network("MaxPool2D*")
    z, rec = net(HAND)
    assert torch.equal(z, torch.tensor([[9.0, 8.0, 7.0, 6.0]]))
    assert torch.equal(rec, ARGMAX.reshape(1, 16))
    z, pools = net.encode_with_indices(HAND)
    assert torch.equal(net.decode(z, pools), ARGMAX)
    with pytest.raises(ValueError, match="needs the pooling indices"):
        net.decode(z)


def test_nearest_unpooling_repeats_each_maximum_over_its_window():
    assert torch.equal(NearestUnpool2d((2, 2))(torch.tensor([[[[9.0, 8.0], [7.0, 6.0]]]])), NEAREST)
    net = identity_network("MaxPool2D")
    z, rec = net(HAND)
    assert torch.equal(rec, NEAREST.reshape(1, 16))
    assert torch.equal(net.decode(z), NEAREST)  # no indices needed


def test_layer_string_follows_the_authors_names():
    assert describe("mnist_arch1") == "c-5-50_p_c-5-50_p_c-4-120"
    assert load_spec("mnist_arch1")["label"] == "c-5-6_p_c-5-16_p_c-4-120"  # the README's name; its layers have 50 filters
    lenet = load_spec("mnist_arch1")
    lenet["layers"][1]["num_filters"], lenet["layers"][3]["num_filters"] = 6, 16
    assert describe(lenet) == "c-5-6_p_c-5-16_p_c-4-120"  # the README's string, from layers that have 6 and 16
    assert describe("coil_arch0") == "c-9-20_p_c-5-20_p_c-5-20_p_c-5-40_p_c-4-320"
    assert describe("mnist_arch0") == "c-3-32_p_c-3-64_p_fc-3136_fc-32"
    table = layer_table("mnist_arch1")
    assert "120x1x1 linear +BN  (encode)" in table and "1x28x28 relu  (output)" in table


def test_the_authors_files_load_unchanged(tmp_path):
    path = tmp_path / "mnist.json"
    path.write_text(json.dumps(AUTHORS_MNIST))
    theirs = ConvAutoencoder((1, 28, 28), spec=f"{path}#1")
    ours = ConvAutoencoder((1, 28, 28), spec="mnist_arch1")
    assert theirs.layer_shapes() == ours.layer_shapes() and theirs.batch_norm
    assert {k: v.shape for k, v in theirs.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    by_name = load_spec(f"{path}#c-3-32_p_c-3-64_p_fc-32")
    assert by_name["layers"][2] == {"type": "MaxPool2D", "pool_size": [2, 2]} and by_name["batch_norm"] is False
    assert by_name["layers"][1]["non_linearity"] == "relu"
    with pytest.raises(SpecError, match="holds 2 specs; select one"):
        load_spec(path)
    yaml_path = tmp_path / "small.yaml"
    yaml_path.write_text(yaml.safe_dump(load_spec("digits_small")))
    assert load_spec(yaml_path) == load_spec("digits_small")


def test_shipped_specs_build():
    assert set(list_specs()) >= {"mnist_arch0", "mnist_arch1", "digits_small", *(f"coil_arch{i}" for i in range(8))}
    codes = {name: ConvAutoencoder((1, 128, 128), spec=name).embedding_dim for name in ("coil_arch2", "coil_arch6")}
    assert codes == {"coil_arch2": 200, "coil_arch6": 1}
    assert ConvAutoencoder((1, 28, 28), spec="digits_small").embedding_dim == 10


def bad(layers, **top):
    return {"name": "bad", "layers": [{"type": "Input", "output_shape": [1, 8, 8]}, *layers], **top}


CONV = {"type": "Conv2D", "num_filters": 4, "filter_size": 3, "non_linearity": "relu"}


@pytest.mark.parametrize("spec, message", [
    (bad([CONV, {"type": "Conv3D"}]), r"layer 2: unknown layer type 'Conv3D'; known: Input, Conv2D"),
    (bad([{**CONV, "stride": 2}]), r"layer 1 \(Conv2D\): unknown key\(s\) stride"),
    (bad([{"type": "Dense", "num_units": 3}]), r"layer 1 \(Dense\): missing field\(s\) non_linearity"),
    (bad([CONV, {**CONV, "filter_size": 7}]), r"layer 2 \(Conv2D\): the output shape would be \[4, 0, 0\]"),
    (bad([CONV, {"type": "MaxPool2D", "pool_size": 4}, CONV]), r"layer 2 \(MaxPool2D\): a 6x6 input is not divisible"),
    (bad([{**CONV, "non_linearity": "softmax"}]), r"layer 1 \(Conv2D\): unknown non-linearity 'softmax'"),
    (bad([CONV, {"type": "MaxPool2D*", "pool_size": 2}]), r"layer 2 \(MaxPool2D\*\): the last layer is the encode layer"),
    (bad([{**CONV, "conv_mode": "same", "filter_size": 4}]), r"conv_mode same needs odd filter sizes"),
    (bad([CONV], depth=3), r"unknown key\(s\) depth"),
    (bad([CONV, {"type": "Input", "output_shape": [4]}]), r"layer 2 \(Input\): an Input layer may only come first"),
])
def test_bad_specs_are_errors_naming_the_layer(spec, message):
    with pytest.raises(SpecError, match=message):
        ConvAutoencoder((1, 8, 8), spec=spec)


def test_spec_and_data_must_agree():
    with pytest.raises(SpecError, match=r"input shape \[1, 28, 28\] does not match the data's \[3, 32, 32\]"):
        ConvAutoencoder((3, 32, 32), spec="mnist_arch1")
    with pytest.raises(SpecError, match="has a 120-d code .* but embedding_dim=10"):
        ConvAutoencoder((1, 28, 28), embedding_dim=10, spec="mnist_arch1")
    assert ConvAutoencoder((1, 28, 28), embedding_dim=120, spec="mnist_arch1").embedding_dim == 120
    with pytest.raises(SpecError, match="unknown spec 'mnist_arch9'"):
        ConvAutoencoder((1, 28, 28), spec="mnist_arch9")
    with pytest.raises(ValueError, match="hidden"):
        ConvAutoencoder((1, 28, 28), spec="mnist_arch1", hidden=[500])


def test_reset_blocks_are_the_encoder_layers_with_their_batchnorm():
    model = ConvAutoencoder((1, 28, 28), spec="mnist_arch1")
    named = model.named_reset_blocks(include_embedding=True)
    assert [name for name, _ in named] == ["block0", "block1", "block2"]
    assert [[type(m) for m in block] for _, block in named] == [[nn.Conv2d, nn.BatchNorm2d]] * 3
    assert named[0][1][0] is model.encoder[0].layer and named[0][1][1] is model.encoder[0].norm
    assert named[2][1][0].out_channels == 120  # the last block is the embedding layer
    assert model.named_reset_blocks() == named[:2]
    dense = ConvAutoencoder((1, 28, 28), spec="mnist_arch0")  # no BatchNorm; Dense layers
    blocks = dense.reset_blocks(include_embedding=True)
    assert [[type(m) for m in b] for b in blocks] == [[nn.Conv2d], [nn.Conv2d], [nn.Linear], [nn.Linear]]
    assert blocks[-1][0].out_features == 32 and len(dense.reset_blocks()) == 3


def test_soft_reset_mixes_the_conv_blocks():
    from brb.interventions.brb_ops import soft_reset

    torch.manual_seed(0)
    model = ConvAutoencoder((1, 28, 28), spec="mnist_arch1")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert soft_reset(model.reset_layers(), alpha=0.5) == 6  # two conv weights (no bias under BN), 2 × BN weight and bias
    after = model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["encoder.0.layer.weight", "encoder.2.layer.weight"]  # BN φ = (1, 0) = its current values
    assert all(torch.isfinite(v).all() for v in after.values())


def test_arch_kwargs_rebuild_the_network(tmp_path):
    from brb.models.checkpoint import load_model, save_checkpoint

    model = ConvAutoencoder((1, 28, 28), spec="digits_small", batch_norm=False)
    kwargs = model.arch_kwargs()
    assert set(kwargs) == {"input_shape", "embedding_dim", "spec", "batch_norm"}
    assert kwargs["input_shape"] == [1, 28, 28] and kwargs["embedding_dim"] == 10 and kwargs["batch_norm"] is False
    json.dumps(kwargs)  # plain data: the spec travels with the checkpoint, no file needed
    rebuilt = ConvAutoencoder(**kwargs)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert not any(isinstance(m, nn.BatchNorm2d) for m in rebuilt.modules())
    save_checkpoint(tmp_path / "ae.pt", model, "conv")
    loaded, payload = load_model(tmp_path / "ae.pt", input_shape=(1, 28, 28))
    assert isinstance(loaded, ConvAutoencoder) and payload["arch_kwargs"]["spec"]["name"] == "digits_small"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_initialisation_is_seeded_glorot_with_zero_biases():
    def build():
        torch.manual_seed(3)
        return ConvAutoencoder((1, 28, 28), spec="mnist_arch1")

    a, b = build(), build()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(a(x)[1], b(x)[1])
    for m in a.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            rf = m.weight[0, 0].numel()
            bound = math.sqrt(6 / ((m.in_channels + m.out_channels) * rf))
            assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
            assert m.bias is None or torch.equal(m.bias, torch.zeros_like(m.bias))
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias))


def test_intermediate_outputs_of_the_encoder_blocks():
    model = ConvAutoencoder((1, 28, 28), spec="mnist_arch1").eval()
    x = torch.randn(2, 1, 28, 28)
    feats = model.intermediate(x)
    assert [(n, tuple(t.shape)) for n, t in feats] == [("block0", (2, 50, 24, 24)), ("block1", (2, 50, 8, 8)),
                                                       ("block2", (2, 120))]
    assert (feats[0][1] >= 0).all()  # after the ReLU
    assert torch.equal(feats[-1][1], model.encode(x))  # the last is the embedding


def test_a_dense_only_spec_expresses_an_mlp():
    widths = [500, 500, 2000, 10]
    spec = {"name": "dec_mlp", "output_non_linearity": "linear", "layers": [
        {"type": "Input", "output_shape": [784]},
        *({"type": "Dense", "num_units": w, "non_linearity": "relu"} for w in widths[:-1]),
        {"type": "Dense", "num_units": 10, "non_linearity": "linear"}]}
    model = ConvAutoencoder((1, 28, 28), spec=spec)  # a Dense first layer flattens the image
    linear = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)]
    assert linear == [(500, 784), (500, 500), (2000, 500), (10, 2000), (2000, 10), (500, 2000), (500, 500), (784, 500)]
    assert describe(spec) == "fc-500_fc-500_fc-2000_fc-10"
    x = torch.randn(5, 1, 28, 28)
    z, rec = model(x)
    assert z.shape == (5, 10) and rec.shape == (5, 784)
    assert model.decode(z).shape == (5, 1, 28, 28)
    assert isinstance(model.decoder[-2].act, nn.Identity)  # the output layer, before the reshape to the image

    # the project's mlp network as a spec: per-layer BatchNorm on the hidden Dense layers
    from brb.models.autoencoder import FeedForwardAutoencoder

    paper = {"name": "paper_mlp", "output_non_linearity": "linear", "layers": [
        *({"type": "Dense", "num_units": w, "non_linearity": "relu", "batch_norm": True} for w in (1024, 512, 256)),
        {"type": "Dense", "num_units": 10, "non_linearity": "linear"}]}
    ours, mlp = ConvAutoencoder((1, 28, 28), spec=paper), FeedForwardAutoencoder((1, 28, 28), 10)

    def layers(net):
        return [(type(m).__name__, tuple(m.weight.shape)) for m in net.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))]

    assert layers(ours) == layers(mlp)
