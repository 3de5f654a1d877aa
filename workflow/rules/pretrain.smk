# Pretraining: one checkpoint per (dataset, network, pretraining method, seed), reused by every clustering run.


rule pretrain:
    input:
        data=DATA,
        extra=pretrain_extra_inputs,
    output:
        model=f"{PRETRAIN}/model.pt",
        history=f"{PRETRAIN}/history.parquet",
    log:
        f"{RESULTS}/logs/pretrain/{{dataset}}/{{arch}}/{{pretraining}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: training_threads("pretrain")
    resources:
        **training_resources("pretrain"),
    params:
        outdir=lambda w, output: Path(output.model).parent,
        flags=pretrain_flags,
        nproc=pretrain_processes(),
        extra=lambda w, input: " ".join(f"--extra-data {p}" for p in input.extra),
    shell:
        "brb pretrain --data {input.data} --out {params.outdir} --run.seed {wildcards.seed} "
        "--run.threads {threads} --nproc-per-node {params.nproc} {params.extra} {params.flags} > {log} 2>&1"
