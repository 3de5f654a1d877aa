# Deep clustering runs (algorithm x variant x seed) from the shared pretrained checkpoint, k-means
# baselines, and the per-run evaluation.


localrules:
    evaluate,
    estep,


rule cluster:
    input:
        data=DATA,
        pretrained=pretrained_input,
    output:
        metrics=f"{RUN}/metrics.json",
        labels=f"{RUN}/labels.npy",
        history=f"{RUN}/history.parquet",
        model=f"{RUN}/model.pt",
    log:
        run_log("cluster"),
    wildcard_constraints:
        seed=unpacked_seed_regex(),  # with pack > 1 the study's seeds go to cluster_pack_*
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
        flags=cluster_flags,
    shell:
        "brb cluster --data {input.data} {params.pretrained} --out {params.outdir} --name {wildcards.variant} "
        "--run.seed {wildcards.seed} --run.threads {threads} {params.flags} > {log} 2>&1"


# pack > 1: one job per chunk of `pack` seeds runs them together on one device (`brb cluster --seeds`),
# each seed's outputs where the `cluster` rule puts them; the job asks for what one cluster job asks for.
for i, chunk in enumerate(pack_chunks()):

    rule:
        name:
            f"cluster_pack_{i}"
        input:
            data=DATA,
            pretrained=pack_pretrained_input(chunk),
        output:
            metrics=pack_outputs(chunk, "metrics.json"),
            labels=pack_outputs(chunk, "labels.npy"),
            history=pack_outputs(chunk, "history.parquet"),
            model=pack_outputs(chunk, "model.pt"),
        log:
            run_log("cluster").replace(
                "seed{seed}", f"seeds{'-'.join(map(str, chunk))}"
            ),
        conda:
            CONDA_ENV
        threads: training_threads("cluster")
        resources:
            **training_resources("cluster"),
        params:
            seeds=",".join(map(str, chunk)),
            parallel=PACK,
            outdir=pack_run_dir,
            pretrained=pack_pretrained_flag,
            flags=cluster_flags,
        shell:
            "brb cluster --data {input.data} {params.pretrained} --out '{params.outdir}' --name {wildcards.variant} "
            "--seeds {params.seeds} --parallel {params.parallel} --run.threads {threads} {params.flags} > {log} 2>&1"


rule kmeans_pixels:
    input:
        data=DATA,
    output:
        metrics=f"{fill(RUN, arch='pixels', pretraining='none', algorithm='kmeans', variant='pixels')}/metrics.json",
        labels=f"{fill(RUN, arch='pixels', pretraining='none', algorithm='kmeans', variant='pixels')}/labels.npy",
    log:
        f"{RESULTS}/logs/kmeans/{{dataset}}/pixels/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: training_threads("cluster")
    params:
        outdir=lambda w, output: Path(output.metrics).parent,
        flags=lambda w: subset_flags(w.dataset),
    shell:
        "brb kmeans --data {input.data} --out {params.outdir} --run.seed {wildcards.seed} "
        "--run.threads {threads} {params.flags} > {log} 2>&1"


rule kmeans_pretrained:
    input:
        data=DATA,
        pretrained=lambda w: f"{pretrain_dir(w.dataset, w.arch, w.pretraining, w.seed)}/model.pt",
    output:
        metrics=f"{fill(RUN, algorithm='kmeans', variant='pretrained')}/metrics.json",
        labels=f"{fill(RUN, algorithm='kmeans', variant='pretrained')}/labels.npy",
    log:
        run_log("kmeans").replace("{algorithm}/{variant}/", "pretrained/"),
    conda:
        CONDA_ENV
    threads: training_threads("cluster")
    params:
        outdir=lambda w, output: Path(output.metrics).parent,
        flags=lambda w: flags(("data",), dataset=w.dataset),
    shell:
        "brb kmeans --data {input.data} --pretrained {input.pretrained} --out {params.outdir} "
        "--run.seed {wildcards.seed} --run.threads {threads} {params.flags} > {log} 2>&1"


rule estep:
    input:
        data=DATA,
        pretrained=f"{PRETRAIN}/model.pt",
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{pretraining}}/{{pretraining}}/estep/seed{{seed}}/metrics.json",
        labels=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{pretraining}}/{{pretraining}}/estep/seed{{seed}}/labels.npy",
    log:
        f"{RESULTS}/logs/estep/{{dataset}}/{{arch}}/{{pretraining}}/seed{{seed}}.log",
    wildcard_constraints:
        pretraining="|".join(ESTEP_PRETRAININGS),
    conda:
        CONDA_ENV
    params:
        outdir=lambda w, output: Path(output.metrics).parent,
    shell:
        "brb estep --pretrained {input.pretrained} --data {input.data} --out {params.outdir} > {log} 2>&1"


rule linear_eval:
    input:
        data=DATA,
        pretrained=f"{PRETRAIN}/model.pt",
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{pretraining}}/linear/probe/seed{{seed}}/metrics.json",
        labels=f"{RESULTS}/runs/{{dataset}}/{{arch}}/{{pretraining}}/linear/probe/seed{{seed}}/labels.npy",
    log:
        f"{RESULTS}/logs/linear/{{dataset}}/{{arch}}/{{pretraining}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: training_threads("cluster")
    resources:
        **training_resources("cluster"),
    params:
        outdir=lambda w, output: Path(output.metrics).parent,
        flags=lambda w: flags(("data",), dataset=w.dataset),
    shell:
        "brb linear --data {input.data} --pretrained {input.pretrained} --out {params.outdir} "
        "--run.seed {wildcards.seed} --run.threads {threads} {params.flags} > {log} 2>&1"


rule evaluate:
    input:
        labels=f"{RUN}/labels.npy",
        data=DATA,
    output:
        f"{RUN}/evaluation.json",
    log:
        run_log("evaluate"),
    wildcard_constraints:
        algorithm="|".join(
            CLUSTER_ALGORITHMS + ["kmeans", "linear"] + ESTEP_PRETRAININGS
        ),
        variant="|".join(
            VARIANTS
            + [v + SELFLABEL_SUFFIX for v in VARIANTS]
            + ["pixels", "pretrained", "estep", "probe"]
        ),
        arch=r"[a-z0-9_\-]+",
    conda:
        CONDA_ENV
    params:
        rundir=lambda w, output: Path(output[0]).parent,
        silhouette="--silhouette" if config.get("silhouette", False) else "",
    shell:
        "brb evaluate --run {params.rundir} --data {input.data} {params.silhouette} > {log} 2>&1"
