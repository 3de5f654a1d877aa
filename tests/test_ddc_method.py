"""DDC / DDC-UCO / DDC-AE and DEC-UCO as engine methods (brb/methods/ddc.py, brb/methods/dec.py: DECUCO): options,
training on data where the answer is known, the lowest-loss selection, the mismatch diagnostic, resume, BRB."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brb.config import make_config
from brb.data.prepared import PreparedData
from brb.methods.centroid import clustering_trainer, run_clustering
from brb.methods.ddc import DDC, DDCHead
from brb.registry import REGISTRY


def blobs(n: int = 100, seed: int = 0) -> PreparedData:
    """Three separated 2-d Gaussian blobs (centres (−6, 0), (6, 0), (0, 6), std 1), as tk-uco's blobs check."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    x = np.concatenate([c + rng.standard_normal((n, 2)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(3), n)
    return PreparedData("blobs", x, y, ["a", "b", "c"])


def config(algorithm: str = "ddc", epochs: int = 3, **cluster):
    return make_config({
        "data": {"normalize": "none"},
        "model": {"arch": "mlp", "hidden": [32, 32], "embedding_dim": 16, "batch_norm": True},
        "cluster": {"algorithm": algorithm, "epochs": epochs, "batch_size": 100, "drop_last": True, **cluster},
        "run": {"seed": 0, "threads": 1, "checkpoint_every": 1},
    })


def test_the_three_ddc_models_and_their_options():
    assert clustering_trainer("ddc") is DDC and clustering_trainer("dec").__name__ == "ClusterTrainer"
    ddc, uco, ae = (make_config({"cluster": {"algorithm": a}}).cluster for a in ("ddc", "ddc_uco", "ddc_ae"))
    assert (ddc.lr, ddc.uco_weight, ddc.reconstruction_weight, ddc.clipnorm) == (1e-3, 0.0, 0.0, 10.0)
    assert (uco.lr, uco.uco_weight, uco.reconstruction_weight) == (1e-4, 0.01, 0.0)
    assert (ae.lr, ae.uco_weight, ae.reconstruction_weight) == (1e-3, 0.0, 0.1)
    assert ddc.dec_alpha is None and ddc.dcn_update is None  # other methods' keys did not run
    assert make_config({"cluster": {"algorithm": "dec_uco"}}).cluster.lr == 1e-4
    assert {"cluster_head"} <= REGISTRY.entry("method", "ddc").tags


def test_reseeded_head_assigns_the_nearest_centroid():
    torch.manual_seed(0)
    head = DDCHead(5, 4, hidden=6)
    centroids = torch.randn(4, 6) * 3
    head.reseed(centroids)
    h = torch.randn(50, 6) * 3
    a = torch.softmax(head.out(h), dim=1)
    assert torch.equal(a.argmax(dim=1), torch.cdist(h, centroids).argmin(dim=1))


def test_ddc_separates_three_blobs():
    result = run_clustering(config(epochs=20, batch_size=30), blobs(), progress=False)
    # k-means gets all 300 right; this small head may leave a point of the blobs' tails on the wrong side
    assert result.metrics["acc"] >= 0.99 and result.metrics["nmi"] >= 0.95 and result.metrics["rand_index"] >= 0.99
    assert result.metrics["n_nonempty_clusters"] == 3
    h = result.history
    assert np.isfinite(h["loss"].iloc[1:]).all() and h["loss"].iloc[-1] < h["loss"].iloc[1]
    assert h["ofm"].isna().all()  # plain DDC has no companion terms


def test_lowest_loss_state_is_the_one_reported():
    result = run_clustering(config(epochs=6, eval_every=2), blobs(), progress=False)
    h = result.history.set_index("epoch")
    evaluated = h["eval_loss"].dropna()
    assert list(evaluated.index) == [2, 4, 6]
    best = int(evaluated.idxmin())
    assert result.metrics["selected_epoch"] == best
    assert result.metrics["selected_loss"] == pytest.approx(evaluated.min())
    assert result.metrics["acc"] == pytest.approx(h.loc[best, "acc"])
    last = run_clustering(config(epochs=6, eval_every=2, select="last"), blobs(), progress=False)
    assert last.metrics["selected_epoch"] == 6 and last.metrics["acc"] == pytest.approx(h.loc[6, "acc"])


def test_companion_terms_and_mismatch_diagnostic_on_vectors():
    """DDC-UCO with the naive kernel on the MLP's last two blocks, DDC-AE with reconstruction: both log a finite
    cosine in [-1, 1] every ofm_every epochs; their companion losses are in the history."""
    for algorithm, term in (("ddc_uco", "loss_uco"), ("ddc_ae", "loss_reconstruction")):
        result = run_clustering(config(algorithm, epochs=2, ofm_every=1, ofm_batches=2), blobs(), progress=False)
        h = result.history
        assert (h[term].iloc[1:] > 0).all(), algorithm
        ofm = h["ofm"].iloc[1:]
        assert ofm.notna().all() and ((ofm >= -1) & (ofm <= 1)).all(), algorithm
        assert result.metrics["final_ofm"] == pytest.approx(ofm.iloc[-1])


def test_resume_continues_and_does_not_start_over(tmp_path):
    cfg = config("ddc_uco", epochs=3)
    full = run_clustering(cfg, blobs(), progress=False, checkpoint_dir=tmp_path)
    assert (tmp_path / "resume.pt").is_file()  # the state after epoch 2 of 3
    resumed = run_clustering(cfg, blobs(), progress=False, checkpoint_dir=tmp_path)
    assert full.metrics["resumed_from_epoch"] == 0 and resumed.metrics["resumed_from_epoch"] == 2
    assert resumed.history["loss"].tolist() == pytest.approx(full.history["loss"].tolist(), nan_ok=True)
    assert resumed.metrics["selected_epoch"] == full.metrics["selected_epoch"]
    assert np.array_equal(full.labels, resumed.labels)


def test_brb_on_ddc_resets_and_reseeds_the_head_but_has_no_momentum_reset():
    cfg = make_config({**config(epochs=4).to_dict(), "brb": {"variant": "reset_recluster", "interval": 2}})
    trainer = DDC(cfg, blobs())
    before = trainer.head.out.weight.detach().clone()
    result = trainer.fit(progress=False)
    assert result.metrics["brb_epochs"] == [2]
    assert not torch.equal(before, trainer.head.out.weight)
    cfg = make_config({**config(epochs=2).to_dict(), "brb": {"variant": "brb", "interval": 1}})
    with pytest.raises(TypeError, match="momentum_reset needs .*HasCentroids"):
        DDC(cfg, blobs()).fit(progress=False)


def test_dec_uco_adds_the_companion_term_and_refreshes_its_target_at_the_interval(monkeypatch):
    from brb.methods.dec import DECUCO

    calls = []
    original = DECUCO.full_target
    monkeypatch.setattr(DECUCO, "full_target", lambda self, z: calls.append(1) or original(self, z))
    cfg = config("dec_uco", epochs=5, target="dataset", target_every=2)
    result = run_clustering(cfg, blobs(), progress=False)
    assert len(calls) == 3  # epochs 0, 2, 4 (of 0..4)
    assert (result.history["loss_uco"].iloc[1:] > 0).all()
    assert result.history["loss"].iloc[1:].tolist() == pytest.approx(
        (result.history["loss_cluster"] + 0.01 * result.history["loss_uco"]).iloc[1:].tolist(), rel=1e-4)


def test_lowest_loss_table_reports_the_run_with_the_lowest_loss():
    import pandas as pd

    from brb.report.tables import lowest_loss_table

    df = pd.DataFrame({
        "dataset": "digits", "arch": "cnn_small", "algorithm": "ddc", "variant": "baseline", "seed": [0, 1, 2],
        "acc": [0.6, 0.7, 0.8], "nmi_geometric": [0.5, 0.6, 0.7], "rand_index": [0.8, 0.85, 0.9],
        "ari": [0.4, 0.5, 0.6], "selected_loss": [0.9, 0.3, 0.5],
    })
    table = lowest_loss_table(df)
    row = table.iloc[0]
    assert row["lowest-loss seed"] == 1 and row["ACC (lowest loss)"] == "70.00"
    assert row["ACC"] == "70.00 ± 10.00" and row["Rand (lowest loss)"] == "85.00"
    with pytest.raises(ValueError, match="selected_loss"):
        lowest_loss_table(df.drop(columns="selected_loss"))


def test_objective_mismatch_plot(tmp_path):
    import pandas as pd

    from brb.report.plots import objective_mismatch_data, plot_objective_mismatch

    nan = float("nan")
    hist = pd.DataFrame({
        "algorithm": ["ddc_uco"] * 6 + ["ddc_ae"] * 3, "variant": "baseline",
        "seed": [0, 0, 0, 1, 1, 1, 0, 0, 0], "epoch": [0, 1, 2] * 3,
        "ofm": [nan, 0.2, 0.4, nan, 0.4, 0.6, nan, -0.1, 0.1], "acc": 0.5,
    })
    data = objective_mismatch_data(hist).set_index(["label", "epoch"])
    assert data.loc[("ddc_uco / baseline", 2), "mean"] == pytest.approx(0.5)
    assert data.loc[("ddc_ae / baseline", 1), "n_runs"] == 1
    assert plot_objective_mismatch(hist, tmp_path / "ofm.png").stat().st_size > 1000


def test_subset_is_one_fixed_draw_for_every_run():
    from brb.data.prepared import subset_of
    from brb.engine.common import device_splits

    data = blobs()
    a, b = subset_of(data, 50), subset_of(data, 50)
    assert len(a) == 50 and np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert subset_of(data, 10_000) is data
    cfg = make_config({"data": {"subset": 60, "normalize": "none"}})
    train, evaluation = device_splits(cfg, data, "cpu")
    assert len(train) == 60 and train is evaluation and np.array_equal(train.y, subset_of(data, 60).y)


def test_a_subset_run_is_evaluated_and_its_pixel_baseline_drawn_on_the_same_rows(tmp_path):
    import json

    from brb.cli import main
    from brb.data import prepare_dataset

    data = prepare_dataset("digits", tmp_path / "digits.npz")
    run, base = tmp_path / "run", tmp_path / "pixels"
    assert main(["cluster", "--data", str(data), "--out", str(run), "--data.subset", "300", "--cluster.epochs", "1",
                 "--model.hidden", "[32]", "--quiet"]) == 0
    assert main(["evaluate", "--run", str(run), "--data", str(data)]) == 0
    metrics, evaluation = (json.loads((run / f).read_text()) for f in ("metrics.json", "evaluation.json"))
    assert evaluation["acc"] == pytest.approx(metrics["acc"]) and sum(evaluation["cluster_sizes"]) == 300
    assert main(["kmeans", "--data", str(data), "--out", str(base), "--data.subset", "300"]) == 0
    assert main(["evaluate", "--run", str(base), "--data", str(data)]) == 0
    assert np.load(base / "labels.npy").shape == (300,)
