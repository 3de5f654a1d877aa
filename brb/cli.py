"""The ``brb`` console script: one subcommand per workflow stage.

Every configuration key is also a flag, ``--<section>.<key> VALUE`` (values are parsed as YAML, so
``--model.hidden "[500, 500, 2000]"`` works), applied on top of an optional ``--config FILE``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from brb.config import SECTIONS, ConfigError, load_config
from brb.logs import configure_logging
from brb.pack import positive_int

#: Which configuration sections each stage reads (and therefore offers as flags).
STAGE_SECTIONS = {
    "pretrain": ("data", "model", "augment", "pretrain", "run"),
    "cluster": ("data", "model", "augment", "cluster", "brb", "run"),
    "kmeans": ("data", "cluster", "run"),
    "linear": ("data", "cluster", "run"),
    "selflabel": ("data", "augment", "selflabel", "run"),
}


def _add_config_flags(parser: argparse.ArgumentParser, sections: Sequence[str]) -> None:
    parser.add_argument("--config", type=Path, help="YAML file with configuration sections (flags override it)")
    for section in sections:
        group = parser.add_argument_group(f"{section} options")
        for key, field in SECTIONS[section].model_fields.items():
            default = field.get_default(call_default_factory=True)
            group.add_argument(
                f"--{section}.{key}",
                dest=f"cfg::{section}::{key}",
                metavar="VALUE",
                default=argparse.SUPPRESS,
                help=f"{field.description} (default: {default})",
            )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for dest, raw in vars(args).items():
        if not dest.startswith("cfg::"):
            continue
        _, section, key = dest.split("::")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        out.setdefault(section, {})[key] = value
    return out


def _config(args: argparse.Namespace):
    return load_config(args.config, _overrides(args))


def _report(paths: dict[str, Path]) -> None:
    for what, path in paths.items():
        print(f"{what}: {path}")


# --- stages ---------------------------------------------------------------------------------------
def cmd_prepare(args) -> None:
    from brb.data import prepare_dataset

    path = prepare_dataset(args.dataset, args.out, mirrors=args.mirror, cache_dir=args.cache_dir, download=not args.offline)
    _report({"prepared data": path})


def cmd_pretrain(args) -> None:
    import os

    if args.nproc_per_node > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return _launch_processes(args.nproc_per_node)
    from brb.stages import pretrain_stage

    _report(pretrain_stage(_config(args), args.data, args.out, progress=not args.quiet, extra_paths=args.extra_data))


def _launch_processes(n: int) -> None:
    """Run this ``brb pretrain`` command as ``n`` data-parallel processes on this node (torch.distributed.run,
    standalone rendezvous); each joins the group from the environment (brb/engine/distributed.py)."""
    from torch.distributed.run import main as torchrun

    argv = sys.argv[1:]
    rest, skip = [], False
    for a in argv:  # drop --nproc-per-node (the children are already the processes)
        if skip:
            skip = False
            continue
        if a == "--nproc-per-node":
            skip = True
            continue
        if a.startswith("--nproc-per-node="):
            continue
        rest.append(a)
    from brb.engine.loop import TrainingError

    try:
        torchrun(["--standalone", f"--nproc-per-node={n}", "-m", "brb.cli", *rest])
    except Exception as err:  # torch's ChildFailedError: the failing rank's message is above in the log
        raise TrainingError(f"one of the {n} pretraining processes failed: {err}") from None


def cmd_cluster(args) -> None:
    if args.seeds is not None:  # several runs, one child process per seed (brb/pack.py)
        from brb.pack import run_pack

        return run_pack(args)
    from brb.stages import cluster_stage

    _report(
        cluster_stage(
            _config(args), args.data, args.out, pretrained=args.pretrained, progress=not args.quiet, name=args.name
        )
    )


def cmd_kmeans(args) -> None:
    from brb.stages import kmeans_stage

    _report(kmeans_stage(_config(args), args.data, args.out, pretrained=args.pretrained))


def cmd_estep(args) -> None:
    from brb.stages import estep_stage

    _report(estep_stage(args.pretrained, args.data, args.out))


def cmd_linear(args) -> None:
    from brb.stages import linear_eval_stage

    _report(linear_eval_stage(_config(args), args.data, args.pretrained, args.out, c=args.C, max_iter=args.max_iter,
                              holdout=args.holdout))


def cmd_selflabel(args) -> None:
    from brb.stages import selflabel_stage

    _report(selflabel_stage(_config(args), args.data, args.run, args.out, progress=not args.quiet, name=args.name))


def cmd_evaluate(args) -> None:
    from brb.stages import evaluate_stage

    _report(evaluate_stage(args.run, args.data, silhouette=args.silhouette))


def cmd_aggregate(args) -> None:
    from brb.report.aggregate import collect_runs, write_metrics_parquet

    df = collect_runs(args.metrics)
    write_metrics_parquet(df, args.out)
    _report({"metrics table": args.out})
    print(f"{len(df)} runs")


def cmd_tables(args) -> None:
    from brb.stages import tables_stage

    _report(tables_stage(args.metrics, args.out_dir, reference=args.reference, block=args.block))


def cmd_plots(args) -> None:
    from brb.stages import plots_stage

    _report(plots_stage(args.metrics, args.out_dir))


def cmd_info(args) -> None:
    import brb.data  # noqa: F401  (registers the datasets)
    from brb.registry import REGISTRY

    if args.json:
        print(json.dumps(REGISTRY.describe(), indent=1))
        return
    headings = {"dataset": "datasets", "network": "networks", "pretraining": "pretraining methods",
                "method": "clustering methods (default options)", "variant": "variants (BRB parts switched on)"}
    for kind, heading in headings.items():
        print(f"{heading}:")
        for entry in REGISTRY.entries(kind):
            extra = ""
            if kind == "method":
                extra = " [" + ", ".join(f"{k} {v}" for k, v in entry.defaults.items()) + "]"
            elif kind == "variant":
                extra = " (" + (", ".join(k for k, v in entry.defaults.items() if v) or "none") + ")"
            print(f"  {entry.name:12s} {entry.summary}{extra}")


def _training_parser(sub, name: str, help: str, func) -> argparse.ArgumentParser:
    """A training stage: reads prepared data, writes an output directory (resumable), shows progress."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--data", required=True, type=Path, help="prepared .npz from `brb prepare`")
    p.add_argument("--out", required=True, type=Path, help="output directory (a resume.pt there is picked up)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brb",
        description="Deep clustering (DEC, IDEC, DCN) with and without Breaking the Reclustering Barrier.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = sub.add_parser("prepare", help="fetch a dataset (offline mirrors first) and save it as .npz")
    p.add_argument("--dataset", required=True, help="registry name (see `brb info`)")
    p.add_argument("--out", required=True, type=Path, help="output .npz path")
    p.add_argument("--mirror", action="append", default=[], help="directory searched before downloading (repeatable)")
    p.add_argument("--cache-dir", default="data", help="where downloads go (default: ./data)")
    p.add_argument("--offline", action="store_true", help="never download; fail if no mirror has the files")
    p.set_defaults(func=cmd_prepare)

    p = _training_parser(
        sub, "pretrain", "pretrain the network (autoencoder: reconstruction; resnet18: SimCLR); writes model.pt and "
        "history.parquet", cmd_pretrain
    )
    _add_config_flags(p, STAGE_SECTIONS["pretrain"])
    p.add_argument("--nproc-per-node", type=positive_int, default=1, metavar="N",
                   help="data-parallel processes on this node (one per GPU; gloo on the CPU), started through "
                        "torch.distributed.run; the self-supervised methods (byol, propos, simsiam, moco, pcl, cc)")
    p.add_argument("--extra-data", action="append", default=[], type=Path, metavar="NPZ",
                   help="prepared file of each dataset of --data.pretrain_extra, in its order (repeatable): their "
                        "images join the pretraining set, unscored")

    p = _training_parser(
        sub, "cluster", "deep clustering (with BRB per --brb.variant); writes a run directory", cmd_cluster
    )
    p.add_argument("--pretrained", type=Path, help="model.pt from `brb pretrain` (default: a fresh network)")
    p.add_argument("--name", help="variant name recorded in metrics.json (default: --brb.variant), e.g. brb_T5")
    p.add_argument(
        "--seeds",
        help="comma-separated seeds, e.g. 0,1,2: one run per seed, each in its own process on the same device; "
        "--out must contain {seed} (also replaced in --data, --pretrained, --config); each run logs to "
        "<out>/cluster.log",
    )
    p.add_argument(
        "--parallel", type=positive_int, default=1, metavar="N", help="with --seeds: runs at once (default: 1)"
    )
    _add_config_flags(p, STAGE_SECTIONS["cluster"])

    p = sub.add_parser("kmeans", help="baseline: k-means on raw inputs or on a pretrained embedding")
    p.add_argument("--data", required=True, type=Path, help="prepared .npz")
    p.add_argument("--pretrained", type=Path, help="model.pt whose embedding is clustered (default: raw pixels)")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    _add_config_flags(p, STAGE_SECTIONS["kmeans"])
    p.set_defaults(func=cmd_kmeans)

    p = sub.add_parser("estep", help="a self-supervised pretraining's own clustering (its last E-step; CC: its head) "
                       "as a run directory: algorithm = the method, variant estep (ProPos's Table 2)")
    p.add_argument("--pretrained", required=True, type=Path, help="model.pt of `brb pretrain` (estep_labels.npy "
                   "and estep.json beside it)")
    p.add_argument("--data", required=True, type=Path, help="prepared .npz it was pretrained on")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.set_defaults(func=cmd_estep)

    p = sub.add_parser("linear", help="linear evaluation protocol: logistic regression on the frozen pretrained "
                       "embedding, train split -> test split; writes a run directory (algorithm linear, variant probe)")
    p.add_argument("--data", required=True, type=Path, help="prepared .npz")
    p.add_argument("--pretrained", required=True, type=Path, help="model.pt of `brb pretrain`")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression (default 1)")
    p.add_argument("--max-iter", type=positive_int, default=1000, help="L-BFGS iterations (default 1000)")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="share held out (stratified) where the dataset has no official split (default 0.2)")
    _add_config_flags(p, STAGE_SECTIONS["linear"])
    p.set_defaults(func=cmd_linear)

    p = _training_parser(
        sub, "selflabel", "SCAN self-labeling of a clustering run; writes a run directory of its own", cmd_selflabel
    )
    p.add_argument("--run", required=True, type=Path, help="run directory of `brb cluster` (model.pt, metrics.json)")
    p.add_argument("--name", help="variant name recorded in metrics.json (default: <run's variant>-selflabel)")
    _add_config_flags(p, STAGE_SECTIONS["selflabel"])

    p = sub.add_parser("evaluate", help="recompute a run's metrics from its labels; writes evaluation.json")
    p.add_argument("--run", required=True, type=Path, help="run directory (holds labels.npy)")
    p.add_argument("--data", required=True, type=Path, help="prepared .npz the run was trained on")
    p.add_argument("--silhouette", action="store_true", help="also the silhouette score of the raw inputs (slow)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("aggregate", help="collect runs' metrics.json into one parquet table")
    p.add_argument("metrics", nargs="+", type=Path, help="metrics.json files")
    p.add_argument("--out", required=True, type=Path, help="output .parquet")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("tables", help="mean ± std tables (md, csv, tex), optionally paper versus ours")
    p.add_argument("--metrics", required=True, type=Path, help="parquet from `brb aggregate`")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--reference", type=Path, help="published numbers (CSV) for a paper-versus-ours table")
    p.add_argument("--block", default="main", help="block of the reference table to compare with")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("plots", help="learning curves with BRB epochs marked, final ACC by variant")
    p.add_argument("--metrics", required=True, type=Path, help="parquet from `brb aggregate`")
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_plots)

    p = sub.add_parser("info", help="list the registry: datasets, networks, pretraining and clustering methods, variants")
    p.add_argument("--json", action="store_true", help="the whole registry as JSON (names, summaries, tags, defaults)")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from brb.checkpointing import Interrupted, ResumeError
    from brb.data.registry import DataFileError
    from brb.engine.loop import TrainingError
    from brb.models.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    configure_logging(quiet=getattr(args, "quiet", False))
    try:
        args.func(args)
    except Interrupted as err:
        print(f"brb {args.command}: interrupted: {err}", file=sys.stderr)
        return 143
    except (ResumeError, ConfigError, DataFileError, CheckpointError, TrainingError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"brb {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
