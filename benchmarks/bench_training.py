#!/usr/bin/env python
"""Speed and memory of the training stages, through the package's own code paths.

Workload (as the issue's reference table): Fashion-MNIST (70,000 images 28x28), the paper's autoencoder
(encoder [784, 1024, 512, 256, 10] + BatchNorm), batch 256, the settings of
``workflow/presets/ae_table.yaml`` (augmentation invariance, BRB T=20, alpha=0.8, k-means on a 10k
subsample), torch with ``--threads`` threads (default 2).

Stages (``--only`` picks a subset):

- ``pretrain_epoch`` / ``pretrain_epoch_noaug``: one epoch of ``pretrain_autoencoder`` (augmented views on /
  off); per-epoch times from its history, after ``--warmup`` warm-up epochs.
- ``dec_epoch_aug``, ``dec_epoch_noaug``, ``idec_epoch_aug``, ``dcn_epoch_aug``: ``ClusterTrainer.train_epoch``
  plus the per-epoch evaluation that ``ClusterTrainer.fit`` does after it (``embed`` + ``predict``, then the
  history row with ``clustering_metrics``); both and their sum are reported. ``ClusterTrainer.__init__``
  (embedding + k-means, n_init 10, on all points) is reported as ``init_s``.
- ``brb_step``: ``ClusterTrainer.apply_brb`` (variant brb: soft reset, k-means n_init 10 on a 10,000-point
  subsample, momentum reset), with a breakdown into its parts.
- ``evaluation``: ``brb.stages.evaluate_stage`` (silhouette on and off) on a run directory with 70k labels,
  ``clustering_metrics`` alone and ``embed`` of the whole dataset alone.
- ``memory``: a real ``brb cluster`` subprocess (DEC, augmentation on, BRB firing at epoch 1, ``--memory-epochs``
  epochs): peak RSS of its main process (``wait4`` rusage) and peak PSS of its process tree (sampled from
  ``/proc/PID/smaps_rollup``).

Prints the JSON result to stdout; progress goes to stderr. ``--out-json`` / ``--out-md`` write files too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

STAGES = [
    "pretrain_epoch",
    "pretrain_epoch_noaug",
    "dec_epoch_aug",
    "brb_step",
    "dec_epoch_noaug",
    "idec_epoch_aug",
    "dcn_epoch_aug",
    "evaluation",
    "memory",
]
CLUSTER_STAGES = {
    "dec_epoch_aug": ("dec", True),
    "dec_epoch_noaug": ("dec", False),
    "idec_epoch_aug": ("idec", True),
    "dcn_epoch_aug": ("dcn", True),
}
HERE = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=None, help="registry name (default fmnist; `digits` for a quick check)")
    p.add_argument("--data", type=Path, help="a prepared .npz (`brb prepare`) to use instead of preparing one")
    p.add_argument("--data-dir", type=Path, default=HERE / ".cache",
                   help="where the prepared .npz is cached (default: benchmarks/.cache)")
    p.add_argument("--offline", action="store_true", help="never download while preparing (mirrors only)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=2, help="torch / OpenMP / BLAS threads (default 2)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="run.precision of the measured runs (default fp32; bf16 = autocast matrix products)")
    p.add_argument("--warmup", type=int, default=1, help="untimed-in-the-headline warm-up epochs (default 1)")
    p.add_argument("--epochs-per-measure", type=int, default=1,
                   help="timed epochs after the warm-up; the headline is their median (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="repetitions of the BRB step and evaluations (default 3)")
    p.add_argument("--memory-epochs", type=int, default=2, help="epochs of the `brb cluster` memory run (default 2)")
    p.add_argument("--memory-algorithm", default="dec", choices=["dec", "idec", "dcn"])
    p.add_argument("--mem-interval", type=float, default=0.2, help="PSS sampling interval in s (0: off)")
    p.add_argument("--preset", type=Path, default=HERE.parent / "workflow/presets/ae_table.yaml",
                   help="study preset whose `settings` define the workload (default: ae_table.yaml)")
    p.add_argument("--only", default="all", help=f"comma-separated subset of: {', '.join(STAGES)}")
    p.add_argument("--quick", action="store_true", help="digits, tiny sizes: a check that finishes in seconds")
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args(argv)
    if args.dataset is None:
        args.dataset = "digits" if args.quick else "fmnist"
    if args.quick:
        args.repeats = min(args.repeats, 2)
    args.stages = STAGES if args.only == "all" else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.stages if s not in STAGES]
    if unknown:
        p.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    if args.warmup < 0 or args.epochs_per_measure < 1 or args.repeats < 1 or args.threads < 1:
        p.error("--warmup >= 0, --epochs-per-measure >= 1, --repeats >= 1, --threads >= 1")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    sys.path.insert(0, str(HERE))
    import _common  # noqa: E402  (stdlib only: safe before numpy/torch)

    _common.pin_threads(ARGS.threads)

import copy  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

from brb.config import deep_merge, make_config  # noqa: E402
from brb.data import load_prepared, prepare_dataset  # noqa: E402
from brb.data.tensors import DeviceData  # noqa: E402
from brb.engine.common import DeviceSubset, embed, new_model  # noqa: E402
from brb.interventions.brb_ops import recluster, soft_reset, subsample_indices  # noqa: E402
from brb.methods.centroid import ClusterTrainer  # noqa: E402
from brb.methods.reconstruction import pretrain_autoencoder  # noqa: E402
from brb.metrics import clustering_metrics  # noqa: E402
from brb.models.checkpoint import save_checkpoint  # noqa: E402
from brb.runtime import resolve_device  # noqa: E402
from brb.stages import evaluate_stage  # noqa: E402

#: Used when the preset file is missing: the ae_table preset's settings.
FALLBACK_SETTINGS = {
    "model": {"hidden": [1024, 512, 256], "batch_norm": True},
    "augment": {"degrees": 16, "translate": 0.1, "shear": 8},
    "pretrain": {"epochs": 250, "batch_size": 256, "lr": 0.001, "augment": True},
    "cluster": {"epochs": 400, "batch_size": 256, "lr": 0.001, "augment": True, "target": "batch",
                "dcn_update": "reference"},
    "brb": {"interval": 20, "alpha": 0.8, "subsample": 10000, "recluster_method": "kmeans", "kmeans_n_init": 10},
}


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        try:
            self.device = resolve_device(args.device)
        except RuntimeError as err:
            raise SystemExit(f"bench_training: {err}") from None
        self.cuda = self.device.type == "cuda"
        torch.set_num_threads(args.threads)
        self.stages: dict[str, dict] = {}
        self.sampler = C.PeakSampler(interval=args.mem_interval).start()
        self.tmp = Path(tempfile.mkdtemp(prefix="brb-bench-"))
        self.preset = self._load_preset(args.preset)
        self.model0 = None  # starting network of the clustering stages (the pretrained one when available)
        self.model0_source = "fresh (untrained) network"
        self.keep_trainer = None  # the DEC+aug trainer, reused by the BRB step
        self.last_labels = None

    # --- helpers ---------------------------------------------------------------------------------------
    def now(self) -> float:
        C.sync(self.device)
        return time.perf_counter()

    def _load_preset(self, path: Path) -> dict:
        return C.load_preset(path, FALLBACK_SETTINGS)

    def settings(self, algorithm: str = "dec", **override) -> dict:
        """The preset's settings for this dataset and algorithm, with the benchmark's overrides."""
        merged = dict(self.preset.get("settings", {}))
        merged = deep_merge(merged, self.preset.get("dataset_settings", {}).get(self.args.dataset, {}) or {})
        merged = deep_merge(merged, self.preset.get("algorithm_settings", {}).get(algorithm, {}) or {})
        if self.args.quick:  # tiny sizes: exercise every code path in seconds
            merged = deep_merge(merged, {"model": {"hidden": [128, 64, 32]}, "brb": {"subsample": 1000}})
        merged = deep_merge(merged, {
            "data": {"dataset": self.args.dataset},
            "cluster": {"algorithm": algorithm},
            "brb": {"variant": "brb"},
            "run": {"seed": 0, "device": str(self.device), "threads": self.args.threads,
                    "precision": self.args.precision},
        })
        return deep_merge(merged, override)

    def config(self, algorithm: str = "dec", **override):
        return make_config(self.settings(algorithm, **override))

    def stage_start(self, name: str) -> float:
        C.log(f"stage {name} ...")
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        self.sampler.reset()
        return time.perf_counter()

    def stage_end(self, name: str, started: float, result: dict) -> None:
        result["stage_wall_s"] = time.perf_counter() - started
        mem = self.sampler.result()
        result["memory"] = {
            "process_tree_pss_peak_gib": mem["tree_pss_peak_gib"],
            "process_rss_peak_sampled_gib": mem["rss_peak_sampled_gib"],
            "process_maxrss_so_far_gib": C.maxrss_bytes("self") / C.GIB,
        }
        if self.cuda:
            result["memory"]["cuda_max_allocated_gib"] = torch.cuda.max_memory_allocated(self.device) / C.GIB
            result["memory"]["cuda_max_reserved_gib"] = torch.cuda.max_memory_reserved(self.device) / C.GIB
        self.stages[name] = result
        C.log(f"stage {name}: {result.get('seconds', float('nan')):.4g} s (stage wall {result['stage_wall_s']:.1f} s)")

    @staticmethod
    def med(values):
        return float(statistics.median(values)) if values else None

    # --- data ------------------------------------------------------------------------------------------
    def load_data(self) -> None:
        a = self.args
        path = a.data or a.data_dir / f"{a.dataset}.npz"
        info = {"path": str(path), "prepared_now": False}
        if not path.is_file():
            if a.data:
                raise SystemExit(f"--data {path}: no such file")
            C.log(f"preparing {a.dataset} into {path} (one-time)")
            t0 = time.perf_counter()
            prepare_dataset(a.dataset, path, cache_dir=a.data_dir / "downloads", download=not a.offline)
            info.update(prepared_now=True, prepare_s=time.perf_counter() - t0)
        t0 = time.perf_counter()
        self.prepared = load_prepared(path)
        info["load_prepared_s"] = time.perf_counter() - t0
        if self.prepared.name != a.dataset:
            C.log(f"note: {path} holds dataset {self.prepared.name!r}; using that name")
            a.dataset = self.prepared.name
        self.data_path = path
        cfg = self.config()
        t0 = self.now()
        self.ddata = DeviceData(self.prepared, self.device, cfg.data.normalize, cfg.data.resize)
        info["device_data_s"] = self.now() - t0
        info.update(n_samples=len(self.prepared), sample_shape=list(self.ddata.sample_shape),
                    n_classes=self.prepared.n_classes)
        self.data_info = info

    # --- stages ----------------------------------------------------------------------------------------
    def pretrain(self, name: str, augment: bool) -> None:
        a = self.args
        started = self.stage_start(name)
        n = a.warmup + a.epochs_per_measure
        cfg = self.config(pretrain={"epochs": n, "augment": augment})
        t0 = self.now()
        res = pretrain_autoencoder(cfg, self.prepared, progress=False)
        total = self.now() - t0
        cumulative = [0.0] + [float(t) for t in res.history["time_s"]]
        per_epoch = [b - a_ for a_, b in zip(cumulative[:-1], cumulative[1:])]
        measured = per_epoch[a.warmup:]
        result = {
            "seconds": self.med(measured),
            "measured_s": measured,
            "warmup_s": per_epoch[: a.warmup],
            "setup_s": total - res.wall_time_s,
            "augment": augment,
            "batch_size": cfg.pretrain.batch_size,
            "n_batches": -(-len(self.prepared) // cfg.pretrain.batch_size),
        }
        if augment or self.model0 is None:
            self.model0 = res.model
            self.model0_source = f"pretrained {n} epoch(s) (augment={augment})"
        self.stage_end(name, started, result)

    def cluster(self, name: str, algorithm: str, augment: bool) -> None:
        a = self.args
        started = self.stage_start(name)
        cfg = self.config(algorithm, cluster={"augment": augment, "epochs": a.warmup + a.epochs_per_measure})
        t0 = self.now()
        trainer = ClusterTrainer(cfg, self.ddata, copy.deepcopy(self.model0) if self.model0 is not None else None)
        init_s = self.now() - t0
        epochs = []
        for epoch in range(a.warmup + a.epochs_per_measure):
            t0 = self.now()
            losses = trainer.train_epoch(epoch)
            t1 = self.now()
            # the per-epoch evaluation the engine runs after it (ClusterTrainer.evaluate: embed, predict, the row);
            # the embedding alone is timed separately for the breakdown
            z = embed(trainer.model, trainer.data, cfg.cluster.eval_batch_size)
            trainer.objective.predict(z).cpu().numpy()
            t2 = self.now()
            row = trainer.evaluate(epoch, losses)
            t3 = self.now()
            epochs.append({"train_s": t1 - t0, "eval_embed_s": t2 - t1, "eval_metrics_s": t3 - t2 - (t2 - t1),
                           "total_s": t1 - t0 + (t3 - t2), "loss": losses["loss"], "acc": row["acc"]})
        measured = epochs[a.warmup:]
        result = {
            "seconds": self.med([e["total_s"] for e in measured]),
            "train_s": self.med([e["train_s"] for e in measured]),
            "eval_embed_s": self.med([e["eval_embed_s"] for e in measured]),
            "eval_metrics_s": self.med([e["eval_metrics_s"] for e in measured]),
            "eval_s": self.med([e["eval_embed_s"] + e["eval_metrics_s"] for e in measured]),
            "init_s": init_s,
            "epochs": epochs,
            "algorithm": algorithm,
            "augment": augment,
            "batch_size": cfg.cluster.batch_size,
            "n_batches": -(-len(self.ddata) // cfg.cluster.batch_size),
            "start_model": self.model0_source,
        }
        self.last_labels = trainer.labels
        if name == "dec_epoch_aug" and "brb_step" in a.stages:
            self.keep_trainer = trainer
        del trainer
        self.stage_end(name, started, result)

    def brb_step(self) -> None:
        a = self.args
        started = self.stage_start("brb_step")
        trainer = self.keep_trainer
        if trainer is None:
            cfg = self.config("dec", cluster={"augment": True})
            trainer = ClusterTrainer(cfg, self.ddata, copy.deepcopy(self.model0) if self.model0 is not None else None)
        self.keep_trainer = None
        b = trainer.config.brb
        interval = b.interval
        steps, parts = [], {"soft_reset_s": [], "subsample_embed_s": [], "kmeans_s": [], "momentum_reset_s": []}
        n = a.warmup + a.repeats
        for r in range(n):
            epoch = interval * (r + 1)
            t0 = self.now()
            trainer.apply_brb(epoch)
            steps.append(self.now() - t0)
        # the same parts one by one (same functions as apply_brb), for the breakdown
        for r in range(n):
            epoch = interval * (n + r + 1)
            t0 = self.now()
            soft_reset(trainer.model.reset_layers(include_embedding=b.reset_embedding), b.alpha)
            t1 = self.now()
            idx = subsample_indices(len(trainer.data), b.subsample, trainer.config.run.seed * 100003 + epoch)
            z = embed(trainer.model, DeviceSubset(trainer.data, idx), trainer.config.cluster.eval_batch_size)
            z = z.cpu().numpy()
            t2 = self.now()
            centers = recluster(z, trainer.n_clusters, b.recluster_method, trainer.config.run.seed + epoch,
                                b.kmeans_n_init)
            trainer.objective.set_centroids(torch.from_numpy(centers))
            t3 = self.now()
            trainer.objective.reset_momentum(trainer.optimizer, steps=b.reset_momentum_steps)
            t4 = self.now()
            if r >= a.warmup:
                for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    parts[key].append(value)
        measured = steps[a.warmup:]
        result = {
            "seconds": self.med(measured),
            "min_s": min(measured),
            "measured_s": measured,
            "warmup_s": steps[: a.warmup],
            "subsample": min(b.subsample, len(trainer.data)),
            "kmeans_n_init": b.kmeans_n_init,
            "variant": trainer.config.brb.variant,
            "breakdown_median_s": {k: self.med(v) for k, v in parts.items()},
        }
        del trainer
        self.stage_end("brb_step", started, result)

    def evaluation(self) -> None:
        a = self.args
        started = self.stage_start("evaluation")
        labels = self.last_labels
        labels_source = "labels of the last clustering stage"
        if labels is None:
            labels = np.random.default_rng(0).integers(0, self.prepared.n_classes, len(self.prepared))
            labels_source = "random labels (no clustering stage ran)"
        run_dir = self.tmp / "eval_run"
        run_dir.mkdir(parents=True, exist_ok=True)
        np.save(run_dir / "labels.npy", labels.astype(np.int64))
        out = {}
        for silhouette in (True, False):
            walls, inner = [], []
            for _ in range(a.repeats + 1):  # first call: warm-up (imports, page cache)
                t0 = time.perf_counter()
                evaluate_stage(run_dir, self.data_path, silhouette=silhouette)
                walls.append(time.perf_counter() - t0)
                inner.append(json.loads((run_dir / "evaluation.json").read_text())["evaluation_time_s"])
            key = "silhouette" if silhouette else "no_silhouette"
            out[key] = {"wall_s": self.med(walls[1:]), "evaluation_time_s": self.med(inner[1:]),
                        "warmup_wall_s": walls[0], "measured_wall_s": walls[1:]}
        metrics_t = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            clustering_metrics(self.prepared.y, labels)
            metrics_t.append(time.perf_counter() - t0)
        model = self.model0
        if model is None:
            model = new_model(self.config(), self.ddata, self.prepared.n_classes).to(self.device)
        embed_t = []
        for _ in range(a.repeats + 1):
            t0 = self.now()
            embed(model, self.ddata, self.config().cluster.eval_batch_size)
            embed_t.append(self.now() - t0)
        result = {
            "seconds": out["silhouette"]["wall_s"],
            "evaluate_stage_silhouette": out["silhouette"],
            "evaluate_stage_no_silhouette": out["no_silhouette"],
            "clustering_metrics_s": self.med(metrics_t),
            "embed_all_s": self.med(embed_t[1:]),
            "embed_all_warmup_s": embed_t[0],
            "n_labels": int(len(labels)),
            "labels_source": labels_source,
        }
        self.stage_end("evaluation", started, result)

    def memory(self) -> None:
        a = self.args
        started = self.stage_start("memory")
        work = self.tmp / "memory_run"
        work.mkdir(parents=True, exist_ok=True)
        settings = self.settings(a.memory_algorithm, cluster={"epochs": a.memory_epochs, "augment": True},
                                 brb={"variant": "brb", "interval": 1})
        settings.pop("pretrain", None)
        (work / "config.yaml").write_text(yaml.safe_dump(settings))
        cmd = [sys.executable, "-m", "brb.cli", "cluster", "--config", str(work / "config.yaml"),
               "--data", str(self.data_path.resolve()), "--out", str(work / "run"), "--quiet"]
        if self.model0 is not None:
            save_checkpoint(work / "model.pt", copy.deepcopy(self.model0).cpu(), "mlp")
            cmd[4:4] = ["--pretrained", str(work / "model.pt")]
        log_path = work / "brb_cluster.log"
        C.log("memory run: " + " ".join(cmd))
        t0 = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=C.REPO)
            sampler = C.PeakSampler(proc.pid, interval=max(a.mem_interval, 0.05)).start()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            sampler.stop()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"memory run failed (exit {proc.returncode}); log:\n{log_path.read_text()[-3000:]}")
        metrics = json.loads((work / "run" / "metrics.json").read_text())
        mem = sampler.result()
        main_rss = usage.ru_maxrss * 1024 / C.GIB
        # fixed cost: a process that only imports what `brb cluster` imports (torch, sklearn, pandas, brb)
        base_cmd = [sys.executable, "-c", "import torch, sklearn.cluster, pandas, pyarrow, brb.cli, "
                    "brb.stages, brb.methods.centroid, brb.models.checkpoint"]
        base = subprocess.Popen(base_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=C.REPO)
        _, _, base_usage = os.wait4(base.pid, 0)
        base.returncode = 0
        result = {
            "seconds": wall,
            "main_rss_peak_gib": main_rss,
            "tree_pss_peak_gib": mem["tree_pss_peak_gib"],
            "pss_samples": mem["samples"],
            "import_baseline_rss_gib": base_usage.ru_maxrss * 1024 / C.GIB,
            "command": " ".join(cmd),
            "epochs": a.memory_epochs,
            "algorithm": a.memory_algorithm,
            "brb_epochs": metrics.get("brb_epochs"),
            "run_wall_time_s": metrics.get("wall_time_s"),
            "start_model": self.model0_source if self.model0 is not None else "fresh (untrained) network",
        }
        self.stage_end("memory", started, result)

    # --- driver ----------------------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.args
        t_all = time.perf_counter()
        env = C.base_environment()
        self.load_data()
        for stage in STAGES:
            if stage not in a.stages:
                continue
            if stage == "pretrain_epoch":
                self.pretrain(stage, augment=True)
            elif stage == "pretrain_epoch_noaug":
                self.pretrain(stage, augment=False)
            elif stage in CLUSTER_STAGES:
                self.cluster(stage, *CLUSTER_STAGES[stage])
            elif stage == "brb_step":
                self.brb_step()
            elif stage == "evaluation":
                self.evaluation()
            elif stage == "memory":
                self.memory()
        self.sampler.stop()
        C.device_environment(env, self.device)
        cfg = self.config()
        result = {
            "benchmark": "training",
            "quick": bool(a.quick),
            "environment": env,
            "settings": {
                "dataset": a.dataset,
                "data": self.data_info,
                "preset": str(a.preset),
                "hidden": cfg.model.hidden,
                "embedding_dim": cfg.model.embedding_dim or self.prepared.n_classes,
                "batch_norm": cfg.model.batch_norm,
                "batch_size": cfg.cluster.batch_size,
                "threads": a.threads,
                "warmup_epochs": a.warmup,
                "epochs_per_measure": a.epochs_per_measure,
                "repeats": a.repeats,
                "stages": a.stages,
                "start_model": self.model0_source,
            },
            "stages": self.stages,
            "benchmark_process_maxrss_gib": C.maxrss_bytes("self") / C.GIB,
            "total_wall_s": time.perf_counter() - t_all,
        }
        result["summary"] = summary_rows(result)
        return result


def summary_rows(result: dict) -> list[dict]:
    """The Markdown table's rows (headline values compared with the reference and the targets)."""
    device_type = "cuda" if str(result["environment"].get("device", "cpu")).startswith("cuda") else "cpu"
    st = result["stages"]
    rows = []
    for name in ("pretrain_epoch", "pretrain_epoch_noaug"):
        if name in st:
            rows.append(C.summary_row(name, st[name]["seconds"], device_type))
    for name in ("dec_epoch_aug", "dec_epoch_noaug", "dcn_epoch_aug", "idec_epoch_aug"):
        if name in st:
            s = st[name]
            rows.append(C.summary_row(name, s["seconds"], device_type,
                                      note=f"train {C.fmt(s['train_s'])} + per-epoch eval {C.fmt(s['eval_s'])}"))
    if "brb_step" in st:
        b = st["brb_step"]["breakdown_median_s"]
        rows.append(C.summary_row("brb_step", st["brb_step"]["seconds"], device_type,
                                  note=f"soft reset {C.fmt(b['soft_reset_s'])}, embed {C.fmt(b['subsample_embed_s'])}, "
                                       f"k-means {C.fmt(b['kmeans_s'])}"))
    if "evaluation" in st:
        e = st["evaluation"]
        rows.append(C.summary_row(
            "evaluation", e["seconds"], device_type,
            note=f"without silhouette {C.fmt(e['evaluate_stage_no_silhouette']['wall_s'])}; metrics alone "
                 f"{C.fmt(e['clustering_metrics_s'])}; embedding all {C.fmt(e['embed_all_s'])}"))
    if "memory" in st:
        m = st["memory"]
        rows.append(C.summary_row("memory_main_rss", m["main_rss_peak_gib"], device_type,
                                  note=f"`brb cluster`, {m['epochs']} epochs incl. a BRB step; imports alone "
                                       f"{C.fmt(m.get('import_baseline_rss_gib'))} GiB"))
        rows.append(C.summary_row("memory_tree_pss", m["tree_pss_peak_gib"], device_type))
    return rows


def detail_markdown(result: dict) -> str:
    st = result["stages"]
    lines = ["| stage | warm-up (s) | measured (s) | train (s) | eval embed (s) | eval metrics (s) | init (s) "
             "| tree PSS peak (GiB) | CUDA max alloc (GiB) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in st.items():
        warm = s.get("warmup_s")
        if isinstance(warm, list):
            warm = warm[0] if warm else None
        if "epochs" in s and isinstance(s["epochs"], list) and s["epochs"]:
            warm = s["epochs"][0]["total_s"] if result["settings"]["warmup_epochs"] else None
        mem = s.get("memory", {})
        lines.append(
            f"| {name} | {C.fmt(warm)} | {C.fmt(s.get('seconds'))} | {C.fmt(s.get('train_s'))} "
            f"| {C.fmt(s.get('eval_embed_s'))} | {C.fmt(s.get('eval_metrics_s'))} | {C.fmt(s.get('init_s'))} "
            f"| {C.fmt(mem.get('process_tree_pss_peak_gib'))} | {C.fmt(mem.get('cuda_max_allocated_gib'))} |"
        )
    return "\n".join(lines)


def to_markdown(result: dict) -> str:
    env, s = result["environment"], result["settings"]
    title = "Training benchmark" + (" — QUICK CHECK (digits, not comparable with the reference)" if result["quick"] else "")
    n = s["data"].get("n_samples")
    lines = [
        f"## {title}",
        "",
        f"Dataset **{s['dataset']}** ({n} samples, shape {s['data'].get('sample_shape')}), encoder "
        f"[{'x'.join(map(str, s['data'].get('sample_shape') or []))}→{', '.join(map(str, s['hidden']))}, "
        f"{s['embedding_dim']}] + BatchNorm={s['batch_norm']}, batch {s['batch_size']}, {s['threads']} threads; "
        f"{s['warmup_epochs']} warm-up epoch(s), headline = median of {s['epochs_per_measure']} timed epoch(s). "
        f"Clustering epochs = `train_epoch` + the per-epoch evaluation of `fit`.",
        "",
        *C.busy_warning(env),
        *C.environment_lines(env),
        f"- command: `{env['command']}`",
        "",
        C.markdown_table(result["summary"]),
        "",
        "Details (seconds unless noted; PSS/CUDA peaks per stage in the benchmark process):",
        "",
        detail_markdown(result),
        "",
        f"Start model of the clustering stages: {s['start_model']}. Benchmark process peak RSS: "
        f"{C.fmt(result['benchmark_process_maxrss_gib'])} GiB. Total wall time {C.fmt(result['total_wall_s'])} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    args = ARGS or parse_args()
    bench = Bench(args)
    try:
        result = bench.run()
    finally:
        import shutil

        shutil.rmtree(bench.tmp, ignore_errors=True)
    C.write_outputs(result, to_markdown(result), args.out_json, args.out_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
