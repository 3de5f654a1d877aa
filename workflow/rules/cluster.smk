# Deep clustering runs (algorithm x variant x seed) from the shared pretrained checkpoint, k-means
# baselines, and the per-run evaluation.


localrules:
    evaluate,


rule cluster:
    input:
        data=f"{RESULTS}/data/{{dataset}}.npz",
        pretrained=pretrained_input,
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}/metrics.json",
        labels=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}/labels.npy",
        history=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}/history.parquet",
        model=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}/model.pt",
    log:
        f"{RESULTS}/logs/cluster/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: training_threads("cluster")
    resources:
        **training_resources("cluster"),
    params:
        outdir=lambda w, output: Path(output.metrics).parent,
        pretrained=lambda w, input: (
            f"--pretrained {input.pretrained}" if input.pretrained else ""
        ),
        flags=lambda w: flags(
            CLUSTER_SECTIONS,
            algorithm=w.algorithm,
            dataset=w.dataset,
            model={"arch": w.arch},
            cluster={"algorithm": w.algorithm},
            variant=w.variant,
            brb={"variant": base_variant(w.variant)},
        ),
    shell:
        "brb cluster --data {input.data} {params.pretrained} --out {params.outdir} --name {wildcards.variant} "
        "--run.seed {wildcards.seed} --run.threads {threads} {params.flags} > {log} 2>&1"


rule kmeans_pixels:
    input:
        data=f"{RESULTS}/data/{{dataset}}.npz",
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/pixels/kmeans/pixels/seed{{seed}}/metrics.json",
        labels=f"{RESULTS}/runs/{{dataset}}/pixels/kmeans/pixels/seed{{seed}}/labels.npy",
    log:
        f"{RESULTS}/logs/kmeans/{{dataset}}/pixels/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: training_threads("cluster")
    params:
        outdir=lambda w, output: Path(output.metrics).parent,
    shell:
        "brb kmeans --data {input.data} --out {params.outdir} --run.seed {wildcards.seed} "
        "--run.threads {threads} > {log} 2>&1"


rule kmeans_pretrained:
    input:
        data=f"{RESULTS}/data/{{dataset}}.npz",
        pretrained=f"{RESULTS}/pretrain/{{dataset}}/{{arch}}/seed{{seed}}/model.pt",
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{arch}}/kmeans/pretrained/seed{{seed}}/metrics.json",
        labels=f"{RESULTS}/runs/{{dataset}}/{{arch}}/kmeans/pretrained/seed{{seed}}/labels.npy",
    log:
        f"{RESULTS}/logs/kmeans/{{dataset}}/{{arch}}/pretrained/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: training_threads("cluster")
    params:
        outdir=lambda w, output: Path(output.metrics).parent,
        flags=lambda w: flags(("data",), dataset=w.dataset),
    shell:
        "brb kmeans --data {input.data} --pretrained {input.pretrained} --out {params.outdir} "
        "--run.seed {wildcards.seed} --run.threads {threads} {params.flags} > {log} 2>&1"


rule evaluate:
    input:
        labels=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}/labels.npy",
        data=f"{RESULTS}/data/{{dataset}}.npz",
    output:
        f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}/evaluation.json",
    log:
        f"{RESULTS}/logs/evaluate/{{dataset}}/{{arch}}/{{algorithm}}/{{variant}}/seed{{seed}}.log",
    wildcard_constraints:
        algorithm="|".join(CLUSTER_ALGORITHMS + ["kmeans"]),
        variant="|".join(VARIANTS + ["pixels", "pretrained"]),
        arch=r"[a-z0-9\-]+",
    conda:
        CONDA_ENV
    params:
        rundir=lambda w, output: Path(output[0]).parent,
        silhouette="--silhouette" if config.get("silhouette", False) else "",
    shell:
        "brb evaluate --run {params.rundir} --data {input.data} {params.silhouette} > {log} 2>&1"
