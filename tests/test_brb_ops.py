import copy

import numpy as np
import pytest
import torch

from brb.config import make_config
from brb.interventions.brb_ops import recluster, soft_reset, subsample_indices
from brb.methods.dcn import DCN
from brb.methods.dec import DEC, student_t_assignment, target_distribution
from brb.models.autoencoder import FeedForwardAutoencoder


def _model():
    torch.manual_seed(0)
    return FeedForwardAutoencoder((1, 4, 4), embedding_dim=3, hidden=[8, 6], batch_norm=True)


def test_soft_reset_interpolates_exactly_and_spares_excluded_layers():
    model = _model()
    before = copy.deepcopy(model.state_dict())
    layers = model.reset_layers(include_embedding=False)
    assert len(layers) == 4  # Linear, BN, Linear, BN; the embedding Linear is excluded
    # reproduce the fresh init soft_reset will draw
    torch.manual_seed(123)
    fresh = []
    for layer in layers:
        f = copy.deepcopy(layer)
        f.reset_parameters()
        fresh.append([p.detach().clone() for p in f.parameters()])
    torch.manual_seed(123)
    soft_reset(layers, alpha=0.7, init="default", batchnorm=True)
    after = model.state_dict()
    for layer, phis in zip(layers, fresh):
        for theta, phi in zip(layer.parameters(), phis):
            key = next(k for k, v in model.state_dict(keep_vars=True).items() if v is theta)
            torch.testing.assert_close(after[key], 0.7 * before[key] + 0.3 * phi)
    emb = model.encoder[-1]
    torch.testing.assert_close(emb.weight, before["encoder.6.weight"])
    assert "encoder.6.weight" in before and emb is model.encoder[6]
    for key in before:  # the decoder is untouched
        if key.startswith("decoder."):
            torch.testing.assert_close(after[key], before[key])


def test_soft_reset_alpha_one_is_identity_and_embedding_can_be_included():
    model = _model()
    before = copy.deepcopy(model.state_dict())
    soft_reset(model.reset_layers(include_embedding=True), alpha=1.0)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    soft_reset(model.reset_layers(include_embedding=True), alpha=0.5)
    assert not torch.equal(model.encoder[-1].weight, before["encoder.6.weight"])
    with pytest.raises(ValueError, match="alpha"):
        soft_reset(model.reset_layers(), alpha=1.5)


def test_momentum_reset_zeroes_only_centroid_state():
    cfg = make_config({"cluster": {"algorithm": "dec"}}).cluster
    torch.manual_seed(0)
    obj = DEC(cfg, torch.randn(3, 2))
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam([{"params": net.parameters()}, {"params": [obj.centroids]}], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        loss = obj.loss(net(torch.randn(16, 4)), None, None)
        loss.backward()
        opt.step()
    net_state = {k: v.clone() for k, v in opt.state[net.weight].items()}
    assert opt.state[obj.centroids]["exp_avg"].abs().sum() > 0
    obj.reset_momentum(opt)
    assert opt.state[obj.centroids]["exp_avg"].abs().sum() == 0
    assert opt.state[obj.centroids]["exp_avg_sq"].abs().sum() == 0
    assert float(opt.state[obj.centroids]["step"]) == 3  # steps kept unless asked
    for key, value in opt.state[net.weight].items():
        torch.testing.assert_close(value, net_state[key])
    obj.reset_momentum(opt, steps=True)
    assert float(opt.state[obj.centroids]["step"]) == 0


def test_dec_target_distribution_sharpens():
    z = torch.tensor([[0.0, 0.0], [0.1, 0.0], [2.0, 2.0]])
    mu = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    q = student_t_assignment(z, mu)
    torch.testing.assert_close(q.sum(1), torch.ones(3))
    # hand-computed: q_00 ∝ 1, q_01 ∝ 1/(1+8) -> 0.9
    assert q[0, 0].item() == pytest.approx(0.9)
    p = target_distribution(q)
    assert p[0, 0] > q[0, 0] and p[2, 1] > q[2, 1]


@pytest.mark.parametrize("mode", ["counts", "reference"])
def test_dcn_centroid_update_modes(mode):
    cfg = make_config({"cluster": {"algorithm": "dcn", "dcn_update": mode, "dcn_count_init": 1}}).cluster
    obj = DCN(cfg, torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    z = torch.tensor([[2.0, 0.0], [4.0, 0.0], [10.0, 12.0]])
    obj.after_step(z)
    if mode == "counts":
        # running mean with initial count 1: (1*0 + 2 + 4) / 3 = 2
        torch.testing.assert_close(obj.centroids[0], torch.tensor([2.0, 0.0]))
        torch.testing.assert_close(obj.counts, torch.tensor([3.0, 2.0]))
        torch.testing.assert_close(obj.centroids[1], torch.tensor([10.0, 11.0]))
    else:
        # the BRB code: once per batch, fixed step 1/(1+1) = 0.5 towards the batch mean, counts never grow:
        # 0.5·(0, 0) + 0.5·(3, 0) and 0.5·(10, 10) + 0.5·(10, 12)
        torch.testing.assert_close(obj.centroids[0], torch.tensor([1.5, 0.0]))
        torch.testing.assert_close(obj.centroids[1], torch.tensor([10.0, 11.0]))
        torch.testing.assert_close(obj.counts, torch.tensor([1.0, 1.0]))
    obj.counts.fill_(50)
    obj.reset_momentum(None)
    torch.testing.assert_close(obj.counts, torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize("method", ["kmeans", "kmeans++", "kmedoids", "em", "random"])
def test_recluster_methods_find_separated_blobs(method):
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    z = np.concatenate([c + 0.1 * rng.standard_normal((50, 2)) for c in centers])
    found = recluster(z, 3, method=method, seed=1)
    assert found.shape == (3, 2) and found.dtype == np.float32
    if method in ("kmeans", "kmedoids", "em"):
        dist = np.linalg.norm(found[:, None] - centers[None], axis=2).min(axis=0)
        assert (dist < 0.5).all()
    if method in ("kmedoids", "random"):  # medoids and random picks are data points
        assert all((np.abs(z - f).sum(1) < 1e-5).any() for f in found)


def test_recluster_rejects_too_many_clusters_and_subsample_is_seeded():
    with pytest.raises(ValueError, match="5 clusters in 3 points"):
        recluster(np.zeros((3, 2)), 5)
    a = subsample_indices(1000, 100, seed=3)
    assert len(a) == 100 and len(set(a)) == 100 and np.array_equal(a, subsample_indices(1000, 100, seed=3))
    assert not np.array_equal(a, np.arange(100))  # random, not the first rows
    assert np.array_equal(subsample_indices(50, 100, seed=0), np.arange(50))


def test_alpha_step_resets_deeper_blocks_less():
    from brb.data.prepared import PreparedData
    from brb.methods.centroid import ClusterTrainer

    rng = np.random.default_rng(0)
    data = PreparedData("toy", rng.integers(0, 255, (60, 1, 4, 4), dtype=np.uint8), np.arange(60) % 3, ["a", "b", "c"])
    cfg = make_config(
        {"model": {"hidden": [8, 6, 5]}, "cluster": {"epochs": 0, "kmeans_n_init": 1},
         "brb": {"variant": "reset", "alpha": 0.5, "alpha_step": 0.5}}
    )
    trainer = ClusterTrainer(cfg, data)
    blocks = trainer.model.reset_blocks()
    assert [len(b) for b in blocks] == [2, 2, 2]  # Linear + BatchNorm, embedding block excluded
    before = [b[0].weight.detach().clone() for b in blocks]
    trainer.apply_brb(1)
    changed = [not torch.equal(b[0].weight, w) for b, w in zip(blocks, before)]
    assert changed == [True, False, False]  # alphas 0.5, 1.0, 1.0 (capped)
