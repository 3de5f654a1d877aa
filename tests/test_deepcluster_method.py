"""DeepCluster on the engine (brb/methods/deepcluster.py): a short real run on digits, the per-epoch pieces as
the method uses them (uniform indices over the pseudo-clusters, a fresh top layer every epoch, NMI between
consecutive assignments), BRB's soft reset as its only applicable part, clear errors, and resume."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from brb.checkpointing import Interrupted
from brb.config import make_config
from brb.data.prepared import PreparedData
from brb.engine.loop import Engine, TrainingError
from brb.methods.centroid import run_clustering
from brb.methods.deepcluster import DeepCluster


def digits(n: int = 300) -> PreparedData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images[:n] * 255 / 16).round().astype(np.uint8)[:, None]
    return PreparedData("digits", x, bunch.target[:n], [str(i) for i in range(10)])


def config(epochs: int = 2, variant: str = "baseline", arch: str = "dc_small", **cluster):
    return make_config({
        "data": {"resize": 16},
        "model": {"arch": arch, **({"embedding_dim": 64} if arch == "dc_small" else {})},
        "cluster": {"algorithm": "deepcluster", "epochs": epochs, "batch_size": 64, "dc_k": 20, "kmeans_n_init": 2,
                    "kmeans_backend": "torch", **cluster},
        "brb": {"variant": variant, "interval": 1},
        "run": {"seed": 0, "threads": 1, "checkpoint_every": 1},
    })


def test_options_are_their_main_sh():
    c = make_config({"cluster": {"algorithm": "deepcluster"}}).cluster
    assert (c.dc_k, c.lr, c.dc_momentum, c.weight_decay, c.top_lr, c.pca_dim, c.kmeans_niter, c.sobel) == (
        10000, 0.05, 0.9, 1e-5, 0.05, 256, 20, True)
    assert make_config({"model": {"arch": "alexnet_bn"}}).model.embedding_dim == 4096


def test_a_short_run_logs_the_papers_curves_and_scores_kmeans_to_the_classes():
    result = run_clustering(config(epochs=2), digits(), progress=False)
    h = result.history
    assert list(h["epoch"]) == [0, 1, 2]
    assert np.isnan(h["nmi_consecutive"].iloc[1]) and 0 < h["nmi_consecutive"].iloc[2] <= 1  # NMI(t-1, t)
    assert h["pseudo_nmi"].iloc[1:].between(0, 1).all() and h["pseudo_purity"].iloc[1:].between(0.1, 1).all()
    assert h["loss"].iloc[1] == pytest.approx(np.log(20), abs=0.3)  # cross-entropy of a fresh N(0, 0.01) top layer
    assert h["acc"].notna().all() and result.labels.shape == (300,) and len(np.unique(result.labels)) <= 10
    m = result.metrics
    assert m["dc_k"] == 20 and m["n_clusters"] == 10 and m["acc"] == pytest.approx(h["acc"].iloc[-1])


def test_each_epoch_draws_uniform_indices_and_a_fresh_top_layer():
    method = DeepCluster(config(), digits(), None)
    engine = Engine(method)
    method.on_epoch_start(engine, 0)
    counts = np.bincount(method.assignment[method.indices.numpy()], minlength=20)
    nonempty = np.unique(method.assignment)
    assert len(method.indices) == 300 and counts[nonempty].max() - counts[nonempty].min() <= 1
    top = method.model.top_layer
    assert torch.count_nonzero(top.bias) == 0 and top.weight.std().item() == pytest.approx(0.01, rel=0.2)
    engine.run_epoch(0)
    assert torch.count_nonzero(method.model.top_layer.bias) > 0  # trained
    method.on_epoch_start(engine, 1)
    assert method.model.top_layer is not top and torch.count_nonzero(method.model.top_layer.bias) == 0
    assert method.top_optimizer.param_groups[0]["params"][0] is method.model.top_layer.weight


def test_brb_soft_reset_applies_and_reclustering_variants_are_refused():
    result = run_clustering(config(epochs=2, variant="reset"), digits(), progress=False)
    assert result.metrics["brb_epochs"] == [1]
    with pytest.raises(TypeError, match="recluster needs a method declaring HasCentroids or HasClusterHead"):
        run_clustering(config(epochs=2, variant="brb"), digits(), progress=False)


def test_clear_errors():
    with pytest.raises(TrainingError, match="needs one of its networks"):
        DeepCluster(config(arch="mlp"), digits(), None)
    with pytest.raises(TrainingError, match="dc_k=400 exceeds the number of training samples"):
        DeepCluster(config(dc_k=400), digits(), None)


class StopAtOne(DeepCluster):
    def evaluate(self, epoch, losses):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().evaluate(epoch, losses)


def test_resume_continues_where_it_stopped(tmp_path):
    full = run_clustering(config(epochs=3), digits(), progress=False)
    with pytest.raises(Interrupted):
        StopAtOne(config(epochs=3), digits(), None, checkpoint_dir=tmp_path).fit(progress=False)
    resumed = DeepCluster(config(epochs=3), digits(), None, checkpoint_dir=tmp_path).fit(progress=False)
    assert resumed.metrics["resumed_from_epoch"] == 2  # a silent restart would say 0
    assert resumed.history["loss"].tolist() == pytest.approx(full.history["loss"].tolist(), nan_ok=True)
    assert resumed.history["nmi_consecutive"].tolist() == pytest.approx(full.history["nmi_consecutive"].tolist(),
                                                                        nan_ok=True)
    np.testing.assert_array_equal(resumed.labels, full.labels)


def test_figure_two_plot_from_histories(tmp_path):
    import pandas as pd

    from brb.report.plots import history_curve_data, plot_deepcluster_nmi

    nan = float("nan")
    hist = pd.DataFrame({
        "algorithm": "deepcluster", "variant": ["k10"] * 6 + ["k100"] * 3, "seed": [0, 0, 0, 1, 1, 1, 0, 0, 0],
        "epoch": [0, 1, 2] * 3, "pseudo_nmi": [nan, 0.3, 0.5, nan, 0.5, 0.7, nan, 0.6, 0.6],
        "nmi_consecutive": [nan, nan, 0.5, nan, nan, 0.7, nan, nan, 0.8], "acc": 0.5,
    })
    data = history_curve_data(hist, "pseudo_nmi").set_index(["label", "epoch"])
    assert data.loc[("deepcluster / k10", 2), "mean"] == pytest.approx(0.6)
    assert data.loc[("deepcluster / k10", 1), "n_runs"] == 2
    assert plot_deepcluster_nmi(hist, tmp_path / "nmi.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="history lacks column 'nmi_consecutive'"):
        history_curve_data(hist.drop(columns="nmi_consecutive"), "nmi_consecutive")


def test_resnet18_for_cifar_sized_images_runs_and_names_its_blocks(tmp_path):
    from brb.models.checkpoint import load_model, save_checkpoint

    result = run_clustering(config(epochs=2, arch="dc_resnet18", variant="reset", pca_dim=32), digits(120),
                            progress=False)
    assert np.isfinite(result.history["loss"].iloc[1:]).all() and result.labels.shape == (120,)
    assert result.metrics["brb_epochs"] == [1]  # the soft reset reaches the ResNet blocks
    model = result.model
    assert [n for n, _ in model.named_reset_blocks()] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert model.sobel_filter is not None and model.body.conv1.in_channels == 2 and model.embedding_dim == 512
    x = torch.rand(3, 1, 16, 16)
    model.eval()
    torch.testing.assert_close(model.intermediate(x)[-1][1], model.features(x))
    save_checkpoint(tmp_path / "m.pt", model, "dc_resnet18")
    again, _ = load_model(tmp_path / "m.pt")
    again.eval()
    torch.testing.assert_close(again.features(x), model.features(x))
