"""Tests of brb.report on fake run directories with known scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brb.report import (
    brb_epochs,
    canonical_dataset,
    collect_histories,
    collect_runs,
    format_mean_std,
    learning_curve_data,
    paper_style_table,
    paper_vs_ours,
    plot_cluster_change,
    plot_final_acc,
    plot_learning_curves,
    read_published,
    reference_path,
    summary_table,
    write_metrics_parquet,
    write_tables,
)

DATASETS = ("mnist", "usps")
ALGORITHMS = ("dec", "idec")
VARIANTS = ("baseline", "brb")
SEEDS = (0, 1, 2)
N_EPOCHS = 10
BRB_AT = (4, 8)

# (dataset, algorithm, variant) -> (centre, spread) in percent; the three seeds get
# centre - spread, centre, centre + spread, so mean = centre and sample std = spread exactly.
CELLS = {
    ("mnist", "dec", "baseline"): (97.75, 0.50),  # fake paper 87.97 ± 3.26 -> +3 std
    ("mnist", "dec", "brb"): (93.55, 1.95),  # equals the paper cell
    ("mnist", "idec", "baseline"): (70.00, 1.00),
    ("mnist", "idec", "brb"): (80.00, 2.00),  # fake paper 85.38 ± 2.47 -> -2.18 std
    ("usps", "dec", "baseline"): (62.42, 1.50),  # fake paper 60.29 ± 2.13 -> +1 std
    ("usps", "dec", "brb"): (74.20, 0.30),
    ("usps", "idec", "baseline"): (55.00, 2.50),
    ("usps", "idec", "brb"): (50.00, 0.25),
}

FAKE_REFERENCE = """\
# fake published numbers (percent), in the long format of published.csv
source,block,method,variant,dataset,metric,mean,std,note
x,main,dec,baseline,MNIST,acc,87.97,3.26,
x,main,dec,brb,mnist,acc,93.55,1.95,
x,main,dec,baseline,usps,acc,60.29,2.13,
x,main,dec,brb,usps,acc,74.20,1.66,
x,main,idec,brb,mnist,acc,85.38,2.47,
x,main,dec,baseline,fmnist,acc,58.30,1.50,
x,plus_pretrain,dec,baseline,mnist,acc,97.75,1.00,
y,other,dec,baseline,mnist,acc,90.0,,
y,other,dec,baseline,mnist,nmi,80.0,,
"""


def _acc(dataset: str, algorithm: str, variant: str, seed: int) -> float:
    centre, spread = CELLS[(dataset, algorithm, variant)]
    return (centre + (seed - 1) * spread) / 100.0


def _write_run(
    root: Path, dataset: str, algorithm: str, variant: str, seed: int, acc: float, history: bool = True
) -> Path:
    run_dir = root / f"{dataset}_{algorithm}_{variant}_s{seed}"
    run_dir.mkdir(parents=True)
    metrics = {
        "dataset": dataset,
        "arch": "mlp",
        "algorithm": algorithm,
        "variant": variant,
        "seed": seed,
        "epochs": N_EPOCHS,
        "acc": acc,
        "nmi": acc - 0.10,
        "ari": acc - 0.20,
        "purity": acc + 0.01,
        "n_clusters": 10,
        "n_nonempty_clusters": 10 if variant == "brb" else 9,
        "wall_time_s": 12.5 + seed,
        "pretrained": f"pretrain/{dataset}_s{seed}/ae.pt",
        "config": {
            "brb": {"interval": 20, "alpha": 0.8, "enabled": variant == "brb"},
            "cluster": {"augment": True, "lr": 1e-3},
            "model": {"dims": [1024, 512, 256, 10]},
            "extra": {},
        },
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if history:
        epochs = np.arange(N_EPOCHS + 1)
        hist = pd.DataFrame(
            {
                "epoch": epochs,
                "acc": np.linspace(0.5, acc, N_EPOCHS + 1),
                "nmi": np.linspace(0.4, acc - 0.1, N_EPOCHS + 1),
                "ari": np.linspace(0.3, acc - 0.2, N_EPOCHS + 1),
                "loss": np.r_[np.nan, np.linspace(1.0, 0.1, N_EPOCHS)],
                "loss_cluster": np.r_[np.nan, np.linspace(0.5, 0.05, N_EPOCHS)],
                "loss_reconstruction": np.r_[np.nan, np.linspace(0.5, 0.05, N_EPOCHS)],
                "cluster_change": np.r_[0.0, np.linspace(0.2, 0.0, N_EPOCHS)],
                "brb": [variant == "brb" and e in BRB_AT for e in epochs],
                "n_empty_clusters": np.zeros(N_EPOCHS + 1, dtype=int),
            }
        )
        hist.to_parquet(run_dir / "history.parquet", index=False)
    return run_dir


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for d in DATASETS:
        for a in ALGORITHMS:
            for v in VARIANTS:
                for s in SEEDS:
                    _write_run(root, d, a, v, s, _acc(d, a, v, s))
    return root


@pytest.fixture(scope="module")
def runs(run_root) -> pd.DataFrame:
    return collect_runs(sorted(run_root.glob("*/metrics.json")))


@pytest.fixture()
def fake_reference(tmp_path) -> Path:
    path = tmp_path / "ref.csv"
    path.write_text(FAKE_REFERENCE)
    return path


def _cell(table: pd.DataFrame, **keys) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for k, v in keys.items():
        mask &= (table[k] == v).to_numpy()
    assert mask.sum() == 1, f"expected one row for {keys}, got {mask.sum()}"
    return table[mask].iloc[0]


def _no_temp_files(directory: Path) -> bool:
    return not any(p.name.startswith(".") and ".tmp" in p.name for p in directory.iterdir())


# ----------------------------------------------------------------------------- aggregate


def test_collect_runs_rows_and_columns(runs, run_root):
    assert len(runs) == len(DATASETS) * len(ALGORITHMS) * len(VARIANTS) * len(SEEDS) == 24
    for col in ("dataset", "arch", "algorithm", "variant", "seed", "epochs", "acc", "nmi", "ari", "purity",
                "n_clusters", "n_nonempty_clusters", "wall_time_s", "run_dir"):
        assert col in runs.columns
    assert runs["config.brb.interval"].eq(20).all()
    assert runs["config.brb.alpha"].eq(0.8).all()
    assert runs["config.cluster.augment"].eq(True).all()
    assert runs["config.cluster.lr"].eq(1e-3).all()
    assert runs["config.model.dims"].eq("[1024, 512, 256, 10]").all()
    assert not any(c.startswith("config.extra") for c in runs.columns)
    row = _cell(runs, dataset="usps", algorithm="idec", variant="brb", seed=2)
    assert row["acc"] == pytest.approx(0.5025)
    assert row["nmi"] == pytest.approx(0.4025)
    assert row["n_nonempty_clusters"] == 10
    assert Path(row["run_dir"]) == run_root / "usps_idec_brb_s2"
    assert not row["evaluated"]
    assert math.isnan(row["silhouette"])
    # sorted by identity
    assert list(runs["seed"][:3]) == [0, 1, 2]


def test_collect_runs_accepts_directories(run_root):
    dirs = sorted(p for p in run_root.iterdir() if p.is_dir())[:2]
    df = collect_runs(dirs)
    assert len(df) == 2


def test_evaluation_json_overrides_metrics(tmp_path):
    run_dir = _write_run(tmp_path, "mnist", "dec", "brb", 0, 0.5, history=False)
    (run_dir / "evaluation.json").write_text(json.dumps({"acc": 0.75, "nmi": 0.6, "ari": 0.55, "purity": 0.8,
                                                        "silhouette": 0.1}))
    row = collect_runs([run_dir / "metrics.json"]).iloc[0]
    assert row["acc"] == pytest.approx(0.75)
    assert row["nmi"] == pytest.approx(0.6)
    assert row["purity"] == pytest.approx(0.8)
    assert row["silhouette"] == pytest.approx(0.1)
    assert row["evaluated"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"dataset": "mnist", "arch": "mlp", "algorithm": "dec", "variant": "brb", "seed": 0,
                     "acc": 0.5, "nmi": 0.5}), "missing key"),
        (json.dumps({"dataset": "mnist", "arch": "mlp", "algorithm": "dec", "variant": "brb", "seed": 0,
                     "acc": 93.5, "nmi": 0.5, "ari": 0.5}), "outside"),
        (json.dumps({"dataset": "mnist", "arch": "mlp", "algorithm": "dec", "variant": "brb", "seed": "x",
                     "acc": 0.5, "nmi": 0.5, "ari": 0.5}), "integer"),
    ],
)
def test_collect_runs_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad_run" / "metrics.json"
    path.parent.mkdir()
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        collect_runs([path])
    assert str(path) in str(info.value)


def test_invalid_evaluation_json_named(tmp_path):
    run_dir = _write_run(tmp_path, "mnist", "dec", "brb", 0, 0.5, history=False)
    (run_dir / "evaluation.json").write_text("{")
    with pytest.raises(ValueError, match="evaluation.json"):
        collect_runs([run_dir])


def test_write_metrics_parquet_roundtrip(runs, tmp_path):
    out = tmp_path / "agg" / "runs.parquet"
    assert write_metrics_parquet(runs, out) == out
    back = pd.read_parquet(out)
    assert len(back) == len(runs)
    assert list(back.columns) == list(runs.columns)
    np.testing.assert_allclose(back["acc"], runs["acc"])
    assert _no_temp_files(out.parent)


# ----------------------------------------------------------------------------- tables


def test_summary_table_means_and_stds(runs):
    table = summary_table(runs)
    assert len(table) == len(CELLS) == 8
    assert table["n_seeds"].eq(3).all()
    for (d, a, v), (centre, spread) in CELLS.items():
        row = _cell(table, dataset=d, arch="mlp", algorithm=a, variant=v)
        assert row["acc_mean"] == pytest.approx(centre, abs=1e-9)
        assert row["acc_std"] == pytest.approx(spread, abs=1e-9)
        assert row["nmi_mean"] == pytest.approx(centre - 10, abs=1e-9)
        assert row["ari_mean"] == pytest.approx(centre - 20, abs=1e-9)
        assert row["purity_mean"] == pytest.approx(centre + 1, abs=1e-9)
        assert row["purity_std"] == pytest.approx(spread, abs=1e-9)
    row = _cell(table, dataset="mnist", algorithm="dec", variant="brb")
    assert row["ACC"] == "93.55 ± 1.95"
    assert row["NMI"] == "83.55 ± 1.95"
    # display order: datasets as in the paper, dec before idec, baseline before brb
    assert list(table[["dataset", "algorithm", "variant"]].iloc[0]) == ["mnist", "dec", "baseline"]
    assert list(table[["dataset", "algorithm", "variant"]].iloc[-1]) == ["usps", "idec", "brb"]


def test_summary_table_options(runs):
    pop = summary_table(runs, ddof=0, decimals=1)
    row = _cell(pop, dataset="mnist", algorithm="dec", variant="brb")
    assert row["acc_std"] == pytest.approx(1.95 * math.sqrt(2 / 3), abs=1e-9)
    assert _cell(pop, dataset="mnist", algorithm="idec", variant="brb")["ACC"] == "80.0 ± 1.6"
    one_seed = summary_table(runs[runs["seed"] == 0])
    assert one_seed["n_seeds"].eq(1).all()
    assert _cell(one_seed, dataset="mnist", algorithm="dec", variant="brb")["ACC"] == "91.60"


def test_summary_warns_on_duplicate_seeds(runs):
    doubled = pd.concat([runs, runs[runs["seed"] == 0]], ignore_index=True)
    with pytest.warns(UserWarning, match="same seed"):
        table = summary_table(doubled)
    assert _cell(table, dataset="mnist", algorithm="dec", variant="brb")["n_runs"] == 4


def test_format_mean_std():
    assert format_mean_std(93.5512, 1.9488) == "93.55 ± 1.95"
    assert format_mean_std(50.0, float("nan")) == "50.00"
    assert format_mean_std(float("nan"), 1.0) == "–"
    assert format_mean_std(50.0, 1.0, decimals=1) == "50.0 ± 1.0"


def test_write_tables_formats(runs, tmp_path):
    paths = write_tables(summary_table(runs), tmp_path / "tables", "summary", caption="Summary 100%")
    assert set(paths) == {"md", "csv", "tex"}
    for ext, path in paths.items():
        assert path == tmp_path / "tables" / f"summary.{ext}"
        assert path.stat().st_size > 0
    md = paths["md"].read_text()
    assert "| mnist | mlp | dec | brb | 3 | 93.55 ± 1.95 | 83.55 ± 1.95 |" in md
    assert md.count("\n") == 2 + 8
    csv = pd.read_csv(paths["csv"])
    assert len(csv) == 8
    assert "93.55 ± 1.95" in paths["csv"].read_text()
    assert "acc_mean" in csv.columns and "ACC" in csv.columns
    tex = paths["tex"].read_text()
    assert r"93.55 $\pm$ 1.95" in tex
    assert "±" not in tex
    assert r"n\_seeds" in tex
    assert r"\caption{Summary 100\%}" in tex
    assert r"\label{tab:summary}" in tex
    assert tex.count(r"\\") == 1 + 8
    assert _no_temp_files(tmp_path / "tables")


def test_paper_style_table(runs, tmp_path):
    wide = paper_style_table(runs)
    assert list(wide.columns) == ["algorithm", "variant", "mnist", "usps"]
    assert [tuple(r) for r in wide[["algorithm", "variant"]].to_numpy()] == [
        ("dec", "baseline"), ("dec", "brb"), ("idec", "baseline"), ("idec", "brb")
    ]
    assert _cell(wide, algorithm="dec", variant="brb")["mnist"] == "93.55 ± 1.95"
    assert _cell(wide, algorithm="idec", variant="brb")["usps"] == "50.00 ± 0.25"
    # a missing cell stays empty
    partial = paper_style_table(runs[~((runs["dataset"] == "usps") & (runs["algorithm"] == "idec"))])
    assert _cell(partial, algorithm="idec", variant="brb")["usps"] == ""
    paths = write_tables(wide, tmp_path, "paper_style")
    assert "| dec | brb | 93.55 ± 1.95 | 74.20 ± 0.30 |" in paths["md"].read_text()


def test_paper_vs_ours_marks(runs, fake_reference, tmp_path):
    cmp = paper_vs_ours(runs, fake_reference, block="main")
    # cells in both: dec/{baseline,brb}/{mnist,usps} and idec/brb/mnist; fmnist and plus_pretrain unused
    assert len(cmp) == 5
    far = _cell(cmp, algorithm="dec", variant="baseline", dataset="mnist")
    assert far["paper_mean"] == pytest.approx(87.97)
    assert far["ours_mean"] == pytest.approx(97.75)
    assert far["diff_std"] == pytest.approx(3.0, abs=1e-9)
    assert far["mark"] == "✗"
    near = _cell(cmp, algorithm="dec", variant="baseline", dataset="usps")
    assert near["diff_std"] == pytest.approx(1.0, abs=1e-9)
    assert near["mark"] == "✓"
    same = _cell(cmp, algorithm="dec", variant="brb", dataset="mnist")
    assert same["diff_std"] == pytest.approx(0.0, abs=1e-9)
    assert same["Paper"] == same["Ours"] == "93.55 ± 1.95"
    assert same["n_seeds"] == 3
    below = _cell(cmp, algorithm="idec", variant="brb", dataset="mnist")
    assert below["diff_std"] == pytest.approx((80.0 - 85.38) / 2.47, abs=1e-9)
    assert below["mark"] == "✗"
    assert below["Δ (σ)"] == "-2.18"
    assert list(cmp["mark"]).count("✗") == 2

    paths = write_tables(cmp, tmp_path, "paper_vs_ours")
    md = paths["md"].read_text()
    assert "| dec | baseline | mnist | 87.97 ± 3.26 | 97.75 ± 0.50 | 3 | +3.00 | ✗ |" in md
    assert "| dec | baseline | usps | 60.29 ± 2.13 | 62.42 ± 1.50 | 3 | +1.00 | ✓ |" in md
    tex = paths["tex"].read_text()
    assert r"$\times$" in tex and r"$\surd$" in tex and r"$\Delta$ ($\sigma$)" in tex
    assert "87.97 ± 3.26" in paths["csv"].read_text()


def test_paper_vs_ours_block_and_threshold(runs, fake_reference):
    other = paper_vs_ours(runs, fake_reference, block="plus_pretrain")
    assert len(other) == 1
    assert other.iloc[0]["mark"] == "✓"
    lenient = paper_vs_ours(runs, fake_reference, threshold=3.5)
    assert set(lenient["mark"]) == {"✓"}
    with pytest.raises(ValueError, match="no block"):
        paper_vs_ours(runs, fake_reference, block="nope")


def test_packaged_published_numbers():
    path = reference_path("published.csv")
    ae = read_published(path, block="main")
    assert len(ae) == 3 * 4 * 6 and set(ae["metric"]) == {"acc"} and ae["std"].notna().all()
    assert set(ae["dataset"]) == {"mnist", "fmnist", "kmnist", "usps", "optdigits", "gtsrb"}
    assert len(read_published(path, source="brb2024").query("block != 'contrastive'")) == 2 * 72
    con = read_published(path, block="contrastive")
    assert set(con["dataset"]) == {"cifar10", "cifar100-20"} and con["std"].isna().all()
    gcc = con[(con["method"] == "gcc") & (con["dataset"] == "cifar10")]
    assert gcc["metric"].tolist() == ["acc"]  # its NMI and ARI were not reported: no rows
    # SimCLR + k-means is our k-means baseline on the pretrained network
    kmeans = con[(con["method"] == "kmeans") & (con["variant"] == "pretrained") & (con["metric"] == "acc")]
    assert kmeans.set_index("dataset")["mean"].to_dict() == {"cifar10": 68.97, "cifar100-20": 37.22}
    propos = read_published(path, source="propos2022")
    assert propos.query("method == 'propos' and dataset == 'cifar10' and metric == 'nmi'")["mean"].item() == 88.6
    assert set(read_published(path)["source"]) == {"brb2024", "aljalbout2018", "propos2022", "scan2020"}
    with pytest.raises(ValueError, match="no block 'nope'"):
        read_published(path, block="nope")
    with pytest.raises(FileNotFoundError):
        reference_path("nope.csv")


def test_one_comparer_for_blocks_without_std(runs, fake_reference):
    cmp = paper_vs_ours(runs, fake_reference, block="other", metrics=["acc", "nmi"])
    assert len(cmp) == 1
    row = _cell(cmp, algorithm="dec", variant="baseline", dataset="mnist")
    assert row["paper_acc"] == 90.0 and row["paper_nmi"] == 80.0 and math.isnan(row["paper_acc_std"])
    assert row["ACC paper"] == "90.00" and row["mark_acc"] == ""
    assert cmp.attrs["display_columns"] == ["algorithm", "variant", "dataset", "n_seeds", "ACC paper", "ACC ours",
                                            "NMI paper", "NMI ours"]


def test_paper_vs_ours_with_packaged_reference(runs):
    cmp = paper_vs_ours(runs, reference_path("published.csv"), block="main")
    assert len(cmp) == 8  # every fake cell has a published counterpart
    assert _cell(cmp, algorithm="dec", variant="brb", dataset="mnist")["Paper"] == "93.55 ± 1.95"
    digits = runs[runs["dataset"] == "mnist"].assign(dataset="digits")
    assert paper_vs_ours(digits, reference_path("published.csv"), block="main").empty


def test_canonical_dataset():
    assert canonical_dataset("Fashion-MNIST") == "fmnist"
    assert canonical_dataset("KMNIST") == "kmnist"
    assert canonical_dataset("CIFAR100_20") == "cifar100-20"
    assert canonical_dataset("digits") == "digits"


# ----------------------------------------------------------------------------- plots


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_curve_data_and_brb_marks(run_root):
    dirs = sorted(run_root.glob("mnist_dec_*"))
    data = learning_curve_data(dirs)
    assert list(dict.fromkeys(data["label"])) == ["baseline", "brb"]
    assert len(data) == 2 * (N_EPOCHS + 1)
    last = data[data["epoch"] == N_EPOCHS].set_index("label")
    assert last.loc["brb", "mean"] == pytest.approx(93.55)
    assert last.loc["brb", "std"] == pytest.approx(1.95)
    assert last.loc["baseline", "n_runs"] == 3
    first = data[data["epoch"] == 0]
    assert first["mean"].tolist() == pytest.approx([50.0, 50.0])
    assert brb_epochs(dirs) == {"baseline": [], "brb": list(BRB_AT)}
    hist = collect_histories(dirs)
    assert len(hist) == 6 * (N_EPOCHS + 1)
    assert brb_epochs(hist, by=["algorithm", "variant"]) == {"dec / baseline": [], "dec / brb": list(BRB_AT)}


def test_plots_write_pngs(run_root, runs, tmp_path):
    dirs = sorted(run_root.glob("mnist_dec_*"))
    out = tmp_path / "fig"
    p1 = plot_learning_curves(dirs, out / "curves.png", "DEC on MNIST")
    p2 = plot_final_acc(runs, out / "final.png")
    p3 = plot_cluster_change(dirs, out / "change.png", "cluster change")
    frames = [pd.read_parquet(d / "history.parquet").assign(variant=d.name.split("_")[2]) for d in dirs]
    p4 = plot_learning_curves(frames, out / "frames.png", metric="nmi")
    for p in (p1, p2, p3, p4):
        assert _is_png(p), p
    assert _no_temp_files(out)
    with pytest.raises(ValueError):
        plot_final_acc(runs.iloc[0:0], out / "empty.png")
    assert not (out / "empty.png").exists()


def test_report_stages(run_root, fake_reference, tmp_path):
    """The one report pipeline: the workflow's `brb tables` and `brb plots` stages on the aggregated runs."""
    from brb.report import collect_runs
    from brb.stages import plots_stage, tables_stage

    metrics = write_metrics_parquet(collect_runs(sorted(run_root.glob("*/metrics.json"))), tmp_path / "metrics.parquet")
    written = tables_stage(metrics, tmp_path / "tables", reference=fake_reference, block="main")
    for key in ("summary.md", "paper_style.tex", "paper_vs_ours.csv"):
        assert written[key].is_file(), key
    assert "93.55 ± 1.95" in written["summary.md"].read_text()
    assert "| dec | brb | mnist | 93.55 ± 1.95 | 93.55 ± 1.95 | 3 | +0.00 | ✓ |" in written["paper_vs_ours.md"].read_text()
    plots = plots_stage(metrics, tmp_path / "plots")
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in plots.values()) and "learning curves" in plots


def test_standard_plots_include_the_barrier_figure_when_recluster_runs_exist(tmp_path):
    from brb.report import collect_runs
    from brb.report.plots import write_standard_plots

    root = tmp_path / "runs"
    for variant, acc in (("baseline", 0.80), ("recluster", 0.81), ("brb", 0.86)):
        for seed in SEEDS:
            _write_run(root, "mnist", "dec", variant, seed, acc)
    written = write_standard_plots(collect_runs(sorted(root.glob("*/metrics.json"))), tmp_path / "plots")
    assert set(written) == {"final ACC", "learning curves", "reclustering barrier"}
    for path in written.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # without recluster-only runs there is no barrier figure
    other = tmp_path / "runs2"
    for variant in ("baseline", "brb"):
        _write_run(other, "mnist", "dec", variant, 0, 0.8)
    assert "reclustering barrier" not in write_standard_plots(collect_runs(sorted(other.glob("*/metrics.json"))), tmp_path / "p2")


def test_aljalbout_rows_compare_with_our_method_names_and_geometric_nmi():
    """Their table's rows (pixels, AE, AE + k-means loss, AE + KL on their 60k MNIST) meet our k-means baselines and
    ae_kmeans / ae_kl runs, ACC and geometric NMI."""
    rows = []
    for algorithm, variant, acc, nmi_g in (("kmeans", "pixels", 0.54, 0.48), ("kmeans", "pretrained", 0.76, 0.67),
                                           ("ae_kmeans", "baseline", 0.78, 0.80), ("ae_kl", "baseline", 0.86, 0.825),
                                           ("ae_kl", "brb", 0.90, 0.85)):
        for seed in (0, 1):
            rows.append({"dataset": "mnist60k", "arch": "conv", "algorithm": algorithm, "variant": variant,
                         "seed": seed, "acc": acc, "nmi": nmi_g - 0.01, "nmi_geometric": nmi_g, "ari": 0.5})
    cmp = paper_vs_ours(pd.DataFrame(rows), reference_path("published.csv"), block="aljalbout2018")
    assert sorted(zip(cmp["algorithm"], cmp["variant"])) == [("ae_kl", "baseline"), ("ae_kmeans", "baseline"),
                                                              ("kmeans", "pixels"), ("kmeans", "pretrained")]
    kl = _cell(cmp, algorithm="ae_kl", variant="baseline", dataset="mnist60k")
    assert (kl["paper_acc"], kl["paper_nmi_geometric"]) == (85.9, 82.5)
    assert kl["ours_nmi_geometric_mean"] == pytest.approx(82.5) and "NMI (geometric) paper" in cmp.attrs["display_columns"]
