"""Short real training runs on the bundled digits (CPU, seconds)."""

import copy

import numpy as np
import pytest
import torch

from brb.config import make_config
from brb.data import load_prepared, prepare_dataset
from brb.data.augment import RandomAffine
from brb.data.tensors import DeviceData
from brb.methods.centroid import ClusterTrainer, TrainingError, run_clustering
from brb.methods.reconstruction import pretrain_autoencoder

SMALL = {"model": {"hidden": [128, 64]}, "run": {"threads": 1}}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    prepare_dataset("digits", path)
    return load_prepared(path)


@pytest.fixture(scope="module")
def pretrained(digits):
    cfg = make_config({**SMALL, "pretrain": {"epochs": 25, "batch_size": 64}})
    result = pretrain_autoencoder(cfg, digits, progress=False)
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]
    return result.model


def test_device_data_normalises_per_channel(digits):
    data = DeviceData(digits, "cpu", "channel")
    x = torch.cat(list(data.iter_batches(500)))
    assert x.shape == (1797, 1, 8, 8)
    assert x.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert x.std().item() == pytest.approx(1.0, abs=1e-3)
    assert data.x.dtype == torch.uint8  # stored compactly, converted per batch
    resized = DeviceData(digits, "cpu", "channel", resize=16)
    assert resized.sample_shape == (1, 16, 16)


def test_random_affine_is_seeded_and_keeps_shape():
    x = torch.rand(5, 1, 8, 8)
    a = RandomAffine(16, 0.1, 8, generator=torch.Generator().manual_seed(0))(x)
    b = RandomAffine(16, 0.1, 8, generator=torch.Generator().manual_seed(0))(x)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    identity = RandomAffine(0, 0, 0)(x)
    torch.testing.assert_close(identity, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("algorithm", ["dec", "idec", "dcn"])
def test_clustering_beats_chance_and_brb_fires(digits, pretrained, algorithm):
    cfg = make_config(
        {
            **SMALL,
            "cluster": {"algorithm": algorithm, "epochs": 6, "batch_size": 64, "kmeans_n_init": 3},
            "brb": {"variant": "brb", "interval": 2, "subsample": 1000, "kmeans_n_init": 3},
        }
    )
    result = run_clustering(cfg, digits, copy.deepcopy(pretrained), progress=False)
    h = result.history
    assert len(h) == 7 and list(h["epoch"]) == list(range(7))
    assert list(h.loc[h["brb"], "epoch"]) == [2, 4]
    assert result.metrics["brb_epochs"] == [2, 4]
    assert result.metrics["acc"] > 0.5  # chance is 0.1
    assert result.labels.shape == (1797,)
    assert result.centroids.shape == (10, 10)
    assert np.isnan(h["loss"].iloc[0]) and np.isfinite(h["loss"].iloc[1:]).all()
    assert h["cluster_change"].between(0, 1).all()


def test_same_seed_gives_identical_labels(digits, pretrained):
    cfg = make_config(
        {**SMALL, "cluster": {"algorithm": "idec", "epochs": 3, "augment": True}, "brb": {"variant": "brb", "interval": 1}}
    )
    a = run_clustering(cfg, digits, copy.deepcopy(pretrained), progress=False)
    b = run_clustering(cfg, digits, copy.deepcopy(pretrained), progress=False)
    assert np.array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.history["acc"], b.history["acc"])
    other = make_config({**SMALL, "cluster": {"algorithm": "idec", "epochs": 3, "augment": True}, "run": {"seed": 1}})
    c = run_clustering(other, digits, copy.deepcopy(pretrained), progress=False)
    assert not np.array_equal(a.history["loss"].to_numpy()[1:], c.history["loss"].to_numpy()[1:])


def test_baseline_never_fires_and_reset_only_keeps_centroids(digits, pretrained):
    base = make_config({**SMALL, "cluster": {"epochs": 3}, "brb": {"variant": "baseline", "interval": 1}})
    assert not run_clustering(base, digits, copy.deepcopy(pretrained), progress=False).history["brb"].any()
    cfg = make_config({**SMALL, "cluster": {"algorithm": "dcn", "epochs": 0}, "brb": {"variant": "reset"}})
    trainer = ClusterTrainer(cfg, digits, copy.deepcopy(pretrained))
    before = trainer.objective.centroids.clone()
    trainer.apply_brb(1)
    torch.testing.assert_close(trainer.objective.centroids, before)  # reset-only: no reclustering
    cfg = make_config({**SMALL, "cluster": {"algorithm": "dcn", "epochs": 0}, "brb": {"variant": "recluster"}})
    trainer = ClusterTrainer(cfg, digits, copy.deepcopy(pretrained))
    weights = copy.deepcopy(trainer.model.state_dict())
    trainer.objective.centroids.add_(5.0)
    trainer.apply_brb(1)
    assert (trainer.objective.centroids - before).abs().max() < 5.0  # re-found on the embedding
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, weights[key])  # recluster-only: network untouched


def test_nan_loss_stops_with_named_epoch(digits):
    cfg = make_config({**SMALL, "cluster": {"algorithm": "idec", "epochs": 2, "lr": 1e30}})
    with pytest.raises(TrainingError, match=r"non-finite .* loss .* at epoch \d"):
        run_clustering(cfg, digits, progress=False)


def test_more_clusters_than_samples_rejected(digits):
    cfg = make_config({**SMALL, "cluster": {"n_clusters": 5000}})
    with pytest.raises(TrainingError, match="n_clusters=5000 exceeds the number of samples"):
        ClusterTrainer(cfg, digits)


@pytest.mark.slow
def test_default_digits_settings_beat_kmeans_on_raw_pixels(digits):
    """The default study's settings (config.yaml, the BRB code's step), one seed: every algorithm's baseline
    above k-means on raw pixels. (With BRB, DCN on seed 0 ends at 76.5 %, below pixels' 79.2 %: see
    docs/results, digits with the BRB code's step.)"""
    import yaml
    from sklearn.cluster import KMeans

    from brb.config import deep_merge
    from brb.metrics import cluster_acc

    study = yaml.safe_load((__import__("pathlib").Path(__file__).parents[1] / "config.yaml").read_text())
    x = digits.x.reshape(len(digits.x), -1).astype(float)
    kmeans_acc = cluster_acc(digits.y, KMeans(10, n_init=10, random_state=0).fit(x).labels_)
    assert 0.7 < kmeans_acc < 0.85
    base = deep_merge(study["settings"], {"run": {"seed": 0, "threads": 1}})
    model = pretrain_autoencoder(make_config(base), digits, progress=False).model
    for algorithm in ("dec", "idec", "dcn"):
        values = deep_merge(base, study["algorithm_settings"].get(algorithm, {}))
        values = deep_merge(values, {"cluster": {"algorithm": algorithm}, "brb": {"variant": "baseline"}})
        result = run_clustering(make_config(values), digits, copy.deepcopy(model), progress=False)
        assert result.metrics["acc"] > kmeans_acc, (algorithm, result.metrics["acc"], kmeans_acc)


def test_colour_augment_views_are_valid_and_seeded():
    from brb.data.augment import ColourAugment

    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 16)
    make = lambda: ColourAugment(grey_p=0.5, solarize_p=0.5, generator=torch.Generator().manual_seed(3))
    a, b = make()(x), make()(x)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert a.min() >= 0 and a.max() <= 1
    grey = (a[:, 0] == a[:, 1]).all(dim=(1, 2)) & (a[:, 1] == a[:, 2]).all(dim=(1, 2))
    assert 10 < int(grey.sum()) < 54  # about half the views are greyscale
    # no crop, no flip, no colour change: the identity
    ident = ColourAugment(crop_scale=(1.0, 1.0), flip=False, jitter_p=0, grey_p=0)
    ident.crop_matrices = lambda n, device: torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]).repeat(n, 1, 1)
    torch.testing.assert_close(ident(x), x, atol=1e-5, rtol=0)
    jitter_only = ColourAugment(jitter=(0, 0, 0, 0), jitter_p=1, grey_p=0)
    jitter_only.crop_matrices = ident.crop_matrices
    torch.testing.assert_close(jitter_only(x), x, atol=1e-5, rtol=0)  # zero strengths change nothing
    with pytest.raises(ValueError, match="image batches"):
        make()(torch.rand(2, 2, 8, 8))
    # grey images: crops, brightness and contrast (no hue, no greyscale step), still in [0, 1]
    g = torch.rand(32, 1, 8, 8)
    grey_views = ColourAugment((0.3, 1.0), flip=False, jitter=(0.4, 0.4, 0, 0), grey_p=0,
                               generator=torch.Generator().manual_seed(1))(g)
    assert grey_views.shape == g.shape and not torch.equal(grey_views, g)
    assert grey_views.min() >= 0 and grey_views.max() <= 1
    bright = ColourAugment(jitter=(0.5, 0, 0, 0), jitter_p=1, grey_p=0)
    bright.crop_matrices = ident.crop_matrices
    ratio = bright(g * 0.5) / (g * 0.5).clamp_min(1e-6)  # brightness scales each image by one factor
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-3)
