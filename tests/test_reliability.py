"""Faults: killed and pre-empted runs resume exactly; bad inputs fail with named errors and leave nothing."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from brb.cli import main

RUN = ["--model.hidden", "[32, 16]", "--cluster.batch_size", "16", "--brb.variant", "brb",
       "--brb.interval", "3", "--run.threads", "1", "--run.checkpoint_every", "2"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    path = tmp_path_factory.mktemp("rel") / "digits.npz"
    assert main(["prepare", "--dataset", "digits", "--out", str(path)]) == 0
    return path


def _cluster_cmd(data, out, epochs=24, algorithm="idec"):
    return [sys.executable, "-m", "brb.cli", "cluster", "--data", str(data), "--out", str(out),
            "--cluster.algorithm", algorithm, "--cluster.epochs", str(epochs), "--cluster.augment", "true", *RUN]


def _run_until_epoch(cmd, epoch, sig):
    """Start ``cmd``, wait until it reports ``epoch``, send ``sig``; returns (returncode, stderr)."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if f"epoch {epoch}/" in line:
            proc.send_signal(sig)
            break
    rest = proc.communicate(timeout=120)[1]
    return proc.returncode, "".join(lines) + (rest or "")


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "full"
    subprocess.run(_cluster_cmd(digits, out), check=True, capture_output=True, timeout=300)
    assert not (out / "resume.pt").exists()  # removed once the run completed
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_identical_labels(digits, uninterrupted, tmp_path, sig):
    out = tmp_path / "run"
    code, err = _run_until_epoch(_cluster_cmd(digits, out), 7, sig)
    assert code != 0, err
    assert not (out / "metrics.json").exists() and not (out / "labels.npy").exists()
    assert (out / "resume.pt").exists()
    saved_epoch = torch.load(out / "resume.pt", weights_only=False)["state"]["epoch"]
    if sig == signal.SIGTERM:
        assert code == 143 and "interrupted" in err and "re-run the same command" in err
        assert saved_epoch >= 7  # written at the end of the epoch the signal arrived in
    else:
        assert saved_epoch in (2, 4, 6, 8)  # the last periodic checkpoint
    proc = subprocess.run(_cluster_cmd(digits, out), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"resumed from {out / 'resume.pt'} at epoch {saved_epoch}" in proc.stderr
    np.testing.assert_array_equal(np.load(out / "labels.npy"), np.load(uninterrupted / "labels.npy"))
    ours = json.loads((out / "metrics.json").read_text())
    ref = json.loads((uninterrupted / "metrics.json").read_text())
    for key in ("acc", "nmi", "ari", "purity", "brb_epochs"):
        assert ours[key] == ref[key]
    assert ours["resumed_from_epoch"] == saved_epoch and ref["resumed_from_epoch"] == 0
    assert not (out / "resume.pt").exists()


@pytest.mark.slow
def test_pretraining_resumes_after_sigterm(digits, tmp_path):
    cmd = lambda out: [sys.executable, "-m", "brb.cli", "pretrain", "--data", str(digits), "--out", str(out),
                       "--pretrain.epochs", "20", "--pretrain.batch_size", "16", "--model.hidden", "[32, 16]",
                       "--run.threads", "1", "--run.checkpoint_every", "2"]
    subprocess.run(cmd(tmp_path / "full"), check=True, capture_output=True, timeout=300)
    code, err = _run_until_epoch(cmd(tmp_path / "cut"), 5, signal.SIGTERM)
    assert code == 143 and not (tmp_path / "cut" / "model.pt").exists()
    subprocess.run(cmd(tmp_path / "cut"), check=True, capture_output=True, timeout=300)
    full = torch.load(tmp_path / "full" / "model.pt", weights_only=False)
    cut = torch.load(tmp_path / "cut" / "model.pt", weights_only=False)
    assert full["resumed_from_epoch"] == 0
    assert cut["resumed_from_epoch"] >= 5  # it continued from the SIGTERM checkpoint instead of starting over
    a, b = full["state_dict"], cut["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_nan_loss_stops_the_stage_without_outputs(digits, tmp_path, capsys):
    out = tmp_path / "nan"
    code = main(["cluster", "--data", str(digits), "--out", str(out), "--cluster.epochs", "4",
                 "--cluster.algorithm", "idec", "--cluster.lr", "1e30", *RUN])
    err = capsys.readouterr().err
    assert code == 2 and "non-finite" in err and "at epoch" in err
    assert not (out / "metrics.json").exists() and not (out / "labels.npy").exists()


def test_nan_loss_keeps_last_good_checkpoint(digits, tmp_path):
    from brb.config import make_config
    from brb.data import load_prepared
    from brb.methods.centroid import ClusterTrainer, TrainingError

    class PoisonedAtEpoch2(ClusterTrainer):
        def on_epoch_start(self, engine, epoch):
            super().on_epoch_start(engine, epoch)
            if epoch == 2:
                with torch.no_grad():
                    self.model.encoder[0].weight.fill_(float("nan"))

    cfg = make_config({"model": {"hidden": [16]}, "cluster": {"algorithm": "dcn", "epochs": 5},
                       "run": {"checkpoint_every": 1}})
    trainer = PoisonedAtEpoch2(cfg, load_prepared(digits), checkpoint_dir=tmp_path)
    with pytest.raises(TrainingError, match=r"non-finite (clustering|reconstruction) loss .* at epoch 2"):
        trainer.fit(progress=False)
    saved = torch.load(tmp_path / "resume.pt", weights_only=False)["state"]
    assert saved["epoch"] == 2  # the state after epoch index 1, the last good one
    assert all(torch.isfinite(v).all() for v in saved["stateful"]["model"].values() if v.is_floating_point())


# --- bad inputs: (stage arguments, expected message) ----------------------------------------------
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, digits):
    """Bad files of every kind the stages read, written for real."""
    tmp_path = tmp_path_factory.mktemp("bad")
    good = np.load(digits)
    files = {}
    files["corrupt.npz"] = tmp_path / "corrupt.npz"
    files["corrupt.npz"].write_bytes(b"PK\x03\x04garbage that is not a zip archive")
    files["truncated.npz"] = tmp_path / "truncated.npz"
    files["truncated.npz"].write_bytes(digits.read_bytes()[:5000])
    files["nokeys.npz"] = tmp_path / "nokeys.npz"
    np.savez(files["nokeys.npz"], x=good["x"])
    files["badlabels.npz"] = tmp_path / "badlabels.npz"
    np.savez(files["badlabels.npz"], x=good["x"], y=good["y"] + 20, class_names=good["class_names"], name=good["name"])
    files["shape.npz"] = tmp_path / "shape.npz"
    np.savez(files["shape.npz"], x=good["x"][:10], y=good["y"], class_names=good["class_names"], name=good["name"])
    files["tensor.pt"] = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), files["tensor.pt"])
    files["unknown_key.yaml"] = tmp_path / "unknown_key.yaml"
    files["unknown_key.yaml"].write_text("cluster:\n  epochz: 3\n")
    files["list.yaml"] = tmp_path / "list.yaml"
    files["list.yaml"].write_text("- 1\n- 2\n")
    files["broken.yaml"] = tmp_path / "broken.yaml"
    files["broken.yaml"].write_text("cluster: {epochs: [1,\n")
    pre = tmp_path / "pre"
    assert main(["pretrain", "--data", str(digits), "--out", str(pre), "--model.hidden", "[16]",
                 "--pretrain.epochs", "1", "--quiet"]) == 0
    files["model.pt"] = pre / "model.pt"
    files["truncated.pt"] = tmp_path / "truncated.pt"
    files["truncated.pt"].write_bytes(files["model.pt"].read_bytes()[:2000])
    return files


BAD_INPUTS = [
    ("alpha above 1", ["--brb.alpha", "1.5"], "brb.alpha"),
    ("alpha below 0", ["--brb.alpha", "-0.2"], "brb.alpha"),
    ("interval 0", ["--brb.interval", "0"], "brb.interval"),
    ("unknown variant", ["--brb.variant", "full"], "brb.variant"),
    ("unknown recluster method", ["--brb.recluster_method", "dbscan"], "brb.recluster_method"),
    ("unknown algorithm", ["--cluster.algorithm", "spectral"], "unknown clustering method 'spectral'"),
    ("unknown dataset", ["--data.dataset", "imagenet21k"], "unknown dataset 'imagenet21k'"),
    ("unknown architecture", ["--model.arch", "vit"], "unknown network 'vit'"),
    ("negative epochs", ["--cluster.epochs", "-1"], "cluster.epochs"),
    ("wrong type", ["--cluster.batch_size", "many"], "cluster.batch_size"),
    ("empty hidden layers", ["--model.hidden", "[]"], "model.hidden"),
    ("unknown device", ["--run.device", "tpu"], "run.device"),
    ("more clusters than samples", ["--cluster.n_clusters", "5000"], "n_clusters=5000 exceeds the number of samples"),
    ("unknown key in config file", ["--config", "{unknown_key.yaml}"], "cluster.epochz: unknown key"),
    ("config file not a mapping", ["--config", "{list.yaml}"], "must hold a mapping"),
    ("config file not YAML", ["--config", "{broken.yaml}"], "not valid YAML"),
    ("missing config file", ["--config", "{tmp}/nope.yaml"], "config file not found"),
    ("missing data file", ["--data", "{tmp}/nope.npz"], "data file not found"),
    ("corrupt data file", ["--data", "{corrupt.npz}"], "corrupt or truncated"),
    ("truncated data file", ["--data", "{truncated.npz}"], "corrupt or truncated"),
    ("data file without labels", ["--data", "{nokeys.npz}"], "lacks y, class_names, name"),
    ("labels out of range", ["--data", "{badlabels.npz}"], "labels outside 0..9"),
    ("samples and labels differ", ["--data", "{shape.npz}"], "expected x (N, C, H, W), (N, D) or (N,) image paths and y (N,)"),
    ("truncated checkpoint", ["--pretrained", "{truncated.pt}"], "corrupt or truncated"),
    ("foreign checkpoint", ["--pretrained", "{tensor.pt}"], "was not written by brb"),
    ("checkpoint of other input shape", ["--pretrained", "{model.pt}", "--data.resize", "16"],
     "trained on inputs of shape (1, 8, 8)"),
]


@pytest.mark.parametrize("name, args, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_named_and_leaves_nothing(digits, bad_files, tmp_path, capsys, name, args, message):
    subst = {**{k: str(v) for k, v in bad_files.items()}, "tmp": str(tmp_path)}
    for key, value in subst.items():
        args = [a.replace("{" + key + "}", value) for a in args]
    data = [] if "--data" in args else ["--data", str(digits)]
    out = tmp_path / "out"
    code = main(["cluster", *data, "--out", str(out), "--cluster.epochs", "1", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_offline_prepare_of_absent_dataset_names_places_searched(tmp_path, capsys):
    out = tmp_path / "mnist.npz"
    code = main(["prepare", "--dataset", "kmnist", "--out", str(out), "--offline", "--mirror", str(tmp_path),
                 "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path) in err and "not found" in err.lower() or "no " in err.lower()
    assert not out.exists() and not list(tmp_path.glob(".mnist.npz*"))


def test_corrupt_resume_checkpoint_is_named(digits, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "resume.pt").write_bytes(b"not a checkpoint")
    code = main(["cluster", "--data", str(digits), "--out", str(out), "--cluster.epochs", "1", *RUN])
    err = capsys.readouterr().err
    assert code == 2 and "resume checkpoint" in err and "corrupt" in err
    assert not (out / "metrics.json").exists()


def test_resume_checkpoint_of_other_config_is_set_aside(digits, tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = _run_until_epoch(_cluster_cmd(digits, out, epochs=30), 3, signal.SIGTERM)
    assert code == 143
    old = (out / "resume.pt").read_bytes()
    # a changed setting (as when Snakemake re-runs an edited study) starts afresh and keeps the old state aside
    code = main(["cluster", "--data", str(digits), "--out", str(out), "--cluster.algorithm", "dec",
                 "--cluster.epochs", "2", *RUN])
    err = capsys.readouterr().err
    assert code == 0 and "another configuration" in err and "starting afresh" in err
    stale = list(out.glob("resume.stale-*.pt"))
    assert len(stale) == 1 and stale[0].read_bytes() == old
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2 and not (out / "resume.pt").exists()


def test_empty_clusters_are_counted_and_reseeded(digits):
    from brb.config import make_config
    from brb.data import load_prepared
    from brb.methods.centroid import ClusterTrainer

    cfg = make_config({"model": {"hidden": [16]}, "cluster": {"epochs": 0, "n_clusters": 5, "empty_clusters": "reseed"}})
    trainer = ClusterTrainer(cfg, load_prepared(digits))
    z = torch.randn(100, trainer.objective.centroids.shape[1])
    labels = np.zeros(100, dtype=np.int64)  # everything in cluster 0: clusters 1..4 empty
    assert trainer.reseed_empty(z, labels) == 4
    moved = trainer.objective.centroids[1:]
    assert all(any(torch.equal(m, p) for p in z) for m in moved)  # onto data points
