# Aggregation of all runs, tables and plots (cheap, run on the submitting host).


localrules:
    aggregate,
    tables,
    plots,


rule aggregate:
    input:
        metrics=[f"{r}/metrics.json" for r in all_runs()],
        evaluations=[f"{r}/evaluation.json" for r in all_runs()],
    output:
        f"{RESULTS}/metrics.parquet",
    log:
        f"{RESULTS}/logs/aggregate.log",
    conda:
        CONDA_ENV
    shell:
        "brb aggregate {input.metrics} --out {output} > {log} 2>&1"


rule tables:
    input:
        f"{RESULTS}/metrics.parquet",
    output:
        summary=report(
            f"{RESULTS}/tables/summary.md",
            caption="../report/summary_table.rst",
            category="Tables",
        ),
        paper_style=report(
            f"{RESULTS}/tables/paper_style.md",
            caption="../report/paper_style_table.rst",
            category="Tables",
        ),
        others=unreported_table_outputs(),
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        CONDA_ENV
    params:
        reference=(
            f"--reference {config['reference']} --block {config.get('reference_block', 'main')}"
            if config.get("reference")
            else ""
        ),
        outdir=lambda w, output: Path(output.summary).parent,
    shell:
        "brb tables --metrics {input} --out-dir {params.outdir} {params.reference} > {log} 2>&1"


rule plots:
    input:
        f"{RESULTS}/metrics.parquet",
    output:
        **(
            {
                "barrier": report(
                    f"{RESULTS}/plots/reclustering_barrier.png",
                    caption="../report/reclustering_barrier.rst",
                    category="Plots",
                )
            }
            if BARRIER_FIGURE
            else {}
        ),
        curves=report(
            f"{RESULTS}/plots/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Plots",
        ),
        final=report(
            f"{RESULTS}/plots/final_acc.png",
            caption="../report/final_acc.rst",
            category="Plots",
        ),
    log:
        f"{RESULTS}/logs/plots.log",
    conda:
        CONDA_ENV
    params:
        outdir=lambda w, output: Path(output.final).parent,
    shell:
        "brb plots --metrics {input} --out-dir {params.outdir} > {log} 2>&1"
