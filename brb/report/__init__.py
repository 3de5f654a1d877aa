"""Reporting: collect finished runs, tabulate them (Markdown/CSV/LaTeX), compare with the paper, plot.

The paper's published numbers ship with the package under ``brb/report/reference/``; use
:func:`reference_path` to locate them::

    from brb.report import collect_runs, paper_vs_ours, reference_path, write_tables
    runs = collect_runs(sorted(Path("results/runs").glob("*/metrics.json")))
    write_tables(paper_vs_ours(runs, reference_path("published.csv"), block="main"), "results/report", "paper_vs_ours")

The workflow's report stages (``brb tables``, ``brb plots``: :mod:`brb.stages`) are the one report pipeline.
"""

from __future__ import annotations

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
    format_mean_std,
    paper_style_table,
    paper_vs_ours,
    read_published,
    summary_table,
    to_latex,
    to_markdown,
    write_tables,
)

#: Files under brb/report/reference/.
REFERENCE_FILES = ("published.csv",)


def reference_path(name: str) -> Path:
    """Path of a packaged reference file, e.g. ``reference_path("published.csv")``."""
    path = resources.files("brb.report").joinpath("reference", name)
    if not path.is_file():
        raise FileNotFoundError(f"no packaged reference file {name!r} (known: {', '.join(REFERENCE_FILES)})")
    return Path(str(path))


__all__ = [
    "REFERENCE_FILES",
    "brb_epochs",
    "canonical_dataset",
    "collect_histories",
    "collect_runs",
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
    "read_published",
    "reference_path",
    "summary_table",
    "to_latex",
    "to_markdown",
    "write_metrics_parquet",
    "write_tables",
]
