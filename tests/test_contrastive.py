"""The contrastive half: ResNet-18 (CIFAR stem), NT-Xent, SimCLR pretraining, contrastive clustering with BRB
on the train split / evaluation on the test split, external weights, k-means baseline and self-labeling,
through the real CLI on tiny CIFAR files in the real pickle format."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).parent))
from cifar_files import write_cifar10, write_cifar100  # noqa: E402

from brb.cli import main  # noqa: E402
from brb.config import make_config  # noqa: E402
from brb.contrastive import decay_groups, nt_xent  # noqa: E402
from brb.data import load_prepared, prepare_dataset  # noqa: E402
from brb.interventions.brb_ops import soft_reset  # noqa: E402
from brb.models import build_model  # noqa: E402
from brb.models.resnet import WeightsError, cifar_resnet18, load_external_weights  # noqa: E402

# tiny but real: 16x16 crops of the 32x32 images keep the CPU time to seconds
TINY = ["--data.split", "train_test", "--data.resize", "16", "--run.threads", "1", "--quiet"]


def brb(*args) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root / "mirror", per_batch=8, n_test=20, n_classes=2)
    return prepare_dataset("cifar10", root / "cifar10.npz", mirrors=[root / "mirror"], download=False)


@pytest.fixture(scope="module")
def simclr(cifar, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("simclr")
    brb("pretrain", "--data", cifar, "--out", out, "--model.arch", "resnet18", "--pretrain.epochs", "2",
        "--pretrain.batch_size", "20",
        "--augment.solarize_p", "0.2", *TINY)
    return out


def test_prepared_cifar_keeps_its_split(cifar, tmp_path):
    data = load_prepared(cifar)
    assert data.x.shape == (60, 3, 32, 32) and data.split.tolist() == [0] * 40 + [1] * 20
    assert len(data.part("train")) == 40 and len(data.part("test")) == 20
    write_cifar100(tmp_path / "m")
    c100 = load_prepared(prepare_dataset("cifar100-20", tmp_path / "c.npz", mirrors=[tmp_path / "m"], download=False))
    assert c100.n_classes == 20 and (c100.split == 1).sum() == 20


def test_resnet_shapes_and_reset_blocks():
    model = build_model("resnet18", input_shape=(3, 32, 32))
    assert isinstance(model.backbone.maxpool, nn.Identity)
    assert model.backbone.conv1.kernel_size == (3, 3) and model.backbone.conv1.stride == (1, 1)
    z, rec = model(torch.randn(4, 3, 32, 32))
    assert z.shape == (4, 128) and rec is None and model.project(z).shape == (4, 128)
    assert [m.out_features for m in model.head if isinstance(m, nn.Linear)] == [512, 256, 128]
    assert [m.out_features for m in model.projector if isinstance(m, nn.Linear)] == [2048, 128]
    assert [n for n, _ in model.named_reset_blocks()] == ["layer4", "head0", "head1"]
    assert [n for n, _ in model.named_reset_blocks(include_embedding=True)][-1] == "head2"


def test_paper_block_alphas_reset_layer4_and_head_only():
    torch.manual_seed(0)
    model = build_model("resnet18", input_shape=(3, 8, 8), hidden=[16], embedding_dim=8, projection=[16, 8])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = make_config({"model": {"arch": "resnet18"}, "brb": {"alpha": 0.7, "block_alpha": {"layer4": 0.9}}})
    named = model.named_reset_blocks()
    alphas = cfg.brb.block_alphas([n for n, _ in named])
    assert alphas == [0.9, 0.7]
    for (_, block), alpha in zip(named, alphas):
        soft_reset(block, alpha)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("backbone.layer4.") for k in changed) and any(k.startswith("head.0.") for k in changed)
    untouched = ("backbone.conv1", "backbone.layer1", "backbone.layer2", "backbone.layer3", "head.3", "projector")
    assert not any(k.startswith(untouched) for k in changed)
    # layer4 moves less than the head: 10% vs 30% of the way to a fresh init
    w4, wh = "backbone.layer4.0.conv1.weight", "head.0.weight"
    rel = lambda k: ((after[k] - before[k]).norm() / before[k].norm()).item()  # noqa: E731
    assert rel(w4) < rel(wh)


def test_nt_xent_matches_its_definition():
    torch.manual_seed(0)
    p1, p2 = torch.randn(5, 7), torch.randn(5, 7)
    tau = 0.5
    p = torch.nn.functional.normalize(torch.cat([p1, p2]), dim=1)
    sim = (p @ p.T / tau).tolist()
    total = 0.0
    for i in range(10):
        pos = (i + 5) % 10
        denom = sum(math.exp(sim[i][j]) for j in range(10) if j != i)
        total += -math.log(math.exp(sim[i][pos]) / denom)
    assert nt_xent(p1, p2, tau).item() == pytest.approx(total / 10, rel=1e-5)
    # perfectly aligned, mutually orthogonal views: loss = log(1 + (2N-2) e^0 / e^(1/tau))
    eye = torch.eye(4)
    assert nt_xent(eye, eye, tau).item() == pytest.approx(math.log(math.exp(2) + 6) - 2, rel=1e-5)
    with pytest.raises(ValueError):
        nt_xent(torch.randn(3, 2), torch.randn(4, 2))


def test_adamw_groups_skip_biases_and_norms():
    model = build_model("resnet18", input_shape=(3, 8, 8))
    decay, no_decay = decay_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_external_weights(tmp_path):
    model = build_model("resnet18", input_shape=(3, 32, 32))
    # torchvision layout (CIFAR stem), with a DataParallel prefix and the ImageNet classifier: loads
    donor = cifar_resnet18()
    state = {f"module.{k}": v for k, v in donor.state_dict().items()}
    state["module.fc.weight"], state["module.fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    torch.save({"state_dict": state}, tmp_path / "tv.pth")
    assert load_external_weights(model, tmp_path / "tv.pth") == {"loaded": ["backbone"]}
    assert torch.equal(model.backbone.layer3[0].conv1.weight, donor.layer3[0].conv1.weight)
    # a full checkpoint of this network (as a SimCLR release would be): backbone, head and projector
    other = build_model("resnet18", input_shape=(3, 32, 32))
    torch.save(other.state_dict(), tmp_path / "full.pt")
    assert load_external_weights(model, tmp_path / "full.pt") == {"loaded": ["backbone", "head", "projector"]}
    assert torch.equal(model.head[0].weight, other.head[0].weight)
    # the ImageNet stem (7x7 conv1) does not fit: the error names the key and both shapes
    from torchvision.models import resnet18

    torch.save(resnet18(weights=None).state_dict(), tmp_path / "imagenet.pth")
    with pytest.raises(WeightsError, match=r"backbone.conv1.weight: file \(64, 3, 7, 7\) vs network \(64, 3, 3, 3\)"):
        load_external_weights(model, tmp_path / "imagenet.pth")
    # missing and unexpected keys are listed
    broken = {k: v for k, v in donor.state_dict().items() if not k.startswith("layer4.")}
    broken["layer5.weight"] = torch.zeros(3)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(WeightsError) as err:
        load_external_weights(model, tmp_path / "broken.pth")
    assert "missing keys: backbone.layer4" in str(err.value) and "unexpected keys: backbone.layer5.weight" in str(err.value)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        load_external_weights(model, tmp_path / "junk.pt")


def test_simclr_pretraining_writes_a_checkpoint(simclr):
    history = pd.read_parquet(simclr / "history.parquet")
    assert history["epoch"].tolist() == [1, 2] and np.isfinite(history["loss"]).all()
    # NT-Xent of 2x20 views is at most log(39) at chance
    assert 0 < history["loss"].iloc[-1] < math.log(39) + 0.5
    payload = torch.load(simclr / "model.pt", weights_only=False)
    assert payload["arch"] == "resnet18" and payload["method"] == "simclr"
    assert payload["arch_kwargs"]["projection"] == [2048, 128]
    assert not (simclr / "resume.pt").exists()


@pytest.mark.parametrize("algorithm", ["dec", "idec", "dcn"])
def test_contrastive_clustering_with_brb(cifar, simclr, tmp_path, algorithm):
    out = tmp_path / algorithm
    brb("cluster", "--data", cifar, "--pretrained", simclr / "model.pt", "--out", out, "--cluster.algorithm", algorithm,
        "--cluster.epochs", "2", "--cluster.batch_size", "20", "--cluster.augment", "true", "--brb.variant", "brb",
        "--brb.interval", "1", "--brb.alpha", "0.7", "--brb.block_alpha", "{layer4: 0.9}", "--brb.subsample", "30",
        "--cluster.kmeans_n_init", "2", "--brb.kmeans_n_init", "2", *TINY)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and metrics["arch"] == "resnet18" and metrics["brb_epochs"] == [1]
    assert np.load(out / "labels.npy").shape == (20,)
    history = pd.read_parquet(out / "history.parquet")
    assert len(history) == 3 and np.isfinite(history["loss"].iloc[1:]).all()
    contrastive = history["loss_contrastive"].iloc[1:]
    if algorithm == "dec":  # DEC trains on its clustering loss only
        assert (contrastive == 0).all()
    else:
        assert (contrastive > 0).all() and metrics["config"]["cluster"]["contrastive_weight"] == 1.0
    assert (history["loss_reconstruction"].iloc[1:] == 0).all()
    brb("evaluate", "--run", out, "--data", cifar)
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["acc"] == pytest.approx(metrics["acc"])


def test_kmeans_on_simclr_embedding_and_self_labeling(cifar, simclr, tmp_path):
    km = tmp_path / "km"
    brb("kmeans", "--data", cifar, "--pretrained", simclr / "model.pt", "--out", km, "--data.split", "train_test",
        "--data.resize", "16")
    metrics = json.loads((km / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and np.load(km / "labels.npy").shape == (20,)
    run = tmp_path / "run"
    brb("cluster", "--data", cifar, "--pretrained", simclr / "model.pt", "--out", run, "--cluster.algorithm", "idec",
        "--cluster.epochs", "1", "--cluster.batch_size", "20", "--cluster.augment", "true", *TINY)
    sl = tmp_path / "sl"
    brb("selflabel", "--data", cifar, "--run", run, "--out", sl, "--selflabel.epochs", "2", "--selflabel.batch_size",
        "20", "--selflabel.threshold", "0.5", "--selflabel.cutout", "4", *TINY)
    out = json.loads((sl / "metrics.json").read_text())
    assert out["variant"] == "baseline-selflabel" and out["algorithm"] == "idec" and out["epochs"] == 2
    assert out["evaluated_on"] == "test" and np.load(sl / "labels.npy").shape == (20,)
    history = pd.read_parquet(sl / "history.parquet")
    assert len(history) == 3 and history["acc"].iloc[0] == pytest.approx(json.loads((run / "metrics.json").read_text())["acc"])
    assert "head" in torch.load(sl / "model.pt", weights_only=False)


def test_clear_errors(cifar, simclr, tmp_path, capsys):
    digits = prepare_dataset("digits", tmp_path / "digits.npz")
    assert main(["cluster", "--data", str(digits), "--out", str(tmp_path / "x"), "--data.split", "train_test",
                 "--quiet"]) == 2
    assert "has no train/test split" in capsys.readouterr().err
    # the contrastive regulariser needs two views
    assert main(["cluster", "--data", str(cifar), "--pretrained", str(simclr / "model.pt"), "--out",
                 str(tmp_path / "y"), "--cluster.algorithm", "idec", *TINY]) == 2
    assert "set cluster.augment: true" in capsys.readouterr().err
    # an unknown pretraining method names the key
    assert main(["pretrain", "--data", str(cifar), "--out", str(tmp_path / "z"), "--pretrain.method", "simclr2",
                 "--pretrain.epochs", "1", "--quiet"]) == 2
    assert "pretrain.method" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(cifar), "--out", str(tmp_path / "w"), "--model.arch", "resnet18",
                 "--model.weights", str(tmp_path / "nope.pt"), "--pretrain.epochs", "1", "--quiet"]) == 2
    assert "weights file not found" in capsys.readouterr().err
