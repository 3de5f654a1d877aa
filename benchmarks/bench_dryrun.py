#!/usr/bin/env python
"""Time of the workflow's dry run: ``snakemake -n --configfile workflow/presets/ae_table.yaml`` (and with ``-q``).

Each repetition runs in a fresh temporary copy of the workflow (Snakefile, config.yaml, workflow/, envs/,
profiles/), so no ``.snakemake/`` metadata and no existing results change the plan: the full paper plan is
built every time. Also timed: ``snakemake --version`` (interpreter + snakemake start-up alone).
Prints JSON to stdout; ``--out-json`` / ``--out-md`` write files too.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

COPY = ("Snakefile", "config.yaml", "workflow", "envs", "profiles")


def snakemake_command(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    local = Path(sys.executable).parent / "snakemake"
    if local.is_file():
        return [str(local)]
    found = shutil.which("snakemake")
    return [found] if found else [sys.executable, "-m", "snakemake"]


def fresh_copy(root: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="brb-dryrun-"))
    for name in COPY:
        src = C.REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__", ".snakemake", "results"))
        elif src.is_file():
            shutil.copy2(src, work / name)
    return work


def job_stats(text: str) -> tuple[int | None, dict[str, int]]:
    stats: dict[str, int] = {}
    total = None
    block = text.split("Job stats:", 1)
    if len(block) == 2:
        for line in block[1].splitlines():
            m = re.match(r"^(\S+)\s+(\d+)\s*$", line)
            if not m:
                continue
            if m.group(1) == "total":
                total = int(m.group(2))
                break
            stats[m.group(1)] = int(m.group(2))
    return total, stats


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configfile", default="workflow/presets/ae_table.yaml",
                   help="preset, relative to the repository (default: the full paper plan, ae_table.yaml)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--snakemake", help="snakemake executable (default: the one next to this Python)")
    p.add_argument("--quick", action="store_true", help="the default study (config.yaml), one repetition")
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.configfile, args.repeats = None, 1

    env = C.base_environment()
    smk = snakemake_command(args.snakemake)
    extra = ["--configfile", args.configfile] if args.configfile else []
    modes = {"n": [*smk, "-n", *extra], "n_q": [*smk, "-n", *extra, "-q"]}
    result: dict = {"benchmark": "dryrun", "quick": bool(args.quick), "environment": env,
                    "configfile": args.configfile or "config.yaml (default study)", "modes": {}}

    work = fresh_copy(C.REPO)
    try:
        version_t, proc = timed([*smk, "--version"], work)
        env["snakemake"] = proc.stdout.strip() or None
        startup = [version_t] + [timed([*smk, "--version"], work)[0] for _ in range(max(args.repeats - 1, 0))]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["startup_s"] = {"min_s": min(startup), "median_s": statistics.median(startup), "runs_s": startup}

    jobs, stats = None, {}
    for mode, cmd in modes.items():
        runs = []
        for r in range(args.repeats):
            work = fresh_copy(C.REPO)
            try:
                C.log(f"dry run {mode} #{r + 1}: {' '.join(cmd)}")
                seconds, proc = timed(cmd, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
                raise SystemExit(f"dry run failed (exit {proc.returncode}): {' '.join(cmd)}")
            runs.append(seconds)
            if mode == "n" and jobs is None:
                jobs, stats = job_stats(proc.stdout + proc.stderr)
        result["modes"][mode] = {"command": " ".join(["snakemake", *cmd[len(smk):]]), "runs_s": runs,
                                 "min_s": min(runs), "median_s": statistics.median(runs)}
    result["jobs"] = jobs
    result["job_stats"] = stats
    n, nq = result["modes"]["n"], result["modes"]["n_q"]
    result["seconds"] = n["median_s"]
    result["summary"] = [
        C.summary_row("dryrun", n["median_s"], "cpu", label=f"dry run `{n['command']}` (median of {len(n['runs_s'])})",
                      note=f"min {C.fmt(n['min_s'])}; {jobs} jobs"),
        C.summary_row("dryrun", nq["median_s"], "cpu", label=f"dry run `{nq['command']}` (median)",
                      note=f"min {C.fmt(nq['min_s'])}", key="dryrun_quiet"),
    ]
    text = json.dumps(result, indent=2)
    print(text)
    md = to_markdown(result)
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(text + "\n")
    if args.out_md:
        args.out_md.parent.mkdir(parents=True, exist_ok=True)
        args.out_md.write_text(md)
    print(md, file=sys.stderr)
    return 0


def to_markdown(result: dict) -> str:
    s = result["startup_s"]
    lines = [
        "## Dry-run benchmark" + (" — QUICK CHECK (default study, not the paper plan)" if result["quick"] else ""),
        "",
        f"Config: `{result['configfile']}`; each repetition in a fresh copy of the workflow; "
        f"{result['jobs']} jobs planned. `snakemake --version` alone (start-up): min {C.fmt(s['min_s'])} s, "
        f"median {C.fmt(s['median_s'])} s.",
        "",
        *C.busy_warning(result["environment"]),
        C.markdown_table(result["summary"]),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
