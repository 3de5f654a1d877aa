# Autoencoder pretraining: one checkpoint per (dataset, arch, seed), reused by every algorithm and variant.


rule pretrain:
    input:
        data=f"{RESULTS}/data/{{dataset}}.npz",
    output:
        model=f"{RESULTS}/pretrain/{{dataset}}/{{arch}}/seed{{seed}}/model.pt",
        history=f"{RESULTS}/pretrain/{{dataset}}/{{arch}}/seed{{seed}}/history.parquet",
    log:
        f"{RESULTS}/logs/pretrain/{{dataset}}/{{arch}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: training_threads("pretrain")
    resources:
        **training_resources("pretrain"),
    params:
        outdir=lambda w, output: Path(output.model).parent,
        flags=lambda w: flags(
            PRETRAIN_SECTIONS, dataset=w.dataset, model={"arch": w.arch}
        ),
    shell:
        "brb pretrain --data {input.data} --out {params.outdir} --run.seed {wildcards.seed} "
        "--run.threads {threads} {params.flags} > {log} 2>&1"
