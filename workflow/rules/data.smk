# Dataset preparation: one .npz per dataset, made once and read by every later rule.


localrules:
    prepare,


rule prepare:
    output:
        DATA,
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}.log",
    conda:
        CONDA_ENV
    params:
        mirrors=" ".join(f"--mirror {m}" for m in config["data"].get("mirrors", [])),
        offline="--offline" if config["data"].get("offline", False) else "",
        cache=config["data"].get("cache_dir", "data"),
    shell:
        "brb prepare --dataset {wildcards.dataset} --out {output} {params.mirrors} {params.offline} "
        "--cache-dir {params.cache} > {log} 2>&1"
