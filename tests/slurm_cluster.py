"""A real single-node Slurm cluster for the tests: munge and the Slurm daemons, started and stopped here.

:func:`start_cluster` (root only) writes a munge key and a ``slurm.conf`` into a fresh folder, starts
``munged`` as the ``munge`` user and ``slurmctld`` / ``slurmd`` as root, each in the foreground so that
their process ids are the daemons', and waits until ``sinfo`` shows the node idle. The cluster uses its
own ports, state and spool folders, so it never touches a system-wide Slurm; the client commands
(``sbatch``, ``squeue``, ``scontrol``) find it through ``SLURM_CONF``, which :attr:`SlurmCluster.env`
holds. :meth:`SlurmCluster.stop` cancels the cluster's jobs, then ends exactly the processes started
here, by their ids.

Where the cluster cannot start (not root, Debian's ``slurm-wlm`` / ``munge`` not installed, a daemon
that exits), :class:`ClusterUnavailable` says why in one sentence; the fixture skips with it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The daemons and clients the cluster needs (Debian packages slurm-wlm and munge).
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "srun")
#: Seconds the daemons get to come up (a deadline against a hang, not a synchronisation).
START_LIMIT = 120.0
PARTITION = "debug"


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be started here; the message says why in one sentence."""


@dataclass
class SlurmCluster:
    """A running cluster: its folder, the environment its clients need, its daemons' processes."""

    folder: Path
    conf: Path
    host: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The variables a process needs to talk to this cluster (and to hand on to its jobs)."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster; its output as text."""
        return subprocess.run(
            list(argv),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def logs(self) -> str:
        """The daemons' log files (for a failing test's message)."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.folder / name
            if path.is_file():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def cancel_jobs(self) -> None:
        """Cancel every job of the cluster and wait until none is left running (the job steps would
        outlive the daemons otherwise)."""
        self.run("scancel", f"--user={pwd.getpwuid(os.getuid()).pw_name}", check=False)
        deadline = time.monotonic() + START_LIMIT
        while time.monotonic() < deadline:
            left = self.run("squeue", "--noheader", check=False)
            if left.returncode != 0 or not left.stdout.strip():
                return
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel the jobs, then end the daemons started here (SIGTERM, then SIGKILL after 30 s), newest
        first."""
        if self.processes and all(process.poll() is None for process in self.processes):
            self.cancel_jobs()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _slurm_conf(folder: Path, host: str, munge_socket: Path) -> str:
    cpus = os.cpu_count() or 1
    return "\n".join(
        [
            "ClusterName=freqtail-test",
            f"SlurmctldHost={host}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # A requeued job may start again cred_expire + 1 s after its requeue (default 120 s).
            f"AuthInfo=socket={munge_socket},cred_expire=10",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "ReturnToService=2",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/backfill",
            # Schedule every second (defaults: 60 s, backfill 30 s): tests wait for jobs to start.
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            "KillWait=30",
            "MinJobAge=600",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool'}",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={folder / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'slurmd.log'}",
            f"NodeName={host} CPUs={cpus} RealMemory=8000 State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _wait_for(condition, what: str, processes: list[subprocess.Popen], folder: Path) -> None:
    deadline = time.monotonic() + START_LIMIT
    while not condition():
        for process in processes:
            if process.poll() is not None:
                raise ClusterUnavailable(
                    f"{Path(process.args[0]).name} exited with status {process.returncode} while the "
                    f"cluster started (logs in {folder})."
                )
        if time.monotonic() > deadline:
            raise ClusterUnavailable(f"{what} did not happen within {START_LIMIT:.0f} s (logs in {folder}).")
        time.sleep(0.2)


def start_cluster() -> SlurmCluster:
    """Start munge, slurmctld and slurmd (see the module docstring); raises :class:`ClusterUnavailable`."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting a Slurm cluster needs root")
    missing = [name for name in PROGRAMS if shutil.which(name) is None]
    if missing:
        raise ClusterUnavailable(f"{', '.join(missing)} not found (apt-get install slurm-wlm munge)")
    try:
        munge_user = pwd.getpwnam("munge")
    except KeyError:
        raise ClusterUnavailable("there is no munge user (apt-get install munge)") from None
    host = socket.gethostname().split(".")[0]
    # Outside pytest's per-user temporary folder: the munge user must be able to reach its files.
    folder = Path(tempfile.mkdtemp(prefix="freqtail-slurm-"))
    folder.chmod(0o755)
    munge_dir = folder / "munge"
    munge_dir.mkdir(mode=0o700)
    key = munge_dir / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    for path in (munge_dir, key):
        os.chown(path, munge_user.pw_uid, munge_user.pw_gid)
    munge_socket = munge_dir / "munge.socket"
    conf = folder / "slurm.conf"
    conf.write_text(_slurm_conf(folder, host, munge_socket))
    for name in ("state", "spool"):
        (folder / name).mkdir()
    cluster = SlurmCluster(folder, conf, host)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        cluster.processes.append(
            subprocess.Popen(
                [
                    shutil.which("munged"),
                    "--foreground",
                    "--force",
                    f"--key-file={key}",
                    f"--socket={munge_socket}",
                    f"--pid-file={munge_dir / 'munged.pid'}",
                    f"--log-file={munge_dir / 'munged.log'}",
                    f"--seed-file={munge_dir / 'munged.seed'}",
                ],
                user=munge_user.pw_uid,
                group=munge_user.pw_gid,
                **quiet,
            )
        )
        _wait_for(munge_socket.exists, "munged's socket", cluster.processes, folder)
        env = {**os.environ, **cluster.env}
        for daemon in ("slurmctld", "slurmd"):
            cluster.processes.append(
                subprocess.Popen([shutil.which(daemon), "-D", "-f", str(conf)], env=env, **quiet)
            )

        def node_idle() -> bool:
            shown = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30
            )
            return shown.returncode == 0 and shown.stdout.strip() == "idle"

        _wait_for(node_idle, f"the node {host} becoming idle", cluster.processes, folder)
    except BaseException:
        cluster.stop()
        raise
    return cluster


__all__ = ["PARTITION", "ClusterUnavailable", "SlurmCluster", "start_cluster"]
