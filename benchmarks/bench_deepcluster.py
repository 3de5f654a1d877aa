"""One DeepCluster epoch's clustering (issue 16): PCA whitening of n x d features to 256 dims + L2 normalisation,
then k-means into k clusters (20 iterations, faiss's empty-cluster split), torch (brb/cluster/deepcluster_ops.py,
on ``--device``) against faiss-cpu (when installed: ``pip install 'brb[faiss]'``). Default workload as the issue:
70,000 x 4,096 -> 256, k = 1,000. Features: random Gaussian mixture (k true centres + noise), float32.

    python benchmarks/bench_deepcluster.py --threads 2
    python benchmarks/bench_deepcluster.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import pin_threads, sync


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=70_000)
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--pca", type=int, default=256)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--niter", type=int, default=20)
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args()
    pin_threads(args.threads)
    import numpy as np
    import torch

    from brb.cluster.deepcluster_ops import faiss_available, fit_pca_whitening, import_faiss, kmeans
    from brb.runtime import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(args.k, args.dim, generator=gen)
    assign = torch.randint(args.k, (args.n,), generator=gen)
    x = (centres[assign] + 2.0 * torch.randn(args.n, args.dim, generator=gen)).to(device)

    rows = {}
    sync(device)
    t = time.perf_counter()
    z = fit_pca_whitening(x, args.pca).apply(x, normalize=True)
    sync(device)
    rows["torch_pca_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ours = kmeans(z, args.k, seed=0, backend="torch", niter=args.niter)
    sync(device)
    rows["torch_kmeans_s"] = time.perf_counter() - t
    rows["torch_inertia"] = ours.inertia
    print(f"torch: PCA {rows['torch_pca_s']:.1f} s, k-means {rows['torch_kmeans_s']:.1f} s", flush=True)
    if faiss_available():
        faiss = import_faiss()
        faiss.omp_set_num_threads(args.threads)
        data = np.ascontiguousarray(x.cpu().numpy())
        t = time.perf_counter()
        pca = faiss.PCAMatrix(args.dim, args.pca, -0.5)
        pca.train(data)
        zf = pca.apply_py(data)
        zf /= np.linalg.norm(zf, axis=1, keepdims=True)
        rows["faiss_pca_s"] = time.perf_counter() - t
        t = time.perf_counter()
        theirs = kmeans(torch.from_numpy(zf), args.k, seed=0, backend="faiss", niter=args.niter)
        rows["faiss_kmeans_s"] = time.perf_counter() - t
        rows["faiss_inertia"] = theirs.inertia
        print(f"faiss: PCA {rows['faiss_pca_s']:.1f} s, k-means {rows['faiss_kmeans_s']:.1f} s", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = {"benchmark": "deepcluster", "device": name, "threads": args.threads, "n": args.n, "dim": args.dim,
           "pca": args.pca, "k": args.k, "niter": args.niter, "torch": torch.__version__, **rows}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out_json:
        args.out_json.write_text(text + "\n")
    if args.out_md:
        lines = [f"DeepCluster clustering step, {args.n} x {args.dim} -> {args.pca}, k = {args.k}, {args.niter} "
                 f"iterations, {name} ({args.threads} threads)", "", "| | PCA + L2 [s] | k-means [s] | inertia |",
                 "|---|---:|---:|---:|",
                 f"| torch | {rows['torch_pca_s']:.1f} | {rows['torch_kmeans_s']:.1f} | {rows['torch_inertia']:.0f} |"]
        if "faiss_pca_s" in rows:
            lines.append(f"| faiss-cpu | {rows['faiss_pca_s']:.1f} | {rows['faiss_kmeans_s']:.1f} | "
                         f"{rows['faiss_inertia']:.0f} |")
        args.out_md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
