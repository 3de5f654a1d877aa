"""Figures: learning curves with BRB marks, final ACC per variant, cluster change over epochs.

Figures are built with :class:`matplotlib.figure.Figure` (Agg rendering, no pyplot state, so
nothing stays open and no display is needed) and saved atomically as PNG.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # rendered by Agg on savefig; pyplot (and its global state) is never used

from brb.io import atomic_path
from brb.registry import REGISTRY
from brb.report.aggregate import load_history
from brb.report.tables import ALGORITHM_ORDER, DATASET_ORDER, VARIANT_ORDER, sort_cells

VARIANT_COLORS = {e.name: e.colour for e in REGISTRY.entries("variant") if e.colour}
_EXTRA_COLORS = ("#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")
_STYLE = {
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
}

def _colors(labels: Sequence[str]) -> dict[str, str]:
    out, extra = {}, iter(_EXTRA_COLORS * (len(labels) // len(_EXTRA_COLORS) + 1))
    for label in labels:
        out[label] = VARIANT_COLORS.get(label) or next(extra)
    return out


def _order(values: Iterable[str], order: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    rank = {v: i for i, v in enumerate(order)}
    return sorted(values, key=lambda v: (rank.get(v, len(rank)), str(v)))


def _save(fig: Figure, out_png: str | os.PathLike, dpi: int = 150) -> Path:
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    fig.clear()
    return out_png


def as_histories(runs) -> pd.DataFrame:
    """Normalise history input into one long DataFrame.

    ``runs`` is a DataFrame (e.g. from :func:`brb.report.aggregate.collect_histories`) or an
    iterable of run directories / ``history.parquet`` paths / per-run DataFrames. Per-run frames
    without ``variant`` get ``"run"``, without ``seed`` their position; ``brb`` defaults to False.
    """
    if isinstance(runs, pd.DataFrame):
        frames = [runs]
    else:
        frames = []
        for i, item in enumerate(runs):
            if isinstance(item, pd.DataFrame):
                frame = item.copy()
                if "seed" not in frame.columns:
                    frame["seed"] = i
                if "run_dir" not in frame.columns:
                    frame["run_dir"] = f"run{i}"
                frames.append(frame)
            else:
                frames.append(load_history(item))
    if not frames:
        raise ValueError("no histories given")
    hist = pd.concat(frames, ignore_index=True)
    if "epoch" not in hist.columns:
        raise ValueError("history lacks an 'epoch' column")
    if "variant" not in hist.columns:
        hist["variant"] = "run"
    if "seed" not in hist.columns:
        hist["seed"] = 0
    if "run_dir" not in hist.columns:
        hist["run_dir"] = hist["seed"].astype(str)
    if "brb" not in hist.columns:
        hist["brb"] = False
    hist["brb"] = hist["brb"].fillna(False).astype(bool)
    return hist


def _label_series(hist: pd.DataFrame, by: str | Sequence[str]) -> pd.Series:
    cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in cols if c not in hist.columns]
    if missing:
        raise ValueError(f"history lacks column(s) {', '.join(missing)}")
    if len(cols) == 1:
        return hist[cols[0]].astype(str)
    return hist[cols].astype(str).agg(" / ".join, axis=1)


def _ordered_labels(hist: pd.DataFrame, labels: pd.Series, by) -> list[str]:
    cols = [by] if isinstance(by, str) else list(by)
    frame = hist[cols].copy()
    frame["_label"] = labels.values
    frame = sort_cells(frame.drop_duplicates("_label"), cols)
    return list(frame["_label"])


def learning_curve_data(runs, metric: str = "acc", by: str | Sequence[str] = "variant") -> pd.DataFrame:
    """Per (group, epoch): mean, std, min, max of ``metric`` in percent over runs, and n_runs.

    Columns: ``label`` (the ``by`` value(s), joined by " / "), epoch, mean, std, min, max, n_runs.
    """
    hist = as_histories(runs)
    if metric not in hist.columns:
        raise ValueError(f"history lacks column {metric!r}")
    hist = hist.assign(_label=_label_series(hist, by).values, _value=hist[metric].astype(float) * 100.0)
    g = hist.groupby(["_label", "epoch"], sort=True)["_value"]
    out = g.agg(["mean", "std", "min", "max"]).reset_index()
    out["n_runs"] = g.count().values
    out = out.rename(columns={"_label": "label"})
    order = {v: i for i, v in enumerate(_ordered_labels(hist, hist["_label"], by))}
    out = out.sort_values(["label", "epoch"], key=lambda s: s.map(order) if s.name == "label" else s)
    return out.reset_index(drop=True)


def brb_epochs(runs, by: str | Sequence[str] = "variant") -> dict[str, list[int]]:
    """Epochs at which BRB fired (in any run) per group; groups where it never fired map to []."""
    hist = as_histories(runs)
    labels = _label_series(hist, by)
    out: dict[str, list[int]] = {}
    for label in _ordered_labels(hist, labels, by):
        mask = (labels == label).values
        fired = hist.loc[mask & hist["brb"].values, "epoch"]
        out[label] = sorted(int(e) for e in fired.unique())
    return out


def _curve_axes(ax, data: pd.DataFrame, marks: dict[str, list[int]], ylabel: str, band: bool = True) -> None:
    labels = list(dict.fromkeys(data["label"]))
    colors = _colors(labels)
    for label in labels:
        d = data[data["label"] == label]
        color = colors[label]
        n = int(d["n_runs"].max()) if len(d) else 0
        ax.plot(d["epoch"], d["mean"], color=color, lw=1.5, label=f"{label} (n={n})")
        if band:
            std = d["std"].fillna(0.0)
            ax.fill_between(d["epoch"], d["mean"] - std, d["mean"] + std, color=color, alpha=0.2, lw=0)
        for epoch in marks.get(label, []):
            ax.axvline(epoch, color=color, lw=0.7, ls=":", alpha=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if any(marks.values()):
        ax.plot([], [], color="0.3", lw=0.7, ls=":", label="BRB applied")
    ax.legend(loc="best")


def plot_learning_curves(
    runs,
    out_png: str | os.PathLike,
    title: str | None = None,
    *,
    metric: str = "acc",
    by: str | Sequence[str] = "variant",
) -> Path:
    """``metric`` (percent) over epochs: one line per ``by`` group (mean over seeds, ±1 std band),
    dotted vertical lines at the epochs where BRB fired in that group.

    ``runs``: run directories, per-run history DataFrames, or one long DataFrame (see
    :func:`as_histories`). Returns the PNG path.
    """
    data = learning_curve_data(runs, metric=metric, by=by)
    marks = brb_epochs(runs, by=by)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.0, 3.6))
        ax = fig.add_subplot()
        _curve_axes(ax, data, marks, f"{metric.upper()} (%)")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        return _save(fig, out_png)


def plot_cluster_change(
    runs,
    out_png: str | os.PathLike,
    title: str | None = None,
    *,
    by: str | Sequence[str] = "variant",
) -> Path:
    """Fraction of points changing cluster per epoch (percent, mean over seeds), with BRB marks."""
    hist = as_histories(runs)
    if "cluster_change" not in hist.columns:
        raise ValueError("history lacks column 'cluster_change'")
    hist = hist[hist["epoch"] > 0]  # nothing to compare with before training
    data = learning_curve_data(hist, metric="cluster_change", by=by)
    marks = brb_epochs(hist, by=by)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.0, 3.6))
        ax = fig.add_subplot()
        _curve_axes(ax, data, marks, "points changing cluster (%)", band=False)
        if (data["mean"] > 0).any():
            ax.set_yscale("symlog", linthresh=0.1)
        if title:
            ax.set_title(title)
        fig.tight_layout()
        return _save(fig, out_png)


def plot_final_acc(
    df: pd.DataFrame,
    out_png: str | os.PathLike,
    title: str | None = None,
    *,
    metric: str = "acc",
) -> Path:
    """Final ``metric`` (percent) per algorithm and variant, one panel per dataset.

    Bars are the mean over seeds, dots the individual seeds. ``df`` is the runs table of
    :func:`brb.report.aggregate.collect_runs`. With several architectures, x groups are arch/algorithm.
    """
    needed = ["dataset", "algorithm", "variant", metric]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}")
    if df.empty:
        raise ValueError("no runs to plot")
    df = df.copy()
    df["_value"] = df[metric].astype(float) * 100.0
    multi_arch = "arch" in df.columns and df["arch"].nunique() > 1
    df["_group"] = (df["arch"].astype(str) + "/" + df["algorithm"].astype(str)) if multi_arch else df["algorithm"].astype(str)
    datasets = _order(df["dataset"], DATASET_ORDER)
    variants = _order(df["variant"], VARIANT_ORDER)
    colors = _colors(variants)
    rng = np.random.default_rng(0)
    width = 0.8 / len(variants)

    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(max(3.2 * len(datasets), 4.0), 3.4))
        axes = fig.subplots(1, len(datasets), squeeze=False, sharey=True)[0]
        for ax, dataset in zip(axes, datasets):
            sub = df[df["dataset"] == dataset]
            if multi_arch:
                alg_rank = {a: i for i, a in enumerate(ALGORITHM_ORDER)}
                groups = sorted(
                    sub["_group"].unique(),
                    key=lambda g: (g.split("/")[0], alg_rank.get(g.split("/", 1)[1], len(alg_rank)), g),
                )
            else:
                groups = _order(sub["_group"], ALGORITHM_ORDER)
            labelled: set[str] = set()
            for gi, group in enumerate(groups):
                for vi, variant in enumerate(variants):
                    vals = sub.loc[(sub["_group"] == group) & (sub["variant"] == variant), "_value"].dropna()
                    if vals.empty:
                        continue
                    x = gi - 0.4 + width * (vi + 0.5)
                    ax.bar(
                        x,
                        vals.mean(),
                        width=width * 0.9,
                        color=colors[variant],
                        alpha=0.55,
                        label=None if variant in labelled else variant,
                    )
                    labelled.add(variant)
                    jitter = rng.uniform(-width * 0.2, width * 0.2, size=len(vals))
                    ax.scatter(x + jitter, vals, s=10, color=colors[variant], edgecolor="black", linewidths=0.4, zorder=3)
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([g.upper() for g in groups])
            ax.set_title(dataset)
            ax.grid(axis="x", visible=False)
        axes[0].set_ylabel(f"final {metric.upper()} (%)")
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.02))
        if title:
            fig.suptitle(title, y=1.08)
        fig.tight_layout()
        return _save(fig, out_png)


def plot_learning_curve_grid(hist: pd.DataFrame, out_png: str | os.PathLike, *, metric: str = "acc") -> Path:
    """One panel per (dataset, algorithm): ``metric`` over epochs per variant, with BRB marks."""
    hist = as_histories(hist)
    datasets = _order(hist["dataset"], DATASET_ORDER)
    algorithms = _order(hist["algorithm"], ALGORITHM_ORDER)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(4.2 * len(algorithms), 3.0 * len(datasets)))
        axes = fig.subplots(len(datasets), len(algorithms), squeeze=False)
        for i, dataset in enumerate(datasets):
            for j, algorithm in enumerate(algorithms):
                ax = axes[i][j]
                part = hist[(hist["dataset"] == dataset) & (hist["algorithm"] == algorithm)]
                if part.empty:
                    ax.set_visible(False)
                    continue
                data = learning_curve_data(part, metric=metric, by="variant")
                _curve_axes(ax, data, brb_epochs(part, by="variant"), f"{metric.upper()} (%)")
                ax.set_title(f"{algorithm.upper()} on {dataset}")
        fig.tight_layout()
        return _save(fig, out_png)


def write_standard_plots(df: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """The workflow's figures: ``learning_curves.png`` (deep clustering runs) and ``final_acc.png``."""
    from brb.report.aggregate import collect_histories

    out_dir = Path(out_dir)
    deep = df[~df["algorithm"].isin(NO_HISTORY_ALGORITHMS)]
    written = {"final ACC": plot_final_acc(df, out_dir / "final_acc.png")}
    if deep.empty:
        raise ValueError("no deep clustering runs (only baselines) to draw learning curves of")
    hist = collect_histories(list(deep["run_dir"]))
    written["learning curves"] = plot_learning_curve_grid(hist, out_dir / "learning_curves.png")
    if "ofm" in hist.columns and hist["ofm"].notna().any():
        written["objective mismatch"] = plot_objective_mismatch(hist, out_dir / "objective_mismatch.png")
    if "nmi_consecutive" in hist.columns and hist["nmi_consecutive"].notna().any():
        written["DeepCluster NMI"] = plot_deepcluster_nmi(hist, out_dir / "deepcluster_nmi.png")
    barrier = hist[hist["variant"].isin(BARRIER_VARIANTS)]
    if set(BARRIER_VARIANTS) <= set(barrier["variant"]):
        dataset = _order(barrier["dataset"], DATASET_ORDER)[0]
        written["reclustering barrier"] = plot_learning_curve_grid(
            barrier[barrier["dataset"] == dataset], out_dir / "reclustering_barrier.png"
        )
    return written


#: Runs without a training history: the k-means baselines and the linear probe.
NO_HISTORY_ALGORITHMS = ("kmeans", "linear")

#: The paper's "reclustering barrier" figure: reclustering alone versus the full method.
BARRIER_VARIANTS = ("baseline", "recluster", "brb")


def history_curve_data(runs, column: str, by: str | Sequence[str] = ("algorithm", "variant"), *,
                       what: str | None = None) -> pd.DataFrame:
    """Per (group, epoch) over runs: mean, std, min, max and n_runs of the history ``column`` (epochs where it is
    NaN are left out); ``what`` names the column in the errors."""
    hist = as_histories(runs)
    what = what or column
    if column not in hist.columns:
        raise ValueError(f"history lacks column {column!r} ({what})")
    hist = hist[hist[column].notna()]
    if hist.empty:
        raise ValueError(f"no run logged {what} ({column})")
    hist = hist.assign(_label=_label_series(hist, by).values)
    g = hist.groupby(["_label", "epoch"], sort=True)[column]
    out = g.agg(["mean", "std", "min", "max"]).reset_index()
    out["n_runs"] = g.count().values
    return out.rename(columns={"_label": "label"})


def objective_mismatch_data(runs, by: str | Sequence[str] = ("algorithm", "variant")) -> pd.DataFrame:
    """Per (group, epoch) over runs: mean, std, min, max and n_runs of the objective-function-mismatch cosine
    (history column ``ofm``, logged by DDC-UCO / DDC-AE at their evaluation epochs; other epochs are NaN)."""
    return history_curve_data(runs, "ofm", by, what="the mismatch diagnostic of brb/methods/ddc.py")


def plot_objective_mismatch(runs, out_png: str | os.PathLike, *, by: str | Sequence[str] = ("algorithm", "variant"),
                            title: str | None = None) -> Path:
    """tk-uco's diagnostic over epochs: cos(∇ clustering terms, ∇ companion terms) w.r.t. the backbone, one line
    per group (mean over seeds, ±1 std band); higher = the companion objective agrees more with clustering."""
    data = objective_mismatch_data(runs, by=by)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.0, 3.6))
        ax = fig.add_subplot()
        _curve_axes(ax, data, {}, "cosine (clustering, companion)")
        ax.axhline(0.0, color="0.5", lw=0.7)
        ax.set_title(title or "objective-function mismatch (higher: less mismatch)")
        fig.tight_layout()
        return _save(fig, out_png)


def plot_deepcluster_nmi(runs, out_png: str | os.PathLike, *, by: str | Sequence[str] = ("algorithm", "variant"),
                         title: str | None = None) -> Path:
    """DeepCluster's Figure 2 on our runs: NMI of each epoch's pseudo-label assignment with the labels (left) and
    NMI between consecutive assignments (right), one line per group (mean over seeds, ±1 std band)."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(10.0, 3.6))
        for i, (column, ylabel) in enumerate((("pseudo_nmi", "NMI(assignment, labels)"),
                                              ("nmi_consecutive", "NMI(t-1, t)"))):
            ax = fig.add_subplot(1, 2, i + 1)
            _curve_axes(ax, history_curve_data(runs, column, by, what="DeepCluster's NMI log"), {}, ylabel)
            ax.set_ylim(0, 1)
        fig.suptitle(title or "DeepCluster: the pseudo-labels against the classes and against the previous epoch")
        fig.tight_layout()
        return _save(fig, out_png)
