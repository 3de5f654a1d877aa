"""Gather the outputs of many clustering runs into tidy pandas tables.

A finished run directory holds ``metrics.json`` (final scores plus the run's identity and config),
``history.parquet`` (one row per epoch) and optionally ``evaluation.json`` (a later, separate
evaluation whose scores take precedence over those in ``metrics.json``).

Scores stay in the unit the runs write them in (fractions in [0, 1]); the table builders in
:mod:`brb.report.tables` convert to percent.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from brb.io import atomic_path

#: Identity of a run; every metrics.json must carry these.
ID_COLUMNS = ("dataset", "arch", "algorithm", "variant", "seed")
#: Scores every metrics.json must carry.
REQUIRED_SCORES = ("acc", "nmi", "ari")
#: Scores that evaluation.json may override.
SCORE_COLUMNS = ("acc", "nmi", "ari", "purity", "silhouette", "nmi_geometric", "rand_index")
#: What DDC-family runs record besides (tk-uco's model selection and mismatch diagnostic); absent elsewhere.
SELECTION_COLUMNS = ("selected_loss", "selected_epoch", "final_ofm")
#: Columns of :func:`collect_runs` before the flattened ``config.*`` columns.
RUN_COLUMNS = (
    "dataset",
    "arch",
    "algorithm",
    "variant",
    "seed",
    "epochs",
    "acc",
    "nmi",
    "ari",
    "purity",
    "silhouette",
    "nmi_geometric",
    "rand_index",
    *SELECTION_COLUMNS,
    "n_clusters",
    "n_nonempty_clusters",
    "wall_time_s",
    "pretrained",
    "pretraining",
    "evaluated_on",
    "evaluated",
    "run_dir",
)
HISTORY_COLUMNS = ("epoch", "acc")

# Allowed ranges of the scores (ARI may be negative).
_RANGES = {
    "acc": (0.0, 1.0),
    "nmi": (0.0, 1.0),
    "purity": (0.0, 1.0),
    "ari": (-1.0, 1.0),
    "silhouette": (-1.0, 1.0),
    "nmi_geometric": (0.0, 1.0),
    "rand_index": (0.0, 1.0),
}
_INT_FIELDS = ("seed", "epochs", "n_clusters", "n_nonempty_clusters")


def flatten_config(config: Mapping[str, Any] | None, prefix: str = "config") -> dict[str, Any]:
    """Flatten a nested dict to ``{"config.a.b": value}``.

    Lists and tuples become their JSON text so that every value is hashable and parquet-friendly
    (e.g. ``[1024, 512, 256, 10]`` -> ``"[1024, 512, 256, 10]"``); empty dicts vanish.
    """
    out: dict[str, Any] = {}
    if config is None:
        return out
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_config(value, name))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(list(value), default=str)
        else:
            out[name] = value
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read run file ({exc.strerror or exc})") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _as_float(path: Path, key: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}: {key!r} must be a number, got {value!r}")
    value = float(value)
    lo_hi = _RANGES.get(key)
    if lo_hi is not None and math.isfinite(value) and not (lo_hi[0] - 1e-9 <= value <= lo_hi[1] + 1e-9):
        raise ValueError(
            f"{path}: {key}={value} outside [{lo_hi[0]}, {lo_hi[1]}] (scores are fractions, not percent)"
        )
    return value


def _as_int(path: Path, key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{path}: {key!r} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise ValueError(f"{path}: {key!r} must be an integer, got {value!r}")
    return value


def _metrics_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / "metrics.json" if path.is_dir() else path


def load_run(metrics_path: str | os.PathLike) -> dict[str, Any]:
    """Read one run (``metrics.json`` or its directory) into a flat dict (one row of :func:`collect_runs`).

    ``evaluation.json`` beside it, when present, overrides acc/nmi/ari/purity(/silhouette).
    Raises ``ValueError`` naming the offending file on a missing, unreadable or malformed file.
    """
    path = _metrics_file(metrics_path)
    raw = _read_json(path)
    missing = [k for k in (*ID_COLUMNS, *REQUIRED_SCORES) if k not in raw]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
    for key in ("dataset", "arch", "algorithm", "variant"):
        if not isinstance(raw[key], str) or not raw[key]:
            raise ValueError(f"{path}: {key!r} must be a non-empty string, got {raw[key]!r}")
    config = raw.get("config")
    if config is not None and not isinstance(config, Mapping):
        raise ValueError(f"{path}: 'config' must be an object, got {type(config).__name__}")

    row: dict[str, Any] = {
        "dataset": raw["dataset"],
        "arch": raw["arch"],
        "algorithm": raw["algorithm"],
        "variant": raw["variant"],
    }
    for key in _INT_FIELDS:
        row[key] = _as_int(path, key, raw.get(key))
    if row["seed"] is None:
        raise ValueError(f"{path}: 'seed' must be an integer, got None")
    for key in SCORE_COLUMNS:
        row[key] = _as_float(path, key, raw.get(key))
    row["wall_time_s"] = _as_float(path, "wall_time_s", raw.get("wall_time_s"))
    for key in SELECTION_COLUMNS:
        row[key] = _as_float(path, key, raw.get(key))
    pretrained = raw.get("pretrained")
    row["pretrained"] = None if pretrained is None else str(pretrained)
    pretraining = raw.get("pretraining")
    row["pretraining"] = None if pretraining is None else str(pretraining)
    row["evaluated_on"] = str(raw.get("evaluated_on", "all"))  # "test" for train/test-split runs

    row["evaluated"] = False
    eval_path = path.parent / "evaluation.json"
    if eval_path.exists():
        evaluation = _read_json(eval_path)
        for key in SCORE_COLUMNS:
            if key in evaluation:
                row[key] = _as_float(eval_path, key, evaluation[key])
        row["evaluated"] = True

    row["run_dir"] = str(path.parent)
    row.update(flatten_config(config))
    return row


def collect_runs(metrics_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per run, columns :data:`RUN_COLUMNS` then the sorted ``config.*`` columns.

    ``metrics_paths`` may name ``metrics.json`` files or run directories. Rows are sorted by
    dataset, arch, algorithm, variant, seed.
    """
    rows = [load_run(p) for p in metrics_paths]
    config_cols = sorted({k for r in rows for k in r if k.startswith("config.")})
    df = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *config_cols])
    if df.empty:
        return df
    for key in ("seed",):
        df[key] = df[key].astype("int64")
    for key in ("epochs", "n_clusters", "n_nonempty_clusters"):
        df[key] = df[key].astype("Int64")
    df["evaluated"] = df["evaluated"].astype(bool)
    # a study that mixes pretraining methods on one network (run sheet) tells them apart in every table and plot
    mixed = df.dropna(subset=["pretraining"]).groupby("arch")["pretraining"].nunique()
    for arch in mixed[mixed > 1].index:
        rows = (df["arch"] == arch) & df["pretraining"].notna()
        df.loc[rows, "arch"] = arch + "/" + df.loc[rows, "pretraining"]
    return df.sort_values(list(ID_COLUMNS), kind="stable").reset_index(drop=True)


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Make object columns with mixed value types storable (their values become text)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype != object:
            continue
        kinds = {type(v) for v in out[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if len(kinds) > 1 or any(k in (list, dict, tuple) for k in kinds):
            out[col] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in out[col]]
    return out


def write_metrics_parquet(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the runs table to parquet atomically; returns ``path``."""
    path = Path(path)
    safe = _parquet_safe(df)
    with atomic_path(path) as tmp:
        safe.to_parquet(tmp, index=False)
    return path


# ----------------------------------------------------------------------------- histories


def load_history(run: str | os.PathLike) -> pd.DataFrame:
    """Read a run's ``history.parquet`` and tag each row with the run's identity.

    ``run`` is the run directory (or its ``metrics.json`` / ``history.parquet``). Adds the columns
    dataset, arch, algorithm, variant, seed and run_dir. ``brb`` missing -> all False.
    """
    run = Path(run)
    run_dir = run if run.is_dir() else run.parent
    hist_path = run_dir / "history.parquet"
    try:
        hist = pd.read_parquet(hist_path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{hist_path}: cannot read history ({exc})") from exc
    missing = [c for c in HISTORY_COLUMNS if c not in hist.columns]
    if missing:
        raise ValueError(f"{hist_path}: missing column(s) {', '.join(missing)}")
    meta = load_run(run_dir / "metrics.json")
    hist = hist.copy()
    if "brb" not in hist.columns:
        hist["brb"] = False
    hist["brb"] = hist["brb"].fillna(False).astype(bool)
    for key in (*ID_COLUMNS, "run_dir"):
        hist[key] = meta[key]
    return hist.sort_values("epoch", kind="stable").reset_index(drop=True)


def collect_histories(runs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate :func:`load_history` over run directories."""
    frames = [load_history(r) for r in runs]
    if not frames:
        return pd.DataFrame(columns=[*HISTORY_COLUMNS, "brb", *ID_COLUMNS, "run_dir"])
    return pd.concat(frames, ignore_index=True)
