"""SimSiam, MoCo v2, PCL and CC on the engine (brb/methods/selfsup.py): their options as their configs, a short
real run of each on digits, MoCo's key update and queue, SimSiam's fixed predictor lr, PCL's prototypes, CC's two
clusterings, and a SIGTERM-interrupted MoCo run resumed to the same key encoder and queue."""

from __future__ import annotations

import copy
import os
import signal

import numpy as np
import pytest
import torch

from brb.checkpointing import Interrupted
from brb.config import make_config
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.engine.loop import TrainingError
from brb.methods.selfsup import CCMethod, MoCoMethod, PCLMethod, SimSiamMethod, pretrain_with
from brb.registry import REGISTRY


def digits(n: int = 384) -> PreparedData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images[:n] * 255 / 16).round().astype(np.uint8)[:, None]
    return PreparedData("digits", x, bunch.target[:n], [str(i) for i in range(10)])


def config(method: str, epochs: int = 2, **pretrain):
    return make_config({
        "data": {"resize": 20, "normalize": "channel"},
        "model": {"arch": "cnn_small", "embedding_dim": 32},
        "pretrain": {"method": method, "epochs": epochs, "batch_size": 64, "hidden_dim": 64, "feature_dim": 32,
                     "warmup_epochs": 1, "kmeans_n_init": 2, **pretrain},
        "run": {"seed": 0, "threads": 1, "checkpoint_every": 1},
    })


def options(cfg, name):
    cls = REGISTRY.entry("pretraining", name).options
    return cls.model_validate({k: getattr(cfg.pretrain, k) for k in cls.model_fields})


def build(cls, name, n=384, **pretrain):
    cfg = config(name, **pretrain)
    torch.manual_seed(0)  # the network's initialisation (pretrain_with seeds it through setup_run)
    return cls(cfg, DeviceData(digits(n), "cpu", "channel", 20), options(cfg, name), "t")


def test_options_are_their_configs():
    simsiam = make_config({"pretrain": {"method": "simsiam"}}).pretrain
    assert (simsiam.lr, simsiam.fix_predictor_lr, simsiam.projector_layers, simsiam.reassign) == (0.06, True, 2, 50)
    moco = make_config({"pretrain": {"method": "moco"}}).pretrain
    assert (moco.ema_momentum, moco.queue_size, moco.moco_temperature, moco.symmetric) == (0.99, 4096, 0.07, True)
    pcl = make_config({"pretrain": {"method": "pcl"}}).pretrain
    assert (pcl.num_clusters, pcl.proto_weight, pcl.moco_temperature, pcl.lr) == ([250, 500, 1000], 0.01, 1.0, 0.1)
    cc = make_config({"pretrain": {"method": "cc"}}).pretrain
    assert (cc.optimizer, cc.lr, cc.batch_size, cc.instance_temperature, cc.cluster_temperature) == ("adam", 3e-4, 256,
                                                                                                       0.5, 1.0)
    assert cc.queue_size is None and moco.instance_temperature is None  # another method's keys did not run
    with pytest.raises(ValueError, match="pretrain.num_clusters"):
        make_config({"pretrain": {"method": "pcl", "num_clusters": []}})


@pytest.mark.parametrize("name,term", [("simsiam", "loss"), ("moco", "loss_instance"), ("pcl", "loss_instance"),
                                       ("cc", "loss")])
def test_each_method_trains_and_scores_its_features(name, term):
    extra = {"num_clusters": [80, 120]} if name == "pcl" else {}
    if name in ("moco", "pcl"):
        extra["queue_size"] = 128  # full after the first step: InfoNCE rises while real keys replace random ones
    result = REGISTRY.load("pretraining", name)(config(name, epochs=4, **extra), digits(), progress=False)
    h = result.history
    assert list(h["epoch"]) == [0, 1, 2, 3, 4] and np.isfinite(h["loss"].iloc[1:]).all()
    assert h[term].iloc[4] < h[term].iloc[2]  # it learns (after the warm-up epoch and MoCo's queue filling)
    assert h["acc"].iloc[[0, 4]].between(0.1, 1).all()  # k-means before and after
    assert not result.model.training and result.model.encode(torch.zeros(2, 1, 20, 20)).shape == (2, 32)


def test_moco_updates_the_key_encoder_before_the_step_and_enqueues_both_views():
    method = build(MoCoMethod, "moco", ema_momentum=0.9, queue_size=256)
    query0, key0 = copy.deepcopy(method.query.state_dict()), copy.deepcopy(method.key.state_dict())
    queue0 = method.queue.clone()
    assert torch.allclose(queue0.norm(dim=1), torch.ones(256))  # random unit keys to start
    method.epoch = 0
    method._step(torch.arange(64))
    name = "projector.2.weight"
    torch.testing.assert_close(method.key.state_dict()[name], 0.9 * key0[name] + 0.1 * query0[name])
    assert not torch.equal(method.query.state_dict()[name], query0[name])
    assert method.queue_ptr == 128 and torch.equal(method.queue[128:], queue0[128:])
    assert torch.allclose(method.queue[:128].norm(dim=1), torch.ones(128)) and not torch.equal(method.queue[:128],
                                                                                            queue0[:128])
    with pytest.raises(TrainingError, match="multiple of the keys enqueued per step, 128"):
        build(MoCoMethod, "moco", queue_size=200)


def test_simsiam_predictor_keeps_the_constant_lr():
    method = build(SimSiamMethod, "simsiam", epochs=4, warmup_epochs=2, lr=0.256)
    method.epoch = 0
    method.schedule()
    online, predictor = method.optimizer.param_groups
    assert predictor["lr"] == pytest.approx(0.256 * 64 / 256)  # fix_predictor_lr: the scaled lr, no warm-up
    assert online["lr"] == pytest.approx(0.256 * 64 / 256 * (1 / method.steps_per_epoch) / 2)  # warm-up


def test_pcl_prototypes_and_protonce_after_warm_up():
    method = build(PCLMethod, "pcl", num_clusters=[80, 120], queue_size=128)
    assert [len(c) for _, c, _ in method.prototypes] == [80, 120]
    for labels, centers, phi in method.prototypes:
        assert labels.shape == (384,) and torch.allclose(centers.norm(dim=1), torch.ones(len(centers)))
        assert phi.mean().item() == pytest.approx(1.0)  # scaled to mean = moco_temperature
    method.epoch = 0
    assert method._step(torch.arange(64))["loss_proto"].item() == 0  # warm-up
    method.epoch = 1
    losses = method._step(torch.arange(64))
    assert losses["loss_proto"].item() > 0
    assert losses["loss"].item() == pytest.approx(losses["loss_instance"].item() + 0.01 * losses["loss_proto"].item())
    with pytest.raises(TrainingError, match="must exceed pretrain.batch_size 64"):
        build(PCLMethod, "pcl", num_clusters=[64, 120], queue_size=128)


def test_cc_logs_both_clusterings():
    method = build(CCMethod, "cc")
    assert {"acc", "kmeans_acc", "kmeans_nmi"} <= set(method.scores)
    head = method.head_labels()
    assert method.scores["n_nonempty_clusters"] == len(np.unique(head))
    other = build(CCMethod, "cc", cc_predict="kmeans")
    assert other.scores["head_acc"] == pytest.approx(method.scores["acc"])
    assert other.scores["acc"] == pytest.approx(method.scores["kmeans_acc"])


class SigtermMoCo(MoCoMethod):
    """MoCo that asks for a stop (SIGTERM) in the middle of the run and keeps itself for the test."""

    last = None

    def evaluate(self, epoch, losses):
        SigtermMoCo.last = self
        if epoch == 1 and self.config.pretrain.epochs == 4 and getattr(self, "signal", True):
            os.kill(os.getpid(), signal.SIGTERM)
        return super().evaluate(epoch, losses)


def test_moco_resumes_to_the_same_key_encoder_and_queue(tmp_path):
    cfg = config("moco", epochs=4, queue_size=256)
    SigtermMoCo.signal = False
    full = pretrain_with(SigtermMoCo, "moco", cfg, digits(), False, None)
    full_method = SigtermMoCo.last
    SigtermMoCo.signal = True
    with pytest.raises(Interrupted):
        pretrain_with(SigtermMoCo, "moco", cfg, digits(), False, tmp_path)
    SigtermMoCo.signal = False
    resumed = pretrain_with(SigtermMoCo, "moco", cfg, digits(), False, tmp_path)
    resumed_method = SigtermMoCo.last
    assert resumed.resumed_from == 2  # it continued; a silent restart would say 0
    assert resumed.history["loss"].tolist() == pytest.approx(full.history["loss"].tolist(), nan_ok=True)
    for (name, a), b in zip(full_method.key.state_dict().items(), resumed_method.key.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    torch.testing.assert_close(full_method.queue, resumed_method.queue)
    assert full_method.queue_ptr == resumed_method.queue_ptr


def test_simclr_on_a_network_without_projector_adds_its_head_and_hands_on_the_backbone():
    from brb.methods.simclr import pretrain_simclr
    from brb.models.cnn_small import CNNSmall

    cfg = make_config({"data": {"resize": 20}, "model": {"arch": "cnn_small", "embedding_dim": 32},
                       "pretrain": {"method": "simclr", "epochs": 2, "batch_size": 64, "temperature": 0.2},
                       "run": {"seed": 0, "threads": 1}})
    result = pretrain_simclr(cfg, digits(), progress=False)
    assert isinstance(result.model, CNNSmall) and not result.model.training
    assert len(result.history) == 2 and result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]


def test_bare_resnet_backbones_encode_their_pooled_features():
    from brb.models.resnet_backbone import BigResNet34, ResNet18Std

    big = BigResNet34((1, 32, 32))
    assert big.encode(torch.zeros(2, 1, 32, 32)).shape == (2, 512)
    assert big.backbone.conv1.stride == (1, 1) and isinstance(big.backbone.maxpool, torch.nn.Identity)
    assert len(big.backbone.layer3) == 6  # ResNet-34's stages: 3, 4, 6, 3 blocks
    std = ResNet18Std((3, 96, 96))
    assert std.encode(torch.zeros(2, 3, 96, 96)).shape == (2, 512) and std.backbone.conv1.stride == (2, 2)
    assert [name for name, _ in std.named_reset_blocks()] == ["layer4"]
    assert make_config({"model": {"arch": "bigresnet18"}}).pretrain.resolved_method("bigresnet18") == "propos"
    with pytest.raises(ValueError, match="embedding_dim 128 does not apply"):
        BigResNet34((3, 32, 32), embedding_dim=128)


def test_estep_run_is_the_last_e_step_and_compares_with_table_2(tmp_path):
    """`brb pretrain` writes the method's own clustering beside model.pt; `brb estep` turns it into a run
    (algorithm = the method, variant estep) whose scores are the history's last E-step row, and the
    paper-versus-ours table matches it to ProPos's Table 2 rows."""
    import json

    import pandas as pd

    from brb.data import DataFileError
    from brb.data.prepared import save_prepared
    from brb.report import reference_path
    from brb.report.tables import paper_vs_ours
    from brb.stages import estep_stage, pretrain_stage

    data = tmp_path / "digits.npz"
    save_prepared(data, "digits", digits())
    cfg = config("propos", epochs=2, reassign=1)
    pretrain_stage(cfg, data, tmp_path / "pre", progress=False)
    info = json.loads((tmp_path / "pre" / "estep.json").read_text())
    assert info["method"] == "propos" and info["epoch"] == 2 and "target network" in info["how"]
    estep_stage(tmp_path / "pre" / "model.pt", data, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    last = pd.read_parquet(tmp_path / "pre" / "history.parquet").iloc[-1]
    assert (metrics["algorithm"], metrics["variant"], metrics["pretraining"]) == ("propos", "estep", "propos")
    for key in ("acc", "nmi", "ari"):  # recomputed from the labels = what the E-step logged
        assert metrics[key] == pytest.approx(last[key])
    assert list(pd.read_parquet(tmp_path / "run" / "history.parquet")["epoch"]) == [0, 1, 2]  # the E-step rows

    cfg = config("cc", epochs=1)  # CC reports its head's argmax, the k-means beside it
    pretrain_stage(cfg, data, tmp_path / "cc", progress=False)
    estep_stage(tmp_path / "cc" / "model.pt", data, tmp_path / "cc_run")
    cc = json.loads((tmp_path / "cc_run" / "metrics.json").read_text())
    assert "cluster head" in cc["how"] and cc["acc"] == pytest.approx(cc["logged"]["acc"])
    assert cc["logged"]["kmeans_acc"] != cc["acc"]

    other = tmp_path / "other.npz"
    save_prepared(other, "digits", digits(200))
    with pytest.raises(DataFileError, match="not the data this checkpoint was pretrained on"):
        estep_stage(tmp_path / "pre" / "model.pt", other, tmp_path / "bad")
    (tmp_path / "pre" / "estep.json").unlink()
    with pytest.raises(DataFileError, match="reports no clustering of its own"):
        estep_stage(tmp_path / "pre" / "model.pt", data, tmp_path / "bad")
    assert not (tmp_path / "bad" / "metrics.json").exists()

    ours = pd.DataFrame([{**{k: metrics[k] for k in ("algorithm", "variant", "arch", "seed")}, "dataset": "cifar10",
                          "acc": 0.90, "nmi": 0.80, "ari": 0.70}])
    table = paper_vs_ours(ours, reference_path("published.csv"), block="propos2022")
    assert len(table) == 1 and table["paper_acc"].iloc[0] == pytest.approx(94.3)
    assert table["diff_acc"].iloc[0] == pytest.approx(90.0 - 94.3)


def test_linear_probe_holds_out_stratified_rows_or_takes_the_test_split(tmp_path):
    import json

    from brb.data.prepared import save_prepared
    from brb.stages import evaluate_stage, linear_eval_stage, pretrain_stage

    data = tmp_path / "digits.npz"
    save_prepared(data, "digits", digits())
    pretrain_stage(config("simclr", epochs=1), data, tmp_path / "pre", progress=False)
    model = tmp_path / "pre" / "model.pt"
    linear_eval_stage(config("simclr"), data, model, tmp_path / "probe", holdout=0.25)
    m = json.loads((tmp_path / "probe" / "metrics.json").read_text())
    rows = np.load(tmp_path / "probe" / "rows.npy")
    labels = np.load(tmp_path / "probe" / "labels.npy")
    y = digits().y
    assert (m["algorithm"], m["variant"], m["evaluated_on"], m["n_evaluated"]) == ("linear", "probe", "holdout", 96)
    assert np.abs(np.bincount(y[rows], minlength=10) - np.bincount(y, minlength=10) * 0.25).max() <= 1  # stratified
    assert m["top1"] == pytest.approx((labels == y[rows]).mean()) and m["top1"] > 0.5  # far above chance (0.1)
    assert m["train_top1"] >= m["top1"]
    evaluate_stage(tmp_path / "probe", data)  # the evaluation finds the held-out rows again
    assert json.loads((tmp_path / "probe" / "evaluation.json").read_text())["acc"] == pytest.approx(m["acc"])

    split = digits()
    split.split = np.where(np.arange(len(split.y)) < 300, 0, 1).astype(np.uint8)  # 300 train, 84 test
    with_split = tmp_path / "split.npz"
    save_prepared(with_split, "digits", split)
    linear_eval_stage(config("simclr"), with_split, model, tmp_path / "split_probe")
    m = json.loads((tmp_path / "split_probe" / "metrics.json").read_text())
    assert (m["evaluated_on"], m["n_train"], m["n_evaluated"]) == ("test", 300, 84)
    assert not (tmp_path / "split_probe" / "rows.npy").exists()
    with pytest.raises(ValueError, match="holdout"):
        linear_eval_stage(config("simclr"), data, model, tmp_path / "bad", holdout=1.5)


def test_a_self_supervised_checkpoint_starts_dec_and_scan_self_labeling(tmp_path):
    """The chain of the cross-product study: BYOL pretraining -> DEC from its checkpoint -> SCAN self-labeling of
    that run, each stage reading the previous one's files."""
    import json

    from brb.data.prepared import save_prepared
    from brb.stages import cluster_stage, pretrain_stage, selflabel_stage

    data = tmp_path / "digits.npz"
    save_prepared(data, "digits", digits())
    pretrain_stage(config("byol", epochs=1), data, tmp_path / "pre", progress=False)
    values = {"data": {"resize": 20, "normalize": "channel"}, "run": {"seed": 0, "threads": 1},
              "cluster": {"algorithm": "dec", "epochs": 2, "batch_size": 64, "kmeans_n_init": 2},
              "selflabel": {"epochs": 1, "batch_size": 64}}
    cluster_stage(make_config(values), data, tmp_path / "dec", pretrained=tmp_path / "pre" / "model.pt",
                  progress=False)
    dec = json.loads((tmp_path / "dec" / "metrics.json").read_text())
    assert (dec["pretraining"], dec["arch"], dec["algorithm"]) == ("byol", "cnn_small", "dec")
    selflabel_stage(make_config(values), data, tmp_path / "dec", tmp_path / "scan", progress=False)
    scan = json.loads((tmp_path / "scan" / "metrics.json").read_text())
    assert scan["variant"] == "baseline-selflabel" and scan["clustering_acc"] == pytest.approx(dec["acc"])
    assert scan["pretrained"] == str(tmp_path / "pre" / "model.pt") and 0.1 <= scan["acc"] <= 1


def test_extra_unlabelled_images_join_the_pretraining_unscored(tmp_path):
    """data.pretrain_extra (STL-10's unlabelled images in the presets; here digits standing in, under that name):
    the E-step clusters every image, scores and hands on only the labelled ones."""
    import json

    from brb.data import DataFileError
    from brb.data.prepared import save_prepared
    from brb.data.registry import RawData
    from brb.stages import pretrain_stage, with_pretrain_extra

    data, extra = tmp_path / "digits.npz", tmp_path / "unlabeled.npz"
    save_prepared(data, "digits", digits(256))
    more = digits(384)
    save_prepared(extra, "stl10-unlabeled", RawData(x=more.x[256:], y=np.zeros(128, dtype=np.int64),
                                                     class_names=["unlabeled"]))
    cfg = config("propos", epochs=1, reassign=1)
    cfg.data.pretrain_extra = ["stl10-unlabeled"]
    pretrain_stage(cfg, data, tmp_path / "pre", progress=False, extra_paths=[extra])
    labels = np.load(tmp_path / "pre" / "estep_labels.npy")
    assert labels.shape == (256,)  # the labelled rows only
    info = json.loads((tmp_path / "pre" / "estep.json").read_text())
    from brb.metrics import clustering_metrics

    assert info["scores"]["acc"] == pytest.approx(clustering_metrics(digits(256).y, labels)["acc"])
    combined = with_pretrain_extra(cfg, digits(256), [extra])
    assert combined.x.shape[0] == 384 and (combined.y[256:] == -1).all() and (combined.y[:256] >= 0).all()

    with pytest.raises(DataFileError, match="names 1 dataset.* but 0 --extra-data"):
        with_pretrain_extra(cfg, digits(256), [])
    cfg.data.pretrain_extra = ["stl10"]
    with pytest.raises(DataFileError, match="holds 'stl10-unlabeled', but data.pretrain_extra names 'stl10'"):
        with_pretrain_extra(cfg, digits(256), [extra])
    cfg.data.pretrain_extra, cfg.data.subset = ["stl10-unlabeled"], 100
    with pytest.raises(DataFileError, match="cannot be combined with data.subset"):
        with_pretrain_extra(cfg, digits(256), [extra])
