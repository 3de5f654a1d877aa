"""Reporting: collect finished runs, tabulate them (Markdown/CSV/LaTeX), compare with the paper, plot.

The paper's published numbers ship with the package under ``brb/report/reference/``; use
:func:`reference_path` to locate them::

    from brb.report import collect_runs, paper_vs_ours, reference_path, write_tables
    runs = collect_runs(sorted(Path("results/runs").glob("*/metrics.json")))
    write_tables(paper_vs_ours(runs, reference_path("brb_paper_ae_acc.csv")), "results/report", "paper_vs_ours")
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from brb.report.aggregate import (
    collect_histories,
    collect_runs,
    flatten_config,
    load_history,
    load_run,
    write_metrics_parquet,
)
from brb.report.plots import (
    brb_epochs,
    learning_curve_data,
    plot_cluster_change,
    plot_final_acc,
    plot_learning_curves,
)
from brb.report.tables import (
    canonical_dataset,
    contrastive_vs_ours,
    format_mean_std,
    paper_style_table,
    paper_vs_ours,
    read_reference_ae,
    read_reference_contrastive,
    summary_table,
    to_latex,
    to_markdown,
    write_tables,
)

#: Files under brb/report/reference/.
REFERENCE_FILES = ("brb_paper_ae_acc.csv", "brb_paper_contrastive.csv", "other_methods.csv")


def reference_path(name: str) -> Path:
    """Path of a packaged reference file, e.g. ``reference_path("brb_paper_ae_acc.csv")``."""
    path = resources.files("brb.report").joinpath("reference", name)
    if not path.is_file():
        raise FileNotFoundError(f"no packaged reference file {name!r} (known: {', '.join(REFERENCE_FILES)})")
    return Path(str(path))


def build_report(
    runs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    reference_csv: str | os.PathLike | None = None,
    block: str = "main",
    decimals: int = 2,
) -> dict[str, Path]:
    """Everything at once for a set of run directories (or their metrics.json files).

    Writes into ``out_dir``: ``runs.parquet``; ``summary``, ``paper_style`` and ``paper_vs_ours``
    tables (.md/.csv/.tex; the last only when some cell matches the reference, default: the
    packaged autoencoder ACC table, block ``block``); ``final_acc.png``; and one
    ``curves_<dataset>_<arch>_<algorithm>.png`` per group whose runs have a history.parquet.
    Returns the written paths by name.
    """
    out_dir = Path(out_dir)
    runs = list(runs)
    df = collect_runs(runs)
    if df.empty:
        raise ValueError("no runs to report")
    written: dict[str, Path] = {"runs": write_metrics_parquet(df, out_dir / "runs.parquet")}
    for stem, table in (
        ("summary", summary_table(df, decimals=decimals)),
        ("paper_style", paper_style_table(df, decimals=decimals)),
    ):
        for ext, path in write_tables(table, out_dir, stem).items():
            written[f"{stem}.{ext}"] = path
    ref = reference_path("brb_paper_ae_acc.csv") if reference_csv is None else reference_csv
    comparison = paper_vs_ours(df, ref, block=block, decimals=decimals)
    if not comparison.empty:
        for ext, path in write_tables(comparison, out_dir, "paper_vs_ours").items():
            written[f"paper_vs_ours.{ext}"] = path
    written["final_acc"] = plot_final_acc(df, out_dir / "final_acc.png")
    for (dataset, arch, algorithm), group in df.groupby(["dataset", "arch", "algorithm"], sort=True):
        dirs = [d for d in group["run_dir"] if (Path(d) / "history.parquet").is_file()]
        if dirs:
            name = f"curves_{dataset}_{arch}_{algorithm}"
            written[name] = plot_learning_curves(
                dirs, out_dir / f"{name}.png", title=f"{algorithm.upper()} on {dataset} ({arch})"
            )
    return written


__all__ = [
    "REFERENCE_FILES",
    "brb_epochs",
    "build_report",
    "canonical_dataset",
    "collect_histories",
    "collect_runs",
    "contrastive_vs_ours",
    "flatten_config",
    "format_mean_std",
    "learning_curve_data",
    "load_history",
    "load_run",
    "paper_style_table",
    "paper_vs_ours",
    "plot_cluster_change",
    "plot_final_acc",
    "plot_learning_curves",
    "read_reference_ae",
    "read_reference_contrastive",
    "reference_path",
    "summary_table",
    "to_latex",
    "to_markdown",
    "write_metrics_parquet",
    "write_tables",
]
