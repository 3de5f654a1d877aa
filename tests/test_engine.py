"""The one training loop (brb/engine/loop.py) on a toy method: hook order, resume with hook state, NaN guard,
SIGTERM, and BRB refusing a method that lacks what it needs."""

import os
import signal

import pytest
import torch

from brb.checkpointing import Interrupted
from brb.config import make_config
from brb.engine.loop import Engine, Hook, Method, TrainingError
from brb.interventions.brb import BRB
from brb.methods.base import HasClusterHead, HasResetBlocks


class Toy(Method):
    label, epochs = "toy", 4

    def __init__(self, calls, nan_at=None, signal_at=None):
        self.calls, self.nan_at, self.signal_at = calls, nan_at, signal_at
        torch.manual_seed(0)
        self.net = torch.nn.Linear(2, 1)
        self.gen = torch.Generator().manual_seed(0)
        self.seen = 0

    def stateful(self):
        return {"net": self.net}

    def generators(self):
        return {"toy": self.gen}

    def start_history(self):
        return [{"epoch": 0, "loss": float("nan")}]

    def on_epoch_start(self, engine, epoch):
        self.calls.append(("method start", epoch))

    def batches(self, epoch):
        return [(epoch, 0), (epoch, 1)]  # two batches per epoch; the second one is skipped

    def training_step(self, batch):
        epoch, i = batch
        if i == 1:
            return None  # a skipped step is neither counted nor followed by on_batch_end
        self.calls.append(("train", epoch))
        with torch.no_grad():
            self.net.weight += 1.0
        self.seen += 1
        if epoch == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        draw = torch.rand(1, generator=self.gen)[0]
        return {"loss": torch.tensor(float("nan")) if epoch == self.nan_at else draw}

    def on_batch_end(self, engine, batch, losses):
        self.calls.append(("batch end", batch[0]))

    def on_epoch_end(self, engine, epoch, row):
        self.calls.append(("method end", epoch))

    def extra_state(self):
        return {"seen": self.seen}

    def load_extra_state(self, state):
        self.seen = state["seen"]


class Counter(Hook):
    def __init__(self, calls):
        self.calls, self.count = calls, 0

    def on_fit_start(self, engine):
        self.calls.append(("hook fit start", engine.epoch))

    def on_epoch_start(self, engine, epoch):
        self.count += 1
        self.calls.append(("hook start", epoch))

    def on_epoch_end(self, engine, epoch, row):
        self.calls.append(("hook end", epoch))

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_hooks_run_around_each_epoch_in_order():
    calls = []
    engine = Engine(Toy(calls), hooks=[Counter(calls)], progress=False)
    fit = engine.fit()
    assert calls[:7] == [("hook fit start", 0), ("hook start", 0), ("method start", 0), ("train", 0),
                         ("batch end", 0), ("method end", 0), ("hook end", 0)]
    assert [r["epoch"] for r in fit.history] == [0, 1, 2, 3, 4] and fit.resumed_from == 0
    assert all(r["time_s"] >= 0 for r in fit.history[1:])


def test_resume_restores_method_hook_generators_and_epoch(tmp_path):
    full_calls, cut_calls = [], []
    full = Engine(Toy(full_calls), hooks=[Counter(full_calls)], progress=False).fit()
    with pytest.raises(Interrupted, match="after epoch 2/4 of toy"):
        Engine(Toy(cut_calls, signal_at=1), hooks=[Counter(cut_calls)], checkpoint_dir=tmp_path, progress=False).fit()
    calls = []
    toy, counter = Toy(calls), Counter(calls)
    resumed = Engine(toy, hooks=[counter], checkpoint_dir=tmp_path, progress=False).fit()
    assert resumed.resumed_from == 2  # it continued; a silent restart would say 0
    assert ("train", 0) not in calls and ("train", 2) in calls
    assert counter.count == 4 and toy.seen == 4  # hook and method state came back
    torch.testing.assert_close(toy.net.weight.detach(), Toy([]).net.weight.detach() + 4)  # 2 saved + 2 resumed steps
    assert [r["loss"] for r in resumed.history[1:]] == [r["loss"] for r in full.history[1:]]  # generator too


def test_nan_guard_names_the_term_and_keeps_the_last_checkpoint(tmp_path):
    engine = Engine(Toy([], nan_at=2), checkpoint_dir=tmp_path, checkpoint_every=1, progress=False)
    with pytest.raises(TrainingError, match="non-finite training loss .* at epoch 2"):
        engine.fit()
    saved = torch.load(tmp_path / "resume.pt", weights_only=False)
    assert saved["state"]["epoch"] == 2 and saved["fingerprint"]["format"] == 2


def test_brb_refuses_a_method_without_centroids():
    brb = BRB(make_config({"brb": {"variant": "brb"}}).brb, seed=0)
    with pytest.raises(TypeError, match="BRB's soft_reset needs a method declaring HasResetBlocks; Toy does not"):
        Engine(Toy([]), hooks=[brb], progress=False).fit()
    baseline = BRB(make_config({}).brb, seed=0)  # the baseline variant needs nothing
    assert len(Engine(Toy([]), hooks=[baseline], progress=False).fit().history) == 5


class ResettableToy(Toy, HasResetBlocks):
    """Declares reset blocks only: soft reset applies, reclustering does not."""

    def named_reset_blocks(self, include_embedding=False):
        return [("net", [self.net])]


class HeadToy(ResettableToy, HasClusterHead):
    """No centroids, but a cluster head BRB's reclustering re-seeds (as DDC's head could be)."""

    n_clusters = 2

    def __init__(self, calls):
        super().__init__(calls)
        self.x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
        self.seeded = []

    def n_train(self):
        return len(self.x)

    def embed_rows(self, index):
        return self.x[torch.as_tensor(index)]

    def reseed_cluster_head(self, centroids):
        self.seeded.append(centroids)


def test_brb_parts_need_exactly_the_capabilities_they_use():
    reset = BRB(make_config({"brb": {"variant": "reset", "interval": 2}}).brb, seed=0)
    toy = ResettableToy([])
    before = toy.net.weight.detach().clone()
    Engine(toy, hooks=[reset], progress=False).fit()
    assert not torch.equal(toy.net.weight.detach(), before + 4)  # soft reset moved the weights
    recluster = BRB(make_config({"brb": {"variant": "recluster"}}).brb, seed=0)
    with pytest.raises(TypeError, match="recluster needs a method declaring HasCentroids or HasClusterHead"):
        Engine(ResettableToy([]), hooks=[recluster], progress=False).fit()
    head = HeadToy([])
    reseed = BRB(make_config({"brb": {"variant": "recluster", "interval": 2, "subsample": 4}}).brb, seed=0)
    reseed.parts["momentum_reset"] = False  # a head has no centroid optimiser state to reset
    Engine(head, hooks=[reseed], progress=False).fit()
    assert len(head.seeded) == 1  # at epoch 2 of 4
    centres = sorted(head.seeded[0].tolist())
    assert centres[0] == pytest.approx([0.05, 0.0]) and centres[1] == pytest.approx([5.05, 5.0])


def test_networks_declare_what_the_registry_tags_say():
    from brb.models import architecture
    from brb.models.blocks import PROJECTION, RECONSTRUCTION, provides
    from brb.registry import REGISTRY

    for entry in REGISTRY.entries("network"):
        cls = architecture(entry.name)
        assert provides(cls, RECONSTRUCTION) == ("autoencoder" in entry.tags), entry.name
        assert provides(cls, PROJECTION) == ("contrastive" in entry.tags), entry.name


def test_networks_expose_their_intermediate_outputs():
    from brb.models.autoencoder import FeedForwardAutoencoder
    from brb.models.resnet import ResNetEmbedding

    mlp = FeedForwardAutoencoder((1, 8, 8), 10, hidden=[32, 16]).eval()
    x = torch.randn(5, 1, 8, 8)
    out = mlp.intermediate(x)
    assert [(n, tuple(t.shape)) for n, t in out] == [("block0", (5, 32)), ("block1", (5, 16)), ("block2", (5, 10))]
    assert (out[0][1] >= 0).all() and torch.equal(out[-1][1], mlp.encode(x))  # after ReLU; last = embedding
    net = ResNetEmbedding((3, 16, 16), embedding_dim=8, hidden=[16]).eval()
    names = [n for n, _ in net.intermediate(torch.randn(2, 3, 16, 16))]
    assert names == ["stem", "layer1", "layer2", "layer3", "layer4", "pool", "head0", "head1"]
    torch.testing.assert_close(net.intermediate(torch.ones(2, 3, 16, 16))[-1][1], net.encode(torch.ones(2, 3, 16, 16)))


@pytest.mark.parametrize("backend", ["tensorboard", "mlflow", "wandb"])
def test_tracking_backends_record_every_epoch(backend, tmp_path, monkeypatch):
    """Experiment tracking is a hook: a tiny clustering run writes its per-epoch ACC to the file/offline backend."""
    from brb.data import load_prepared, prepare_dataset
    from brb.methods.centroid import run_clustering

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = load_prepared(prepare_dataset("digits", tmp_path / "digits.npz"))
    cfg = make_config({"model": {"hidden": [16]}, "cluster": {"epochs": 2, "kmeans_n_init": 1},
                       "run": {"threads": 1, "tracking": backend, "tracking_dir": str(tmp_path / "track")}})
    result = run_clustering(cfg, data, progress=False)
    accs = result.history["acc"].tolist()[1:]
    if backend == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        (run_dir,) = (tmp_path / "track" / "tensorboard").iterdir()
        events = EventAccumulator(str(run_dir))
        events.Reload()
        assert [e.step for e in events.Scalars("acc")] == [1, 2]
        assert [e.value for e in events.Scalars("acc")] == pytest.approx(accs)
    elif backend == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{(tmp_path / 'track' / 'mlflow.db').resolve()}")
        (run,) = mlflow.search_runs(experiment_names=["brb"], output_format="list")
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "acc")
        assert [m.step for m in history] == [1, 2] and [m.value for m in history] == pytest.approx(accs)
        assert run.data.params["cluster.algorithm"] == "dec"
    else:
        runs = list((tmp_path / "track" / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1 and runs[0].stat().st_size > 0
    assert make_config({"run": {"tracking": backend}}).fingerprint() == make_config({}).fingerprint()
