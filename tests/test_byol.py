"""BYOL and ProPos pretraining on the engine (brb/methods/byol.py): their options, a short real run on digits,
the warm-up gating of PSL, the EMA timing of the v1 forward, resume, and the checkpoint handed on."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from brb.config import make_config
from brb.data.prepared import PreparedData
from brb.losses.schedules import lr_at, scaled_lr
from brb.methods.byol import BYOLMethod, pretrain_byol, pretrain_propos
from brb.registry import REGISTRY


def digits(n: int = 200) -> PreparedData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images[:n] * 255 / 16).round().astype(np.uint8)[:, None]
    return PreparedData("digits", x, bunch.target[:n], [str(i) for i in range(10)])


def config(method: str = "propos", epochs: int = 2, **pretrain):
    return make_config({
        "data": {"resize": 20, "normalize": "channel"},
        "model": {"arch": "cnn_small", "embedding_dim": 32},
        "pretrain": {"method": method, "epochs": epochs, "batch_size": 64, "hidden_dim": 64, "feature_dim": 16,
                     "warmup_epochs": 1, "kmeans_n_init": 2, **pretrain},
        "run": {"seed": 0, "threads": 1, "checkpoint_every": 1},
    })


def test_byol_and_propos_options_as_their_configs():
    byol, propos = config("byol").pretrain, config("propos").pretrain
    assert (byol.reassign, byol.psl_weight, byol.latent_std, byol.ema_schedule) == (10, 0.0, 0.0, "cosine")
    assert (propos.reassign, propos.psl_weight, propos.latent_std, propos.ema_schedule) == (1, 0.1, 0.001, "fixed")
    assert (propos.optimizer, propos.lr, propos.weight_decay, propos.predictor_lr_mult) == ("sgd", 0.05, 5e-4, 10.0)
    assert make_config({"pretrain": {"method": "propos"}}).pretrain.epochs == 1000
    simclr = make_config({"model": {"arch": "resnet18"}}).pretrain
    assert simclr.psl_weight is None and simclr.epochs == 1000  # another method's keys did not run
    assert REGISTRY.entry("pretraining", "propos").options().reassign == 1


def test_propos_trains_and_reports_kmeans_of_the_target_features():
    cfg = config("propos", epochs=2)
    result = pretrain_propos(cfg, digits(), progress=False)
    h = result.history
    assert list(h["epoch"]) == [0, 1, 2] and np.isfinite(h["loss"].iloc[1:]).all()
    assert h["acc"].notna().all() and 0 < h["acc"].iloc[-1] <= 1  # k-means on the target features, every epoch
    assert h["loss_scattering"].iloc[1] == 0 and h["loss_scattering"].iloc[2] > 0  # PSL only after warm-up
    base = scaled_lr(0.05, 64)
    assert h["lr"].iloc[2] == pytest.approx(lr_at(2.0, base, 2, 1, "propos"))  # 1-based iterations: the last step ends epoch 1
    assert not result.model.training and result.model.encode(torch.zeros(2, 1, 20, 20)).shape == (2, 32)


def test_byol_scores_only_at_its_reassign_epochs():
    result = pretrain_byol(config("byol", epochs=3, reassign=2), digits(), progress=False)
    h = result.history.set_index("epoch")
    assert h["acc"].notna().tolist() == [True, False, True, True]  # epoch 0, after epoch 2, after the last
    assert (h["loss_scattering"].iloc[1:] == 0).all()


def test_v1_target_follows_the_pre_step_online_weights():
    from brb.data.tensors import DeviceData
    from brb.registry import REGISTRY as R

    cfg = config("propos", epochs=1, ema_momentum=0.9)
    options = R.entry("pretraining", "propos").options.model_validate(
        {k: getattr(cfg.pretrain, k) for k in R.entry("pretraining", "propos").options.model_fields})
    method = BYOLMethod(cfg, DeviceData(digits(), "cpu", "channel", 20), options, "t")
    online_before = copy.deepcopy(method.online.state_dict())
    target_before = copy.deepcopy(method.target.state_dict())
    method.epoch = 0
    method._step(torch.arange(64))
    name = "projector.3.weight"
    expected = 0.9 * target_before[name] + 0.1 * online_before[name]
    assert torch.allclose(method.target.state_dict()[name], expected)
    assert not torch.equal(method.online.state_dict()[name], online_before[name])  # the step moved the online net


def test_resume_continues_and_does_not_start_over(tmp_path):
    cfg = config("propos", epochs=3)
    full = pretrain_propos(cfg, digits(), progress=False, checkpoint_dir=tmp_path)
    assert (tmp_path / "resume.pt").is_file()
    resumed = pretrain_propos(cfg, digits(), progress=False, checkpoint_dir=tmp_path)
    assert full.resumed_from == 0 and resumed.resumed_from == 2
    assert resumed.history["loss"].tolist() == pytest.approx(full.history["loss"].tolist(), nan_ok=True)
    assert resumed.history["acc"].tolist() == pytest.approx(full.history["acc"].tolist())


def test_data_resample_balances_the_pseudo_clusters():
    from brb.data.tensors import DeviceData

    cfg = config("propos", epochs=1, data_resample=True, batch_size=50)
    options = REGISTRY.entry("pretraining", "propos").options.model_validate(
        {k: getattr(cfg.pretrain, k) for k in REGISTRY.entry("pretraining", "propos").options.model_fields})
    method = BYOLMethod(cfg, DeviceData(digits(), "cpu", "channel", 20), options, "t")
    labels = torch.zeros(200, dtype=torch.long)
    labels[180:] = torch.arange(20) % 10  # cluster 0 holds 182 of 200 samples, clusters 1-9 two each
    method.pseudo_labels = labels
    batches = method._epoch_batches(0)
    assert len(batches) == 4 and all(len(b) == 50 for b in batches)  # N // batch batches
    drawn = labels[torch.cat(batches)]
    assert 0.02 < (drawn == 0).float().mean().item() < 0.25  # about 1/10 (it is 0.91 of the data)
    assert len(torch.unique(drawn)) >= 8
