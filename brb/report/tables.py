"""Result tables: per-cell mean ± std over seeds, the paper-style ACC grid, and ours-vs-paper.

Every builder takes the runs table of :func:`brb.report.aggregate.collect_runs` (scores as
fractions) and reports percent. Each returned DataFrame keeps the numbers as numeric columns (for
the CSV and for checks) and adds formatted "mean ± std" text columns; ``df.attrs["display_columns"]``
names the columns that the Markdown and LaTeX versions show. :func:`write_tables` writes any of them
as ``<stem>.md``, ``<stem>.csv`` and ``<stem>.tex`` (the LaTeX is formatted here, booktabs style, so
no jinja2 is needed).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import brb.data  # noqa: F401  (registers the datasets, whose ranks order the tables)
from brb.io import write_text
from brb.registry import REGISTRY

METRICS = ("acc", "nmi", "ari", "purity")
METRIC_LABELS = {"acc": "ACC", "nmi": "NMI", "ari": "ARI", "purity": "Purity", "silhouette": "Silhouette",
                 "nmi_geometric": "NMI (geometric)", "rand_index": "Rand"}
GROUP_KEYS = ("dataset", "arch", "algorithm", "variant")

#: Display order; names not listed come after these, alphabetically.
DATASET_ORDER = REGISTRY.names("dataset")
ALGORITHM_ORDER = REGISTRY.names("method")
VARIANT_ORDER = REGISTRY.names("variant")

PLUS_MINUS = "±"
MISSING = "–"
MARK_OK = "✓"
MARK_OFF = "✗"

# Dataset names as the references spell them -> join key shared with our names.
_DATASET_ALIASES = {
    "fashionmnist": "fmnist",
    "fmnist": "fmnist",
    "kuzushijimnist": "kmnist",
    "kmnist": "kmnist",
    "mnist": "mnist",
    "usps": "usps",
    "optdigits": "optdigits",
    "uciopticaldigits": "optdigits",
    "gtsrb": "gtsrb",
    "cifar10": "cifar10",
    "cifar10020": "cifar100-20",
    "cifar20": "cifar100-20",
    "cifar100superclasses": "cifar100-20",
}


def canonical_dataset(name: str) -> str:
    """Join key for dataset names: case, '-', '_' and spaces ignored; known aliases folded.

    ``"Fashion-MNIST"`` -> ``"fmnist"``, ``"CIFAR100_20"`` -> ``"cifar100-20"``; unknown names
    are returned lower-cased with separators removed. ``digits`` (scikit-learn's small set) is
    deliberately *not* folded into ``optdigits``.
    """
    key = re.sub(r"[^0-9a-z]", "", str(name).lower())
    return _DATASET_ALIASES.get(key, key)


# ----------------------------------------------------------------------------- formatting


def format_mean_std(mean: float, std: float, decimals: int = 2) -> str:
    """``"93.55 ± 1.95"``; only the mean when std is undefined (one seed); ``"–"`` when no mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)) or pd.isna(mean):
        return MISSING
    if std is None or pd.isna(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} {PLUS_MINUS} {std:.{decimals}f}"


def _rank(order: Sequence[str]):
    index = {v: i for i, v in enumerate(order)}

    def key(series: pd.Series) -> pd.Series:
        return series.map(lambda v: (index.get(v, len(index)), str(v)))

    return key


_SORTERS = {
    "dataset": _rank(DATASET_ORDER),
    "algorithm": _rank(ALGORITHM_ORDER),
    "variant": _rank(VARIANT_ORDER),
}


def sort_cells(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Sort rows by ``keys`` in display order (datasets, algorithms, variants as in the paper)."""
    keys = [k for k in keys if k in df.columns]
    if not keys or df.empty:
        return df.reset_index(drop=True)

    def key_fn(series: pd.Series) -> pd.Series:
        sorter = _SORTERS.get(series.name)
        if sorter is not None:
            return sorter(series)
        return series

    return df.sort_values(keys, key=key_fn, kind="stable").reset_index(drop=True)


def _check_runs(df: pd.DataFrame, needed: Iterable[str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}")


def _aggregate(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], ddof: int) -> pd.DataFrame:
    """Per group: n_runs, n_seeds and <metric>_mean / <metric>_std in percent."""
    by = list(by)
    _check_runs(df, [*by, "seed", *metrics])
    if df.empty:
        cols = [*by, "n_runs", "n_seeds", *(f"{m}_{s}" for m in metrics for s in ("mean", "std"))]
        return pd.DataFrame(columns=cols)
    grouped = df.groupby(by, sort=False, dropna=False)
    out = grouped.agg(n_runs=("seed", "size"), n_seeds=("seed", "nunique"))
    for m in metrics:
        values = df[m].astype(float) * 100.0
        g = values.groupby([df[k] for k in by], sort=False, dropna=False)
        out[f"{m}_mean"] = g.mean()
        out[f"{m}_std"] = g.std(ddof=ddof)
    out = out.reset_index()
    dup = out[out["n_runs"] != out["n_seeds"]]
    if not dup.empty:
        cells = ", ".join("/".join(str(r[k]) for k in by) for _, r in dup.head(5).iterrows())
        warnings.warn(
            f"{len(dup)} cell(s) hold several runs with the same seed (e.g. {cells}); "
            "they are averaged together; add the distinguishing config column to `by`",
            stacklevel=3,
        )
    return sort_cells(out, by)


def summary_table(
    df: pd.DataFrame,
    *,
    by: Sequence[str] = GROUP_KEYS,
    metrics: Sequence[str] = METRICS,
    decimals: int = 2,
    ddof: int = 1,
) -> pd.DataFrame:
    """Mean ± std over seeds per (dataset, arch, algorithm, variant), in percent.

    Columns: the ``by`` keys, ``n_runs``, ``n_seeds``, ``<m>_mean``, ``<m>_std`` (numeric, percent,
    sample std with ``ddof``) and one formatted column per metric labelled ``ACC``/``NMI``/``ARI``/
    ``Purity`` (``"93.55 ± 1.95"``). Metrics absent from ``df`` are skipped.
    """
    metrics = [m for m in metrics if m in df.columns]
    out = _aggregate(df, by, metrics, ddof)
    labels = []
    for m in metrics:
        label = METRIC_LABELS.get(m, m)
        out[label] = [format_mean_std(a, b, decimals) for a, b in zip(out[f"{m}_mean"], out[f"{m}_std"])]
        labels.append(label)
    out.attrs["display_columns"] = [*by, "n_seeds", *labels]
    return out


def lowest_loss_table(df: pd.DataFrame, *, decimals: int = 2, ddof: int = 1) -> pd.DataFrame:
    """tk-uco's report: per (dataset, arch, algorithm, variant), mean ± std over runs of ACC, NMI (geometric, as
    theirs), the unadjusted Rand index and our ARI, next to the values of the run with the lowest loss
    (``selected_loss``: its lowest evaluation loss), in percent. Only runs that record ``selected_loss``."""
    if "selected_loss" not in df.columns or df["selected_loss"].isna().all():
        raise ValueError("no run records selected_loss (DDC-family runs do)")
    df = df[df["selected_loss"].notna()]
    metrics = [m for m in ("acc", "nmi_geometric", "rand_index", "ari") if m in df.columns]
    by = [k for k in GROUP_KEYS if k in df.columns]
    out = summary_table(df, by=by, metrics=metrics, decimals=decimals, ddof=ddof)
    best = df.loc[df.groupby(by, sort=False)["selected_loss"].idxmin()].set_index(by)
    keyed = out.set_index(by)
    out["lowest-loss seed"] = best.loc[keyed.index, "seed"].astype(int).values
    labels = []
    for m in metrics:
        label = f"{METRIC_LABELS.get(m, m)} (lowest loss)"
        out[label] = [f"{100.0 * v:.{decimals}f}" for v in best.loc[keyed.index, m].values]
        labels.append(label)
    out.attrs["display_columns"] = [*out.attrs["display_columns"], "lowest-loss seed", *labels]
    return out


def paper_style_table(
    df: pd.DataFrame,
    *,
    metric: str = "acc",
    decimals: int = 2,
    ddof: int = 1,
    datasets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Wide table like the paper's: one row per algorithm + variant, one column per dataset.

    Cells are ``"mean ± std"`` of ``metric`` in percent (empty where a cell has no runs). When the
    runs span several architectures, ``arch`` becomes part of the row key.
    """
    keys = ["algorithm", "variant"]
    if "arch" in df.columns and df["arch"].nunique() > 1:
        keys = ["arch", *keys]
    agg = _aggregate(df, ["dataset", *keys], [metric], ddof)
    agg["cell"] = [format_mean_std(a, b, decimals) for a, b in zip(agg[f"{metric}_mean"], agg[f"{metric}_std"])]
    if datasets is None:
        datasets = list(sort_cells(pd.DataFrame({"dataset": agg["dataset"].unique()}), ["dataset"])["dataset"])
    rows = sort_cells(agg[keys].drop_duplicates(), keys)
    wide = agg.pivot(index=keys, columns="dataset", values="cell")
    wide = wide.reindex(columns=list(datasets)).reindex(pd.MultiIndex.from_frame(rows))
    wide = wide.fillna("").reset_index()
    wide.columns.name = None
    wide.attrs["display_columns"] = list(wide.columns)
    wide.attrs["metric"] = metric
    return wide


# ----------------------------------------------------------------------------- published numbers

#: Published (method, variant) -> ours (algorithm, variant), where the names differ.
PUBLISHED_ALIASES = {
    ("simclr+kmeans", "pretrained"): ("kmeans", "pretrained"),
    # Aljalbout et al.'s table rows: pixels, AE, AE + k-means loss, AE + KL (methods ae_kmeans, ae_kl)
    ("kmeans-pixels", ""): ("kmeans", "pixels"),
    ("conv-ae+kmeans", ""): ("kmeans", "pretrained"),
    ("conv-ae+kmeans-loss", ""): ("ae_kmeans", "baseline"),
    ("conv-ae+kl-loss", ""): ("ae_kl", "baseline"),
    # ProPos's Table 2: each method's own clustering (k-means of its features; CC: its head) = our `estep` runs
    **{(m, ""): (m, "estep") for m in ("byol", "simsiam", "moco", "pcl", "cc", "propos")},
}
PUBLISHED_COLUMNS = ["source", "block", "method", "variant", "dataset", "metric", "mean", "std", "note"]


def read_published(path: str | os.PathLike, *, block: str | None = None, source: str | None = None) -> pd.DataFrame:
    """Published numbers in the long format of ``published.csv``: one row per (source, block, method, variant,
    dataset, metric) with mean and std in percent (std NaN when none was printed), dataset names canonical,
    methods and variants renamed to ours where they differ (:data:`PUBLISHED_ALIASES`). ``block`` / ``source``
    select rows; an unknown one is an error naming the known ones."""
    ref = pd.read_csv(path, comment="#", skipinitialspace=True, keep_default_na=False, dtype=str)
    missing = [c for c in PUBLISHED_COLUMNS[:-1] if c not in ref.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (long format: {', '.join(PUBLISHED_COLUMNS)})")
    ref = ref.reindex(columns=PUBLISHED_COLUMNS, fill_value="")
    for col in ("source", "block", "method", "variant", "metric"):
        ref[col] = ref[col].str.strip().str.lower()
    ref["dataset"] = ref["dataset"].map(canonical_dataset)
    for col in ("mean", "std"):
        ref[col] = pd.to_numeric(ref[col].replace("", np.nan), errors="coerce")
    pairs = [PUBLISHED_ALIASES.get(p, p) for p in zip(ref["method"], ref["variant"])]
    ref["method"], ref["variant"] = [p[0] for p in pairs], [p[1] for p in pairs]
    for key, value in (("block", block), ("source", source)):
        if value is not None:
            known = sorted(set(ref[key]))
            if value not in known:
                raise ValueError(f"{path}: no {key} {value!r} ({key}s: {', '.join(known)})")
            ref = ref[ref[key] == value]
    return ref.reset_index(drop=True)


def paper_vs_ours(
    df: pd.DataFrame,
    published: str | os.PathLike,
    block: str = "main",
    *,
    metrics: Sequence[str] | None = None,
    threshold: float = 2.0,
    decimals: int = 2,
    ddof: int = 1,
) -> pd.DataFrame:
    """Our runs next to the published numbers of one ``block`` (:func:`read_published`): every
    (algorithm, variant, dataset) present in both, for ``metrics`` (default: those the block publishes that our
    runs have).

    Per metric m: ``paper_<m>``, ``paper_<m>_std``, ``ours_<m>_mean``, ``ours_<m>_std``, ``diff_<m>`` (ours −
    paper, percentage points), ``diff_std_<m>`` (in units of the paper's std, NaN without one), ``mark_<m>``
    (``"✗"`` beyond ``threshold`` stds, ``"✓"`` within, ``""`` without a std) and formatted ``<M> paper`` /
    ``<M> ours`` (+ ``<M> Δ (σ)`` where stds are published). With a single metric the columns are
    ``paper_mean``, ``paper_std``, ``ours_mean``, ``ours_std``, ``diff``, ``diff_std``, ``mark``, ``Paper``,
    ``Ours``, ``Δ (σ)``. Cells the paper does not report are simply absent.
    """
    ref = read_published(published, block=block)
    if metrics is None:
        metrics = [m for m in ("acc", "nmi", "nmi_geometric", "ari") if m in set(ref["metric"])]
    metrics = [m for m in metrics if m in df.columns]
    ours = _aggregate(df, GROUP_KEYS, metrics, ddof)
    ours["_key"] = ours["dataset"].map(canonical_dataset)
    ours["_alg"] = ours["algorithm"].astype(str).str.lower()
    ours["_var"] = ours["variant"].astype(str).str.lower()
    wide = ref.pivot_table(index=["dataset", "method", "variant"], columns="metric", values=["mean", "std"],
                           aggfunc="first", dropna=False)
    wide.columns = [f"paper_{m}" if stat == "mean" else f"paper_{m}_std" for stat, m in wide.columns]
    wide = wide.reset_index().rename(columns={"dataset": "_key", "method": "_alg", "variant": "_var"})
    merged = ours.merge(wide, on=["_key", "_alg", "_var"], how="inner")
    merged = merged[merged[[f"paper_{m}" for m in metrics if f"paper_{m}" in merged]].notna().any(axis=1)]
    out = merged[["algorithm", "variant", "dataset", "arch", "n_seeds"]].copy()
    display = ["algorithm", "variant", "dataset"]
    for m in metrics:
        label = METRIC_LABELS.get(m, m)
        paper = merged[f"paper_{m}"].astype(float) if f"paper_{m}" in merged else pd.Series(np.nan, index=merged.index)
        paper_std = merged[f"paper_{m}_std"].astype(float) if f"paper_{m}_std" in merged else paper * np.nan
        out[f"paper_{m}"], out[f"paper_{m}_std"] = paper, paper_std
        out[f"ours_{m}_mean"], out[f"ours_{m}_std"] = merged[f"{m}_mean"].astype(float), merged[f"{m}_std"].astype(float)
        out[f"diff_{m}"] = out[f"ours_{m}_mean"] - paper
        with np.errstate(divide="ignore", invalid="ignore"):
            z = out[f"diff_{m}"] / paper_std.where(paper_std > 0)
        out[f"diff_std_{m}"] = z
        out[f"mark_{m}"] = ["" if pd.isna(v) else (MARK_OFF if abs(v) > threshold else MARK_OK) for v in z]
        out[f"{label} paper"] = [
            MISSING if pd.isna(a) else (f"{a:.{decimals}f}" if pd.isna(b) else format_mean_std(a, b, decimals))
            for a, b in zip(paper, paper_std)
        ]
        out[f"{label} ours"] = [format_mean_std(a, b, decimals) for a, b in zip(out[f"ours_{m}_mean"], out[f"ours_{m}_std"])]
        out[f"{label} Δ (σ)"] = [MISSING if pd.isna(v) else f"{v:+.{decimals}f}" for v in z]
        with_std = paper_std.notna().any()
        display += [f"{label} paper", f"{label} ours"] + ([f"{label} Δ (σ)", f"mark_{m}"] if with_std else [])
    display.insert(3 if len(metrics) > 1 else 5, "n_seeds")
    if len(metrics) == 1:  # one metric: plain column names
        m, label = metrics[0], METRIC_LABELS.get(metrics[0], metrics[0])
        names = {f"paper_{m}": "paper_mean", f"paper_{m}_std": "paper_std", f"ours_{m}_mean": "ours_mean",
                 f"ours_{m}_std": "ours_std", f"diff_{m}": "diff", f"diff_std_{m}": "diff_std", f"mark_{m}": "mark",
                 f"{label} paper": "Paper", f"{label} ours": "Ours", f"{label} Δ (σ)": "Δ (σ)"}
        out = out.rename(columns=names)
        display = [names.get(c, c) for c in display]
    out = sort_cells(out, ["arch", "algorithm", "variant", "dataset"])
    if out["arch"].nunique() > 1:
        display.insert(0, "arch")
    out.attrs["display_columns"] = display
    out.attrs["threshold"] = threshold
    return out


# ----------------------------------------------------------------------------- writers


def _display_frame(table: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    if columns is None:
        columns = table.attrs.get("display_columns") or list(table.columns)
    return table[list(columns)]


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:g}"
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def to_markdown(table: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """GitHub-flavoured Markdown pipe table (numbers right-aligned)."""
    shown = _display_frame(table, columns)
    header = [str(c) for c in shown.columns]
    rows = [[_cell_text(v).replace("|", r"\|") for v in row] for row in shown.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) for c in shown.columns]
    align = ["---:" if n else ":---" for n in numeric]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_UNICODE = {
    PLUS_MINUS: r"$\pm$",
    MARK_OK: r"$\surd$",
    MARK_OFF: r"$\times$",
    MISSING: "--",
    "Δ": r"$\Delta$",
    "σ": r"$\sigma$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and turn ± ✓ ✗ – Δ σ into math-mode macros."""
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for uni, tex in _LATEX_UNICODE.items():
        out = out.replace(uni, tex)
    return out


def to_latex(
    table: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    caption: str | None = None,
    label: str | None = None,
) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``); no jinja2 involved."""
    shown = _display_frame(table, columns)
    spec = "".join("r" if pd.api.types.is_numeric_dtype(shown[c]) else "l" for c in shown.columns)
    lines = [r"\begin{table}[ht]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(c) for c in shown.columns) + r" \\")
    lines.append(r"\midrule")
    for row in shown.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_cell_text(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(
    table: pd.DataFrame,
    out_dir: str | os.PathLike,
    stem: str,
    *,
    columns: Sequence[str] | None = None,
    caption: str | None = None,
    label: str | None = None,
) -> dict[str, Path]:
    """Write ``table`` as ``<stem>.md``, ``<stem>.csv`` and ``<stem>.tex`` in ``out_dir`` (atomically).

    The CSV holds every column (numeric and formatted); Markdown and LaTeX show ``columns``
    (default: ``table.attrs["display_columns"]``, else all). Returns ``{"md": path, ...}``.
    """
    out_dir = Path(out_dir)
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("md", "csv", "tex")}
    write_text(paths["md"], to_markdown(table, columns))
    write_text(paths["csv"], table.to_csv(index=False))
    write_text(paths["tex"], to_latex(table, columns, caption=caption, label=label or f"tab:{stem}"))
    return paths
