# SCAN self-labeling of finished clustering runs (config `selflabel: true`): one cached stage per run,
# written next to it as the variant `<variant>-selflabel`.


rule selflabel:
    input:
        data=DATA,
        metrics=f"{RUN}/metrics.json",
        model=f"{RUN}/model.pt",
    output:
        metrics=f"{SELFLABEL_RUN}/metrics.json",
        labels=f"{SELFLABEL_RUN}/labels.npy",
        history=f"{SELFLABEL_RUN}/history.parquet",
        model=f"{SELFLABEL_RUN}/model.pt",
    log:
        run_log("selflabel"),
    conda:
        CONDA_ENV
    threads: training_threads("cluster")
    resources:
        **training_resources("cluster"),
    params:
        rundir=lambda w, input: Path(input.metrics).parent,
        outdir=lambda w, output: Path(output.metrics).parent,
        flags=lambda w: flags(
            SELFLABEL_SECTIONS,
            algorithm=w.algorithm,
            dataset=w.dataset,
            variant=w.variant,
            row=run_row(w),
        ),
    shell:
        "brb selflabel --data {input.data} --run {params.rundir} --out {params.outdir} "
        "--run.seed {wildcards.seed} --run.threads {threads} {params.flags} > {log} 2>&1"
