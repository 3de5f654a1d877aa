"""Time per batch of tk-uco's kernels (brb/losses/kernels.py): the tensor kernel against the naive (flattened)
kernel, forward + backward of d_cs(A, K) on one batch, on the shapes of tk-uco's ``cnn_small`` intermediate
outputs (batch 120: conv outputs 32x24x24 and 32x8x8 for a 28x28 input, and 32x20x20, 32x3x3 as the md lists
them), float32. Prints JSON; ``--out-md`` writes a table.

    python benchmarks/bench_kernels.py --device cpu --threads 2
    python benchmarks/bench_kernels.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import pin_threads, sync

SHAPES = [(32, 24, 24), (32, 8, 8), (32, 20, 20), (32, 3, 3)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=120)
    p.add_argument("--clusters", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args()
    pin_threads(args.threads)
    import torch

    from brb.losses.ddc import d_cs
    from brb.losses.kernels import naive_kernel, tensor_kernel
    from brb.runtime import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gen = torch.Generator().manual_seed(0)

    rows = []
    for shape in SHAPES:
        x0 = torch.relu(torch.randn(args.batch, *shape, generator=gen)).to(device)
        a0 = torch.softmax(torch.randn(args.batch, args.clusters, generator=gen), dim=1).to(device)
        row = {"shape": list(shape)}
        for name, kernel in (("tensor", tensor_kernel), ("naive", naive_kernel)):
            times = []
            for i in range(args.repeats + 1):  # the first is a warm-up
                x = x0.clone().requires_grad_(True)
                a = a0.clone().requires_grad_(True)
                sync(device)
                start = time.perf_counter()
                loss = d_cs(a, kernel(x))
                loss.backward()
                sync(device)
                if i:
                    times.append(time.perf_counter() - start)
                finite = bool(torch.isfinite(x.grad).all())
            row[f"{name}_s"] = statistics.median(times)
            row[f"{name}_finite_grad"] = finite
        row["ratio"] = row["tensor_s"] / row["naive_s"]
        rows.append(row)
        print(f"{shape}: tensor {row['tensor_s'] * 1e3:.1f} ms, naive {row['naive_s'] * 1e3:.1f} ms "
              f"({row['ratio']:.1f}x)", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = {"benchmark": "kernels", "device": name, "threads": args.threads, "batch": args.batch,
           "clusters": args.clusters, "repeats": args.repeats, "torch": torch.__version__, "rows": rows}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out_json:
        args.out_json.write_text(text + "\n")
    if args.out_md:
        lines = [f"tk-uco kernels, forward + backward of d_cs(A, K) per batch ({args.batch} samples, {args.clusters} "
                 f"clusters, float32, median of {args.repeats}) on {name}, torch {torch.__version__}, "
                 f"{args.threads} threads", "", "| layer output | tensor kernel [ms] | naive kernel [ms] | ratio |",
                 "|---|---:|---:|---:|"]
        lines += [f"| {'x'.join(map(str, r['shape']))} | {r['tensor_s'] * 1e3:.1f} | {r['naive_s'] * 1e3:.1f} | "
                  f"{r['ratio']:.1f} |" for r in rows]
        args.out_md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
