"""Golden outputs of tiny CPU runs, recorded before the training core is re-cut into one engine.

Every run goes through the console script, as a user (and the workflow) runs it:

- digits: DEC / IDEC / DCN x baseline / brb / reset / recluster x 2 seeds, DCN with both centroid updates,
  from a 5-epoch pretrained autoencoder (one per seed), 6 clustering epochs, BRB every 2;
- tiny CIFAR-10 (real pickle format, ``cifar_files.py``): SimCLR, then DEC with BRB, then self-labeling.

``python tests/golden_runs.py`` records ``tests/golden/<cpu capability>/outputs.npz`` (labels and per-epoch
history of each run) and ``metrics.json`` beside it, one set per CPU kind (torch's CPU kernels sum in another
order on AVX2 than on AVX512, and a tiny run's labels follow); ``tests/test_golden.py`` re-runs them and
compares with the set of this machine's kind, exactly. Record a new kind's set from the code the goldens
were first recorded with (a worktree of that commit), so that it pins the same code; record again only when
a change of results is intended, and say which runs changed and why.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
sys.path.insert(0, str(HERE))

from cifar_files import write_cifar10  # noqa: E402

from brb.cli import main  # noqa: E402
from brb.data import prepare_dataset  # noqa: E402

SEEDS = (0, 1)
ALGORITHMS = ("dec", "idec", "dcn")
VARIANTS = ("baseline", "brb", "reset", "recluster")
#: history columns compared (time is not)
HISTORY = ("epoch", "loss", "loss_cluster", "loss_reconstruction", "loss_contrastive", "acc", "nmi", "ari",
           "cluster_change", "brb", "n_empty_clusters")
DIGITS = ["--model.hidden", "[32, 16]", "--run.threads", "1", "--quiet"]
DIGITS_PRETRAIN = ["--pretrain.epochs", "5", "--pretrain.batch_size", "64"]
DIGITS_CLUSTER = ["--cluster.epochs", "6", "--cluster.batch_size", "64", "--cluster.augment", "true",
                  "--brb.interval", "2", "--brb.subsample", "600"]
CIFAR = ["--data.split", "train_test", "--data.resize", "16", "--run.threads", "1", "--quiet"]


def _brb(*args) -> None:
    if main([str(a) for a in args]) != 0:
        raise RuntimeError(f"brb {' '.join(map(str, args))} failed")


def digits_runs() -> list[tuple[str, int, list[str]]]:
    """(name, seed, extra clustering flags) of every digits run."""
    runs = []
    for seed in SEEDS:
        for algorithm in ALGORITHMS:
            updates = ("counts", "reference") if algorithm == "dcn" else (None,)
            for update in updates:
                for variant in VARIANTS:
                    flags = ["--cluster.algorithm", algorithm, "--brb.variant", variant]
                    name = f"digits-{algorithm}-{variant}-seed{seed}"
                    if update is not None:
                        flags += ["--cluster.dcn_update", update]
                        name = f"digits-{algorithm}_{update}-{variant}-seed{seed}"
                    runs.append((name, seed, flags))
    return runs


def _read(run_dir: Path) -> dict:
    history = pd.read_parquet(run_dir / "history.parquet")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "labels": np.load(run_dir / "labels.npy"),
        "history": {c: history[c].to_numpy(dtype=np.float64) for c in HISTORY if c in history.columns},
        "metrics": {k: metrics[k] for k in ("acc", "nmi", "ari", "purity") if k in metrics},
    }


def produce(work: Path, names: set[str] | None = None) -> dict[str, dict]:
    """Run the golden runs (those in ``names``, default all) under ``work``; name -> outputs."""
    out: dict[str, dict] = {}
    digits = prepare_dataset("digits", work / "digits.npz")
    wanted = [r for r in digits_runs() if names is None or r[0] in names]
    for seed in sorted({seed for _, seed, _ in wanted}):
        _brb("pretrain", "--data", digits, "--out", work / f"pretrain{seed}", "--run.seed", seed,
             *DIGITS, *DIGITS_PRETRAIN)
    for name, seed, flags in wanted:
        run = work / name
        _brb("cluster", "--data", digits, "--out", run, "--pretrained", work / f"pretrain{seed}" / "model.pt",
             "--run.seed", seed, *DIGITS, *DIGITS_CLUSTER, *flags)
        out[name] = _read(run)
    cifar_names = {"cifar-dec-brb", "cifar-dec-brb-selflabel"}
    if names is None or names & cifar_names:
        write_cifar10(work / "mirror", per_batch=8, n_test=20, n_classes=2)
        cifar = prepare_dataset("cifar10", work / "cifar10.npz", mirrors=[work / "mirror"], download=False)
        _brb("pretrain", "--data", cifar, "--out", work / "simclr", "--model.arch", "resnet18",
             "--pretrain.epochs", "2", "--pretrain.batch_size", "20", *CIFAR)
        run = work / "cifar-dec-brb"
        _brb("cluster", "--data", cifar, "--out", run, "--pretrained", work / "simclr" / "model.pt",
             "--model.arch", "resnet18", "--cluster.algorithm", "dec", "--brb.variant", "brb",
             "--cluster.epochs", "3", "--cluster.batch_size", "20", "--cluster.augment", "true",
             "--brb.interval", "1", "--brb.block_alpha", '{"layer4": 0.9}', "--brb.alpha", "0.7", *CIFAR)
        out["cifar-dec-brb"] = _read(run)
        _brb("selflabel", "--data", cifar, "--run", run, "--out", work / "cifar-dec-brb-selflabel",
             "--selflabel.epochs", "2", "--selflabel.batch_size", "20", *CIFAR)
        out["cifar-dec-brb-selflabel"] = _read(work / "cifar-dec-brb-selflabel")
    return out


def machine() -> dict:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine()}


def kind_dir(kind: str | None = None) -> Path:
    """The golden set of a CPU kind (default: this machine's)."""
    return GOLDEN / (kind or torch.backends.cpu.get_cpu_capability()).lower()


def record() -> None:
    out_dir = kind_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        outputs = produce(Path(tmp))
    arrays = {}
    for name, o in outputs.items():
        arrays[f"{name}/labels"] = o["labels"]
        for column, values in o["history"].items():
            arrays[f"{name}/history/{column}"] = values
    np.savez_compressed(out_dir / "outputs.npz", **arrays)
    summary = {"recorded_on": machine(), "runs": {name: o["metrics"] for name, o in outputs.items()}}
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(outputs)} runs in {out_dir}")


def load() -> tuple[dict, dict[str, dict]]:
    """(summary, name -> {labels, history}) of the golden set of this machine's CPU kind, else of another kind
    (then compared within a tolerance)."""
    here = kind_dir()
    sets = [here] if (here / "metrics.json").exists() else sorted(p.parent for p in GOLDEN.glob("*/metrics.json"))
    folder = sets[0]
    summary = json.loads((folder / "metrics.json").read_text())
    runs: dict[str, dict] = {name: {"labels": None, "history": {}} for name in summary["runs"]}
    with np.load(folder / "outputs.npz") as z:
        for key in z.files:
            name, kind, *rest = key.split("/")
            if kind == "labels":
                runs[name]["labels"] = z[key]
            else:
                runs[name]["history"][rest[0]] = z[key]
    return summary, runs


if __name__ == "__main__":
    record()
