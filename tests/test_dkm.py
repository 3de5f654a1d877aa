"""DKM (brb/cluster/dkm.py), added as one module and one registry line: its loss by hand, its schedule, and a
real run through the default study's workflow on digits with its row in the tables."""

import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from brb.config import make_config
from brb.methods.dkm import DKM, annealed_alphas
from brb.registry import REGISTRY

REPO = Path(__file__).resolve().parents[1]


def test_soft_kmeans_loss_by_hand():
    cfg = make_config({"cluster": {"algorithm": "dkm"}}).cluster
    dkm = DKM(cfg, torch.tensor([[0.0, 0.0], [2.0, 0.0]]))
    dkm.alpha = math.log(3.0)  # distances² of z = (1, 0): 1 and 1 -> weights ½, ½; z = (0, 0): 0 and 4
    z = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    w_far = 3.0 ** -4 / (1 + 3.0 ** -4)  # softmax of −α·(0, 4) with e^{−α} = 1/3
    expected = ((0.5 * 1 + 0.5 * 1) + (0 * (1 - w_far) + 4 * w_far)) / 2
    assert dkm.loss(z, None, None).item() == pytest.approx(expected, rel=1e-6)
    assert dkm.predict(z).tolist() in ([0, 0], [1, 0])  # the tie goes either way; the origin is cluster 0
    assert dkm.learned_centroids and REGISTRY.load("method", "dkm") is DKM


def test_annealing_schedule():
    alphas = annealed_alphas()
    assert alphas[0] == 0.1 and len(alphas) == 40
    assert alphas[1] == pytest.approx(0.1 * 2 ** (1 / math.log(2) ** 2))
    assert all(b > a for a, b in zip(alphas, alphas[1:]))
    dkm = DKM(make_config({"cluster": {"algorithm": "dkm"}}).cluster, torch.zeros(2, 2))
    assert dkm.alpha == 1000.0  # brb starts from k-means centroids: the authors' pretrained setting
    dkm = DKM(make_config({"cluster": {"algorithm": "dkm", "dkm_schedule": "annealed"}}).cluster, torch.zeros(2, 2))
    assert dkm.alpha == alphas[0]  # their from-scratch setting
    dkm.start_epoch(12)
    assert dkm.alpha == alphas[2]
    dkm.start_epoch(10_000)
    assert dkm.alpha == alphas[-1]


@pytest.mark.slow
def test_dkm_runs_in_the_default_study_and_reaches_the_tables(tmp_path):
    """The default study's network and settings on digits, DKM baseline and BRB, one seed, through Snakemake."""
    import subprocess
    import sys

    import yaml

    study = yaml.safe_load((REPO / "config.yaml").read_text())
    study.update(results=str(tmp_path / "results"), algorithms=["dkm"], seeds=[0], baselines=["pixels"])
    study["settings"]["pretrain"]["epochs"] = 20
    study["settings"]["cluster"]["epochs"] = 20
    config = tmp_path / "dkm.yaml"
    config.write_text(yaml.safe_dump(study))
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    bin_dir = Path(sys.executable).parent  # the rules call the console script `brb` of this environment
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", str(config)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "results" / "tables" / "summary.csv")
    dkm = summary[summary["algorithm"] == "dkm"]
    assert set(dkm["variant"]) == {"baseline", "brb"}
    pixels = summary[summary["algorithm"] == "kmeans"]["acc_mean"].item()
    assert (dkm["acc_mean"] > 0.5 * pixels).all()  # it clusters (digits: k-means on pixels ~79 %)
