"""One ImageNet-shaped DeepCluster epoch (issue 16): AlexNet-BN behind the Sobel filter on synthetic 224 px images,
as the engine runs it (brb/methods/deepcluster.py: the feature pass, PCA-whitening + k-means, a fresh top layer,
one pass of training on the uniform sampler), and the decoding of ImageNet-sized JPEGs from disk through the image
index (brb/data/stream.py FolderData), which feeds the GPU in the full-ImageNet preset.

Reported: images/s of the whole epoch, of the feature pass and of the training pass (the history's timing of the
epoch and the clustering step), and the decode rate of ``--jpegs`` JPEGs (500 x 375, the ILSVRC median shape) with
``--workers`` threads. Synthetic images: random uint8 (the network's cost does not depend on the content).

    python benchmarks/bench_deepcluster_epoch.py --threads 2 --n 512 --k 50          # CPU smoke
    python benchmarks/bench_deepcluster_epoch.py --device cuda --n 25600 --k 1000    # GPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import pin_threads, sync


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=512, help="synthetic images in the epoch")
    p.add_argument("--side", type=int, default=224)
    p.add_argument("--k", type=int, default=50, help="DeepCluster's k")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--jpegs", type=int, default=256, help="JPEGs decoded through the image index (0: skip)")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: min(16, CPUs))")
    p.add_argument("--out-json", type=Path)
    args = p.parse_args()
    pin_threads(args.threads)
    import numpy as np
    import torch

    from brb.config import make_config
    from brb.data.prepared import PreparedData
    from brb.methods.centroid import run_clustering
    from brb.runtime import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.n, 3, args.side, args.side), dtype=np.uint8)
    data = PreparedData("synthetic", x, rng.integers(0, 10, args.n), [str(i) for i in range(10)])
    config = make_config({
        "data": {"normalize": "channel"}, "model": {"arch": "alexnet_bn"},
        "augment": {"kind": "colour", "crop_scale_min": 0.08, "flip": True, "jitter": [0, 0, 0, 0], "jitter_p": 0,
                    "grey_p": 0, "solarize_p": 0},
        "cluster": {"algorithm": "deepcluster", "epochs": 1, "batch_size": args.batch, "dc_k": args.k,
                    "kmeans_n_init": 1, "eval_batch_size": args.batch},
        "run": {"seed": 0, "threads": args.threads, "device": str(device), "precision": args.precision},
    })
    sync(device)
    start = time.perf_counter()
    result = run_clustering(config, data, progress=False)
    sync(device)
    total = time.perf_counter() - start
    h = result.history
    epoch_s = float(h["time_s"].iloc[-1]) if "time_s" in h else float("nan")
    rows = {"epoch_s": epoch_s, "run_s": total, "epoch_images_per_s": args.n / epoch_s}
    for col in ("cluster_time_s", "features_time_s", "train_time_s"):
        if col in h:
            rows[col] = float(h[col].iloc[-1])
    print(f"DeepCluster epoch on {args.n} images of {args.side} px: {epoch_s:.1f} s "
          f"({rows['epoch_images_per_s']:.0f} images/s); whole run with set-up and scoring {total:.1f} s", flush=True)

    if args.jpegs:
        from PIL import Image

        from brb.data.stream import FolderData

        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i in range(args.jpegs):
                path = Path(tmp) / f"{i}.JPEG"
                # smooth content (a JPEG of white noise is several times larger than a photograph)
                base = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
                Image.fromarray(base).resize((500, 375), Image.Resampling.BICUBIC).save(path, quality=90)
                paths.append(str(path))
            index = PreparedData("jpegs", np.array(paths), np.zeros(len(paths), dtype=np.int64), ["0"])
            folder = FolderData(index, "cpu", "none", args.side, workers=args.workers)
            t = time.perf_counter()
            for _ in folder.iter_batches(args.batch):
                pass
            decode_s = time.perf_counter() - t
            rows.update(decode_images_per_s=args.jpegs / decode_s, decode_workers=folder.workers)
            folder.close()
        print(f"decoding {args.jpegs} JPEGs 500x375 -> {args.side} px with {rows['decode_workers']} threads: "
              f"{rows['decode_images_per_s']:.0f} images/s", flush=True)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = {"benchmark": "deepcluster_epoch", "device": name, "threads": args.threads, "n": args.n, "side": args.side,
           "k": args.k, "batch": args.batch, "precision": args.precision, "torch": torch.__version__, **rows}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out_json:
        args.out_json.write_text(text + "\n")


if __name__ == "__main__":
    main()
