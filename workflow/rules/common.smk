# Helpers shared by the rules: paths, the study's run list, per-rule flags and resources.
import json
from pathlib import Path

from brb.config import ConfigError, deep_merge, make_config

RESULTS = config.get("results", "results")
CLUSTER_ALGORITHMS = ["dec", "idec", "dcn"]
BASE_VARIANTS = ["baseline", "brb", "reset", "recluster"]
NAMED_VARIANTS = config.get(
    "variant_settings", {}
)  # name -> {base: <base variant>, settings: {...}}
VARIANTS = BASE_VARIANTS + [v for v in NAMED_VARIANTS if v not in BASE_VARIANTS]

PRETRAIN_SECTIONS = ("data", "model", "augment", "pretrain")
CLUSTER_SECTIONS = ("data", "model", "augment", "cluster", "brb")


wildcard_constraints:
    dataset=r"[a-z0-9\-]+",
    arch=r"[a-z0-9\-]+",
    algorithm="|".join(CLUSTER_ALGORITHMS),
    variant="|".join(VARIANTS),
    seed=r"\d+",


def base_variant(variant):
    """The BRB variant a (possibly named) study variant runs."""
    return NAMED_VARIANTS[variant]["base"] if variant in NAMED_VARIANTS else variant


def settings_for(algorithm=None, dataset=None, variant=None):
    """brb settings of one run: study < per-dataset < per-algorithm < per named variant."""
    merged = dict(config.get("settings", {}))
    if dataset is not None:
        merged = deep_merge(merged, config.get("dataset_settings", {}).get(dataset, {}))
    if algorithm is not None:
        merged = deep_merge(
            merged, config.get("algorithm_settings", {}).get(algorithm, {})
        )
    if variant in NAMED_VARIANTS:
        merged = deep_merge(merged, NAMED_VARIANTS[variant].get("settings", {}))
    return merged


def check_settings():
    """Validate every run's brb settings before any job starts (messages name the key)."""
    for variant in config["variants"]:
        if base_variant(variant) not in BASE_VARIANTS:
            raise ValueError(
                f"config: variant {variant!r} is neither one of {', '.join(BASE_VARIANTS)} "
                "nor defined under variant_settings"
            )
    for dataset in config["datasets"]:
        for algorithm in config["algorithms"]:
            for variant in dict.fromkeys(config["variants"] + list(NAMED_VARIANTS)):
                values = deep_merge(
                    settings_for(algorithm, dataset, variant),
                    {
                        "cluster": {"algorithm": algorithm},
                        "brb": {"variant": base_variant(variant)},
                    },
                )
                try:
                    make_config(values)
                except ConfigError as err:
                    raise ValueError(
                        f"config: settings for {dataset}/{algorithm}/{variant}: {err}"
                    ) from None


check_settings()


def flags(sections, algorithm=None, dataset=None, variant=None, **extra):
    """`--section.key value` flags for the console script, values as inline JSON (valid YAML)."""
    values = deep_merge(settings_for(algorithm, dataset, variant), extra)
    out = []
    for section in sections:
        for key, value in sorted(values.get(section, {}).items()):
            out.append(f"--{section}.{key} '{json.dumps(value)}'")
    for key, value in sorted(config.get("run", {}).items()):
        out.append(f"--run.{key} '{json.dumps(value)}'")
    return " ".join(out)


def data_path(dataset):
    return f"{RESULTS}/data/{dataset}.npz"


def pretrain_dir(dataset, arch, seed):
    return f"{RESULTS}/pretrain/{dataset}/{arch}/seed{seed}"


def run_dir(dataset, arch, algorithm, variant, seed):
    return f"{RESULTS}/runs/{dataset}/{arch}/{algorithm}/{variant}/seed{seed}"


def cluster_runs():
    arch = config["arch"]
    return [
        run_dir(d, arch, a, v, s)
        for d in config["datasets"]
        for a in config["algorithms"]
        for v in config["variants"]
        for s in config["seeds"]
    ]


def baseline_runs():
    runs = []
    for d in config["datasets"]:
        for s in config["seeds"]:
            if "pixels" in config.get("baselines", []):
                runs.append(run_dir(d, "pixels", "kmeans", "pixels", s))
            if "pretrained" in config.get("baselines", []) and config.get(
                "pretrain", True
            ):
                runs.append(run_dir(d, config["arch"], "kmeans", "pretrained", s))
    return runs


def pretrained_input(w):
    """The shared pretrained checkpoint of a clustering run (none when the study skips pretraining)."""
    if not config.get("pretrain", True):
        return []
    return [f"{pretrain_dir(w.dataset, w.arch, w.seed)}/model.pt"]


def all_runs():
    return cluster_runs() + baseline_runs()


REPORTED_TABLES = ["summary", "paper_style"]


def table_stems():
    return REPORTED_TABLES + (["paper_vs_ours"] if config.get("reference") else [])


def table_outputs():
    return [
        f"{RESULTS}/tables/{s}.{ext}"
        for s in table_stems()
        for ext in ("md", "csv", "tex")
    ]


def unreported_table_outputs():
    """Table files not shown in the HTML report (CSV/LaTeX, and the optional comparison)."""
    reported = {f"{RESULTS}/tables/{s}.md" for s in REPORTED_TABLES}
    return [t for t in table_outputs() if t not in reported]


# the paper's "reclustering barrier" figure needs baseline, recluster-only and BRB runs
BARRIER_FIGURE = all(v in config["variants"] for v in ("baseline", "recluster", "brb"))
PLOTS = ["learning_curves", "final_acc"] + (
    ["reclustering_barrier"] if BARRIER_FIGURE else []
)


def plot_outputs():
    return [f"{RESULTS}/plots/{name}.png" for name in PLOTS]


def all_outputs():
    return [f"{RESULTS}/metrics.parquet"] + table_outputs() + plot_outputs()


CONDA_ENV = "../../envs/brb.yaml"


def training_resources(kind):
    """threads / mem_mb / runtime (minutes) from the config, plus a GPU request when the study asks."""
    res = dict(config["resources"][kind])
    res.pop("threads", None)
    if config.get("gpu", False):
        res["gpu"] = 1
    return res


def training_threads(kind):
    return config["resources"][kind].get("threads", 1)
