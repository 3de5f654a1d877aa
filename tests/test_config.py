import pytest

from brb.config import ConfigError, load_config, make_config


def test_defaults_and_per_algorithm_weights():
    assert make_config({"cluster": {"algorithm": "dec"}}).cluster.reconstruction_weight == 0.0
    idec = make_config({"cluster": {"algorithm": "idec"}}).cluster
    assert (idec.cluster_weight, idec.reconstruction_weight) == (0.1, 1.0)
    dcn = make_config({"cluster": {"algorithm": "dcn"}}).cluster
    assert (dcn.cluster_weight, dcn.reconstruction_weight) == (0.025, 1.0)
    explicit = make_config({"cluster": {"algorithm": "idec", "cluster_weight": 0.5}}).cluster
    assert explicit.cluster_weight == 0.5


def test_variant_parts():
    assert make_config({"brb": {"variant": "brb"}}).brb.parts() == {
        "soft_reset": True,
        "recluster": True,
        "momentum_reset": True,
    }
    assert make_config({"brb": {"variant": "reset"}}).brb.parts()["recluster"] is False
    assert not any(make_config({}).brb.parts().values())


@pytest.mark.parametrize(
    "values, key",
    [
        ({"brb": {"alpha": 1.5}}, "brb.alpha"),
        ({"brb": {"alpha": -0.1}}, "brb.alpha"),
        ({"brb": {"interval": 0}}, "brb.interval"),
        ({"brb": {"variant": "half"}}, "brb.variant"),
        ({"data": {"dataset": "imagenet21k"}}, "data.dataset"),
        ({"cluster": {"algorithm": "spectral"}}, "cluster.algorithm"),
        ({"cluster": {"epochs": -1}}, "cluster.epochs"),
        ({"cluster": {"lr": 0}}, "cluster.lr"),
        ({"cluster": {"epoch": 3}}, "cluster.epoch"),
        ({"clusterr": {}}, "clusterr"),
        ({"model": {"hidden": []}}, "model.hidden"),
        ({"run": {"device": "tpu"}}, "run.device"),
        ({"cluster": {"batch_size": "many"}}, "cluster.batch_size"),
    ],
)
def test_bad_values_are_named(values, key):
    with pytest.raises(ConfigError) as err:
        make_config(values)
    assert key in str(err.value)


def test_unknown_key_lists_known_keys():
    with pytest.raises(ConfigError, match="known keys here: .*epochs"):
        make_config({"cluster": {"epoch": 3}})


def test_load_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("cluster:\n  epochs: 7\nbrb:\n  variant: brb\n")
    cfg = load_config(path, {"cluster": {"algorithm": "dcn"}})
    assert (cfg.cluster.epochs, cfg.cluster.algorithm, cfg.brb.variant) == (7, "dcn", "brb")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_registries_agree_with_config_defaults():
    from brb.config import ALGORITHM_DEFAULTS
    from brb.models import ARCHITECTURES, architecture
    from brb.registry import REGISTRY

    assert set(REGISTRY.names("method", "clustering")) == set(ALGORITHM_DEFAULTS)
    for name in REGISTRY.names("method", "clustering"):
        assert callable(REGISTRY.load("method", name))
    for name in ARCHITECTURES:
        assert callable(architecture(name))


def test_config_validation_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, brb.config as c; "
        "c.make_config({'cluster': {'algorithm': 'dcn'}, 'model': {'arch': 'mlp'}, 'data': {'dataset': 'mnist'}}); "
        "print('torch' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_recorded_weights_are_the_applied_ones(tmp_path):
    """An MLP has no projector and a ResNet no decoder: their weights resolve to 0 in the configuration itself,
    and metrics.json records the weights the loss actually used."""
    import json

    import numpy as np

    from brb.cli import main
    from brb.data import prepare_dataset

    idec = make_config({"cluster": {"algorithm": "idec"}}).cluster
    assert (idec.cluster_weight, idec.reconstruction_weight, idec.contrastive_weight) == (0.1, 1.0, 0.0)
    resnet = make_config({"cluster": {"algorithm": "idec"}, "model": {"arch": "resnet18"}}).cluster
    assert (resnet.reconstruction_weight, resnet.contrastive_weight) == (0.0, 1.0)
    with pytest.raises(ConfigError, match="cluster.contrastive_weight: the mlp network has no projector"):
        make_config({"cluster": {"contrastive_weight": 0.5}})
    with pytest.raises(ConfigError, match="cluster.reconstruction_weight: the resnet18 network has no decoder"):
        make_config({"model": {"arch": "resnet18"}, "cluster": {"reconstruction_weight": 1.0}})
    data = prepare_dataset("digits", tmp_path / "digits.npz")
    out = tmp_path / "run"
    assert main(["cluster", "--data", str(data), "--out", str(out), "--cluster.algorithm", "idec", "--cluster.epochs", "1",
                 "--model.hidden", "[16]", "--cluster.kmeans_n_init", "1", "--quiet"]) == 0
    recorded = json.loads((out / "metrics.json").read_text())["config"]["cluster"]
    assert recorded["contrastive_weight"] == 0.0 and recorded["reconstruction_weight"] == 1.0
    history = __import__("pandas").read_parquet(out / "history.parquet")
    assert np.isnan(history["loss_contrastive"].iloc[0]) and (history["loss_contrastive"].iloc[1:] == 0).all()
    assert (history["loss_reconstruction"].iloc[1:] > 0).all()


def test_with_network_keeps_explicit_keys_and_resolves_the_rest_again():
    cfg = make_config({"cluster": {"algorithm": "idec", "epochs": 7}})
    assert cfg.cluster.contrastive_weight == 0.0 and cfg.model.hidden == [1024, 512, 256]
    resnet = cfg.with_network("resnet18")  # e.g. the network a pretrained checkpoint holds
    assert resnet.model.arch == "resnet18" and resnet.cluster.epochs == 7
    assert (resnet.cluster.reconstruction_weight, resnet.cluster.contrastive_weight) == (0.0, 1.0)
    assert resnet.model.hidden == [512, 256] and cfg.with_network("mlp") is cfg


def test_each_method_declares_its_typed_options_once():
    """The registry entry and the method class name the same options class; its defaults are the entry's."""
    from brb.config import METHOD_OPTION_KEYS, ClusterConfig
    from brb.registry import REGISTRY

    for entry in REGISTRY.entries("method", tag="clustering"):
        assert REGISTRY.load("method", entry.name).Options is entry.options, entry.name
        assert dict(entry.defaults) == entry.options().model_dump()
        assert set(entry.options.model_fields) <= set(ClusterConfig.model_fields)
    assert {"dec_alpha", "dcn_update", "kmeans_loss_centroids", "dkm_schedule", "lr"} <= METHOD_OPTION_KEYS


def test_a_run_records_its_own_method_options_and_not_the_others():
    cfg = make_config({"cluster": {"algorithm": "dec", "dcn_update": "reference", "dec_alpha": 2.0}})
    assert cfg.cluster.dec_alpha == 2.0 and cfg.cluster.dcn_update is None  # DCN's key did not run
    assert cfg.cluster.method_options().dec_alpha == 2.0
    cfg = make_config({"cluster": {"algorithm": "dcn", "dcn_update": "reference", "dec_alpha": 2.0}})
    assert cfg.cluster.dcn_update == "reference" and cfg.cluster.dec_alpha is None
    assert cfg.cluster.dcn_count_init == 100.0 and cfg.cluster.cluster_weight == 0.025
    # per-method defaults of a shared key come from the method's class
    assert make_config({"cluster": {"algorithm": "ae_kl"}}).cluster.optimizer == "sgd"
    assert make_config({"cluster": {"algorithm": "idec"}}).cluster.optimizer == "adam"
    # the method's ranges apply, and the error names the key and the method
    with pytest.raises(ConfigError, match=r"cluster.dkm_alpha.*greater than 0.*dkm"):
        make_config({"cluster": {"algorithm": "dkm", "dkm_alpha": 0}})
    with pytest.raises(ConfigError, match="cluster.dcn_update"):
        make_config({"cluster": {"algorithm": "dec", "dcn_update": "sometimes"}})
    # the recorded configuration rebuilds the same run
    cfg = make_config({"cluster": {"algorithm": "dkm", "dkm_schedule": "annealed"}})
    assert make_config(cfg.to_dict()).to_dict() == cfg.to_dict()
