# Reproduction workflow for "Breaking the Reclustering Barrier in Centroid-based Deep Clustering".
# Every rule is a thin call of the `brb` console script; see README.md for how to run it.
from snakemake.utils import min_version, validate

min_version("8.20")


# The default study (config.yaml) applies only when no --configfile is given: a study file (a preset or
# your own) replaces it instead of being merged into it, so none of the default study's settings (its
# digits-sized network, its DCN weight) leak into a paper preset. `--config key=value` still applies on top.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/selflabel.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
