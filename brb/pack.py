"""Packed clustering runs: one ``brb cluster --seeds 0,1,2 --parallel N`` call runs one run per seed.

Small networks leave a GPU mostly idle, and a scheduler such as SLURM hands out whole GPUs. Packing runs
several seeds as separate child processes (``python -m brb cluster ... --run.seed S``) at most N at a time,
all on the device the arguments name, so N runs share one GPU. Child processes rather than threads or a
seed-vectorised model keep every run byte-identical to the same run started on its own: each child is
exactly the single-run command with its own seed and output directory.

Each child writes its console output to ``<run dir>/cluster.log``; the parent prints one line per finished
run. SIGTERM (what SLURM sends before a time limit or pre-emption) is forwarded to the running children,
which checkpoint and stop; the parent then starts nothing more and exits with :class:`Interrupted` (143).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Optional

#: Replaced by each run's seed in ``--out`` (required there) and in ``--data``, ``--pretrained``, ``--config``.
SEED_PLACEHOLDER = "{seed}"
#: Name of a child's console log inside its run directory.
LOG_NAME = "cluster.log"
#: Path arguments in which the placeholder is replaced (``--out`` must contain it).
PATH_ARGS = ("data", "pretrained", "config")
#: Configuration flags the parent sets per child instead of passing them on (see ``brb.cli._overrides``).
PER_RUN_FLAGS = ("cfg::run::seed", "cfg::run::threads")
#: Exit status of a run stopped by SIGTERM after writing its checkpoint (see ``brb.cli.main``).
INTERRUPTED_EXIT = 143
#: Seconds between polls of the children (also the delay before a SIGTERM is forwarded).
POLL_S = 0.1


class PackError(ValueError):
    """Bad ``--seeds``/``--out`` arguments, or some runs of the pack failed (their seeds and logs named)."""


@dataclass
class Run:
    """One child process of a pack: its seed, run directory, log file and timing."""

    seed: int
    out: Path
    log: Path
    process: subprocess.Popen
    log_file: IO[str]
    started: float = field(default_factory=time.perf_counter)
    signalled: bool = False

    @property
    def log_tail(self) -> str:
        """The last non-empty line of the child's log (usually its error message)."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


def positive_int(text: str) -> int:
    """argparse type for ``--parallel``: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: distinct non-negative integers, in the order given."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PackError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise PackError(f"--seeds {text!r}: expected distinct non-negative integers, e.g. 0,1,2")
    return seeds


def for_seed(path: Path, seed: int) -> Path:
    """``path`` with the ``{seed}`` placeholder replaced (other braces are left alone)."""
    return Path(str(path).replace(SEED_PLACEHOLDER, str(seed)))


def check_args(args: argparse.Namespace) -> None:
    """Refuse arguments that would make the runs collide or contradict the per-run seed."""
    if SEED_PLACEHOLDER not in str(args.out):
        raise PackError(
            f"--seeds needs the placeholder {SEED_PLACEHOLDER} in --out so that every run gets its own "
            f"directory (e.g. --out runs/seed{SEED_PLACEHOLDER}), got --out {args.out}"
        )
    if hasattr(args, "cfg::run::seed"):
        raise PackError("--run.seed contradicts --seeds (each run's seed comes from --seeds)")


def split_threads(total: Optional[int], concurrent: int) -> Optional[int]:
    """CPU threads per child when ``concurrent`` children share ``total`` (None: torch's default)."""
    return None if total is None else max(1, total // concurrent)


def requested_threads(args: argparse.Namespace) -> Optional[int]:
    """The ``--run.threads`` value given to the parent, if any."""
    raw = getattr(args, "cfg::run::threads", None)
    if raw is None or str(raw).strip().lower() in ("", "null", "none", "~"):
        return None
    try:
        return int(raw)
    except ValueError:
        raise PackError(f"--run.threads {raw!r}: expected an integer") from None


def child_argv(args: argparse.Namespace, seed: int, threads: Optional[int]) -> list[str]:
    """The single-run command of one seed: the parent's arguments with the seed filled in."""
    argv = [sys.executable, "-m", "brb", "cluster", "--out", str(for_seed(args.out, seed))]
    for name in PATH_ARGS:
        value = getattr(args, name, None)
        if value is not None:
            argv += [f"--{name}", str(for_seed(value, seed))]
    if args.name:
        argv += ["--name", args.name]
    if args.quiet:
        argv.append("--quiet")
    for dest, raw in vars(args).items():  # configuration flags, as given (dest: cfg::section::key)
        if dest.startswith("cfg::") and dest not in PER_RUN_FLAGS:
            _, section, key = dest.split("::")
            argv += [f"--{section}.{key}", str(raw)]
    argv += ["--run.seed", str(seed)]
    if threads is not None:
        argv += ["--run.threads", str(threads)]
    return argv


def start_run(args: argparse.Namespace, seed: int, threads: Optional[int]) -> Run:
    """Start one seed's child process, its stdout and stderr appended to ``<run dir>/cluster.log``."""
    out = for_seed(args.out, seed)
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME
    log_file = open(log, "a")  # appended: a resumed run keeps the log of its interrupted part
    process = subprocess.Popen(child_argv(args, seed, threads), stdout=log_file, stderr=subprocess.STDOUT)
    return Run(seed=seed, out=out, log=log, process=process, log_file=log_file)


def signal_run(run: Run, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to a child once (it checkpoints at the end of its epoch and exits 143)."""
    if not run.signalled and run.process.poll() is None:
        run.process.send_signal(signum)
        run.signalled = True


def finish_run(run: Run) -> None:
    """Close the child's log and print the parent's one line about it."""
    run.log_file.close()
    elapsed = time.perf_counter() - run.started
    code = run.process.returncode
    if code == 0:
        print(f"[pack] seed {run.seed}: done in {elapsed:.1f} s: {run.out}", flush=True)
    else:
        what = "interrupted" if code in (INTERRUPTED_EXIT, -signal.SIGTERM) else "failed"
        print(f"[pack] seed {run.seed}: {what} (exit {code}) after {elapsed:.1f} s: {run.log_tail} "
              f"(log: {run.log})", flush=True)


def reap(running: list[Run]) -> list[Run]:
    """Remove the children that have exited from ``running``, report them and return them."""
    done = [run for run in running if run.process.poll() is not None]
    for run in done:
        running.remove(run)
        finish_run(run)
    return done


def failure_message(failed: list[Run], total: int) -> str:
    """Names every failed seed with its exit status, last log line and log file."""
    parts = [f"seed {r.seed} (exit {r.process.returncode}, log {r.log}): {r.log_tail}" for r in failed]
    return f"{len(failed)} of {total} runs failed: " + "; ".join(parts)


def run_pack(args: argparse.Namespace) -> None:
    """Run one clustering run per seed of ``args.seeds``, at most ``args.parallel`` at once.

    Raises :class:`PackError` naming the failed seeds (the successful runs keep their outputs) and
    :class:`Interrupted` after a SIGTERM was forwarded to the running children.
    """
    from brb.checkpointing import Interrupted, stop_on_signals  # torch: imported only when packing

    seeds = parse_seeds(args.seeds)
    check_args(args)
    concurrent = min(args.parallel, len(seeds))
    threads = split_threads(requested_threads(args), concurrent)
    pending, running, finished = list(seeds), [], []
    with stop_on_signals() as stop:
        try:
            while pending or running:
                if stop.requested:
                    pending.clear()  # start nothing more; forward the signal to what runs
                    for run in running:
                        signal_run(run, stop.requested)
                while pending and len(running) < concurrent:
                    running.append(start_run(args, pending.pop(0), threads))
                finished += reap(running)
                time.sleep(POLL_S if running else 0)
        finally:  # an exception in the parent (e.g. Ctrl-C): stop and wait for the children
            for run in running:
                signal_run(run)
            for run in running:
                run.process.wait()
                finish_run(run)
        interrupted = stop.requested
    unfinished = [s for s in seeds if s not in {r.seed for r in finished if r.process.returncode == 0}]
    if interrupted and unfinished:
        raise Interrupted(
            f"signal {interrupted} forwarded to the running runs; seeds not finished: "
            f"{', '.join(map(str, unfinished))} (re-running the same command resumes them)"
        )
    failed = [run for run in finished if run.process.returncode != 0]
    if failed:
        raise PackError(failure_message(failed, len(seeds)))
