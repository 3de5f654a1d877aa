"""Aljalbout et al. 2018 (brb/methods/aljalbout.py): the k-means loss and the summed KL by hand, the quirk of
their code (fixed centroids) against the paper's re-clustering, their optimisers, and short real runs of both
methods on a conv autoencoder with the k-means metric they report."""

import math

import numpy as np
import pytest
import torch

from brb.config import make_config
from brb.contrastive import make_optimizer
from brb.data import load_prepared, prepare_dataset
from brb.methods.aljalbout import AEKL, AEKMeans
from brb.methods.centroid import ClusterTrainer
from brb.methods.dec import kl_divergence, student_t_assignment, target_distribution
from brb.metrics import nmi_geometric
from brb.registry import REGISTRY


def test_kmeans_loss_is_the_mean_euclidean_distance_to_the_nearest_centroid():
    cfg = make_config({"cluster": {"algorithm": "ae_kmeans"}}).cluster
    obj = AEKMeans(cfg, torch.tensor([[0.0, 0.0], [10.0, 0.0]]))
    z = torch.tensor([[3.0, 4.0], [10.0, 0.0], [9.0, 0.0]], requires_grad=True)
    loss = obj.loss(z, None, None)
    assert loss.item() == pytest.approx((5.0 + 0.0 + 1.0) / 3)  # Euclidean, not squared (that would be 26/3)
    loss.backward()
    # d‖z − μ‖/dz = (z − μ)/‖z − μ‖ / N; a point on its centroid has zero gradient, not NaN
    torch.testing.assert_close(z.grad, torch.tensor([[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]]) / 3)
    # augmented views are pulled to their clean view's centroid
    z_aug = torch.tensor([[0.0, 1.0], [10.0, 2.0], [9.0, 3.0]])
    both = obj.loss(z.detach(), z_aug, None).item()
    assert both == pytest.approx(0.5 * (2.0 + (1.0 + 2.0 + math.sqrt(10.0)) / 3))


def test_kmeans_loss_centroids_fixed_as_their_code_or_learned():
    fixed = AEKMeans(make_config({"cluster": {"algorithm": "ae_kmeans"}}).cluster, torch.zeros(3, 2))
    assert not fixed.learned_centroids and [n for n, _ in fixed.named_buffers()] == ["centroids"]
    learned = AEKMeans(make_config({"cluster": {"algorithm": "ae_kmeans", "kmeans_loss_centroids": "learned"}}).cluster,
                       torch.zeros(3, 2))
    assert learned.learned_centroids and [n for n, _ in learned.named_parameters()] == ["centroids"]


def test_kl_summed_over_the_batch_by_hand():
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    q = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    rows = [0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75), 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)]
    assert kl_divergence(p, q, "sum").item() == pytest.approx(sum(rows), rel=1e-6)
    assert kl_divergence(p, q).item() == pytest.approx(sum(rows) / 2, rel=1e-6)
    cfg = make_config({"cluster": {"algorithm": "ae_kl"}}).cluster
    assert (cfg.kl_reduction, cfg.target, cfg.cluster_weight, cfg.reconstruction_weight) == ("sum", "dataset", 1.0, 1.0)
    centroids = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
    z = torch.tensor([[1.0, 0.0], [3.0, 1.0], [0.0, 2.0]])
    obj = AEKL(cfg, centroids)
    target = obj.full_target(z)  # P over the whole dataset, as their code computes it every epoch
    q = student_t_assignment(z, centroids)
    torch.testing.assert_close(target, target_distribution(q))
    expected = (target * (target.log() - q.log())).sum()
    assert obj.loss(z, None, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_their_optimisers_and_the_registry_defaults():
    for name, weight in (("ae_kl", 1.0), ("ae_kmeans", 0.1)):
        c = make_config({"cluster": {"algorithm": name}}).cluster
        assert (c.optimizer, c.lr, c.momentum, c.nesterov, c.final_kmeans, c.cluster_weight) == (
            "sgd", 0.01, 0.9, True, True, weight)
        assert "clustering" in REGISTRY.entry("method", name).tags
    dec = make_config({}).cluster
    assert (dec.optimizer, dec.lr, dec.target, dec.kl_reduction, dec.final_kmeans) == ("adam", 1e-3, "batch", "mean", False)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    opt = make_optimizer("sgd", net, 0.01, 1e-4, momentum=0.9, nesterov=True)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"]
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]  # L2 on weights only, as Lasagne's penalty


def test_pretraining_lr_decays_every_epoch_and_is_resumed(tmp_path):
    from brb.methods.pretraining import PretrainMethod
    from brb.methods.reconstruction import pretrain_autoencoder

    model = torch.nn.Linear(2, 2)
    sgd = make_optimizer("sgd", model, 0.01, 0.0)
    method = PretrainMethod("t", 3, model, sgd, {}, lambda e: [], lambda b: {}, "loss", lr_decay=0.9999)
    for epoch in range(3):
        sgd.step()  # (no gradients: nothing moves; the scheduler follows a step, as in training)
        method.on_epoch_end(None, epoch, {})
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.01 * 0.9999 ** 3)
    assert method.stateful()["scheduler"].state_dict()["last_epoch"] == 3  # in the resume checkpoint
    prepared = load_prepared(prepare_dataset("digits", tmp_path / "d.npz"))
    cfg = make_config({"model": {"hidden": [32]}, "run": {"device": "cpu"},
                       "pretrain": {"epochs": 3, "optimizer": "sgd", "lr": 0.01, "lr_decay": 0.5, "weight_decay": 1e-4}})
    history = pretrain_autoencoder(cfg, prepared, progress=False).history
    assert len(history) == 3 and np.isfinite(history["loss"]).all()


def test_recluster_every_writes_the_centroids_back(tmp_path):
    prepared = load_prepared(prepare_dataset("digits", tmp_path / "d.npz"))
    common = {"model": {"hidden": [32]}, "cluster": {"algorithm": "ae_kmeans", "epochs": 2, "batch_size": 256,
                                                      "kmeans_n_init": 2, "final_kmeans": False},
              "run": {"device": "cpu"}}
    kept = ClusterTrainer(make_config(common), prepared)
    start = kept.objective.centroids.clone()
    kept.fit(progress=False)
    torch.testing.assert_close(kept.objective.centroids, start)  # their code: the centroids never move
    common["cluster"]["recluster_every"] = 1
    moved = ClusterTrainer(make_config(common), prepared)
    moved.fit(progress=False)
    assert not torch.allclose(moved.objective.centroids, start)  # the paper: re-clustered, written back


@pytest.mark.parametrize("algorithm", ["ae_kl", "ae_kmeans"])
def test_conv_autoencoder_runs_with_their_metric_and_brb(tmp_path, algorithm):
    from brb.methods.reconstruction import pretrain_autoencoder

    prepared = load_prepared(prepare_dataset("digits", tmp_path / "d.npz"))
    values = {"data": {"resize": 28, "normalize": "none"}, "model": {"arch": "conv", "spec": "digits_small"},
              "pretrain": {"epochs": 2, "optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-4, "lr_decay": 0.9999,
                           "batch_size": 100},
              "cluster": {"algorithm": algorithm, "epochs": 2, "batch_size": 100, "kmeans_n_init": 3},
              "brb": {"variant": "brb", "interval": 1}, "run": {"device": "cpu", "seed": 1}}
    cfg = make_config(values)
    model = pretrain_autoencoder(cfg, prepared, progress=False).model
    result = ClusterTrainer(cfg, prepared, model).fit(progress=False)
    m = result.metrics
    assert {"acc", "nmi", "nmi_geometric", "centroid_acc", "centroid_nmi"} <= set(m)
    assert m["brb_epochs"] == [1] and np.isfinite(result.history["loss"].iloc[1:]).all()
    assert m["acc"] > 0.3 and m["centroid_acc"] > 0.3  # far above chance (0.1) after 2 + 2 epochs on 28x28 digits
    assert m["nmi_geometric"] == pytest.approx(nmi_geometric(prepared.y, result.labels))
    assert isinstance(result.model.encoder[0].layer, torch.nn.Conv2d)
