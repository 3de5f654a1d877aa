"""The real Snakemake workflow: dry-run plans, a tiny real study, targeted rebuilds, lint."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = REPO / "tests" / "configs" / "tiny.yaml"
TINY_CIFAR = REPO / "tests" / "configs" / "tiny_cifar.yaml"
TINY_SHEET = REPO / "tests" / "configs" / "tiny_sheet.yaml"


def snakemake(*args, cwd, timeout=900, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """The 'job count' table snakemake prints for a (dry) run."""
    counts = {}
    table = output.split("Job stats:")[-1] if "Job stats:" in output else ""
    for line in table.splitlines():
        m = re.match(r"^([a-z_]+)\s+(\d+)$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def test_default_study_plan(tmp_path):
    out = snakemake("-n", "--configfile", REPO / "config.yaml", cwd=tmp_path)
    counts = job_counts(out.stdout)
    assert counts == {
        "prepare": 1,
        "pretrain": 3,  # one checkpoint per seed, shared by 3 algorithms x 2 variants
        "cluster": 18,
        "kmeans_pixels": 3,
        "kmeans_pretrained": 3,
        "evaluate": 24,
        "aggregate": 1,
        "tables": 1,
        "plots": 1,
        "all": 1,
        "total": 56,
    }


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("ae_table.yaml", {"prepare": 6, "pretrain": 60, "cluster": 720, "kmeans_pixels": 60,
                           "kmeans_pretrained": 60, "evaluate": 840}),
        ("ae_table_main.yaml", {"prepare": 6, "cluster": 720, "kmeans_pixels": 60, "evaluate": 780}),
        ("hyperparams.yaml", {"prepare": 1, "pretrain": 3, "cluster": 117, "evaluate": 123}),
        ("digits_dkm_cpu.yaml", {"prepare": 1, "pretrain": 3, "cluster": 6, "kmeans_pixels": 3,
                                 "kmeans_pretrained": 3, "evaluate": 12}),
        ("contrastive_table.yaml", {"prepare": 2, "pretrain": 6, "cluster": 36, "selflabel": 36,
                                    "kmeans_pretrained": 6, "evaluate": 78}),
        ("convae_digits_cpu.yaml", {"prepare": 1, "pretrain": 3, "cluster": 12, "kmeans_pixels": 3,
                                    "kmeans_pretrained": 3, "evaluate": 18}),
        ("convae_fmnist_cpu.yaml", {"prepare": 1, "pretrain": 1, "cluster": 4, "kmeans_pixels": 1,
                                    "kmeans_pretrained": 1, "evaluate": 6}),
        # run sheet: (ae_kmeans, ae_kl) x (baseline, brb) + ae_kmeans recluster10, x 2 datasets x 5 seeds
        ("aljalbout_table.yaml", {"prepare": 2, "pretrain": 10, "cluster": 50, "kmeans_pixels": 10,
                                  "kmeans_pretrained": 10, "evaluate": 70}),
        # tk-uco: (ddc, ddc_uco, ddc_ae) from scratch + (dec, idec, dec_uco) on the MLP and on cnn_small, 4 x 20
        ("ddc_table.yaml", {"prepare": 4, "pretrain": 160, "cluster": 720, "kmeans_pixels": 80, "evaluate": 800}),
        ("ddc_digits_cpu.yaml", {"prepare": 1, "cluster": 15, "kmeans_pixels": 3, "evaluate": 18}),
        ("ddc_fmnist_cpu.yaml", {"prepare": 1, "cluster": 3, "kmeans_pixels": 1, "evaluate": 4}),
        # the self-supervised family: 7 pretrainings x 2 seeds, each -> k-means + DEC (baseline, brb)
        # DeepCluster: k 10, k 100, k 100 + soft reset, 3 seeds, k-means on the pixels
        ("deepcluster_digits_cpu.yaml", {"prepare": 1, "cluster": 9, "kmeans_pixels": 3, "evaluate": 12}),
        ("deepcluster_fmnist_cpu.yaml", {"prepare": 1, "cluster": 6, "kmeans_pixels": 3, "evaluate": 9}),
        ("deepcluster_cifar10.yaml", {"prepare": 1, "cluster": 9, "kmeans_pixels": 3, "evaluate": 12}),
        ("deepcluster_imagenet.yaml", {"prepare": 1, "cluster": 1, "evaluate": 1}),
        # ProPos Table 2: 6 methods x (2 datasets at 32 px + 3 at 96 px), each -> k-means + DEC
        # + each method's own clustering (estep; every one but SimCLR has one) and the linear probe
        ("propos_table.yaml", {"prepare": 5, "pretrain": 30, "cluster": 30, "kmeans_pretrained": 30, "estep": 30,
                               "linear_eval": 30, "evaluate": 120}),
        ("ssl_digits_cpu.yaml", {"prepare": 1, "pretrain": 14, "cluster": 28, "kmeans_pretrained": 14, "estep": 12,
                                 "linear_eval": 14, "evaluate": 68}),
        # the cross-product: 7 pretrainings x (dec, idec, dcn) x (baseline, brb) x 3 seeds, each + SCAN
        ("ssl_cross_cifar10.yaml", {"prepare": 1, "pretrain": 21, "cluster": 126, "selflabel": 126,
                                    "kmeans_pretrained": 21, "estep": 18, "linear_eval": 21, "evaluate": 312}),
    ],
)
def test_paper_preset_plans_every_run_offline(tmp_path, preset, expected):
    out = snakemake("-n", "-p", "--configfile", REPO / "workflow" / "presets" / preset, cwd=tmp_path)
    counts = job_counts(out.stdout)
    for rule, n in expected.items():
        assert counts.get(rule) == n, (rule, counts)
    if preset == "ae_table.yaml":
        # one pretrained checkpoint per (dataset, seed) feeds all 12 algorithm/variant runs
        assert "results/ae_table/pretrain/mnist/mlp/reconstruction/seed805/model.pt" in out.stdout  # `seeds: paper`
        assert "seed7/" not in out.stdout
    if preset in ("ae_table.yaml", "ae_table_main.yaml"):  # the BRB code's step: D1-D9 options reach the runs
        for flag in ("--cluster.dcn_loss_norm '\"samples_clusters\"'", "--cluster.dcn_update_when '\"epoch_end\"'",
                     "--cluster.grad_clip '500'", "--cluster.drop_last 'true'", "--brb.subsample_mode '\"first\"'",
                     "--augment.interpolation '\"nearest\"'", "--run.matmul_precision '\"medium\"'"):
            assert flag in out.stdout, flag
        dec = [line for line in out.stdout.splitlines() if "brb cluster" in line and "'\"dec\"'" in line]
        assert dec and all("--cluster.view_passes '\"separate\"'" in line for line in dec)
        assert all("--cluster.bn_logging_pass 'true'" in line for line in dec)
    if preset == "contrastive_table.yaml":  # one SimCLR checkpoint per (dataset, seed) feeds 6 runs + k-means
        assert "results/contrastive_table/pretrain/cifar100-20/resnet18/simclr/seed2/model.pt" in out.stdout
        assert "--brb.block_alpha '{\"layer4\": 0.9}'" in out.stdout and "--data.split '\"train_test\"'" in out.stdout
    if preset == "aljalbout_table.yaml":  # per-dataset networks and batches; the paper's variant on one row only
        assert "results/aljalbout_table/pretrain/coil20/conv/reconstruction/seed4/model.pt" in out.stdout
        coil = [line for line in out.stdout.splitlines() if "brb pretrain" in line and "coil20" in line]
        assert coil and all("--model.spec '\"coil_arch0\"'" in line and "--pretrain.batch_size '10'" in line
                            for line in coil)
        assert "ae_kl/recluster10" not in out.stdout and "ae_kmeans/recluster10/seed0" in out.stdout
    if preset == "hyperparams.yaml":  # named variants: their settings reach the console script
        assert "--name brb_T5" in out.stdout and "--brb.interval '5'" in out.stdout
        assert "--name baseline_lr1e-4" in out.stdout and "--cluster.lr '0.0001'" in out.stdout
    assert not (tmp_path / "results").exists()  # a dry run touches nothing


def test_stl10_pretraining_takes_the_unlabelled_images_as_extra_data(tmp_path):
    study = (REPO / "workflow" / "presets" / "propos_table.yaml").read_text().replace(
        "dataset_settings: {}", "dataset_settings: {stl10: {data: {pretrain_extra: [stl10-unlabeled]}}}")
    (tmp_path / "study.yaml").write_text(study)
    out = snakemake("-n", "-p", "--configfile", tmp_path / "study.yaml", cwd=tmp_path).stdout
    assert "brb prepare --dataset stl10-unlabeled" in out
    stl = [line for line in out.splitlines() if "brb pretrain" in line and "/stl10.npz" in line]
    assert len(stl) == 6 and all("--extra-data results/propos_table/data/stl10-unlabeled.npz" in line for line in stl)
    cifar = [line for line in out.splitlines() if "brb pretrain" in line and "/cifar10.npz" in line]
    assert cifar and not any("--extra-data" in line for line in cifar)


def test_a_study_file_replaces_the_default_study(tmp_path):
    """config.yaml (digits-sized network, DCN weight 1.0) must not leak into a preset run from the repo root."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    out = snakemake("-n", "-p", "--configfile", REPO / "workflow" / "presets" / "fmnist_cpu.yaml", cwd=tmp_path).stdout
    dcn = [line for line in out.splitlines() if "brb cluster" in line and "algorithm '\"dcn\"'" in line]
    assert dcn and not any("cluster_weight" in line or "[256, 128, 64]" in line for line in dcn)
    default = snakemake("-n", "-p", cwd=tmp_path).stdout  # no study file: the default study
    assert any("--cluster.cluster_weight '1.0'" in line for line in default.splitlines() if "brb cluster" in line)


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text() + "\nepochs: 3\n")
    proc = snakemake("-n", "--configfile", bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "epochs" in proc.stdout + proc.stderr
    bad.write_text(TINY.read_text().replace("brb: {interval: 2, kmeans_n_init: 2}", "brb: {interval: 2, alpha: 3}"))
    proc = snakemake("-n", "--configfile", bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "brb.alpha" in proc.stdout + proc.stderr
    bad.write_text(TINY.read_text().replace("variants: [baseline, brb]", "variants: [baseline, everything]"))
    proc = snakemake("-n", "--configfile", bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "'everything' is neither one of" in proc.stdout + proc.stderr
    bad.write_text(TINY.read_text() + "\nvariant_settings:\n  brb_T3: {base: brb, settings: {brb: {intervall: 3}}}\n")
    proc = snakemake("-n", "--configfile", bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "intervall" in proc.stdout + proc.stderr
    bad.write_text(TINY.read_text().replace("algorithms: [dec, dcn]", "algorithms: [dec, spectral]"))
    proc = snakemake("-n", "--configfile", bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "unknown clustering method(s) spectral; known: dec, idec, dcn" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_run_sheet_plans_each_row_with_its_network_pretraining_and_settings(tmp_path):
    out = snakemake("-n", "-p", "--configfile", TINY_SHEET, cwd=tmp_path).stdout
    counts = job_counts(out)
    assert {k: counts.get(k) for k in ("pretrain", "cluster", "kmeans_pixels", "kmeans_pretrained")} == {
        "pretrain": 1, "cluster": 4, "kmeans_pixels": 1, "kmeans_pretrained": 1}
    assert "results/runs/digits/mlp/reconstruction/dec/brb/seed0/metrics.json" in out
    assert "results/runs/digits/mlp/scratch/dcn/brb/seed1/metrics.json" in out
    scratch = [line for line in out.splitlines() if "brb cluster" in line and "/scratch/" in line]
    assert len(scratch) == 2 and all("--cluster.lr '0.002'" in line and "--pretrained" not in line for line in scratch)
    pretrained = [line for line in out.splitlines() if "brb cluster" in line and "/reconstruction/" in line]
    assert len(pretrained) == 2 and all("--cluster.lr" not in line and "--pretrained" in line for line in pretrained)


def test_run_sheet_errors_name_the_row(tmp_path):
    text = TINY_SHEET.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("pretraining: reconstruction", "pretraining: byol2"))
    proc = snakemake("-n", "--configfile", bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "row pretrained" in proc.stdout + proc.stderr and "byol2" in proc.stdout + proc.stderr
    # two rows defining the same runs differently
    bad.write_text(text.replace("algorithms: [dcn]", "algorithms: [dec]").replace("pretraining: none", "pretraining: reconstruction")
                   .replace("variants: [brb]\n    seeds: [0, 1]", "variants: [brb]\n    seeds: [1]"))
    proc = snakemake("-n", "--configfile", bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "both define digits/mlp/reconstruction/dec/brb" in proc.stdout + proc.stderr
    # a checkpoint is made once: rows sharing it must agree on its settings
    bad.write_text(text.replace("algorithms: [dcn]", "algorithms: [idec]").replace("pretraining: none", "pretraining: reconstruction")
                   .replace("cluster: {epochs: 3, lr: 0.002}", "pretrain: {epochs: 5}"))
    proc = snakemake("-n", "--configfile", bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "share the reconstruction checkpoint" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_tiny_run_sheet_study_runs_and_reports_each_row(tmp_path):
    snakemake("-c2", "--configfile", TINY_SHEET, cwd=tmp_path)
    df = pd.read_parquet(tmp_path / "results" / "metrics.parquet")
    runs = df[df["algorithm"] != "kmeans"]
    assert sorted(zip(runs["arch"], runs["algorithm"], runs["variant"], runs["seed"])) == [
        ("mlp/reconstruction", "dec", "baseline", 0), ("mlp/reconstruction", "dec", "brb", 0),
        ("mlp/scratch", "dcn", "brb", 0), ("mlp/scratch", "dcn", "brb", 1)]
    assert (runs.loc[runs["arch"] == "mlp/scratch", "epochs"] == 3).all()  # the row's settings ran
    assert (runs.loc[runs["arch"] == "mlp/reconstruction", "epochs"] == 4).all()
    summary = (tmp_path / "results" / "tables" / "summary.md").read_text()
    assert "mlp/scratch" in summary and "mlp/reconstruction" in summary


@pytest.mark.slow
def test_tiny_study_runs_and_rebuilds_only_what_changed(tmp_path):
    snakemake("-c2", "--configfile", TINY, cwd=tmp_path)
    results = tmp_path / "results"
    df = pd.read_parquet(results / "metrics.parquet")
    assert len(df) == 5  # dec/dcn x baseline/brb x 1 seed + k-means on pixels
    assert set(df["algorithm"]) == {"dec", "dcn", "kmeans"}
    assert set(df.loc[df["algorithm"] != "kmeans", "variant"]) == {"baseline", "brb"}
    for col in ("acc", "nmi", "ari", "purity"):
        assert df[col].between(0, 1).all()
    assert (df["acc"] > 0.2).all()  # well above chance (0.1) even after 4 epochs
    for stem in ("summary", "paper_style"):
        for ext in ("md", "csv", "tex"):
            assert (results / "tables" / f"{stem}.{ext}").stat().st_size > 0
    assert "± " in (results / "tables" / "summary.md").read_text() or "| 1 |" in (results / "tables" / "summary.md").read_text()
    for name in ("learning_curves", "final_acc"):
        assert (results / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # asking for one table again runs nothing
    out = snakemake("-n", "results/tables/summary.md", "--configfile", TINY, cwd=tmp_path)
    assert "Nothing to be done" in out.stdout + out.stderr

    # changing one algorithm's parameter re-runs only its runs and what depends on them
    changed = tmp_path / "changed.yaml"
    changed.write_text("algorithm_settings:\n  dcn:\n    cluster: {lr: 0.002}\n")
    out = snakemake("-n", "--configfile", TINY, changed, cwd=tmp_path)
    counts = job_counts(out.stdout)
    assert counts.get("cluster") == 2 and "pretrain" not in counts and "prepare" not in counts
    assert counts.get("evaluate") == 2 and counts.get("aggregate") == 1
    assert "runs/digits/mlp/reconstruction/dec/" not in out.stdout.split("Job stats:")[0].replace("dcn", "")

    # a report with every table and plot
    snakemake("--configfile", TINY, "--report", "report.html", cwd=tmp_path)
    html = (tmp_path / "report.html").read_text(errors="ignore")
    assert "summary.md" in html and "learning_curves.png" in html


@pytest.mark.slow
def test_tiny_contrastive_study_reuses_its_simclr_checkpoint(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from cifar_files import write_cifar10

    write_cifar10(tmp_path / "mirror", per_batch=8, n_test=20, n_classes=2)
    plan = job_counts(snakemake("-n", "--configfile", TINY_CIFAR, cwd=tmp_path).stdout)
    assert {k: plan.get(k) for k in ("prepare", "pretrain", "cluster", "selflabel", "kmeans_pretrained", "evaluate")} == {
        "prepare": 1, "pretrain": 1, "cluster": 4, "selflabel": 4, "kmeans_pretrained": 1, "evaluate": 9}
    snakemake("-c2", "--configfile", TINY_CIFAR, cwd=tmp_path)
    results = tmp_path / "results"
    df = pd.read_parquet(results / "metrics.parquet")
    assert sorted(df["variant"]) == sorted(["baseline", "brb"] * 2 + ["baseline-selflabel", "brb-selflabel"] * 2
                                           + ["pretrained"])
    assert (df["arch"] == "resnet18").all() and (df["evaluated_on"] == "test").all()
    comparison = pd.read_csv(results / "tables" / "paper_vs_ours.csv")
    cells = set(zip(comparison["algorithm"], comparison["variant"]))
    assert {("dec", "baseline"), ("idec", "brb"), ("kmeans", "pretrained")} <= cells
    assert comparison.loc[comparison["algorithm"] == "dec", "paper_acc"].tolist() == [88.29, 90.57]
    simclr = results / "pretrain" / "cifar10" / "resnet18" / "simclr" / "seed0" / "model.pt"
    made = simclr.stat().st_mtime_ns

    # a changed clustering setting re-runs the clustering it reaches, never SimCLR
    changed = tmp_path / "changed.yaml"
    changed.write_text("algorithm_settings:\n  idec:\n    cluster: {lr: 0.002}\n")
    counts = job_counts(snakemake("-n", "--configfile", TINY_CIFAR, changed, cwd=tmp_path).stdout)
    assert counts.get("cluster") == 2 and counts.get("selflabel") == 2 and "pretrain" not in counts
    snakemake("-c2", "--configfile", TINY_CIFAR, changed, cwd=tmp_path)
    assert simclr.stat().st_mtime_ns == made


def test_lint_is_clean(tmp_path):
    proc = snakemake("--lint", "--configfile", TINY, cwd=tmp_path, check=False)
    text = proc.stdout + proc.stderr
    assert "Lints for" not in text, text[-3000:]


def test_snakefiles_are_formatted():
    snakefmt = shutil.which("snakefmt", path=str(BIN))
    if snakefmt is None:
        pytest.skip("snakefmt not installed in this environment")
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    proc = subprocess.run([snakefmt, "--check", *map(str, files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
