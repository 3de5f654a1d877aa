# Helpers shared by the rules: paths, the study's run list, per-rule flags and resources.
import json
from pathlib import Path

from brb.config import PAPER_SEEDS, ConfigError, deep_merge, make_config
from brb.registry import REGISTRY

RESULTS = config.get("results", "results")
if config.get("seeds") == "paper":  # the seed list of the paper's configs
    config["seeds"] = list(PAPER_SEEDS)
CLUSTER_ALGORITHMS = list(REGISTRY.names("method", tag="clustering"))  # brb/registry.py
BASE_VARIANTS = list(REGISTRY.names("variant"))
NAMED_VARIANTS = config.get(
    "variant_settings", {}
)  # name -> {base: <base variant>, settings: {...}}
VARIANTS = BASE_VARIANTS + [v for v in NAMED_VARIANTS if v not in BASE_VARIANTS]

PRETRAIN_SECTIONS = ("data", "model", "augment", "pretrain")
CLUSTER_SECTIONS = ("data", "model", "augment", "cluster", "brb")
SELFLABEL_SECTIONS = ("data", "augment", "selflabel")
SELFLABEL_SUFFIX = "-selflabel"


wildcard_constraints:
    dataset=r"[a-z0-9\-]+",
    pretraining="|".join(REGISTRY.names("pretraining")),
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
    unknown = [
        a
        for a in config["algorithms"] + list(config.get("algorithm_settings", {}))
        if a not in CLUSTER_ALGORITHMS
    ]
    if unknown:
        raise ValueError(
            f"config: unknown clustering method(s) {', '.join(unknown)}; known: {', '.join(CLUSTER_ALGORITHMS)}"
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


# Every output path pattern, defined once; rules and input functions fill them (`fill`, `str.format`).
DATA = f"{RESULTS}/data/{{dataset}}.npz"
PRETRAIN = f"{RESULTS}/pretrain/{{dataset}}/{{arch}}/{{pretraining}}/seed{{seed}}"
RUN = f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}"
SELFLABEL_RUN = RUN.replace("{variant}", f"{{variant}}{SELFLABEL_SUFFIX}")


def fill(pattern, **values):
    """``pattern`` with the named wildcards replaced (the others stay wildcards)."""
    for key, value in values.items():
        pattern = pattern.replace(f"{{{key}}}", str(value))
    return pattern


def data_path(dataset):
    return DATA.format(dataset=dataset)


def pretraining_method(dataset, arch):
    """The pretraining method of a (dataset, network): the study's `pretrain.method`, else the network's own."""
    values = deep_merge(settings_for(dataset=dataset), {"model": {"arch": arch}})
    return make_config(values).pretrain.resolved_method(arch)


def pretrain_dir(dataset, arch, seed):
    """The checkpoint directory of a pretraining; its path carries the pretraining method (a BYOL and a SimCLR
    checkpoint of the same network never collide)."""
    return fill(
        PRETRAIN,
        dataset=dataset,
        arch=arch,
        pretraining=pretraining_method(dataset, arch),
        seed=seed,
    )


def run_dir(dataset, arch, algorithm, variant, seed):
    return RUN.format(
        dataset=dataset, arch=arch, algorithm=algorithm, variant=variant, seed=seed
    )


def cluster_runs(suffix=""):
    """Run directories of the study's clustering runs (``suffix``: of the stage that follows each run)."""
    arch = config["arch"]
    return [
        run_dir(d, arch, a, v + suffix, s)
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


def cluster_flags(w):
    """Configuration flags of the clustering runs of one (dataset, arch, algorithm, variant)."""
    return flags(
        CLUSTER_SECTIONS,
        algorithm=w.algorithm,
        dataset=w.dataset,
        model={"arch": w.arch},
        cluster={"algorithm": w.algorithm},
        variant=w.variant,
        brb={"variant": base_variant(w.variant)},
    )


# --- packed clustering jobs: `pack` seeds run together by one job on one device (docs/slurm.md) ---
PACK = config.get("pack", 1)
SEED_PLACEHOLDER = "{seed}"  # filled in per run by `brb cluster --seeds`


def pack_chunks():
    """config["seeds"] in chunks of `pack`, one packed cluster rule each (none when pack is 1)."""
    if PACK <= 1:
        return []
    seeds = config["seeds"]
    return [seeds[i : i + PACK] for i in range(0, len(seeds), PACK)]


def unpacked_seed_regex():
    """Seed wildcard of the single-run `cluster` rule: every seed that no packed rule runs.

    A negative lookahead rather than a list of allowed seeds, so that seeds outside the study can still
    be built one by one; it keeps `cluster` and the packed rules from ever matching the same file.
    """
    packed = [str(s) for chunk in pack_chunks() for s in chunk]
    if not packed:
        return r"\d+"
    return rf"(?!(?:{'|'.join(packed)})(?!\d))\d+"


def pack_outputs(seeds, name):
    """The file `name` of each seed's run directory, as output patterns of a packed rule."""
    return [f"{fill(RUN, seed=s)}/{name}" for s in seeds]


def pack_pretrained_input(seeds):
    """Input function of a packed rule: the pretrained checkpoints of its seeds."""

    def inputs(w):
        if not config.get("pretrain", True):
            return []
        return [f"{pretrain_dir(w.dataset, w.arch, s)}/model.pt" for s in seeds]

    return inputs


def pack_run_dir(w):
    """Run directory of a packed job with the `{seed}` placeholder (`brb cluster --out`)."""
    return run_dir(w.dataset, w.arch, w.algorithm, w.variant, SEED_PLACEHOLDER)


def pack_pretrained_flag(w):
    """`--pretrained` of a packed job, the checkpoint path with the `{seed}` placeholder."""
    if not config.get("pretrain", True):
        return ""
    return (
        f"--pretrained '{pretrain_dir(w.dataset, w.arch, SEED_PLACEHOLDER)}/model.pt'"
    )


def selflabel_runs():
    """Self-labeling of every clustering run, when the study asks for it."""
    return cluster_runs(SELFLABEL_SUFFIX) if config.get("selflabel", False) else []


def all_runs():
    return cluster_runs() + selflabel_runs() + baseline_runs()


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
