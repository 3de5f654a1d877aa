"""Packed clustering runs: `brb cluster --seeds --parallel` and the workflow option `pack`.

Several seeds run as child processes of one command (sharing one GPU on a cluster); every run must be
exactly the run one `brb cluster --run.seed S` gives, which on the CPU means byte-identical labels.
"""

import json
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from test_cli import BRB, brb
from test_workflow import TINY, snakemake

from brb.data import prepare_dataset

#: A clustering run of a few seconds: small network, 2 epochs with a BRB reset and reclustering each epoch.
TINY_RUN = ["--model.hidden", "[32, 16]", "--cluster.epochs", "2", "--cluster.kmeans_n_init", "1",
            "--brb.variant", "brb", "--brb.interval", "1", "--brb.kmeans_n_init", "1", "--run.device", "cpu"]

#: Minimal study on top of tests/configs/tiny.yaml: 1 algorithm x 1 variant x 2 seeds, tiny epochs.
MINIMAL_STUDY = """\
algorithms: [dec]
variants: [brb]
seeds: [0, 1]
baselines: []
settings:
  model: {hidden: [32, 16]}
  pretrain: {epochs: 2}
  cluster: {epochs: 2, kmeans_n_init: 1}
  brb: {interval: 1, kmeans_n_init: 1}
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """digits prepared once, in-process (bundled with scikit-learn, no download)."""
    return prepare_dataset("digits", tmp_path_factory.mktemp("pack") / "digits.npz", download=False)


def rule_counts(output: str) -> dict[str, int]:
    """snakemake's job-count table, rule names with digits included (cluster_pack_0)."""
    table = output.split("Job stats:")[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def final_metrics(run) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    return {k: metrics[k] for k in ("seed", "acc", "nmi", "ari", "purity", "n_nonempty_clusters")}


def start_single(data, out, seed) -> subprocess.Popen:
    """`brb cluster --run.seed S`: the one-by-one run a packed run must equal."""
    args = ["cluster", "--data", data, "--out", out, "--run.seed", seed, "--run.threads", "1", "--quiet", *TINY_RUN]
    return subprocess.Popen([*BRB, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_packed_runs_equal_one_by_one_and_a_failed_seed_is_named(prepared, tmp_path):
    singles = {s: start_single(prepared, tmp_path / f"single{s}", s) for s in (0, 1)}  # meanwhile, 2 cores
    for s in (0, 1):  # seed 2's data file d2.npz is missing: its run fails, the others must not care
        (tmp_path / f"d{s}.npz").symlink_to(prepared)
    packed = tmp_path / "packed"
    proc = brb("cluster", "--data", tmp_path / "d{seed}.npz", "--out", packed / "seed{seed}", "--seeds", "0,1,2",
               "--parallel", "3", "--run.threads", "3", *TINY_RUN, check=False)  # 3 threads shared: 1 per run
    assert proc.returncode != 0
    log = packed / "seed2" / "cluster.log"
    assert "1 of 3 runs failed: seed 2" in proc.stderr and str(log) in proc.stderr and "d2.npz" in proc.stderr
    assert "data file not found" in log.read_text() and not (packed / "seed2" / "labels.npy").exists()
    for seed, single in singles.items():
        assert single.wait(timeout=300) == 0, single.communicate()
        assert f"[pack] seed {seed}: done" in proc.stdout
        run = packed / f"seed{seed}"
        assert (run / "labels.npy").read_bytes() == (tmp_path / f"single{seed}" / "labels.npy").read_bytes()
        assert final_metrics(run) == final_metrics(tmp_path / f"single{seed}")
        assert "[dec/brb seed" in (run / "cluster.log").read_text()  # the child's progress went to its log
    assert not np.array_equal(np.load(packed / "seed0" / "labels.npy"), np.load(packed / "seed1" / "labels.npy"))


def test_seeds_need_the_placeholder_in_out(prepared, tmp_path):
    proc = brb("cluster", "--data", prepared, "--out", tmp_path / "run", "--seeds", "0,1", *TINY_RUN, check=False)
    assert proc.returncode == 2 and "{seed}" in proc.stderr and "--out" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_sigterm_is_forwarded_to_the_runs(prepared, tmp_path):
    args = ["cluster", "--data", prepared, "--out", tmp_path / "seed{seed}", "--seeds", "0,1,2", "--parallel", "2",
            *TINY_RUN, "--cluster.epochs", "100", "--brb.interval", "1000", "--run.threads", "2"]  # a line per 5 epochs
    parent = subprocess.Popen([*BRB, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = [tmp_path / f"seed{s}" / "cluster.log" for s in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(log.is_file() and "epoch" in log.read_text() for log in logs):  # both runs are training
        assert parent.poll() is None and time.monotonic() < deadline, parent.communicate()
        time.sleep(0.2)
    parent.send_signal(signal.SIGTERM)
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 143, err
    assert "seeds not finished: 0, 1, 2" in err and "interrupted (exit 143)" in out
    for s in (0, 1):  # each run wrote its resume checkpoint; seed 2 never started
        assert (tmp_path / f"seed{s}" / "resume.pt").is_file()
        assert not (tmp_path / f"seed{s}" / "metrics.json").exists()
    assert not (tmp_path / "seed2").exists()


def test_workflow_plans_packed_jobs(tmp_path):
    study = tmp_path / "packed.yaml"
    study.write_text("seeds: [0, 1, 2]\npack: 2\n")
    out = snakemake("-n", "-p", "--configfile", TINY, study, cwd=tmp_path).stdout
    counts = rule_counts(out)
    # 2 algorithms x 2 variants; seeds [0, 1] and [2]
    assert counts["cluster_pack_0"] == 4 and counts["cluster_pack_1"] == 4 and "cluster" not in counts
    assert counts["evaluate"] == 12 + 3  # every run is still evaluated (+ k-means on pixels)
    assert "--seeds 0,1 --parallel 2" in out and "--seeds 2 --parallel 2" in out
    assert "--out 'results/runs/digits/mlp/reconstruction/dcn/brb/seed{seed}'" in out
    assert "--pretrained 'results/pretrain/digits/mlp/reconstruction/seed{seed}/model.pt'" in out


@pytest.mark.slow
def test_packed_workflow_gives_the_unpacked_labels(tmp_path):
    study = tmp_path / "minimal.yaml"
    study.write_text(MINIMAL_STUDY)
    runs = tmp_path / "results" / "runs" / "digits" / "mlp" / "reconstruction" / "dec" / "brb"
    targets = [f"results/runs/digits/mlp/reconstruction/dec/brb/seed{s}/labels.npy" for s in (0, 1)]
    out = snakemake("-c2", *targets, "--configfile", TINY, study, cwd=tmp_path)
    assert rule_counts(out.stdout + out.stderr).get("cluster") == 2
    unpacked = {s: (runs / f"seed{s}" / "labels.npy").read_bytes() for s in (0, 1)}

    shutil.rmtree(runs)  # data and pretrained checkpoints stay: only the clustering runs again, packed
    out = snakemake("-c2", *targets, "--configfile", TINY, study, "--config", "pack=2", cwd=tmp_path)
    counts = rule_counts(out.stdout + out.stderr)
    assert counts.get("cluster_pack_0") == 1 and "cluster" not in counts and "pretrain" not in counts
    for s in (0, 1):
        assert (runs / f"seed{s}" / "labels.npy").read_bytes() == unpacked[s]
        assert (runs / f"seed{s}" / "cluster.log").is_file()
    log = tmp_path / "results" / "logs" / "cluster" / "digits" / "mlp" / "reconstruction" / "dec" / "brb" / "seeds0-1.log"
    assert "[pack] seed 0: done" in log.read_text() and "[pack] seed 1: done" in log.read_text()
