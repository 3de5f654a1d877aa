"""Throw-away one-node SLURM cluster for tests.

Starts a private ``munged``, ``slurmctld`` and ``slurmd`` on this machine, all
configured from files inside one temporary directory (config, key, state,
spool, pid and log files), with one fake GPU (``gres.conf`` maps ``gpu`` onto
``/dev/null``, so jobs that ask for a GPU get ``CUDA_VISIBLE_DEVICES=0``).
Nothing outside the temporary directory is read or written: the munge key is
generated there, munged listens on a socket there, and no system daemon is
touched.  ``stop()`` cancels remaining jobs, stops the three daemons by the
pids in their pid files and removes the directory.

Client commands (sbatch, squeue, srun, ...) find the cluster through
``SLURM_CONF``.  The snakemake SLURM job-step executor strips every
``SLURM_*`` variable before it calls ``srun`` inside a job, so the cluster also
provides a ``bin/`` directory of small wrapper scripts that pin
``SLURM_CONF`` for each client.  Put ``cluster.bindir`` first on ``PATH`` (see
:meth:`SlurmCluster.env`); on a real cluster ``/etc/slurm/slurm.conf`` plays
that role.

The daemons run as root (``SlurmUser=root``), so the cluster needs root.
Usage::

    with SlurmCluster() as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env())
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: binaries the cluster needs; Debian/Ubuntu packages: slurmctld, slurmd,
#: slurm-client (these pull in slurm-wlm-basic-plugins) and munge.
DAEMONS = ("munged", "mungekey", "munge", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo")

PARTITION = "debug"


def _which(name: str) -> str | None:
    # daemons live in /usr/sbin, which is not always on a non-root PATH
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return shutil.which(name, path=path)


def missing_binaries() -> list[str]:
    """Names of the SLURM/munge programs that are not installed."""
    return [name for name in DAEMONS + CLIENTS if _which(name) is None]


def skip_reason() -> str | None:
    """Why a real cluster cannot be started here, or None if it can."""
    missing = missing_binaries()
    if missing:
        return (
            "SLURM test cluster needs slurm-wlm and munge installed "
            f"(apt-get install slurmctld slurmd slurm-client munge); missing: {', '.join(missing)}"
        )
    if os.geteuid() != 0:
        return "SLURM test cluster runs slurmctld/slurmd as root; run the test as root"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4096


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pid_is(pid: int, program: str) -> bool:
    """True if process ``pid`` runs ``program`` (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return os.path.basename(cmdline.decode(errors="replace")) == program


class SlurmClusterError(RuntimeError):
    pass


class SlurmCluster:
    """One-node SLURM cluster with one fake GPU, rooted in a temp dir."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        cpus: int | None = None,
        mem_mb: int | None = None,
        min_job_age: int = 3600,
    ) -> None:
        # a short path: the munge socket path must stay below 108 characters
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="brb-slurm-")).resolve()
        self.node = socket.gethostname().split(".")[0]
        # at least 2 CPUs, so a CPU job can run beside a GPU job
        self.cpus = cpus or max(2, os.cpu_count() or 1)
        # Memory is not a consumable here (SelectTypeParameters=CR_CPU, no
        # cgroups): RealMemory only decides which --mem requests are
        # admitted.  Declare at least 32 GiB so profile defaults such as
        # mem_mb=8000 are accepted on small CI runners too.
        self.mem_mb = mem_mb or max(32768, int(_mem_total_mb() * 0.8))
        # MinJobAge: how long finished jobs stay visible in squeue; the
        # snakemake slurm executor needs them visible when it polls with
        # --slurm-status-command squeue (it falls back to sacct, which has
        # no data here, if MinJobAge < 3 x the first status-check delay)
        self.min_job_age = min_job_age
        self.etc = self.root / "etc"
        self.conf = self.etc / "slurm.conf"
        self.bindir = self.root / "bin"
        self.logdir = self.root / "log"
        self.rundir = self.root / "run"
        self.mungedir = self.root / "munge"
        self.munge_socket = self.mungedir / "munge.socket"
        self.pidfiles = {
            "munged": self.rundir / "munged.pid",
            "slurmctld": self.rundir / "slurmctld.pid",
            "slurmd": self.rundir / "slurmd.pid",
        }
        self.logfiles = {
            "munged": self.logdir / "munged.log",
            "slurmctld": self.logdir / "slurmctld.log",
            "slurmd": self.logdir / "slurmd.log",
        }
        self.started = False

    # ------------------------------------------------------------------ env
    def env(self, base: dict | None = None, prepend_path: list[str] | None = None) -> dict:
        """Environment for processes that talk to this cluster."""
        env = dict(os.environ if base is None else base)
        path = [str(self.bindir), *(prepend_path or []), env.get("PATH", "/usr/bin:/bin")]
        env["PATH"] = os.pathsep.join(path)
        env["SLURM_CONF"] = str(self.conf)
        # never inherit a surrounding job's context
        for var in list(env):
            if var.startswith(("SLURM_JOB", "SBATCH_", "SRUN_", "SALLOC_")):
                del env[var]
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(
            list(args),
            env=self.env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    # ---------------------------------------------------------------- files
    def _write_files(self) -> None:
        for d in (self.etc, self.bindir, self.logdir, self.rundir, self.mungedir,
                  self.root / "state", self.root / "spool"):
            d.mkdir(parents=True, exist_ok=True)
        # munged wants its socket directory reachable ("execute for all")
        # and the key private
        self.root.chmod(0o755)
        self.mungedir.chmod(0o755)
        key = self.mungedir / "munge.key"
        if not key.exists():
            subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"],
                           check=True, capture_output=True, text=True)
        key.chmod(0o400)

        ctld_port, slurmd_port = _free_port(), _free_port()
        while slurmd_port == ctld_port:
            slurmd_port = _free_port()
        r = self.root
        conf = f"""\
# generated by tests/slurm_cluster.py: throw-away one-node test cluster
ClusterName=brbtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={self.pidfiles['slurmctld']}
SlurmdPidFile={self.pidfiles['slurmd']}
SlurmctldLogFile={self.logfiles['slurmctld']}
SlurmdLogFile={self.logfiles['slurmd']}
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={self.etc}/plugstack.conf
# no accounting daemon: sacct has no data, poll job states with squeue
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# no cgroups needed
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge={self.min_job_age}
# trust the CPUs/RealMemory given below instead of the probed hardware
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        self.conf.write_text(conf)
        (self.etc / "gres.conf").write_text(
            "# fake GPU: slurm hands out the 'device' /dev/null as GPU index 0\n"
            "AutoDetect=off\n"
            f"NodeName={self.node} Name=gpu File=/dev/null\n"
        )
        (self.etc / "plugstack.conf").write_text("")

        # client wrappers: pin SLURM_CONF even where the environment loses it
        for name in CLIENTS + ("sacct", "salloc", "sstat", "sshare", "sacctmgr"):
            real = _which(name)
            if real is None:
                continue
            wrapper = self.bindir / name
            wrapper.write_text(
                f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{real}" "$@"\n'
            )
            wrapper.chmod(0o755)

    # -------------------------------------------------------------- control
    def _wait(self, what: str, ok, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.5)
        raise SlurmClusterError(f"timed out after {timeout}s waiting for {what}\n{self.log_tails()}")

    def _spawn(self, name: str, args: list[str]) -> None:
        """Start a daemon that forks into the background and writes its pid file."""
        proc = subprocess.run(
            [_which(name), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise SlurmClusterError(
                f"{name} failed to start (exit {proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}\n{self.log_tails()}"
            )
        log = self.logfiles[name]

        def up() -> bool:
            if self._pid(name) is not None:
                return True
            if log.exists() and "fatal:" in log.read_text(errors="replace"):
                raise SlurmClusterError(f"{name} died at start-up\n{self.log_tails()}")
            return False

        self._wait(f"{name} pid file", up, 30)

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self.pidfiles[name].read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) and _pid_is(pid, name) else None

    def _munge_ok(self) -> bool:
        enc = subprocess.run(["munge", "-n", "-S", str(self.munge_socket)],
                             capture_output=True)
        return enc.returncode == 0

    def _ctld_up(self) -> bool:
        p = self.run("scontrol", "ping", check=False, timeout=15)
        return p.returncode == 0 and "UP" in p.stdout

    def _node_state(self) -> str:
        p = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False, timeout=15)
        return p.stdout.strip().lower() if p.returncode == 0 else ""

    def start(self, timeout: float = 60) -> SlurmCluster:
        self._write_files()
        try:
            self._spawn("munged", [
                "--force",  # we run as root with a root-owned key
                f"--socket={self.munge_socket}",
                f"--key-file={self.mungedir / 'munge.key'}",
                f"--pid-file={self.pidfiles['munged']}",
                f"--log-file={self.logfiles['munged']}",
                f"--seed-file={self.mungedir / 'munged.seed'}",
            ])
            self._wait("munged to answer", self._munge_ok, timeout)
            self._spawn("slurmctld", ["-f", str(self.conf)])
            self._wait("slurmctld to answer 'scontrol ping'", self._ctld_up, timeout)
            self._spawn("slurmd", ["-f", str(self.conf), "-N", self.node])
            self._wait(
                f"node {self.node} to become idle",
                lambda: self._node_state().startswith("idle"),
                timeout,
            )
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _stop_daemon(self, name: str, timeout: float = 20) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid) and _pid_is(pid, name):
            os.kill(pid, signal.SIGKILL)

    def stop(self, remove: bool | None = None) -> None:
        """Cancel jobs, stop the daemons we started, remove the temp dir."""
        if self._pid("slurmctld") is not None:
            self.run("scancel", "--full", "--partition", PARTITION, check=False)
            # let job steps end before slurmd goes away
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                q = self.run("squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i", check=False)
                if q.returncode != 0 or not q.stdout.strip():
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            self._stop_daemon(name)
        self.started = False
        if remove if remove is not None else self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # --------------------------------------------------------------- debug
    def log_tails(self, lines: int = 30) -> str:
        out = []
        for path in self.logfiles.values():
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(out)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # manual smoke test: python tests/slurm_cluster.py
    reason = skip_reason()
    if reason:
        raise SystemExit(reason)
    with SlurmCluster() as c:
        print(c.run("sinfo", "-N", "-o", "%N %T %c %m %G").stdout)
        print(c.run("srun", "--gpus=1", "sh", "-c",
                    "echo job=$SLURM_JOB_ID cuda=$CUDA_VISIBLE_DEVICES").stdout)
