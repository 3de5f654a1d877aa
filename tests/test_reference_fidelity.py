"""One test per difference D1-D9 between the public BRB code and brb (issue: paper mode step for step).

Each test checks the reference behaviour (and the other value of its option) on tiny tensors with values
worked out by hand in the comments.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from brb.config import PAPER_SEEDS, make_config
from brb.data.augment import RandomAffine
from brb.data.prepared import PreparedData
from brb.engine.common import shuffled_batches
from brb.interventions.brb_ops import fresh_parameters, soft_reset, subsample_indices
from brb.methods.centroid import ClusterTrainer
from brb.methods.dcn import DCN


def _dcn(**cluster):
    cfg = make_config({"cluster": {"algorithm": "dcn", **cluster}}).cluster
    return cfg


def _toy_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, 1, 4, 4), dtype=np.uint8)
    return PreparedData("toy", x, np.arange(n) % 3, ["a", "b", "c"])


def _trainer(algorithm="dec", n=24, **cluster):
    values = {
        "model": {"hidden": [8, 6]},
        "cluster": {"algorithm": algorithm, "epochs": 1, "batch_size": 8, "kmeans_n_init": 1, **cluster},
        "run": {"threads": 1},
    }
    return ClusterTrainer(make_config(values), _toy_data(n))


# --- D1: DCN loss normalisation -------------------------------------------------------------------------
def test_d1_dcn_loss_is_sum_over_n_times_k():
    # z0 -> mu0 at distance² 0, z1 -> mu0 at 1 (mu1 is at 10), z2 -> mu1 at 1 (mu0 is at 4): Σ = 2, N = 3, K = 2
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    mu = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    reference = DCN(_dcn(dcn_loss_norm="samples_clusters"), mu)
    assert reference.loss(z, None, None).item() == pytest.approx(2 / 6)
    assert DCN(_dcn(dcn_loss_norm="samples"), mu).loss(z, None, None).item() == pytest.approx(2 / 3)
    # with a view, the augmented rows are pulled to the clean rows' centroids: (2/6 + Σ_aug/6) / 2
    z_aug = z + torch.tensor([1.0, 0.0])  # distances² to the same centroids: 1, 4, 2 -> Σ = 7
    assert reference.loss(z, z_aug, None).item() == pytest.approx((2 / 6 + 7 / 6) / 2)
    assert make_config({"cluster": {"algorithm": "dcn"}}).cluster.dcn_loss_norm == "samples_clusters"  # = the paper 0.025


# --- D2: DCN centroid step -------------------------------------------------------------------------------
def test_d2_reference_centroid_step_is_once_per_batch_towards_the_batch_mean():
    mu = torch.tensor([[0.0], [10.0]])
    z = torch.tensor([[1.0], [2.0]])  # both nearer 0: cluster 0 hit twice, cluster 1 not at all
    ref = DCN(_dcn(dcn_update="reference", dcn_count_init=1), mu)
    ref.update_centroids(z)
    # η = 1/(1+1): ½·0 + ½·mean(1, 2) = 0.75; cluster 1 untouched; counts never grow
    torch.testing.assert_close(ref.centroids, torch.tensor([[0.75], [10.0]]))
    torch.testing.assert_close(ref.counts, torch.tensor([1.0, 1.0]))
    ref.update_centroids(z)  # same η again: ½·0.75 + ½·1.5 = 1.125
    torch.testing.assert_close(ref.centroids[0], torch.tensor([1.125]))
    counts = DCN(_dcn(dcn_update="counts", dcn_count_init=1), mu)
    counts.update_centroids(z)  # running mean (1·0 + 1 + 2) / 3 = 1, count 3
    torch.testing.assert_close(counts.centroids, torch.tensor([[1.0], [10.0]]))
    torch.testing.assert_close(counts.counts, torch.tensor([3.0, 1.0]))


# --- D3: when DCN moves its centroids --------------------------------------------------------------------
def test_d3_epoch_end_pass_keeps_centroids_fixed_then_updates_in_eval_mode():
    trainer = _trainer("dcn", dcn_update_when="epoch_end", drop_last=True, n=20)
    seen = {"loss_centroids": [], "updates": []}
    objective = trainer.objective
    loss, update = objective.loss, objective.update_centroids

    def spy_loss(z, z_aug, target):
        seen["loss_centroids"].append(objective.centroids.clone())
        return loss(z, z_aug, target)

    def spy_update(z):
        seen["updates"].append((trainer.model.training, torch.is_grad_enabled(), z.clone()))
        update(z)

    objective.loss, objective.update_centroids = spy_loss, spy_update
    trainer.train_epoch(0)
    first = seen["loss_centroids"][0]
    assert len(seen["loss_centroids"]) == 2  # 20 samples, batch 8, last partial batch of 4 dropped
    assert all(torch.equal(c, first) for c in seen["loss_centroids"])  # fixed during the gradient pass
    assert [len(z) for _, _, z in seen["updates"]] == [8, 8]  # the pass drops the last batch too
    assert all(not training and not grad for training, grad, _ in seen["updates"])  # eval mode, no grad
    assert trainer.model.training  # back in train mode afterwards
    # its embeddings are the post-step network's eval-mode embeddings of clean rows
    trainer.model.eval()
    with torch.no_grad():
        everything = trainer.model.encode(trainer.data.batch(torch.arange(20)))
    trainer.model.train()
    for _, _, z in seen["updates"]:
        assert all(torch.isclose(everything, row, atol=1e-5).all(dim=1).any() for row in z)
    assert not torch.equal(objective.centroids, first)  # and moved the centroids


def test_d3_step_mode_updates_after_every_optimiser_step():
    trainer = _trainer("dcn", dcn_update_when="step", n=20)
    calls = []
    update = trainer.objective.update_centroids
    trainer.objective.update_centroids = lambda z: (calls.append(len(z)), update(z))
    trainer.train_epoch(0)
    assert calls == [8, 8, 4]  # one per batch, last partial batch kept


# --- D4 and D5: DEC's view passes and its BatchNorm logging pass -----------------------------------------
def _bn_updates(trainer) -> int:
    return int(trainer.model.encoder[1].num_batches_tracked)


@pytest.mark.parametrize(
    "augment, view_passes, logging, expected",
    [
        (True, "joint", False, 1),  # brb's default: both views in one pass
        (True, "separate", False, 2),  # the BRB code's DEC: one pass per view
        (True, "separate", True, 3),  # ... plus its logging pass
        (False, "joint", True, 2),  # without augmentation: training pass + logging pass
        (False, "joint", False, 1),
    ],
)
def test_d4_d5_batchnorm_updates_per_dec_step(augment, view_passes, logging, expected):
    trainer = _trainer("dec", n=8, augment=augment, view_passes=view_passes, bn_logging_pass=logging)
    before = _bn_updates(trainer)
    trainer.train_epoch(0)  # one batch of 8: one step
    assert _bn_updates(trainer) - before == expected


def test_d4_separate_passes_give_each_view_its_own_batchnorm_batch():
    trainer = _trainer("dec", n=8, augment=True, view_passes="separate")
    x, x_aug = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    z, _ = trainer._forward(x, x_aug, reconstruct=False)
    with torch.no_grad():  # train mode: each view normalised with its own batch statistics
        alone = trainer.model.encode(x)
        joint = trainer.model.encode(torch.cat([x, x_aug]))[:6]
    torch.testing.assert_close(z[:6], alone)
    assert not torch.allclose(z[:6], joint, atol=1e-4)
    trainer.config.cluster.view_passes = "joint"
    z_joint, _ = trainer._forward(x, x_aug, reconstruct=False)
    torch.testing.assert_close(z_joint[:6], joint)


def test_d5_logging_pass_moves_running_mean_towards_the_joint_batch():
    # one step, no augmentation: running mean r ← 0.9·r + 0.1·m twice with the same batch mean m
    trainer = _trainer("dec", n=8, bn_logging_pass=True)
    bn = trainer.model.encoder[1]
    r0 = bn.running_mean.clone()
    x = trainer.data.batch(torch.arange(8))
    with torch.no_grad():
        m = trainer.model.encoder[0](x.reshape(8, -1)).mean(dim=0)
    generator_state = trainer.cpu_gen.get_state()
    trainer.train_epoch(0)
    trainer.cpu_gen.set_state(generator_state)
    expected = 0.9 * (0.9 * r0 + 0.1 * m) + 0.1 * m  # the batch is the whole toy set, whatever the order
    torch.testing.assert_close(bn.running_mean, expected, rtol=1e-5, atol=1e-5)


# --- D6 and D7: the soft reset ---------------------------------------------------------------------------
def test_d6_batchnorm_affine_untouched_unless_asked():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(5)
    with torch.no_grad():
        bn.weight.fill_(3.0)
        bn.bias.fill_(2.0)
        bn.running_mean.fill_(0.5)
    assert soft_reset([bn], 0.8, batchnorm=False) == 0
    assert torch.equal(bn.weight, torch.full((5,), 3.0)) and torch.equal(bn.bias, torch.full((5,), 2.0))
    soft_reset([bn], 0.8, batchnorm=True)  # φ = (1, 0): 0.8·3 + 0.2 = 2.6, 0.8·2 = 1.6
    torch.testing.assert_close(bn.weight, torch.full((5,), 2.6))
    torch.testing.assert_close(bn.bias, torch.full((5,), 1.6))
    torch.testing.assert_close(bn.running_mean, torch.full((5,), 0.5))  # statistics never touched
    assert make_config({}).brb.reset_batchnorm is False


def test_d6_trainer_soft_reset_skips_batchnorm_by_default():
    trainer = _trainer("dec", n=12)
    trainer.config.brb.variant = "reset"
    trainer.brb.parts = trainer.config.brb.parts()
    bns = [m for m in trainer.model.encoder if isinstance(m, nn.BatchNorm1d)]
    before = [(b.weight.clone(), b.bias.clone()) for b in bns]
    linear = trainer.model.encoder[0].weight.clone()
    trainer.apply_brb(1)
    assert all(torch.equal(b.weight, w) and torch.equal(b.bias, c) for b, (w, c) in zip(bns, before))
    assert not torch.equal(trainer.model.encoder[0].weight, linear)


def test_d7_fresh_weights_are_kaiming_uniform():
    torch.manual_seed(0)
    layer = nn.Linear(600, 400)
    weight, bias = fresh_parameters(layer, "kaiming")
    bound = math.sqrt(6 / 600)  # gain √2 · √(3 / fan_in)
    assert bound * 0.99 < weight.abs().max().item() <= bound
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 600), rel=0.02)
    assert bias.abs().max().item() <= 1 / math.sqrt(600)
    default_weight, _ = fresh_parameters(layer, "default")
    assert default_weight.abs().max().item() <= 1 / math.sqrt(600)
    assert weight.abs().max().item() / default_weight.abs().max().item() == pytest.approx(math.sqrt(6), rel=0.02)
    conv = nn.Conv2d(8, 4, 3)  # fan_in 8·3·3 = 72
    w, b = fresh_parameters(conv, "kaiming")
    assert math.sqrt(6 / 72) * 0.95 < w.abs().max().item() <= math.sqrt(6 / 72)
    # the reset itself: θ ← 0.8·θ + 0.2·φ with φ drawn as above from the same generator state
    theta = layer.weight.detach().clone()
    torch.manual_seed(5)
    phi = fresh_parameters(layer, "kaiming")[0]
    torch.manual_seed(5)
    soft_reset([layer], 0.8)
    torch.testing.assert_close(layer.weight, 0.8 * theta + 0.2 * phi)


# --- D8: the reclustering subsample ----------------------------------------------------------------------
def test_d8_first_subsample_is_the_first_rows_every_time():
    assert np.array_equal(subsample_indices(100, 10, seed=1, mode="first"), np.arange(10))
    assert np.array_equal(subsample_indices(100, 10, seed=2, mode="first"), np.arange(10))
    assert not np.array_equal(subsample_indices(100, 10, seed=1), np.arange(10))
    with pytest.raises(ValueError, match="subsample mode"):
        subsample_indices(100, 10, 0, mode="last")


# --- D9: settings around the step ------------------------------------------------------------------------
def test_d9_gradient_clipping_touches_the_network_not_the_centroids():
    trainer = _trainer("dec", n=8, grad_clip=1e-3, cluster_weight=1e3)
    norms = {}

    def record(optimizer, args, kwargs):
        net = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms["network"] = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in net])).item()
        norms["centroids"] = torch.linalg.vector_norm(trainer.objective.centroids.grad).item()

    trainer.optimizer.register_step_pre_hook(record)
    trainer.train_epoch(0)
    assert norms["network"] == pytest.approx(1e-3, rel=1e-3)
    assert norms["centroids"] > 1e-2


def test_d9_drop_last_drops_the_partial_batch():
    gen = torch.Generator().manual_seed(0)
    assert [len(b) for b in shuffled_batches(10, 4, gen)] == [4, 4, 2]
    assert [len(b) for b in shuffled_batches(10, 4, gen, drop_last=True)] == [4, 4]
    assert [len(b) for b in shuffled_batches(3, 4, gen, drop_last=True)] == [3]  # never an empty epoch
    assert sorted(torch.cat(shuffled_batches(10, 4, gen, drop_last=True)).tolist()) != list(range(10))


def test_d9_torchvision_style_affine_shifts_whole_pixels_with_nearest_resampling():
    gen = torch.Generator().manual_seed(0)
    aug = RandomAffine(0.0, 0.25, 0.0, generator=gen, interpolation="nearest", pixel_translate=True)
    x = torch.arange(1, 65, dtype=torch.float32).reshape(1, 1, 8, 8).repeat(16, 1, 1, 1)
    out = aug(x)
    shifts = set()
    for image in out[:, 0]:
        found = None
        for dy in range(-2, 3):  # translate 0.25 · 8 = 2 pixels at most
            for dx in range(-2, 3):
                shifted = torch.zeros(8, 8)
                src = x[0, 0, max(0, -dy): 8 - max(0, dy), max(0, -dx): 8 - max(0, dx)]
                shifted[max(0, dy): 8 - max(0, -dy), max(0, dx): 8 - max(0, -dx)] = src
                if torch.equal(image, shifted):
                    found = (dy, dx)
        assert found is not None, image
        shifts.add(found)
    assert len(shifts) > 3  # several different whole-pixel shifts were drawn
    smooth = RandomAffine(0.0, 0.25, 0.0, generator=torch.Generator().manual_seed(0))(x)
    assert not torch.equal(smooth.round(), smooth)  # bilinear with continuous shifts blends pixels


def test_d9_matmul_precision_and_paper_seeds():
    from brb.runtime import setup_run

    before = torch.get_float32_matmul_precision()
    try:
        setup_run(make_config({"run": {"matmul_precision": "medium", "device": "cpu"}}).run)
        assert torch.get_float32_matmul_precision() == "medium"
        setup_run(make_config({"run": {"device": "cpu"}}).run)
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(before)
    assert PAPER_SEEDS == (400, 148, 820, 214, 40, 805, 111, 491, 215, 513)
