"""SCAN self-labeling on tiny synthetic image data (CPU, seconds)."""

import copy

import numpy as np
import pytest
import torch

from brb.config import make_config
from brb.data.augment import Cutout
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.engine.common import embed
from brb.engine.loop import TrainingError
from brb.interventions.brb_ops import recluster
from brb.methods.selflabel import balanced_weights, centroid_head, self_label, self_label_loss
from brb.metrics import clustering_metrics
from brb.models.autoencoder import FeedForwardAutoencoder

N_PER_CLASS = 30


def _patterns(side: int = 8) -> np.ndarray:
    """Three distinct binary 8x8 patterns: horizontal stripes, vertical stripes, a centred square."""
    rows, cols = np.indices((side, side))
    square = (rows >= 2) & (rows < 6) & (cols >= 2) & (cols < 6)
    return np.stack([rows % 2 == 0, cols % 2 == 0, square]).astype(np.float64)


def _dataset(channels: int, seed: int = 0) -> PreparedData:
    """Noisy copies of the three patterns (uint8 images, ``channels`` channels), 30 per class."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), N_PER_CLASS)
    base = _patterns()[y][:, None]
    tint = rng.uniform(0.7, 1.0, size=(len(y), channels, 1, 1))  # colour images get per-channel tints
    x = 40 + 170 * base * tint + rng.normal(0, 10, size=(len(y), channels, 8, 8))
    return PreparedData("patterns", np.clip(x, 0, 255).astype(np.uint8), y, ["h", "v", "sq"])


def _setup(channels: int = 1, **selflabel):
    """Config, tiny network, its k-means centroids and the device data of one small problem."""
    cfg = make_config(
        {
            "run": {"threads": 1, "device": "cpu", "seed": 0},
            "augment": {"degrees": 10, "translate": 0.1, "shear": 5},
            "selflabel": {"epochs": 3, "batch_size": 32, "lr": 1e-3, "cutout": 3, **selflabel},
        }
    )
    data = DeviceData(_dataset(channels), "cpu", "channel")
    torch.manual_seed(0)
    model = FeedForwardAutoencoder(data.sample_shape, embedding_dim=3, hidden=[16], batch_norm=True)
    _fit_batch_norm(model, data)
    z = embed(model, data).numpy()
    centroids = torch.from_numpy(recluster(z, 3, "kmeans", 0, 3))
    return cfg, model, centroids, data


def _fit_batch_norm(model, data) -> None:
    """Running BatchNorm statistics of the clean data, as a trained network has (not the init's 0 and 1)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for m in norms:
        m.momentum = None  # cumulative average: one full batch gives the exact statistics
    with torch.no_grad():
        model.train().encode(data.batch(slice(None)))
    for m in norms:
        m.momentum = 0.1
    model.eval()


def _nearest_centroid(model, data, centroids) -> np.ndarray:
    return torch.cdist(embed(model, data), centroids.float()).argmin(dim=1).numpy()


def test_head_reproduces_nearest_centroid_labels():
    cfg, model, centroids, data = _setup()
    head = centroid_head(centroids).requires_grad_(False)
    z = embed(model, data)
    assert np.array_equal(head(z).argmax(dim=1).numpy(), _nearest_centroid(model, data, centroids))
    # logits differ from the negative squared distances only by ||z||², the same for every cluster
    shifted = head(z) - z.pow(2).sum(dim=1, keepdim=True)
    torch.testing.assert_close(shifted, -torch.cdist(z, centroids.float()).pow(2), atol=1e-4, rtol=1e-4)


def test_zero_epochs_keep_the_initial_clustering():
    cfg, model, centroids, data = _setup(epochs=0, threshold=0.99)
    expected = _nearest_centroid(model, data, centroids)
    result = self_label(cfg, model, centroids, data, progress=False)
    assert np.array_equal(result.labels, expected)
    assert len(result.history) == 1 and result.history["epoch"].tolist() == [0]
    initial = clustering_metrics(data.y, expected)
    assert {k: result.metrics[k] for k in initial} == initial
    assert result.metrics["initial_acc"] == initial["acc"] and result.metrics["epochs"] == 0
    assert result.metrics["confident_fraction"] is None


def test_training_runs_is_seeded_and_records_history():
    cfg, model, centroids, data = _setup(threshold=0.5)
    expected = _nearest_centroid(model, data, centroids)
    a = self_label(cfg, copy.deepcopy(model), centroids, data, progress=False)
    b = self_label(cfg, copy.deepcopy(model), centroids, data, progress=False)
    h = a.history
    assert h["epoch"].tolist() == [0, 1, 2, 3]
    for column in ("loss", "confident_fraction", "acc", "nmi", "ari", "purity", "cluster_change"):
        assert column in h.columns
    assert h.loc[0, "acc"] == clustering_metrics(data.y, expected)["acc"] and h.loc[0, "cluster_change"] == 0
    assert np.isfinite(h["loss"].iloc[1:]).all() and (h["n_steps"].iloc[1:] > 0).all()
    assert h["confident_fraction"].iloc[1:].between(0, 1).all()
    assert 0 <= a.metrics["confident_fraction"] <= 1
    assert np.array_equal(a.labels, b.labels)
    assert h.drop(columns="time_s").equals(b.history.drop(columns="time_s"))
    assert a.head.weight.shape == (3, 3) and a.labels.shape == (len(data),)


def test_colour_images_and_held_out_evaluation():
    cfg, model, centroids, data = _setup(channels=3, threshold=0.5, epochs=2)
    held_out = DeviceData(_dataset(3, seed=1), "cpu", "channel")
    result = self_label(cfg, model, centroids, data, evaluate=held_out, progress=False)
    assert len(result.history) == 3 and result.labels.shape == (len(held_out),)
    assert np.isfinite(result.history["loss"].iloc[1:]).all()


def test_resume_continues_exactly(tmp_path):
    cfg, model, centroids, data = _setup(threshold=0.5)
    cfg.run.checkpoint_every = 1
    full = self_label(cfg, copy.deepcopy(model), centroids, data, progress=False, checkpoint_dir=tmp_path)
    assert (tmp_path / "resume.pt").is_file()  # the state after epoch 2 of 3
    resumed = self_label(cfg, copy.deepcopy(model), centroids, data, progress=False, checkpoint_dir=tmp_path)
    assert full.metrics["resumed_from_epoch"] == 0
    assert resumed.metrics["resumed_from_epoch"] == 2  # continued, not started over
    assert np.array_equal(full.labels, resumed.labels)
    assert resumed.history["loss"].tolist() == pytest.approx(full.history["loss"].tolist(), nan_ok=True)
    resumed.checkpointer.clear()
    assert not (tmp_path / "resume.pt").exists()


def test_invalid_inputs_raise_training_error():
    cfg, model, centroids, data = _setup()
    bad = centroids.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(TrainingError, match="non-finite"):
        self_label(cfg, model, bad, data, progress=False)
    with pytest.raises(TrainingError, match="dimension"):
        self_label(cfg, model, torch.zeros(3, 5), data, progress=False)
    features = DeviceData(PreparedData("f", np.random.rand(20, 4).astype(np.float32), np.arange(20) % 2, ["a", "b"]))
    with pytest.raises(TrainingError, match="image data"):
        self_label(cfg, model, centroids, features, progress=False)


def test_non_finite_network_names_the_epoch():
    cfg, model, centroids, data = _setup(threshold=0.5)
    with torch.no_grad():
        model.encoder[0].weight[0, 0] = float("inf")
    with pytest.raises(TrainingError, match="epoch"):
        self_label(cfg, model, centroids, data, progress=False)


def test_self_label_loss_by_hand():
    big = 20.0  # softmax of (big, 0, 0) is above 0.99; (1, 0, 0) is not
    weak = torch.tensor([[big, 0, 0], [big, 0, 0], [0, big, 0], [1.0, 0, 0]])
    strong = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [5.0, 0, 0]])
    ce = torch.nn.functional.cross_entropy(strong[:3], torch.tensor([0, 0, 1]), reduction="none")
    plain, n = self_label_loss(weak, strong, 0.99, balanced=False)
    assert n == 3 and plain.item() == pytest.approx(ce.mean().item())
    balanced, n = self_label_loss(weak, strong, 0.99, balanced=True)
    # two classes present: class 0 (two samples) and class 1 (one) weigh one half each
    assert n == 3 and balanced.item() == pytest.approx(0.5 * (ce[0] + ce[1]).item() / 2 + 0.5 * ce[2].item())
    # SCAN's form: class weights n/count inside a weighted mean
    scan = torch.nn.functional.cross_entropy(strong[:3], torch.tensor([0, 0, 1]), weight=torch.tensor([1.5, 3.0, 1.0]))
    assert balanced.item() == pytest.approx(scan.item())
    torch.testing.assert_close(balanced_weights(torch.tensor([0, 0, 1]), 3), torch.tensor([0.75, 0.75, 1.5]))
    none, n = self_label_loss(weak[3:], strong[3:], 0.99, balanced=True)
    assert n == 0 and none.item() == 0.0 and not none.requires_grad


def test_cutout_erases_one_square_per_image():
    cut = Cutout(3, fill=0.0, generator=torch.Generator().manual_seed(0))
    centres = torch.tensor([[4, 4], [1, 6]])
    mask = cut.mask(centres, 8, 8)
    assert mask.shape == (2, 1, 8, 8) and mask.sum(dim=(1, 2, 3)).tolist() == [9, 9]
    assert mask[0, 0, 3:6, 3:6].all() and mask[1, 0, 0:3, 5:8].all()
    assert cut.mask(torch.tensor([[0, 0]]), 8, 8).sum() == 4  # clipped at the border
    x = torch.ones(50, 3, 8, 8)
    out = cut(x)
    erased = (out == 0).all(dim=1)  # all channels of an erased pixel
    assert ((out == 0) == erased.unsqueeze(1)).all()
    counts = erased.sum(dim=(1, 2))
    assert ((counts >= 4) & (counts <= 9)).all() and (counts == 9).any()
    rows, cols = erased.any(dim=2).sum(dim=1), erased.any(dim=1).sum(dim=1)
    assert torch.equal(rows * cols, counts)  # each erased region is one rectangle
    again = Cutout(3, generator=torch.Generator().manual_seed(0))(x)
    assert torch.equal(out, again)
    assert torch.equal(Cutout(0)(x), x)
