"""The console script, run as a subprocess like the workflow runs it."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

BRB = [sys.executable, "-m", "brb.cli"]


def brb(*args, check=True):
    proc = subprocess.run([*BRB, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"brb {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits.npz"
    proc = brb("prepare", "--dataset", "digits", "--out", out)
    assert f"prepared data: {out}" in proc.stdout
    return out


def test_help_lists_stages_and_explains_options():
    out = brb("--help").stdout
    for stage in ("prepare", "pretrain", "cluster", "evaluate", "aggregate", "tables", "plots"):
        assert stage in out
    out = brb("cluster", "--help").stdout
    assert "--brb.alpha" in out and "θ ← α·θ + (1−α)·φ" in out and "(default: 0.8)" in out
    assert "--cluster.algorithm" in out and "--run.device" in out


def test_pretrain_cluster_evaluate_chain(prepared, tmp_path):
    pre = tmp_path / "pre"
    brb("pretrain", "--data", prepared, "--out", pre, "--model.hidden", "[32, 16]", "--pretrain.epochs", "2",
        "--run.threads", "1", "--quiet")
    assert (pre / "model.pt").is_file()
    assert len(pd.read_parquet(pre / "history.parquet")) == 2
    run = tmp_path / "run"
    proc = brb("cluster", "--data", prepared, "--pretrained", pre / "model.pt", "--out", run,
               "--cluster.algorithm", "dcn", "--brb.variant", "brb", "--brb.interval", "1", "--cluster.epochs", "2",
               "--run.seed", "3", "--run.threads", "1")
    assert f"run directory: {run}" in proc.stdout
    assert "[dcn/brb seed 3] epoch 2/2" in proc.stderr  # progress lines
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["algorithm"] == "dcn" and metrics["variant"] == "brb" and metrics["seed"] == 3
    assert metrics["config"]["brb"]["interval"] == 1 and metrics["config"]["cluster"]["cluster_weight"] == 0.025
    for key in ("acc", "nmi", "ari", "purity"):
        assert 0 <= metrics[key] <= 1
    assert metrics["n_nonempty_clusters"] <= 10 and metrics["wall_time_s"] > 0
    labels = np.load(run / "labels.npy")
    assert labels.shape == (1797,)
    brb("evaluate", "--run", run, "--data", prepared)
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["acc"] == pytest.approx(metrics["acc"])
    assert sum(evaluation["cluster_sizes"]) == 1797
    assert not [p for p in run.iterdir() if ".tmp" in p.name]  # no temporary files left


@pytest.mark.parametrize(
    "args, message",
    [
        (["--brb.alpha", "2"], "brb.alpha"),
        (["--brb.interval", "0"], "brb.interval"),
        (["--cluster.algorithm", "kmeanz"], "unknown clustering method 'kmeanz'; known: dec, idec, dcn"),
        (["--data.dataset", "imagenet21k"], "unknown dataset 'imagenet21k'"),
        (["--brb.variant", "full"], "brb.variant"),
    ],
)
def test_bad_flags_fail_with_named_key_and_write_nothing(prepared, tmp_path, args, message):
    out = tmp_path / "run"
    proc = brb("cluster", "--data", prepared, "--out", out, *args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_missing_and_corrupt_data_are_named(tmp_path):
    proc = brb("cluster", "--data", tmp_path / "none.npz", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "data file not found" in proc.stderr and "none.npz" in proc.stderr
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    proc = brb("pretrain", "--data", bad, "--out", tmp_path / "p", check=False)
    assert proc.returncode == 2 and "corrupt or truncated" in proc.stderr and "bad.npz" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_truncated_checkpoint_and_wrong_architecture(prepared, tmp_path):
    pre = tmp_path / "pre"
    brb("pretrain", "--data", prepared, "--out", pre, "--model.hidden", "[16]", "--pretrain.epochs", "1", "--quiet")
    blob = (pre / "model.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(blob[: len(blob) // 2])
    proc = brb("cluster", "--data", prepared, "--pretrained", cut, "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "cut.pt" in proc.stderr and "corrupt or truncated" in proc.stderr
    proc = brb("cluster", "--data", prepared, "--pretrained", pre / "model.pt", "--data.resize", "16",
               "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "trained on inputs of shape (1, 8, 8)" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_kmeans_baseline_and_info(prepared, tmp_path):
    brb("kmeans", "--data", prepared, "--out", tmp_path / "km", "--cluster.kmeans_n_init", "2")
    metrics = json.loads((tmp_path / "km" / "metrics.json").read_text())
    assert metrics["algorithm"] == "kmeans" and metrics["acc"] > 0.6
    out = brb("info").stdout
    assert "digits" in out and "fmnist" in out and "idec" in out


def test_progress_is_a_bar_on_a_terminal_log_lines_otherwise_and_nothing_when_quiet(monkeypatch, capsys):
    import io

    from brb.logs import configure_logging
    from brb.runtime import Progress

    configure_logging(quiet=False)
    plain = Progress("fit", 4, enabled=True, every=2)
    assert plain.bar is None  # stderr is captured, not a terminal
    for epoch in range(1, 5):
        plain.update(epoch, loss=0.5)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[fit]")]
    assert [line.split(" s/epoch")[0].rsplit("(", 1)[0].strip() for line in lines] == [
        "[fit] epoch 2/4 loss 0.5000", "[fit] epoch 4/4 loss 0.5000"]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    bar = Progress("fit", 3, enabled=True, initial=1)
    assert bar.bar is not None and bar.bar.n == 1  # a resumed run's bar starts where it resumed
    bar.update(3, loss=0.25)
    assert bar.bar.n == 3 and "loss=0.2500" in terminal.getvalue()
    quiet = Progress("fit", 3, enabled=False)
    quiet.update(3, loss=0.1)
    assert quiet.bar is None and "[fit] epoch 3/3" not in terminal.getvalue()
    configure_logging(quiet=True)
    Progress("q", 1, enabled=True).update(1)
    assert "[q]" not in terminal.getvalue()
