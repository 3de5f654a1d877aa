"""The one registry (brb/registry.py): every list of names derives from it or is checked against it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import brb.data  # noqa: F401  (registers the datasets)
from brb.config import ConfigError, make_config
from brb.registry import KINDS, REGISTRY, Registry, UnknownNameError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_workflow_schema_enums_are_the_registry_names():
    props = SCHEMA["properties"]
    assert props["datasets"]["items"]["enum"] == list(REGISTRY.names("dataset"))
    assert props["arch"]["enum"] == list(REGISTRY.names("network"))
    # clustering methods are checked against the registry by the workflow (common.smk), not listed in the schema
    assert "enum" not in props["algorithms"]["items"] and "enum" not in props["algorithm_settings"]["propertyNames"]
    named = props["variant_settings"]["additionalProperties"]["properties"]["base"]["enum"]
    assert named == list(REGISTRY.names("variant"))


def test_report_orders_and_colours_come_from_the_registry():
    from brb.report.plots import VARIANT_COLORS
    from brb.report.tables import ALGORITHM_ORDER, DATASET_ORDER, VARIANT_ORDER

    assert DATASET_ORDER[:6] == ("mnist", "fmnist", "kmnist", "usps", "optdigits", "gtsrb")  # the paper's order
    assert ALGORITHM_ORDER[:3] == ("dec", "idec", "dcn")
    assert VARIANT_ORDER == ("baseline", "brb", "reset", "recluster", "reset_recluster")
    assert VARIANT_COLORS == {e.name: e.colour for e in REGISTRY.entries("variant")}


def test_unknown_names_are_errors_that_list_the_known_ones():
    with pytest.raises(ConfigError, match="unknown clustering method 'spectral'; known: dec, idec, dcn"):
        make_config({"cluster": {"algorithm": "spectral"}})
    with pytest.raises(ConfigError, match="unknown network 'vit'; known: mlp, resnet18, conv"):
        make_config({"model": {"arch": "vit"}})
    with pytest.raises(UnknownNameError, match="unknown variant 'x'; known: baseline, brb, reset, recluster"):
        REGISTRY.entry("variant", "x")
    with pytest.raises(UnknownNameError, match="unknown registry kind"):
        REGISTRY.names("model")


def test_a_new_entry_is_listed_ranked_and_loaded_on_use():
    reg = Registry()
    reg.add("method", "b", "json:dumps", tags={"clustering"})
    reg.add("method", "a", "json:loads", tags={"clustering"}, rank=-1)
    reg.add("method", "c", "json:loads")
    assert reg.names("method") == ("a", "b", "c") and reg.names("method", "clustering") == ("a", "b")
    assert reg.load("method", "b") is json.dumps
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("method", "a")


def test_info_json_lists_every_kind():
    out = subprocess.run([sys.executable, "-m", "brb", "info", "--json"], capture_output=True, text=True, check=True)
    described = json.loads(out.stdout)
    assert list(described) == list(KINDS)
    assert [d["name"] for d in described["method"]][:3] == ["dec", "idec", "dcn"]
    assert described["method"][2]["defaults"]["cluster_weight"] == 0.025
    assert {"name", "summary", "tags"} <= set(described["dataset"][0])
