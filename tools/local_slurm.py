"""A throw-away single-node SLURM cluster (with accounting) for tests and local trials.

Usage, from a clone with lastexp installed::

    python tools/local_slurm.py start|stop|status|env [--state-dir DIR]

A developer's tool (CI and the ``-m slurm`` tests start the cluster through it), kept out of the
installed package: it installs system packages and starts daemons.

``start`` installs Debian's packages when missing (needs root), writes a one-node
configuration into the state directory, starts munged, a private MariaDB (127.0.0.1),
slurmdbd, slurmctld and slurmd by hand (no systemd), waits until the node is idle and
prints ``export SLURM_CONF=...``. Slurm clients (sbatch, sacct, submitit) need that
variable: without it they look for the controller through a DNS SRV record and fail.
``stop`` terminates the daemons whose PIDs ``start`` recorded. ``start`` is idempotent.

Python API (what tests/launch/conftest.py uses): :func:`start` (returns the environment to
add), :func:`stop`, :func:`is_running` and :func:`missing_programs`.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lastexp.cli import ArgumentParser

DEFAULT_STATE_DIR = Path("/tmp/lastexp-slurm")
CLUSTER = "lastexp"
ACCOUNT = "lastexp"
PARTITION = "debug"
DB_PORT = 3319  # private MariaDB; not 3306 so that a system MariaDB does not clash
DB_USER = "slurm"
DB_PASS = "slurm"  # local throw-away database bound to 127.0.0.1 only
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
ACCOUNTING_PACKAGES = ["slurmdbd", "mariadb-server"]
# Programs that must exist after installation; a missing one triggers `apt-get install`.
PROGRAMS = ["slurmctld", "slurmd", "sinfo", "sbatch", "sacct", "sacctmgr", "munged",
            "slurmdbd", "mariadbd", "mariadb-install-db", "mariadb"]
# Stop order; start order is the reverse.
DAEMONS = ["slurmd", "slurmctld", "slurmdbd", "mariadb", "munged"]


class LocalSlurmError(RuntimeError):
    """Raised when the local cluster cannot be installed or started."""


# --------------------------------------------------------------------------- helpers


def _log(msg: str) -> None:
    print(f"[local_slurm] {msg}", file=sys.stderr, flush=True)


def _which(prog: str) -> str | None:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
    return shutil.which(prog, path=path)


def _prog(prog: str) -> str:
    found = _which(prog)
    if found is None:
        raise LocalSlurmError(f"{prog} not found (is the package installed?)")
    return found


def _env(state_dir: Path) -> dict[str, str]:
    return {"SLURM_CONF": str(state_dir / "slurm.conf")}


def _run(cmd: list[str], state_dir: Path | None = None, check: bool = True,
         timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if state_dir is not None:
        env.update(_env(state_dir))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise LocalSlurmError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) counts as dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            _reap(pid)
            return False
    except OSError:
        pass
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / "run" / f"{name}.pid"


def _recorded_pid(state_dir: Path, name: str) -> int | None:
    """PID recorded by `start` for daemon `name`, if that process still runs it."""
    path = _pid_file(state_dir, name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _pid_alive(pid):
        return None
    try:  # guard against PID reuse: the command line must name the daemon
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    prog = "mariadbd" if name == "mariadb" else name
    return pid if prog in cmdline else None


def _spawn(state_dir: Path, name: str, cmd: list[str], **popen_kw) -> int:
    log = open(state_dir / "log" / f"{name}.out", "ab")  # noqa: SIM115 (kept by child)
    env = dict(os.environ)
    env.update(_env(state_dir))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                            start_new_session=True, close_fds=True, **popen_kw)
    log.close()
    _pid_file(state_dir, name).write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_for(what: str, check, timeout: float, state_dir: Path, name: str | None = None,
              interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if name is not None and _recorded_pid(state_dir, name) is None:
            raise LocalSlurmError(f"{name} exited while waiting for {what}; see "
                                  f"{state_dir / 'log'}/{name}.*:\n{_tail(state_dir, name)}")
        if time.monotonic() > deadline:
            raise LocalSlurmError(f"timed out after {timeout:.0f} s waiting for {what}; logs in "
                                  f"{state_dir / 'log'}\n{_tail(state_dir, name or '')}")
        time.sleep(interval)


def _tail(state_dir: Path, name: str, lines: int = 15) -> str:
    out = []
    for path in sorted((state_dir / "log").glob(f"{name}*")):
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        out.append(f"--- {path}\n" + "\n".join(text))
    return "\n".join(out)


# ---------------------------------------------------------------------- installation


def missing_programs() -> list[str]:
    """The cluster's programs not on PATH (``start`` installs their packages)."""
    return [p for p in PROGRAMS if _which(p) is None]


def ensure_installed() -> None:
    """Install the Debian packages if any program is missing (apt-get update only on need)."""
    missing = missing_programs()
    if not missing:
        return
    if os.geteuid() != 0:
        raise LocalSlurmError(f"missing {missing}; installing them needs root")
    if _which("apt-get") is None:
        raise LocalSlurmError(f"missing {missing} and apt-get is not available")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES,
           *ACCOUNTING_PACKAGES]
    _log(f"installing {' '.join(PACKAGES + ACCOUNTING_PACKAGES)} (missing: {missing})")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        _log("apt-get install failed; running apt-get update and retrying")
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LocalSlurmError(f"apt-get install failed:\n{proc.stdout[-3000:]}{proc.stderr}")
    missing = missing_programs()
    if missing:
        raise LocalSlurmError(f"still missing after installation: {missing}")


# --------------------------------------------------------------------- configuration


def _real_memory_mb() -> int:
    total_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total_kb = int(line.split()[1])
    total_mb = total_kb // 1024
    try:  # a container's cgroup limit, when lower than the host's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total_mb = min(total_mb, int(limit) // (1024 * 1024))
    except OSError:
        pass
    # Leave room for the OS and the daemons; slurmd drains a node whose memory is below it.
    return max(1024, int(total_mb * 0.9))


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def write_config(state_dir: Path) -> None:
    s = state_dir
    for sub in ("run", "log", "state", "spool/slurmd", "mysql-run"):
        (s / sub).mkdir(parents=True, exist_ok=True)
    slurm_conf = f"""\
# Generated by tools/local_slurm.py -- single-node test cluster.
ClusterName={CLUSTER}
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# Short credential lifetime: a requeued job may start again only after it expires.
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MailProg=/bin/true
KillWait=5
InactiveLimit=0
MinJobAge=300
ReturnToService=2
SchedulerParameters=sched_interval=2,bf_interval=2
JobRequeue=1
StateSaveLocation={s}/state
SlurmdSpoolDir={s}/spool/slurmd
SlurmctldPidFile={s}/run/slurmctld.daemon.pid
SlurmdPidFile={s}/run/slurmd.daemon.pid
SlurmctldLogFile={s}/log/slurmctld.log
SlurmdLogFile={s}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={s}/plugstack.conf
# Accounting through slurmdbd, so that sacct (used by submitit) knows finished jobs.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Use the configured CPUs/memory even if slurmd detects a different layout.
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs={_cpus()} RealMemory={_real_memory_mb()} State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
    dbd_conf = f"""\
# Generated by tools/local_slurm.py.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile={s}/log/slurmdbd.log
PidFile={s}/run/slurmdbd.daemon.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={DB_PORT}
StorageUser={DB_USER}
StoragePass={DB_PASS}
StorageLoc=slurm_acct_db
"""
    (s / "slurm.conf").write_text(slurm_conf)
    (s / "plugstack.conf").write_text("")
    dbd = s / "slurmdbd.conf"  # slurmdbd looks for it beside $SLURM_CONF; must be 0600
    dbd.write_text(dbd_conf)
    os.chmod(dbd, 0o600)


# ------------------------------------------------------------------------- daemons


def _munge_ok() -> bool:
    munge, unmunge = _which("munge"), _which("unmunge")
    if not (munge and unmunge and MUNGE_SOCKET.exists()):
        return False
    try:
        cred = subprocess.run([munge, "-n"], capture_output=True, timeout=5)
        out = subprocess.run([unmunge], input=cred.stdout, capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return cred.returncode == 0 and out.returncode == 0


def _start_munge(state_dir: Path) -> None:
    if _recorded_pid(state_dir, "munged") is not None or _munge_ok():
        return  # ours, or a munged somebody else runs (then we do not record/stop it)
    uid, gid = pwd.getpwnam("munge").pw_uid, grp.getgrnam("munge").gr_gid
    for d, mode in (("/run/munge", 0o755), ("/var/lib/munge", 0o700),
                    ("/var/log/munge", 0o700), ("/etc/munge", 0o700)):
        Path(d).mkdir(parents=True, exist_ok=True)
        os.chown(d, uid, gid)
        os.chmod(d, mode)
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        mungekey = _which("mungekey")
        if mungekey:
            _run([mungekey, "--create", f"--keyfile={key}"])
        else:
            key.write_bytes(os.urandom(1024))
        os.chown(key, uid, gid)
        os.chmod(key, 0o400)
    _spawn(state_dir, "munged", [_prog("munged"), "--foreground", "--force"],
           user=uid, group=gid, extra_groups=[])
    _wait_for("munged", _munge_ok, 20, state_dir, "munged")


def _mysql(state_dir: Path, sql: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run([_prog("mariadb"), "--no-defaults", "-uroot",
                 f"--socket={state_dir / 'mysql-run' / 'mysqld.sock'}", "-e", sql],
                check=check, timeout=30)


def _start_mariadb(state_dir: Path) -> None:
    if _recorded_pid(state_dir, "mariadb") is not None:
        return
    datadir = state_dir / "mysql"
    if not (datadir / "mysql").is_dir():
        shutil.rmtree(datadir, ignore_errors=True)
        _run([_prog("mariadb-install-db"), "--no-defaults", "--user=root",
              f"--datadir={datadir}", "--skip-test-db", "--auth-root-authentication-method=socket"],
             timeout=180)
    run = state_dir / "mysql-run"
    _spawn(state_dir, "mariadb", [
        _prog("mariadbd"), "--no-defaults", "--user=root", f"--datadir={datadir}",
        f"--socket={run / 'mysqld.sock'}", f"--pid-file={run / 'mysqld.pid'}",
        f"--port={DB_PORT}", "--bind-address=127.0.0.1", "--skip-name-resolve",
        f"--log-error={state_dir / 'log' / 'mariadb.log'}",
        "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
        "--innodb_lock_wait_timeout=900",
    ])
    _wait_for("mariadb", lambda: _mysql(state_dir, "SELECT 1", check=False).returncode == 0,
              60, state_dir, "mariadb")
    _mysql(state_dir, "CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
           f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASS}'; "
           f"CREATE USER IF NOT EXISTS '{DB_USER}'@'localhost' IDENTIFIED BY '{DB_PASS}'; "
           f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1'; "
           f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'localhost'; FLUSH PRIVILEGES;")


def _sacctmgr(state_dir: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return _run([_prog("sacctmgr"), *args], state_dir, check=check, timeout=30)


def _start_slurmdbd(state_dir: Path) -> None:
    if _recorded_pid(state_dir, "slurmdbd") is None:
        _spawn(state_dir, "slurmdbd", [_prog("slurmdbd"), "-D"])
    _wait_for("slurmdbd", lambda: _sacctmgr(state_dir, "-n", "list", "cluster").returncode == 0,
              60, state_dir, "slurmdbd")
    clusters = _sacctmgr(state_dir, "-n", "-P", "list", "cluster", "format=cluster").stdout
    if CLUSTER not in clusters.split():
        _sacctmgr(state_dir, "-i", "add", "cluster", CLUSTER, check=True)
    accounts = _sacctmgr(state_dir, "-n", "-P", "list", "account", "format=account").stdout
    if ACCOUNT not in accounts.split():
        _sacctmgr(state_dir, "-i", "add", "account", ACCOUNT, f"cluster={CLUSTER}",
                  "description=lastexp tests", "organization=lastexp", check=True)
    users = _sacctmgr(state_dir, "-n", "-P", "list", "user", "format=user").stdout
    if "root" not in users.split():
        _sacctmgr(state_dir, "-i", "add", "user", "root", f"account={ACCOUNT}",
                  f"cluster={CLUSTER}", check=True)


def _node_state(state_dir: Path) -> str:
    proc = _run([_prog("sinfo"), "-h", "-N", "-o", "%N %t"], state_dir, check=False, timeout=15)
    if proc.returncode != 0:
        return ""
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "localhost":
            return parts[1] if len(parts) > 1 else ""
    return ""


def _node_ready(state_dir: Path) -> bool:
    # idle, or busy with jobs left from before a restart (mix/alloc)
    return _node_state(state_dir).rstrip("*~#!%$@^-") in ("idle", "mix", "alloc")


def is_running(state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> bool:
    """Whether every daemon ``start`` records for ``state_dir`` still runs."""
    state_dir = Path(state_dir).resolve()
    daemons = [d for d in DAEMONS if d != "munged"]
    return (all(_recorded_pid(state_dir, d) is not None for d in daemons)
            and (_recorded_pid(state_dir, "munged") is not None or _munge_ok()))


def start(state_dir: str | os.PathLike = DEFAULT_STATE_DIR, timeout: float = 90) -> dict[str, str]:
    """Start the local cluster (idempotent); return the environment clients need."""
    state_dir = Path(state_dir).resolve()
    if (state_dir / "slurm.conf").exists() and is_running(state_dir) \
            and _node_ready(state_dir):
        return _env(state_dir)
    if os.geteuid() != 0:
        raise LocalSlurmError("the local SLURM cluster runs its daemons as root; run as root")
    ensure_installed()
    # Restart whatever is left of a previous, partial start.
    for name in ("slurmd", "slurmctld"):
        _stop_daemon(state_dir, name)
    state_dir.mkdir(parents=True, exist_ok=True)
    write_config(state_dir)
    _start_munge(state_dir)
    _start_mariadb(state_dir)
    _start_slurmdbd(state_dir)
    _spawn(state_dir, "slurmctld", [_prog("slurmctld"), "-D", "-i"])
    _wait_for("slurmctld", lambda: _run([_prog("scontrol"), "ping"], state_dir, check=False,
                                        timeout=10).returncode == 0,
              timeout, state_dir, "slurmctld")
    _spawn(state_dir, "slurmd", [_prog("slurmd"), "-D"])
    deadline = time.monotonic() + timeout
    resumed = False
    while not _node_ready(state_dir):
        for name in ("slurmctld", "slurmd"):
            if _recorded_pid(state_dir, name) is None:
                raise LocalSlurmError(f"{name} exited during start:\n{_tail(state_dir, name)}")
        node = _node_state(state_dir)
        if not resumed and node.startswith(("down", "drain")):
            _run([_prog("scontrol"), "update", "nodename=localhost", "state=resume"],
                 state_dir, check=False)
            resumed = True
        if time.monotonic() > deadline:
            raise LocalSlurmError(
                f"node localhost not idle after {timeout:.0f} s (state {node!r}); logs in "
                f"{state_dir / 'log'}\n{_tail(state_dir, 'slurmd')}\n"
                f"{_tail(state_dir, 'slurmctld')}")
        time.sleep(0.25)
    return _env(state_dir)


def _stop_daemon(state_dir: Path, name: str, timeout: float = 20) -> None:
    pid = _recorded_pid(state_dir, name)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                _reap(pid)
                time.sleep(0.1)
    _pid_file(state_dir, name).unlink(missing_ok=True)


def stop(state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> None:
    """Cancel the cluster's jobs and stop the daemons that `start` recorded."""
    state_dir = Path(state_dir).resolve()
    if not state_dir.exists():
        return
    if _recorded_pid(state_dir, "slurmctld") is not None and _which("scancel"):
        jobs = _run([_prog("squeue"), "-h", "-o", "%i"], state_dir, check=False, timeout=10)
        ids = jobs.stdout.split()
        if ids:
            _run([_prog("scancel"), *ids], state_dir, check=False, timeout=15)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _run(
                    [_prog("squeue"), "-h", "-o", "%i"], state_dir, check=False,
                    timeout=10).stdout.strip():
                time.sleep(0.5)
    for name in DAEMONS:
        _stop_daemon(state_dir, name)


def status(state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> int:
    state_dir = Path(state_dir).resolve()
    for name in reversed(DAEMONS):
        pid = _recorded_pid(state_dir, name)
        print(f"{name:10s} {'pid ' + str(pid) if pid else 'not running (ours)'}")
    if _which("sinfo") is None or not (state_dir / "slurm.conf").exists():
        print("not configured")
        return 1
    proc = _run([_prog("sinfo")], state_dir, check=False, timeout=15)
    print(proc.stdout + proc.stderr, end="")
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    # as the user called it: the error line's "see <prog> --help" then works as typed
    prog = "python -m tools.local_slurm" if __spec__ else "python tools/local_slurm.py"
    parser = ArgumentParser(prog=prog,
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                        help=f"where config, state, logs and PIDs live (default "
                             f"{DEFAULT_STATE_DIR})")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir).resolve()
    try:
        if args.command == "start":
            env = start(state_dir)
            print(f"export SLURM_CONF={env['SLURM_CONF']}")
        elif args.command == "env":
            print(f"export SLURM_CONF={_env(state_dir)['SLURM_CONF']}")
        elif args.command == "stop":
            stop(state_dir)
        else:
            return status(state_dir)
    except LocalSlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
