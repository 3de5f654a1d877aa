# Helpers shared by the rules: paths, the study's run list, per-rule flags and resources.
import json
from pathlib import Path

from brb.config import PAPER_SEEDS, ConfigError, deep_merge, make_config
from brb.registry import REGISTRY

RESULTS = config.get("results", "results")
CLUSTER_ALGORITHMS = list(REGISTRY.names("method", tag="clustering"))  # brb/registry.py
PRETRAININGS = list(REGISTRY.names("pretraining"))
#: pretrainings that cluster on their own (an E-step): the `estep` baseline
ESTEP_PRETRAININGS = list(REGISTRY.names("pretraining", tag="self-supervised"))
SCRATCH = (
    "scratch"  # the pretraining path segment of runs that start from a fresh network
)
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
    pretraining="|".join(PRETRAININGS + [SCRATCH, "none"]),
    arch=r"[a-z0-9_\-]+",
    algorithm="|".join(CLUSTER_ALGORITHMS),
    variant="|".join(VARIANTS),
    seed=r"\d+",


def base_variant(variant):
    """The BRB variant a (possibly named) study variant runs."""
    return NAMED_VARIANTS[variant]["base"] if variant in NAMED_VARIANTS else variant


def settings_for(algorithm=None, dataset=None, variant=None, row=None):
    """brb settings of one run: study < per-dataset < per-algorithm < run-sheet row < per named variant."""
    merged = dict(config.get("settings", {}))
    if dataset is not None:
        merged = deep_merge(merged, config.get("dataset_settings", {}).get(dataset, {}))
    if algorithm is not None:
        merged = deep_merge(
            merged, config.get("algorithm_settings", {}).get(algorithm, {})
        )
    if row is not None:
        merged = deep_merge(merged, row.get("settings", {}))
    if variant in NAMED_VARIANTS:
        merged = deep_merge(merged, NAMED_VARIANTS[variant].get("settings", {}))
    return merged


# --- the run sheet ------------------------------------------------------------------------------------
# `runs:` rows (dataset(s), network, pretraining method, clustering methods, variants, seeds, settings), each
# completed from the study's top-level keys; a study without `runs` is one row of those keys (the Cartesian
# product of datasets x algorithms x variants x seeds on one network).
def seed_list(value):
    return list(PAPER_SEEDS) if value == "paper" else list(value)


def sheet_rows():
    given = config.get("runs") or [{}]
    study_pretraining = "auto" if config.get("pretrain", True) else "none"
    rows = []
    for i, row in enumerate(given):
        r = {
            "name": row.get("name", f"runs[{i}]" if config.get("runs") else "study"),
            "datasets": row.get("datasets", config.get("datasets")),
            "network": row.get("network", config.get("arch")),
            "pretraining": row.get("pretraining", study_pretraining),
            "algorithms": row.get("algorithms", config.get("algorithms")),
            "variants": row.get("variants", config.get("variants")),
            "seeds": row.get("seeds", config.get("seeds")),
            "baselines": row.get("baselines", config.get("baselines", [])),
            "settings": row.get("settings", {}),
        }
        missing = [k for k, v in r.items() if v is None]
        if missing:
            raise ValueError(
                f"config: run sheet row {r['name']}: {', '.join(missing)} given neither in the row "
                "nor at the top of the study"
            )
        r["seeds"] = seed_list(r["seeds"])
        rows.append(r)
    return rows


def resolve_pretraining(row, dataset):
    """The pretraining path segment of a row's runs on ``dataset``: a registry pretraining method, or SCRATCH."""
    name = row["pretraining"]
    if name == "none":
        return SCRATCH
    if name not in ["auto", *PRETRAININGS]:
        raise ValueError(
            f"config: run sheet row {row['name']}: unknown pretraining {name!r}; "
            f"known: auto, none, {', '.join(PRETRAININGS)}"
        )
    values = deep_merge(
        settings_for(dataset=dataset, row=row), {"model": {"arch": row["network"]}}
    )
    if name != "auto":
        values = deep_merge(values, {"pretrain": {"method": name}})
    try:
        return make_config(values).pretrain.resolved_method(row["network"])
    except ConfigError as err:
        raise ValueError(f"config: run sheet row {row['name']}: {err}") from None


ROWS = sheet_rows()
# every clustering run: (dataset, arch, pretraining, algorithm, variant) -> its row; seeds per key
RUN_ROWS, RUN_SEEDS, PRETRAIN_ROWS = {}, {}, {}
for _row in ROWS:
    for _dataset in _row["datasets"]:
        _pre = resolve_pretraining(_row, _dataset)
        if _pre != SCRATCH:
            PRETRAIN_ROWS.setdefault((_dataset, _row["network"], _pre), []).append(_row)
        for _algorithm in _row["algorithms"]:
            for _variant in _row["variants"]:
                _key = (_dataset, _row["network"], _pre, _algorithm, _variant)
                _other = RUN_ROWS.setdefault(_key, _row)
                if _other is not _row and _other["settings"] != _row["settings"]:
                    raise ValueError(
                        f"config: run sheet rows {_other['name']} and {_row['name']} both define "
                        f"{'/'.join(_key)} with different settings (give one a named variant)"
                    )
                RUN_SEEDS.setdefault(_key, [])
                RUN_SEEDS[_key] += [
                    s for s in _row["seeds"] if s not in RUN_SEEDS[_key]
                ]


def run_row(w):
    return RUN_ROWS.get(
        (w.dataset, w.arch, w.pretraining, w.algorithm, base_or_named(w.variant))
    )


def base_or_named(variant):
    """A self-labeling variant's clustering variant (``brb-selflabel`` -> ``brb``)."""
    return (
        variant[: -len(SELFLABEL_SUFFIX)]
        if variant.endswith(SELFLABEL_SUFFIX)
        else variant
    )


def pretrain_settings(dataset, arch, pretraining):
    """Settings of one pretraining; every row using the checkpoint must agree on its sections (made once)."""
    rows = PRETRAIN_ROWS.get((dataset, arch, pretraining), [None])
    chosen = [
        {
            k: v
            for k, v in settings_for(dataset=dataset, row=r).items()
            if k in PRETRAIN_SECTIONS
        }
        for r in rows
    ]
    if any(c != chosen[0] for c in chosen):
        names = ", ".join(r["name"] for r in rows)
        raise ValueError(
            f"config: run sheet rows {names} share the {pretraining} checkpoint of {dataset}/{arch} "
            "but set different data/model/augment/pretrain settings for it"
        )
    return chosen[0]


def check_settings():
    """Validate every run's brb settings before any job starts (messages name the key)."""
    for row in ROWS:
        for variant in row["variants"]:
            if base_variant(variant) not in BASE_VARIANTS:
                raise ValueError(
                    f"config: variant {variant!r} is neither one of {', '.join(BASE_VARIANTS)} "
                    "nor defined under variant_settings"
                )
        if row["network"] not in REGISTRY.names("network"):
            raise ValueError(
                f"config: run sheet row {row['name']}: unknown network {row['network']!r}; "
                f"known: {', '.join(REGISTRY.names('network'))}"
            )
    unknown = [
        a
        for a in [a for r in ROWS for a in r["algorithms"]]
        + list(config.get("algorithm_settings", {}))
        if a not in CLUSTER_ALGORITHMS
    ]
    if unknown:
        raise ValueError(
            f"config: unknown clustering method(s) {', '.join(dict.fromkeys(unknown))}; known: {', '.join(CLUSTER_ALGORITHMS)}"
        )
    for key in PRETRAIN_ROWS:
        pretrain_settings(*key)
    checked = dict(RUN_ROWS)
    for (dataset, arch, pretraining, algorithm, _), row in RUN_ROWS.items():
        for (
            variant
        ) in NAMED_VARIANTS:  # defined but unused named variants are checked too
            checked.setdefault((dataset, arch, pretraining, algorithm, variant), row)
    for (dataset, arch, pretraining, algorithm, variant), row in checked.items():
        values = deep_merge(
            settings_for(algorithm, dataset, variant, row),
            {
                "model": {"arch": arch},
                "cluster": {"algorithm": algorithm},
                "brb": {"variant": base_variant(variant)},
            },
        )
        try:
            make_config(values)
        except ConfigError as err:
            raise ValueError(
                f"config: settings for {dataset}/{arch}/{pretraining}/{algorithm}/{variant}: {err}"
            ) from None


check_settings()


def flags(
    sections, algorithm=None, dataset=None, variant=None, row=None, base=None, **extra
):
    """`--section.key value` flags for the console script, values as inline JSON (valid YAML)."""
    values = (
        base if base is not None else settings_for(algorithm, dataset, variant, row)
    )
    values = deep_merge(values, extra)
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
RUN = f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{pretraining}}/{{algorithm}}/{{variant}}/seed{{seed}}"
SELFLABEL_RUN = RUN.replace("{variant}", f"{{variant}}{SELFLABEL_SUFFIX}")
#: the log of a run-path stage: logs/<stage>/<the run path below runs/>.log
RUN_LOG = RUN.replace(f"{RESULTS}/runs/", f"{RESULTS}/logs/{{{{stage}}}}/") + ".log"


def fill(pattern, **values):
    """``pattern`` with the named wildcards replaced (the others stay wildcards)."""
    for key, value in values.items():
        pattern = pattern.replace(f"{{{key}}}", str(value))
    return pattern


def run_log(stage):
    return RUN_LOG.replace("{{stage}}", stage)


def data_path(dataset):
    return DATA.format(dataset=dataset)


def pretrain_dir(dataset, arch, pretraining, seed):
    """The checkpoint directory of a pretraining; its path carries the pretraining method (a BYOL and a SimCLR
    checkpoint of the same network never collide)."""
    return PRETRAIN.format(
        dataset=dataset, arch=arch, pretraining=pretraining, seed=seed
    )


def run_dir(dataset, arch, pretraining, algorithm, variant, seed):
    return RUN.format(
        dataset=dataset,
        arch=arch,
        pretraining=pretraining,
        algorithm=algorithm,
        variant=variant,
        seed=seed,
    )


def cluster_runs(suffix=""):
    """Run directories of the study's clustering runs (``suffix``: of the stage that follows each run)."""
    return [
        run_dir(d, a, p, m, v + suffix, s)
        for (d, a, p, m, v), seeds in RUN_SEEDS.items()
        for s in seeds
    ]


def baseline_runs():
    runs = []
    for row in ROWS:
        for d in row["datasets"]:
            pre = resolve_pretraining(row, d)
            for s in row["seeds"]:
                if "pixels" in row["baselines"]:
                    runs.append(run_dir(d, "pixels", "none", "kmeans", "pixels", s))
                if "pretrained" in row["baselines"] and pre != SCRATCH:
                    runs.append(
                        run_dir(d, row["network"], pre, "kmeans", "pretrained", s)
                    )
                if "estep" in row["baselines"] and pre in ESTEP_PRETRAININGS:
                    runs.append(run_dir(d, row["network"], pre, pre, "estep", s))
                if "linear" in row["baselines"] and pre != SCRATCH:
                    runs.append(run_dir(d, row["network"], pre, "linear", "probe", s))
    return list(dict.fromkeys(runs))


def pretrained_input(w):
    """The shared pretrained checkpoint of a clustering run (none for runs from scratch)."""
    if w.pretraining == SCRATCH:
        return []
    return [f"{pretrain_dir(w.dataset, w.arch, w.pretraining, w.seed)}/model.pt"]


def cluster_flags(w):
    """Configuration flags of the clustering runs of one (dataset, arch, pretraining, algorithm, variant)."""
    return flags(
        CLUSTER_SECTIONS,
        algorithm=w.algorithm,
        dataset=w.dataset,
        row=run_row(w),
        model={"arch": w.arch},
        cluster={"algorithm": w.algorithm},
        variant=w.variant,
        brb={"variant": base_variant(w.variant)},
    )


def subset_flags(dataset):
    """k-means on the pixels sees the runs' samples: the study's `data.subset` of the dataset, nothing else."""
    subset = settings_for(dataset=dataset).get("data", {}).get("subset")
    return "" if subset is None else f"--data.subset {subset}"


def pretrain_extra_inputs(w):
    """Prepared files of the datasets whose images join this pretraining (data.pretrain_extra)."""
    data = pretrain_settings(w.dataset, w.arch, w.pretraining).get("data", {})
    return [f"{RESULTS}/data/{name}.npz" for name in data.get("pretrain_extra", [])]


def pretrain_flags(w):
    return flags(
        PRETRAIN_SECTIONS,
        base=pretrain_settings(w.dataset, w.arch, w.pretraining),
        model={"arch": w.arch},
        pretrain={"method": w.pretraining},
    )


# --- packed clustering jobs: `pack` seeds run together by one job on one device (docs/slurm.md) ---
PACK = config.get("pack", 1)
SEED_PLACEHOLDER = "{seed}"  # filled in per run by `brb cluster --seeds`


def pack_chunks():
    """The study's seeds (of all rows) in chunks of `pack`, one packed cluster rule each (none when pack is 1)."""
    if PACK <= 1:
        return []
    seeds = list(dict.fromkeys(s for r in ROWS for s in r["seeds"]))
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
        if w.pretraining == SCRATCH:
            return []
        return [
            f"{pretrain_dir(w.dataset, w.arch, w.pretraining, s)}/model.pt"
            for s in seeds
        ]

    return inputs


def pack_run_dir(w):
    """Run directory of a packed job with the `{seed}` placeholder (`brb cluster --out`)."""
    return run_dir(
        w.dataset, w.arch, w.pretraining, w.algorithm, w.variant, SEED_PLACEHOLDER
    )


def pack_pretrained_flag(w):
    """`--pretrained` of a packed job, the checkpoint path with the `{seed}` placeholder."""
    if w.pretraining == SCRATCH:
        return ""
    return f"--pretrained '{pretrain_dir(w.dataset, w.arch, w.pretraining, SEED_PLACEHOLDER)}/model.pt'"


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
BARRIER_FIGURE = all(
    any(v in r["variants"] for r in ROWS) for v in ("baseline", "recluster", "brb")
)
PLOTS = ["learning_curves", "final_acc"] + (
    ["reclustering_barrier"] if BARRIER_FIGURE else []
)


def plot_outputs():
    return [f"{RESULTS}/plots/{name}.png" for name in PLOTS]


def all_outputs():
    return [f"{RESULTS}/metrics.parquet"] + table_outputs() + plot_outputs()


CONDA_ENV = "../../envs/brb.yaml"


def training_resources(kind):
    """threads / mem_mb / runtime (minutes) from the config, plus a GPU request when the study asks
    (`resources.pretrain.gpus`: that many GPUs for one data-parallel pretraining job).
    """
    res = dict(config["resources"][kind])
    res.pop("threads", None)
    gpus = res.pop("gpus", 1)
    if config.get("gpu", False):
        res["gpu"] = gpus
    return res


def pretrain_processes():
    """Data-parallel processes of one pretraining job (one per GPU; gloo processes on a CPU node)."""
    return config["resources"]["pretrain"].get("gpus", 1)


def training_threads(kind):
    return config["resources"][kind].get("threads", 1)
