"""Shared helpers of the benchmark scripts: the reference table, environment record, memory probes, Markdown.

Imported by every ``bench_*.py`` script and ``summarize.py`` (run as scripts from any directory: their own
folder is on ``sys.path``). Nothing here imports torch at module level (only inside the functions that need
it), so the dry-run benchmark stays light.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
GIB = 1024**3


def pin_threads(n: int) -> None:
    """Set the OpenMP/BLAS thread counts (k-means, silhouette) to torch's; call before numpy/torch load."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
TARGET_MEMORY_BYTES = 2e9  # "peak memory <= 2 GB"

#: The issue's reference measurements (reference implementation, Fashion-MNIST, 70,000 images, the paper's
#: autoencoder, batch 256, torch with 2 threads) and targets, plus the rows of the other benchmarks.
#: ``unit``: seconds unless given (memory rows GiB, throughput rows images/s, ACC rows a fraction).
#: ``higher``: higher is better (met when ours >= target); otherwise lower is better (met when ours <= target).
#: ``gpu_target``: the target on a CUDA device where the issue gives one; otherwise ``target`` applies on a
#: CUDA device too (``target`` None and only ``gpu_target``: a GPU-only target, none on the CPU).
REFERENCE: dict[str, dict] = {
    "pretrain_epoch": {
        "label": "autoencoder pretraining epoch (augmentation on, as the ae_table preset)",
        "reference": 8.8, "target": 6.0,
    },
    "pretrain_epoch_noaug": {
        "label": "autoencoder pretraining epoch, augmentation off",
        "reference": 8.8, "target": 6.0,
    },
    "dec_epoch_aug": {
        "label": "DEC clustering epoch, augmentation invariance on",
        "reference": 39.0, "target": 15.0, "gpu_target": 0.5,
    },
    "dec_epoch_noaug": {"label": "DEC clustering epoch, augmentation off", "reference": 10.0, "target": None},
    "dcn_epoch_aug": {"label": "DCN clustering epoch, augmentation on", "reference": 62.0, "target": 20.0},
    "brb_step": {
        "label": "BRB step (soft reset + k-means n_init=10 on a 10k subsample)",
        "reference": 0.6, "target": 0.3,
    },
    "idec_epoch_aug": {"label": "IDEC clustering epoch, augmentation on", "reference": 44.0, "target": 20.0},
    "evaluation": {
        "label": "final evaluation incl. silhouette and purity (`evaluate_stage`, silhouette on)",
        "reference": 71.0, "target": 2.0,
    },
    "memory_main_rss": {
        "label": "peak memory of a clustering run: main process RSS",
        "reference": 3.8, "target": TARGET_MEMORY_BYTES / GIB, "unit": "GiB",
    },
    "memory_tree_pss": {
        "label": "peak memory of a clustering run: process tree PSS",
        "reference": 4.2, "target": TARGET_MEMORY_BYTES / GIB, "unit": "GiB",
    },
    "dryrun": {
        "label": "dry run of the full paper plan (`snakemake -n --configfile workflow/presets/ae_table.yaml`)",
        "reference": None, "target": 5.0,
    },
    "kmeans_full_torch": {
        "label": "k-means n_init 10 on 70,000 points x 10 dims (the initial clustering): torch backend",
        "reference": None, "target": None,
    },
    "kmeans_full_sklearn": {
        "label": "k-means n_init 10 on 70,000 points x 10 dims (the initial clustering): scikit-learn backend",
        "reference": None, "target": None,
    },
    "simclr_train": {
        "label": "SimCLR pretraining, ResNet-18 on CIFAR-10 (32x32): training images/s, each image giving 2 views",
        "reference": None, "target": None, "gpu_target": 15000.0, "unit": "images/s", "higher": True,
    },
    "simclr_embed": {
        "label": "ResNet-18 embedding of CIFAR-10 (32x32) images (`embed`, inference)",
        "reference": None, "target": None, "unit": "images/s", "higher": True,
    },
    "simclr_kmeans_acc": {
        "label": "SimCLR + k-means ACC on the CIFAR-10 test split, after the benchmark's short pretraining",
        "reference": None, "target": None, "unit": "ACC", "higher": True,
    },
}


def target_for(stage: str, device_type: str) -> Optional[float]:
    ref = REFERENCE.get(stage, {})
    if device_type == "cuda" and ref.get("gpu_target") is not None:
        return ref["gpu_target"]
    return ref.get("target")


def summary_row(stage: str, ours: Optional[float], device_type: str, label: Optional[str] = None,
                note: str = "", key: Optional[str] = None) -> dict:
    """One row of the Markdown table: stage | ours | reference | target | met?

    ``key`` identifies the row across result files (SUMMARY.md); it defaults to ``stage``.
    """
    ref = REFERENCE.get(stage, {})
    target = target_for(stage, device_type) if stage in REFERENCE else None
    higher = bool(ref.get("higher", False))
    met = None if (ours is None or target is None) else bool(ours >= target if higher else ours <= target)
    return {
        "key": key or stage,
        "stage": stage,
        "label": label or ref.get("label", stage),
        "ours": ours,
        "reference": ref.get("reference"),
        "target": target,
        "met": met,
        "unit": ref.get("unit", "s"),
        "higher_is_better": higher,
        "note": note,
    }


def fmt_target(target: Optional[float], higher: bool) -> str:
    """A target cell: ``≥ 15000`` for higher-is-better rows, the plain number (an upper bound) otherwise."""
    return fmt(target) if target is None or not higher else f"≥ {fmt(target)}"


def load_preset(path: Optional[Path], fallback_settings: dict) -> dict:
    """A study preset (``workflow/presets/*.yaml``) whose ``settings`` define a benchmark's workload; when the
    file is missing, ``{"settings": fallback_settings}`` (a built-in copy of those settings)."""
    import yaml

    if path and Path(path).is_file():
        return yaml.safe_load(Path(path).read_text()) or {}
    log(f"preset {path} not found; using the built-in copy of its settings")
    return {"settings": fallback_settings}


# --- environment -----------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def _cpu_times() -> Optional[tuple[int, int]]:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def cpu_busy_fraction(seconds: float = 1.0) -> Optional[float]:
    """Fraction of all cores busy during ``seconds`` (measured while this process sleeps): other load."""
    a = _cpu_times()
    time.sleep(seconds)
    b = _cpu_times()
    if a is None or b is None or b[0] == a[0]:
        return None
    return 1.0 - (b[1] - a[1]) / (b[0] - a[0])


def base_environment() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(load) if load else None,
        "cpu_busy_before_start": cpu_busy_fraction(1.0),
        "git": git_revision(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


# --- memory ----------------------------------------------------------------------------------------
def _read_kib(path: str, key: str) -> Optional[int]:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (via /proc/PID/task/TID/children)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += _children(p)
    return seen


def pss_bytes(pid: int) -> Optional[int]:
    kib = _read_kib(f"/proc/{pid}/smaps_rollup", "Pss:")
    return None if kib is None else kib * 1024


def tree_pss_bytes(pid: int) -> Optional[int]:
    values = [pss_bytes(p) for p in process_tree(pid)]
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def rss_bytes(pid: int) -> Optional[int]:
    kib = _read_kib(f"/proc/{pid}/status", "VmRSS:")
    return None if kib is None else kib * 1024


def hwm_bytes(pid: int) -> Optional[int]:
    """Peak RSS so far of one process (VmHWM)."""
    kib = _read_kib(f"/proc/{pid}/status", "VmHWM:")
    return None if kib is None else kib * 1024


def maxrss_bytes(who: str = "self") -> int:
    """ru_maxrss of this process (``self``) or of its waited-for children (``children``); Linux reports KiB."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN)
    return int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


class PeakSampler:
    """Background thread sampling a process tree's PSS and the root's RSS; keeps the maxima.

    PSS is only available where ``/proc/PID/smaps_rollup`` exists (Linux >= 4.14); then ``available`` is True.
    ``reset()`` starts a new window (per stage) while the thread keeps running.
    """

    def __init__(self, pid: Optional[int] = None, interval: float = 0.2):
        self.pid = pid or os.getpid()
        self.interval = interval
        self.available = pss_bytes(self.pid) is not None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.peak_pss = 0
        self.peak_rss = 0
        self.samples = 0
        self._thread: Optional[threading.Thread] = None

    def sample(self) -> None:
        pss = tree_pss_bytes(self.pid) if self.available else None
        rss = rss_bytes(self.pid)
        with self._lock:
            if pss is not None:
                self.peak_pss = max(self.peak_pss, pss)
            if rss is not None:
                self.peak_rss = max(self.peak_rss, rss)
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> PeakSampler:
        if self.interval > 0:
            self.sample()
            self._thread = threading.Thread(target=self._run, name="peak-sampler", daemon=True)
            self._thread.start()
        return self

    def reset(self) -> None:
        with self._lock:
            self.peak_pss = self.peak_rss = self.samples = 0
        self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def result(self) -> dict:
        with self._lock:
            return {
                "tree_pss_peak_gib": self.peak_pss / GIB if self.available and self.peak_pss else None,
                "rss_peak_sampled_gib": self.peak_rss / GIB if self.peak_rss else None,
                "samples": self.samples,
                "interval_s": self.interval,
            }


# --- output ----------------------------------------------------------------------------------------
def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.{digits - 1}f}"
        return f"{value:.2g}"
    return str(value)


def met_text(met: Optional[bool]) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def markdown_table(rows: Iterable[dict]) -> str:
    """stage | ours | reference | target | met?: seconds unless the stage names its unit in brackets."""
    lines = ["| stage | ours | reference | target | met? |", "|---|---:|---:|---:|:---:|"]
    for r in rows:
        label = r["label"] + (f" [{r['unit']}]" if r.get("unit", "s") != "s" else "")
        if r.get("note"):
            label += f" ({r['note']})"
        target = fmt_target(r["target"], r.get("higher_is_better", False))
        lines.append(f"| {label} | {fmt(r['ours'])} | {fmt(r['reference'])} | {target} | {met_text(r['met'])} |")
    return "\n".join(lines)


def device_environment(env: dict, device) -> dict:
    """``env`` (from :func:`base_environment`) plus what the run used: device, threads, library versions."""
    import numpy as np
    import sklearn
    import torch

    cuda = device.type == "cuda"
    env.update(
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if cuda else cpu_model(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        cuda=torch.version.cuda if cuda else None,
        numpy=np.__version__,
        sklearn=sklearn.__version__,
        load_average_at_end=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    )
    return env


def sync(device) -> None:
    """Wait for queued CUDA work on ``device`` (a no-op elsewhere), so wall-clock timers are exact."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def write_outputs(result: dict, markdown: str, out_json: Optional[Path], out_md: Optional[Path]) -> None:
    """The benchmark convention: JSON to stdout (and ``out_json``), Markdown to stderr (and ``out_md``)."""
    import json

    text = json.dumps(result, indent=2, default=str)
    print(text)
    for path, content in ((out_json, text + "\n"), (out_md, markdown)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    print(markdown, file=sys.stderr)


def environment_lines(env: dict) -> list[str]:
    keys = ["date", "hostname", "device", "device_name", "cpu_model", "cpu_count", "threads", "torch", "cuda",
            "numpy", "sklearn", "snakemake", "python", "load_average_at_start", "cpu_busy_before_start", "git"]
    lines = []
    for key in keys:
        if key in env and env[key] is not None:
            value = env[key]
            if key == "git" and isinstance(value, dict):
                value = f"{(value.get('commit') or '?')[:12]}{' (dirty)' if value.get('dirty') else ''}"
            elif key == "load_average_at_start" and isinstance(value, list):
                value = ", ".join(f"{v:.2f}" for v in value)
            elif key == "cpu_busy_before_start":
                value = f"{value:.0%} of all cores (other processes, 1 s before the start)"
            lines.append(f"- {key}: {value}")
    return lines


def busy_warning(env: dict) -> list[str]:
    """A warning line when other processes kept >= 20% of the cores busy just before the start."""
    busy, cores = env.get("cpu_busy_before_start"), env.get("cpu_count") or 1
    if busy is not None and busy >= 0.2:
        return [f"> **Warning**: the machine was busy ({busy:.0%} of {cores} cores used by other processes just "
                "before the start); timings are unreliable. Re-run on a quiet machine.", ""]
    return []


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
