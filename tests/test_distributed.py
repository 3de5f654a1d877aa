"""Data-parallel pretraining (brb/engine/distributed.py) on the CPU with the gloo backend and 2 processes: one
optimisation step of ProPos (PSL on the gathered batch), MoCo (keys gathered into the queue) and CC (global
losses) gives the same losses and weights as one process on the concatenated batch; our SyncBatchNorm is plain
BatchNorm in one process; and ``brb pretrain --nproc-per-node 2`` runs end to end through torch.distributed.run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from brb.config import make_config
from brb.data.prepared import PreparedData
from brb.data.tensors import DeviceData
from brb.engine.distributed import SyncBatchNorm, convert_sync_batchnorm_
from brb.registry import REGISTRY

BATCH = 32


def digits(n: int = 128) -> PreparedData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images[:n] * 255 / 16).round().astype(np.uint8)[:, None]
    return PreparedData("digits", x, bunch.target[:n], [str(i) for i in range(10)])


def build(name: str, per_process: bool = False):
    extra = {"queue_size": 4 * BATCH} if name == "moco" else {}
    if name == "cc":
        extra["optimizer"] = "sgd"  # Adam's first step, g / (|g| + eps), turns float noise in tiny gradients into +-lr
    if name == "propos":
        extra["latent_std"] = 0.0  # each process draws its own noise (as theirs): not comparable bit for bit
    cfg = make_config({
        "data": {"resize": 20}, "model": {"arch": "cnn_small", "embedding_dim": 16},
        "pretrain": {"method": name, "epochs": 2, "batch_size": BATCH, "hidden_dim": 32, "feature_dim": 16,
                     "warmup_epochs": 1, "kmeans_n_init": 1, "lr": 0.5, "kmeans_per_process": per_process, **extra},
        "run": {"seed": 0, "threads": 1, "device": "cpu"},
    })
    from brb.methods.byol import BYOLMethod
    from brb.methods.selfsup import CCMethod, MoCoMethod

    cls = {"propos": BYOLMethod, "moco": MoCoMethod, "cc": CCMethod}[name]
    options_cls = REGISTRY.entry("pretraining", name).options
    options = options_cls.model_validate({k: getattr(cfg.pretrain, k) for k in options_cls.model_fields})
    torch.manual_seed(0)
    method = cls(cfg, DeviceData(digits(), torch.device("cpu"), "channel", 20), options, "t")
    method.epoch = 1  # after the warm-up: ProPos's PSL is on
    return method


def one_step(method):
    """The same global batch and views for every process; each optimises its share."""
    from brb.engine import distributed as dist

    idx = torch.arange(BATCH)
    x = method.data.batch(idx)
    x1, x2 = x, torch.flip(x, dims=[3])  # two fixed views
    local = dist.shard(idx)
    n = len(local)
    start = int(local[0])
    losses = method.optimise(x1[start:start + n], x2[start:start + n], local)
    losses = {k: float(v.detach()) for k, v in dist.mean_over_processes(losses).items()}
    state = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in method.networks().items()}
    if hasattr(method, "queue"):
        state["queue"] = method.queue.clone()
    return losses, state


def _worker(rank: int, world: int, port: int, name: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from brb.engine.distributed import init_from_env

    init_from_env("cpu")
    losses, state = one_step(build(name))
    if rank == 0:
        torch.save({"losses": losses, "state": state}, out)
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", ["propos", "moco", "cc"])
def test_two_processes_match_one_process_on_the_concatenated_batch(name, tmp_path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(2, free_port(), name, str(out)), nprocs=2, join=True)
    two = torch.load(out, weights_only=False)
    losses, state = one_step(build(name))
    assert two["losses"].keys() == losses.keys()
    for key, value in losses.items():
        assert two["losses"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    if name == "propos":
        assert losses["loss_scattering"] > 0  # the gathered PSL was compared, not a zero
    for net, tensors in state.items():
        if net == "queue":
            torch.testing.assert_close(two["state"]["queue"], tensors, rtol=1e-4, atol=1e-5)
            continue
        for key, value in tensors.items():
            torch.testing.assert_close(two["state"][net][key].float(), value.float(), rtol=1e-4, atol=1e-5,
                                       msg=f"{net}.{key}")


def _estep_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from brb.engine.distributed import init_from_env

    init_from_env("cpu")
    method = build("propos", per_process=True)  # its first E-step runs in the constructor
    torch.save(method.pseudo_labels, f"{out}.{rank}")
    torch.distributed.destroy_process_group()


def test_each_process_runs_its_own_kmeans_restarts_and_all_take_the_lowest_inertia(tmp_path):
    import torch.nn.functional as F

    from brb.cluster.kmeans_torch import kmeans_torch
    from brb.methods.selfsup import KMEANS_RANK_STRIDE

    out = str(tmp_path / "labels")
    mp.spawn(_estep_worker, args=(2, free_port(), out), nprocs=2, join=True)
    got = [torch.load(f"{out}.{r}") for r in range(2)]
    torch.testing.assert_close(got[0], got[1])  # every process holds the same pseudo-labels
    feats = build("propos").features()  # the same network in one process (rank 0's initialisation)
    inertia, labels = [], []
    for rank in range(2):  # what each process's own restarts found
        centers = F.normalize(kmeans_torch(feats, 10, KMEANS_RANK_STRIDE * rank, n_init=1, metric="cosine"), dim=1)
        sim, lab = (feats @ centers.T).max(dim=1)
        inertia.append(float((1 - sim).sum()))
        labels.append(lab)
    assert inertia[0] != inertia[1]  # two different clusterings to choose from
    torch.testing.assert_close(got[0], labels[int(np.argmin(inertia))])


def test_sync_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 4 * 4, 8), torch.nn.BatchNorm1d(8))
    ref = torch.nn.Sequential(*[m for m in __import__("copy").deepcopy(net)])
    weight = net[1].weight
    convert_sync_batchnorm_(net)
    assert isinstance(net[1], SyncBatchNorm) and isinstance(net[4], SyncBatchNorm)
    assert net[1].weight is weight  # the same parameter: an optimiser built before still holds it
    x = torch.randn(6, 1, 6, 6)
    torch.testing.assert_close(net(x), ref(x))
    torch.testing.assert_close(net[1].running_var, ref[1].running_var)


def test_brb_pretrain_with_two_processes_through_torchrun(tmp_path):
    from brb.data import prepare_dataset

    data = prepare_dataset("digits", tmp_path / "digits.npz")
    out = tmp_path / "byol"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "brb.cli", "pretrain", "--data", str(data), "--out", str(out), "--nproc-per-node",
           "2", "--model.arch", "cnn_small", "--data.resize", "20", "--pretrain.method", "byol", "--pretrain.epochs",
           "1", "--pretrain.batch_size", "128", "--pretrain.hidden_dim", "32", "--pretrain.feature_dim", "16",
           "--pretrain.kmeans_n_init", "1", "--run.device", "cpu", "--run.threads", "1", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = json.loads((out / "job_env.json").read_text())
    assert (job["processes"], job["global_batch"], job["batch_per_process"]) == (2, 128, 64)
    assert job["base_lr"] == pytest.approx(0.05 * 128 / 256)  # scaled by the global batch
    payload = torch.load(out / "model.pt", weights_only=False)
    assert payload["processes"] == 2 and not (out / "resume.pt").exists()
