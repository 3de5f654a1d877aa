#!/usr/bin/env python
"""Speed of k-means (n_init 10) through ``brb.interventions.brb_ops.recluster``: scikit-learn vs torch backend.

Workload: Gaussian blobs shaped like the paper's embedding of Fashion-MNIST (70,000 points, 10 dimensions,
10 clusters, ``--cluster-std`` so the clusters overlap; fixed ``--seed``), clustered into 10:

- ``subsample_10k``: the 10,000-point subsample a BRB step reclusters (``subsample_indices``);
- ``full_70k``: all 70,000 points, as the initial clustering does.

The embedding is handed to ``recluster`` as a float32 tensor on ``--device`` (as the trainer holds it), so
the sklearn time includes the copy to the host. Each backend gets ``--warmup`` untimed runs, then
``--repeats`` timed ones; the headline is their median. Inertia (sum of squared distances to the nearest
centroid, float64) is computed the same way for both backends.

``--quick``: 5,000 points, a 1,000-point subsample, one timed run and no warm-up (a plumbing check).
The ``summary`` rows (``kmeans_full_torch``, ``kmeans_full_sklearn``: the full case) go into the combined
result files of ``run_all.sh``; k-means has no target in the issue.

Prints the JSON result to stdout; progress goes to stderr. ``--out-json`` / ``--out-md`` write files too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKENDS = ("sklearn", "torch")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch / OpenMP / BLAS threads (default 2)")
    p.add_argument("--n-points", type=int, default=70_000, help="points of the full case (default 70,000)")
    p.add_argument("--subsample", type=int, default=10_000, help="points of the subsample case (default 10,000)")
    p.add_argument("--dim", type=int, default=10, help="dimensions (default 10)")
    p.add_argument("--clusters", type=int, default=10, help="blob centres and k (default 10)")
    p.add_argument("--cluster-std", type=float, default=2.0, help="blob standard deviation (default 2.0)")
    p.add_argument("--n-init", type=int, default=10, help="k-means restarts (default 10)")
    p.add_argument("--seed", type=int, default=0, help="data and k-means seed (default 0)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per backend and case (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per backend and case (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (5,000 points, 1,000 subsample, 1 timed run, no warm-up): a plumbing check")
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.n_points, args.subsample = min(args.n_points, 5_000), min(args.subsample, 1_000)
        args.warmup, args.repeats = 0, 1
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.n_init < 1:
        p.error("--threads >= 1, --repeats >= 1, --warmup >= 0, --n-init >= 1")
    if not 0 < args.clusters <= args.subsample <= args.n_points:
        p.error("need 0 < --clusters <= --subsample <= --n-points")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    sys.path.insert(0, str(HERE))
    import _common  # noqa: E402  (stdlib only: safe before numpy/torch)

    _common.pin_threads(ARGS.threads)

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

from brb.cluster.kmeans_torch import assign_clusters  # noqa: E402
from brb.interventions.brb_ops import recluster, subsample_indices  # noqa: E402
from brb.runtime import resolve_device  # noqa: E402


def make_cases(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """The two inputs (float32): the full blob set and its seeded subsample."""
    from sklearn.datasets import make_blobs

    full, _ = make_blobs(n_samples=args.n_points, n_features=args.dim, centers=args.clusters,
                         cluster_std=args.cluster_std, random_state=args.seed)
    full = full.astype(np.float32)
    sub = full[subsample_indices(len(full), args.subsample, args.seed)]
    return {f"subsample_{args.subsample // 1000}k": sub, f"full_{args.n_points // 1000}k": full}


def time_backend(z: torch.Tensor, args: argparse.Namespace, backend: str) -> tuple[list[float], np.ndarray]:
    """Wall times of ``--repeats`` timed ``recluster`` calls (after ``--warmup`` untimed ones), and the centroids."""
    times, centers = [], None
    for i in range(args.warmup + args.repeats):
        C.sync(z.device)
        t0 = time.perf_counter()
        centers = recluster(z, args.clusters, "kmeans", args.seed, args.n_init, backend=backend)
        C.sync(z.device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return times, centers


def inertia(z: np.ndarray, centers: np.ndarray) -> float:
    """Sum of squared distances to the nearest centroid, in float64 on the host (same scoring for both)."""
    _, dist = assign_clusters(torch.from_numpy(z.astype(np.float64)), torch.from_numpy(centers.astype(np.float64)))
    return float(dist.sum())


def run_case(name: str, z: np.ndarray, device: torch.device, args: argparse.Namespace) -> dict:
    """Both backends on one input: median seconds, all times and inertia per backend; speed-up and gap."""
    zt = torch.from_numpy(z).to(device)
    result: dict = {"n_points": int(z.shape[0]), "dim": int(z.shape[1]), "k": args.clusters}
    for backend in BACKENDS:
        C.log(f"{name}: {backend} ({args.warmup} warm-up + {args.repeats} timed runs) ...")
        times, centers = time_backend(zt, args, backend)
        result[backend] = {"seconds": statistics.median(times), "min_s": min(times), "times_s": times,
                           "inertia": inertia(z, centers)}
        C.log(f"{name}: {backend} median {result[backend]['seconds']:.3f} s, inertia {result[backend]['inertia']:.6g}")
    sk, to = result["sklearn"], result["torch"]
    result["speedup_torch_vs_sklearn"] = sk["seconds"] / to["seconds"] if to["seconds"] > 0 else None
    result["inertia_rel_diff_torch_vs_sklearn"] = (to["inertia"] - sk["inertia"]) / sk["inertia"]
    return result


def summary_rows(result: dict) -> list[dict]:
    """Rows for the combined result files: both backends on the full case (seconds, no target)."""
    device_type = "cuda" if str(result["environment"].get("device", "cpu")).startswith("cuda") else "cpu"
    s = result["settings"]
    case = result["cases"][result["full_case"]]
    sk, to = case["sklearn"], case["torch"]
    what = f"k-means n_init {s['n_init']} on {case['n_points']:,} points x {case['dim']} dims (the initial clustering)"
    sub = next((c for name, c in result["cases"].items() if name != result["full_case"]), None)
    sub_note = (f"; {sub['n_points']:,}-point subsample: torch {C.fmt(sub['torch']['seconds'])} s, "
                f"sklearn {C.fmt(sub['sklearn']['seconds'])} s" if sub else "")
    return [
        C.summary_row("kmeans_full_torch", to["seconds"], device_type, label=f"{what}: torch backend",
                      note=f"{C.fmt(case['speedup_torch_vs_sklearn'])}x the speed of scikit-learn; inertia "
                           f"{case['inertia_rel_diff_torch_vs_sklearn']:+.1e} relative to it; "
                           f"{result['environment']['device']}"),
        C.summary_row("kmeans_full_sklearn", sk["seconds"], device_type, label=f"{what}: scikit-learn backend",
                      note=f"median of {s['repeats']}{sub_note}"),
    ]


def to_markdown(result: dict) -> str:
    s, env = result["settings"], result["environment"]
    lines = [
        "## k-means benchmark: scikit-learn vs torch backend of `recluster`"
        + (" — QUICK CHECK (small sizes)" if result.get("quick") else ""),
        "",
        f"Gaussian blobs ({s['clusters']} centres, std {s['cluster_std']}, seed {s['seed']}), k = {s['clusters']}, "
        f"n_init {s['n_init']}, {s['threads']} threads, device {env['device']}; median of {s['repeats']} timed "
        f"run(s) after {s['warmup']} warm-up run(s) (fastest run in brackets).",
        "",
        *C.busy_warning(env),
        *C.environment_lines(env),
        f"- command: `{env['command']}`",
        "",
        "| case | points x dim | sklearn (s) | torch (s) | speed-up | sklearn inertia | torch inertia | inertia gap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in result["cases"].items():
        sk, to = c["sklearn"], c["torch"]
        lines.append(
            f"| {name} | {c['n_points']} x {c['dim']} | {C.fmt(sk['seconds'], 4)} ({C.fmt(sk['min_s'], 4)}) "
            f"| {C.fmt(to['seconds'], 4)} ({C.fmt(to['min_s'], 4)}) | {C.fmt(c['speedup_torch_vs_sklearn'])}x "
            f"| {sk['inertia']:.6g} | {to['inertia']:.6g} | {c['inertia_rel_diff_torch_vs_sklearn']:+.2e} |"
        )
    return "\n".join(lines + [""])


def main() -> int:
    args = ARGS or parse_args()
    t_all = time.perf_counter()
    try:
        device = resolve_device(args.device)
    except RuntimeError as err:
        raise SystemExit(f"bench_kmeans: {err}") from None
    torch.set_num_threads(args.threads)
    env = C.base_environment()
    inputs = make_cases(args)
    cases = {name: run_case(name, z, device, args) for name, z in inputs.items()}
    settings = {k: getattr(args, k) for k in ("n_points", "subsample", "dim", "clusters", "cluster_std", "n_init",
                                              "seed", "threads", "warmup", "repeats")}
    result = {
        "benchmark": "kmeans",
        "quick": bool(args.quick),
        "environment": C.device_environment(env, device),
        "settings": settings,
        "cases": cases,
        "full_case": list(inputs)[-1],
        "total_wall_s": time.perf_counter() - t_all,
    }
    result["summary"] = summary_rows(result)
    C.write_outputs(result, to_markdown(result), args.out_json, args.out_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
