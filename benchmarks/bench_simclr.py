#!/usr/bin/env python
"""SimCLR training throughput of ResNet-18 on CIFAR-10-shaped data, embedding throughput, and (optionally)
the k-means ACC of the pretrained embedding.

Workload: the settings of ``workflow/presets/contrastive_table.yaml`` (ResNet-18 with the CIFAR stem, MLP
head and projector; colour augmentation with solarize; SimCLR with NT-Xent, AdamW), trained by
``brb.methods.simclr.pretrain_simclr`` on the train split. Data: synthetic random uint8 images (3x32x32, fixed
``--seed``) unless ``--data`` names a prepared CIFAR-10 ``.npz``
(``brb prepare --dataset cifar10 --out cifar10.npz``).

- ``train``: ``--epochs`` epochs (default 2; the first is a warm-up and is not in the headline) of batch
  ``--batch-size``. Per-epoch times come from the run's history (``time_s``). The headline is **training
  images per second** = train images / median timed epoch; each image gives two augmented views (views/s
  = 2x images/s). The issue's GPU target: >= 15,000 images/s; there is no CPU target.
- ``embed``: ``brb.methods.centroid.embed`` (inference, eval mode) over the train images, batch
  ``--embed-batch-size`` (default ``cluster.eval_batch_size``); median of ``--embed-repeats`` timed passes
  after a one-batch warm-up; images/s.
- ``kmeans_acc`` (``--kmeans-acc``, on by default when ``--data`` is CIFAR-10): as the pipeline's
  "SimCLR + k-means" baseline (``brb.stages.kmeans_stage``), ``sklearn.cluster.KMeans`` (n_init
  ``cluster.kmeans_n_init``) fitted on the train embedding labels the test split; ACC/NMI/ARI from
  ``brb.metrics.clustering_metrics``. Meaningful only with real data and some pretraining (``--epochs``).

On CUDA, peak memory (``torch.cuda.max_memory_allocated``) is recorded per part. Defaults depend on the device:
CUDA 50,000 images, batch 512, bf16; CPU 1,024 images, batch 128, fp32 (a CPU does some tens of images/s).
``--quick``: 128 images, batch 64 (a plumbing check).

Prints the JSON result to stdout; progress goes to stderr. ``--out-json`` / ``--out-md`` write files too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Defaults by device type: train images, test images (synthetic data), batch size, precision.
DEVICE_DEFAULTS = {
    "cuda": {"n_images": 50_000, "n_test": 10_000, "batch_size": 512, "precision": "bf16"},
    "cpu": {"n_images": 1_024, "n_test": 256, "batch_size": 128, "precision": "fp32"},
}
QUICK = {"n_images": 128, "n_test": 64, "batch_size": 64}

#: Used when the preset file is missing: the contrastive_table preset's settings (those that matter here).
FALLBACK_SETTINGS = {
    "data": {"split": "train_test"},
    "model": {"hidden": [512, 256], "embedding_dim": 128, "projection": [2048, 128]},
    "augment": {"kind": "colour", "crop_scale_min": 0.08, "jitter": [0.4, 0.4, 0.2, 0.1], "jitter_p": 0.8,
                "grey_p": 0.2, "solarize_p": 0.2},
    "pretrain": {"method": "simclr", "batch_size": 512, "lr": 0.003, "weight_decay": 0.0001, "optimizer": "adamw",
                 "temperature": 0.5},
    "cluster": {"kmeans_n_init": 10},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=2, help="torch / OpenMP / BLAS threads (default 2)")
    p.add_argument("--data", type=Path,
                   help="a prepared CIFAR-10 .npz (`brb prepare --dataset cifar10 --out cifar10.npz`) instead of "
                        "synthetic random images")
    p.add_argument("--n-images", type=int,
                   help="training images (default: 50,000 on cuda, 1,024 on cpu; with --data a seeded subset of "
                        "its train split, all of it on cuda)")
    p.add_argument("--n-test", type=int,
                   help="test images for --kmeans-acc (default: synthetic 10,000 on cuda, 256 on cpu; with "
                        "--data its whole test split)")
    p.add_argument("--batch-size", type=int, help="SimCLR batch size (default 512 on cuda, 128 on cpu)")
    p.add_argument("--precision", choices=["fp32", "bf16"], help="run.precision (default bf16 on cuda, fp32 on cpu)")
    p.add_argument("--epochs", type=int, default=2,
                   help="SimCLR epochs (default 2); the first is a warm-up when there are two or more")
    p.add_argument("--embed-batch-size", type=int, help="batch of `embed` (default cluster.eval_batch_size)")
    p.add_argument("--embed-repeats", type=int, default=3, help="timed `embed` passes (default 3)")
    p.add_argument("--kmeans-acc", action=argparse.BooleanOptionalAction, default=None,
                   help="k-means ACC of the pretrained embedding on the test split (default: on when --data is "
                        "CIFAR-10)")
    p.add_argument("--seed", type=int, default=0, help="data, model and k-means seed (default 0)")
    p.add_argument("--preset", type=Path, default=HERE.parent / "workflow/presets/contrastive_table.yaml",
                   help="study preset whose `settings` define the workload (default: contrastive_table.yaml)")
    p.add_argument("--quick", action="store_true", help="128 images, batch 64: a plumbing check in seconds")
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args(argv)
    if args.threads < 1 or args.epochs < 1 or args.embed_repeats < 1:
        p.error("--threads >= 1, --epochs >= 1, --embed-repeats >= 1")
    for name in ("n_images", "n_test", "batch_size", "embed_batch_size"):
        value = getattr(args, name)
        if value is not None and value < (2 if name in ("n_images", "batch_size") else 1):
            p.error(f"--{name.replace('_', '-')} must be positive (n-images and batch-size at least 2)")
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        args.embed_repeats = 1
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

from brb.config import deep_merge, make_config  # noqa: E402
from brb.data import DataFileError, load_prepared  # noqa: E402
from brb.data.prepared import PreparedData  # noqa: E402
from brb.engine.common import DeviceSubset, device_splits, embed  # noqa: E402
from brb.methods.simclr import pretrain_simclr  # noqa: E402
from brb.metrics import clustering_metrics  # noqa: E402
from brb.runtime import resolve_device  # noqa: E402

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def med(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def make_data(args: argparse.Namespace, device_type: str) -> tuple[PreparedData, dict]:
    """Train images (split 0) then test images (split 1): synthetic, or a seeded subset of ``--data``."""
    defaults = DEVICE_DEFAULTS[device_type]
    rng = np.random.default_rng(args.seed)
    if args.data is None:
        n_train, n_test = args.n_images or defaults["n_images"], args.n_test or defaults["n_test"]
        n = n_train + n_test
        C.log(f"synthetic data: {n_train:,} train + {n_test:,} test random uint8 images 3x32x32 (seed {args.seed})")
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, len(CIFAR10_CLASSES), size=n).astype(np.int64)
        split = np.repeat(np.array([0, 1], dtype=np.uint8), [n_train, n_test])
        data = PreparedData("cifar10", x, y, CIFAR10_CLASSES, split)
        return data, {"source": "synthetic", "name": "cifar10 (shape only)", "n_train": n_train, "n_test": n_test,
                      "sample_shape": [3, 32, 32]}
    try:
        full = load_prepared(args.data)
        train, test = full.part("train"), full.part("test")
    except DataFileError as err:
        raise SystemExit(f"bench_simclr: {err}") from None
    if not full.is_image:
        raise SystemExit(f"bench_simclr: {args.data} holds feature vectors; SimCLR needs images")
    n_train = min(args.n_images or (len(train) if device_type == "cuda" else defaults["n_images"]), len(train))
    n_test = min(args.n_test or len(test), len(test))

    def subset(part: PreparedData, n: int) -> np.ndarray:
        return np.sort(rng.permutation(len(part))[:n]) if n < len(part) else np.arange(len(part))

    i, j = subset(train, n_train), subset(test, n_test)
    data = PreparedData(full.name, np.concatenate([train.x[i], test.x[j]]), np.concatenate([train.y[i], test.y[j]]),
                        full.class_names, np.repeat(np.array([0, 1], dtype=np.uint8), [n_train, n_test]))
    C.log(f"data {args.data} ({full.name}): {n_train:,} of {len(train):,} train + {n_test:,} of {len(test):,} test")
    return data, {"source": str(args.data), "name": full.name, "n_train": n_train, "n_test": n_test,
                  "train_available": len(train), "test_available": len(test), "sample_shape": list(full.x.shape[1:])}


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        try:
            self.device = resolve_device(args.device)
        except RuntimeError as err:
            raise SystemExit(f"bench_simclr: {err}") from None
        self.cuda = self.device.type == "cuda"
        kind = "cuda" if self.cuda else "cpu"
        for name in ("batch_size", "precision"):
            if getattr(args, name) is None:
                setattr(args, name, DEVICE_DEFAULTS[kind][name])
        torch.set_num_threads(args.threads)
        self.data, self.data_info = make_data(args, kind)
        self.real = args.data is not None
        self.kmeans_acc = args.kmeans_acc if args.kmeans_acc is not None else self.real and self.data.name == "cifar10"
        preset = C.load_preset(args.preset, FALLBACK_SETTINGS)
        self.settings = deep_merge(preset.get("settings", {}), {
            "data": {"dataset": self.data.name, "split": "train_test"},
            "model": {"arch": "resnet18"},
            "pretrain": {"method": "simclr", "epochs": args.epochs, "batch_size": args.batch_size},
            "run": {"seed": args.seed, "device": str(self.device), "threads": args.threads,
                    "precision": args.precision},
        })
        self.config = make_config(self.settings)

    def now(self) -> float:
        C.sync(self.device)
        return time.perf_counter()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / C.GIB if self.cuda else None

    def train(self) -> dict:
        a, cfg = self.args, self.config
        n = self.data_info["n_train"]
        C.log(f"SimCLR: {a.epochs} epoch(s) of {n:,} images, batch {cfg.pretrain.batch_size}, {a.precision}, "
              f"{self.device} ...")
        self.reset_peak()
        t0 = self.now()
        res = pretrain_simclr(cfg, self.data, progress=False, checkpoint_dir=None)
        total = self.now() - t0
        cumulative = [0.0] + [float(t) for t in res.history["time_s"]]
        per_epoch = [b - a_ for a_, b in zip(cumulative[:-1], cumulative[1:])]
        warmup = 1 if len(per_epoch) >= 2 else 0
        measured = per_epoch[warmup:]
        seconds = med(measured)
        self.model = res.model
        result = {
            "images_per_s": n / seconds if seconds else None,
            "views_per_s": 2 * n / seconds if seconds else None,
            "epoch_s": seconds,
            "measured_epoch_s": measured,
            "warmup_epoch_s": per_epoch[:warmup],
            "images_per_s_per_epoch": [n / s for s in per_epoch],
            "loss_per_epoch": [float(v) for v in res.history["loss"]],
            "setup_s": total - res.wall_time_s,
            "n_images": n,
            "batch_size": cfg.pretrain.batch_size,
            "n_batches": -(-n // cfg.pretrain.batch_size),
            "cuda_max_allocated_gib": self.peak_gib(),
        }
        C.log(f"SimCLR: {result['images_per_s']:.1f} images/s ({result['views_per_s']:.1f} views/s), epochs "
              + ", ".join(f"{s:.2f}" for s in per_epoch) + " s")
        return result

    def embed(self) -> dict:
        a, cfg = self.args, self.config
        bs = a.embed_batch_size or cfg.cluster.eval_batch_size
        self.train_data, self.test_data = device_splits(cfg, self.data, self.device)
        n = len(self.train_data)
        C.log(f"embed: {n:,} images, batch {bs}, {a.embed_repeats} timed pass(es) ...")
        self.reset_peak()
        t0 = self.now()
        embed(self.model, DeviceSubset(self.train_data, np.arange(min(bs, n))), bs, cfg.run.precision)
        warmup = self.now() - t0
        times = []
        for _ in range(a.embed_repeats):
            t0 = self.now()
            self.z_train = embed(self.model, self.train_data, bs, cfg.run.precision)
            times.append(self.now() - t0)
        seconds = med(times)
        result = {"images_per_s": n / seconds, "seconds": seconds, "times_s": times, "warmup_one_batch_s": warmup,
                  "n_images": n, "batch_size": bs, "embedding_dim": int(self.z_train.shape[1]),
                  "cuda_max_allocated_gib": self.peak_gib()}
        C.log(f"embed: {result['images_per_s']:.1f} images/s")
        return result

    def kmeans(self) -> dict:
        from sklearn.cluster import KMeans

        cfg = self.config
        k = cfg.cluster.n_clusters or self.data.n_classes
        t0 = self.now()
        z_test = embed(self.model, self.test_data, self.args.embed_batch_size or cfg.cluster.eval_batch_size,
                       cfg.run.precision).cpu().numpy()
        embed_test_s = self.now() - t0
        C.log(f"k-means (k={k}, n_init {cfg.cluster.kmeans_n_init}) on the train embedding, labelling "
              f"{len(z_test):,} test images ...")
        t0 = time.perf_counter()
        km = KMeans(n_clusters=k, n_init=cfg.cluster.kmeans_n_init, random_state=cfg.run.seed)
        km.fit(self.z_train.cpu().numpy())
        labels = km.predict(z_test)
        kmeans_s = time.perf_counter() - t0
        metrics = clustering_metrics(self.test_data.y, labels)
        C.log(f"k-means: test ACC {metrics['acc']:.4f}, NMI {metrics['nmi']:.4f}")
        return {**metrics, "k": k, "n_init": cfg.cluster.kmeans_n_init, "fitted_on": "train embedding",
                "evaluated_on": "test split", "n_train": len(self.z_train), "n_test": len(z_test),
                "kmeans_s": kmeans_s, "embed_test_s": embed_test_s, "real_data": self.real,
                "pretrain_epochs": self.args.epochs}

    def run(self) -> dict:
        a = self.args
        t_all = time.perf_counter()
        env = C.base_environment()
        parts = {"train": self.train(), "embed": self.embed()}
        if self.kmeans_acc:
            parts["kmeans_acc"] = self.kmeans()
        C.device_environment(env, self.device)
        result = {
            "benchmark": "simclr",
            "quick": bool(a.quick),
            "environment": env,
            "settings": {
                "data": self.data_info,
                "preset": str(a.preset),
                "arch": self.config.model.arch,
                "hidden": self.config.model.hidden,
                "embedding_dim": self.config.model.embedding_dim,
                "projection": self.config.model.projection,
                "augment": self.config.augment.model_dump(mode="json"),
                "pretrain": self.config.pretrain.model_dump(mode="json"),
                "precision": a.precision,
                "threads": a.threads,
                "epochs": a.epochs,
                "embed_repeats": a.embed_repeats,
                "kmeans_acc": bool(self.kmeans_acc),
            },
            "parts": parts,
            "benchmark_process_maxrss_gib": C.maxrss_bytes("self") / C.GIB,
            "total_wall_s": time.perf_counter() - t_all,
        }
        result["summary"] = summary_rows(result)
        return result


def data_words(result: dict) -> str:
    d = result["settings"]["data"]
    if d["source"] == "synthetic":
        return "CIFAR-10-shaped random images"
    return f"{'CIFAR-10' if d['name'] == 'cifar10' else d['name']} ({Path(d['source']).name})"


def summary_rows(result: dict) -> list[dict]:
    """Rows for the combined result files: training and embedding images/s, k-means ACC (real data only)."""
    env, s, p = result["environment"], result["settings"], result["parts"]
    device_type = "cuda" if str(env.get("device", "cpu")).startswith("cuda") else "cpu"
    data = data_words(result)
    t, e = p["train"], p["embed"]
    mem = f"; peak CUDA memory {C.fmt(t['cuda_max_allocated_gib'])} GiB" if t.get("cuda_max_allocated_gib") else ""
    rows = [
        C.summary_row(
            "simclr_train", t["images_per_s"], device_type,
            label=f"SimCLR pretraining, ResNet-18, {data}: training images/s (2 augmented views each)",
            note=f"{t['n_images']:,} images, batch {t['batch_size']}, {s['precision']}; median of "
                 f"{len(t['measured_epoch_s'])} timed epoch(s) after {len(t['warmup_epoch_s'])} warm-up; "
                 f"{C.fmt(t['views_per_s'])} views/s{mem}"),
        C.summary_row(
            "simclr_embed", e["images_per_s"], device_type,
            label=f"ResNet-18 embedding (`embed`, inference), {data}",
            note=f"{e['n_images']:,} images, batch {e['batch_size']}, {s['precision']}; median of {len(e['times_s'])}"),
    ]
    k = p.get("kmeans_acc")
    if k is not None and k["real_data"]:
        rows.append(C.summary_row(
            "simclr_kmeans_acc", k["acc"], device_type,
            label=f"SimCLR + k-means ACC on the test split of {data}, after {k['pretrain_epochs']} SimCLR epoch(s)",
            note=f"k-means n_init {k['n_init']} fitted on {k['n_train']:,} train embeddings, {k['n_test']:,} test "
                 f"images; NMI {C.fmt(k['nmi'])}, ARI {C.fmt(k['ari'])}"))
    return rows


def to_markdown(result: dict) -> str:
    env, s, p = result["environment"], result["settings"], result["parts"]
    t, e = p["train"], p["embed"]
    title = "SimCLR benchmark" + (" — QUICK CHECK (tiny sizes)" if result["quick"] else "")
    aug = s["augment"]
    lines = [
        f"## {title}",
        "",
        f"ResNet-18 (CIFAR stem) + head {s['hidden']} → {s['embedding_dim']} + projector {s['projection']}; "
        f"{data_words(result)}, {s['data']['n_train']:,} train images; SimCLR ({s['pretrain']['optimizer']}, lr "
        f"{s['pretrain']['lr']}, temperature {s['pretrain']['temperature']}), colour augmentation (crop ≥ "
        f"{aug['crop_scale_min']}, jitter p {aug['jitter_p']}, grey p {aug['grey_p']}, solarize p "
        f"{aug['solarize_p']}) on the device; {s['precision']}, {s['threads']} threads. Images/s = training images "
        "per second; each image gives two augmented views.",
        "",
        *C.busy_warning(env),
        *C.environment_lines(env),
        f"- command: `{env['command']}`",
        "",
        C.markdown_table(result["summary"]),
        "",
        "| epoch | seconds | images/s | loss |",
        "|---:|---:|---:|---:|",
    ]
    epochs = t["warmup_epoch_s"] + t["measured_epoch_s"]
    for i, (sec, ips, loss) in enumerate(zip(epochs, t["images_per_s_per_epoch"], t["loss_per_epoch"])):
        warm = " (warm-up)" if i < len(t["warmup_epoch_s"]) else ""
        lines.append(f"| {i + 1}{warm} | {C.fmt(sec)} | {C.fmt(ips)} | {loss:.4f} |")
    lines += [
        "",
        f"Set-up before the first epoch (network, data to the device): {C.fmt(t['setup_s'])} s. Embedding: "
        f"{', '.join(C.fmt(v) for v in e['times_s'])} s per pass over {e['n_images']:,} images (one-batch warm-up "
        f"{C.fmt(e['warmup_one_batch_s'])} s).",
    ]
    if t.get("cuda_max_allocated_gib") is not None:
        lines.append(f"Peak CUDA memory allocated: training {C.fmt(t['cuda_max_allocated_gib'])} GiB, embedding "
                     f"{C.fmt(e['cuda_max_allocated_gib'])} GiB.")
    k = p.get("kmeans_acc")
    if k is not None:
        chance = "" if k["real_data"] else " — synthetic random images and labels: chance level, not a result"
        lines.append(f"k-means (k={k['k']}, n_init {k['n_init']}) fitted on the train embedding, test split "
                     f"({k['n_test']:,} images): ACC {k['acc']:.4f}, NMI {k['nmi']:.4f}, ARI {k['ari']:.4f} "
                     f"(k-means {C.fmt(k['kmeans_s'])} s){chance}.")
    lines += [f"Benchmark process peak RSS {C.fmt(result['benchmark_process_maxrss_gib'])} GiB; total wall time "
              f"{C.fmt(result['total_wall_s'])} s.", ""]
    return "\n".join(lines)


def main() -> int:
    args = ARGS or parse_args()
    result = Bench(args).run()
    C.write_outputs(result, to_markdown(result), args.out_json, args.out_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
