"""Images per second of each self-supervised pretraining method's training step (issue 15), through the
registry's own pretraining functions: SimCLR, BYOL, ProPos, SimSiam, MoCo v2, PCL, CC.

Workload: ``--n`` synthetic uint8 images (C x S x S, random, labels 0..9), the network ``--arch`` (default
resnet18 with its CIFAR stem at 32 px: ProPos's CIFAR setting), batch ``--batch``, each method's own defaults
(heads 4096/256 for BYOL/ProPos, 2048 for SimSiam, ...) except the E-step, which runs only before the first and
after the last epoch (``reassign`` larger than the run) so it is not timed. ``--epochs`` epochs; the first is a
warm-up; images/s = two views per image counted once (images of the dataset per second of training).

    python benchmarks/bench_ssl.py --device cpu --threads 2 --arch cnn_small --size 28 --channels 1 --n 1024
    python benchmarks/bench_ssl.py --device cuda --n 8192 --batch 512
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import pin_threads

METHODS = ["simclr", "byol", "propos", "simsiam", "moco", "pcl", "cc"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4, help="at least 3: warm-up, timed epochs, the last with its E-step")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args()
    pin_threads(args.threads)
    import numpy as np
    import torch

    from brb.config import make_config
    from brb.data.prepared import PreparedData
    from brb.registry import REGISTRY
    from brb.runtime import resolve_device

    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(args.n, args.channels, args.size, args.size), dtype=np.uint8)
    data = PreparedData("synthetic", x, np.arange(args.n) % 10, [str(i) for i in range(10)])
    rows = []
    for method in args.methods.split(","):
        pre = {"method": method, "epochs": args.epochs, "batch_size": args.batch}
        if method != "simclr":
            pre.update({"reassign": 10 * args.epochs, "kmeans_n_init": 1})
        if method in ("moco", "pcl"):
            pre["queue_size"] = 2 * args.batch * max(1, 4096 // (2 * args.batch))
        if method == "pcl":
            pre["num_clusters"] = [min(args.n // 2, max(args.batch + 1, 250))]
        cfg = make_config({"data": {"normalize": "channel"}, "model": {"arch": args.arch}, "pretrain": pre,
                           "run": {"seed": 0, "threads": args.threads, "device": args.device,
                                   "precision": args.precision}})
        result = REGISTRY.load("pretraining", method)(cfg, data, progress=False)
        # time_s is cumulative: the epochs between the first (warm-up) and the last (its E-step) are timed
        times = result.history.loc[result.history["epoch"] >= 1, "time_s"].to_numpy()
        per_epoch = float(np.median(np.diff(times)[:-1]))
        steps = args.n // args.batch if method != "simclr" else -(-args.n // args.batch)
        images = steps * args.batch if method != "simclr" else args.n
        row = {"method": method, "epoch_s": per_epoch, "images_per_s": images / per_epoch}
        rows.append(row)
        print(f"{method}: {per_epoch:.2f} s/epoch, {row['images_per_s']:.0f} images/s", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = {"benchmark": "ssl", "device": name, "threads": args.threads, "arch": args.arch,
           "image": [args.channels, args.size, args.size], "n": args.n, "batch": args.batch,
           "precision": args.precision, "torch": torch.__version__, "rows": rows}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out_json:
        args.out_json.write_text(text + "\n")
    if args.out_md:
        lines = [f"Self-supervised training steps, {args.arch} on {args.channels}x{args.size}x{args.size}, batch "
                 f"{args.batch}, {name} ({args.threads} threads), {args.precision}", "",
                 "| method | s / epoch | images / s |", "|---|---:|---:|"]
        lines += [f"| {r['method']} | {r['epoch_s']:.2f} | {r['images_per_s']:.0f} |" for r in rows]
        args.out_md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
