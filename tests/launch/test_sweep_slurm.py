"""lastexp sweeps through hydra-submitit-launcher on the local SLURM cluster (marker: slurm).

Each test runs ``python -m lastexp --multirun hydra/launcher=submitit_slurm ...`` as a user
would (subprocess, own working directory, ``SLURM_CONF`` from the session fixture) and bounds
every wait; a test that fails cancels the SLURM jobs of its sweep so that the next one starts on
an idle node. Run alone with ``pytest -m slurm tests/launch/test_sweep_slurm.py``.

The preflight unit tests at the bottom (fake ``sinfo`` programs) need no cluster.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lastexp.launch.preflight import (
    NodeShape,
    SlurmUnavailable,
    check_slurm,
    partition_nodes,
    requested_partition,
    requested_resources,
    resource_problem,
    slurm_problem,
    wants_slurm,
)

REPO = Path(__file__).resolve().parents[2]
slurm = pytest.mark.slurm
cluster = pytest.mark.usefixtures("slurm_cluster")

# The SLURM launcher preset, sized for this 2-CPU node (one CPU per job: two jobs at once).
LAUNCHER = ["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=null",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.partition=debug"]
# one thread, as the jobs get (SLURM_CPUS_PER_TASK=1): float sums then agree bit for bit between a
# job and the same run made locally (training.num_threads is no part of the run's identity)
TINY = ["debug=tiny", "logger=none", "model=last_e_nano", "training.num_threads=1"]
# Long enough to outlast a 1-minute SLURM time limit on a fast, idle machine: ~1 s per epoch
# (nano at full width, T=64, batch 4) x 70 epochs.
LONG_EPOCHS = 70
LONG = [f"training.epochs={LONG_EPOCHS}", "dataset.limit=null", "training.batch_size=4",
        "model.width_mult=1.0", "preprocessing.window=64"]
# history.csv columns that must not depend on interruptions (all but wall-clock seconds)
EXACT = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1")


# --------------------------------------------------------------------------- helpers


def _submitit(runs: Path) -> list[Path]:
    """submitit's folders of the sweeps below ``runs``: each sweep keeps them in its own
    record, <paths.runs>/.sweeps/<time>/.submitit (beside Hydra's multirun.yaml)."""
    return sorted(runs.glob(".sweeps/*/.submitit")) + sorted(runs.glob(".submitit"))


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    env.pop("WANDB_API_KEY", None)
    env.update(extra)
    return env


def _cmd(*args: str, timeout: float = 30, env: dict | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
    return proc.stdout


class Sweep:
    """One ``python -m lastexp --multirun`` subprocess, with bounded waits and cleanup."""

    def __init__(self, work: Path, overrides: list[str], data: Path, env: dict | None = None):
        self.work, self.runs = work, work / "runs"
        work.mkdir(parents=True, exist_ok=True)
        self.log = work / "lastexp.log"
        argv = [sys.executable, "-m", "lastexp", "--multirun", *overrides,
                f"paths.runs={self.runs}", f"paths.data={data}"]
        self.t0 = time.monotonic()
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(argv, cwd=work, env=env or _env(), stdout=fh,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def job_ids(self) -> list[str]:
        """SLURM ids of the sweep's jobs, from submitit's folder (``27`` or ``27_0``...)."""
        return sorted(p.name for folder in _submitit(self.runs) for p in folder.iterdir()
                      if p.is_dir() and re.fullmatch(r"\d+(_\d+)?", p.name)
                      and not (p.name.isdigit() and any(folder.glob(f"{p.name}_*"))))

    def job_logs(self, tail: int | None = None) -> str:
        """The jobs' submitit logs (all instances of a requeued job share one file)."""
        parts = []
        for path in sorted(p for f in _submitit(self.runs) for p in f.glob("*/*_log.*")):
            lines = path.read_text(errors="replace").splitlines()
            keep = [ln for ln in lines if "validated against ConfigStore" not in ln
                    and "deprecated in Hydra" not in ln and "upgrades/1.0_to_1.1" not in ln]
            parts.append(f"--- {path.name}\n" + "\n".join(keep[-tail:] if tail else keep))
        return "\n".join(parts)

    def report(self) -> str:
        return (f"\n=== lastexp output\n{self.output()[-4000:]}\n=== job logs\n"
                f"{self.job_logs(tail=25)}")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=max(1.0, timeout - (time.monotonic() - self.t0)))
        except subprocess.TimeoutExpired:
            self.cancel()
            pytest.fail(f"sweep did not finish within {timeout:.0f} s" + self.report())

    def cancel(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        ids = {j.split("_")[0] for j in self.job_ids()}
        if ids:
            subprocess.run(["scancel", *sorted(ids)], capture_output=True, timeout=30)

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.runs.iterdir() if (p / ".hydra").is_dir()) \
            if self.runs.is_dir() else []


def _sweep(request, *args, **kwargs) -> Sweep:
    sweep = Sweep(*args, **kwargs)
    request.addfinalizer(sweep.cancel)  # never leave jobs behind for the next test
    return sweep


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as fh:
        return [{k: row[k] for k in EXACT} for row in csv.DictReader(fh)]


def _wait_until(cond, timeout: float, what: str, sweep: Sweep, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if sweep.proc.poll() is not None:
            pytest.fail(f"sweep ended (rc {sweep.proc.returncode}) before {what}" + sweep.report())
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}" + sweep.report())
        time.sleep(interval)


TRANSIENT = ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED")


def _sacct_states(job_id: str, settle: float = 60.0) -> list[str]:
    """Every state the job went through (-D: requeued instances too), once the last one is
    final: submitit hands the result back before the job's process has exited, so right after
    a sweep returns, accounting may still say RUNNING for a few seconds."""
    deadline = time.monotonic() + settle
    while True:
        out = _cmd("sacct", "-n", "-X", "-P", "-D", "-j", job_id, "-o", "State")
        states = [s.strip() for s in out.splitlines() if s.strip()]
        if (states and not states[-1].startswith(TRANSIENT)) or time.monotonic() > deadline:
            return states
        time.sleep(1.0)


def _assert_same_result(run_dir: Path, reference: Path) -> None:
    got, want = _metrics(run_dir), _metrics(reference)
    assert got["status"] == "completed", got
    assert _history(run_dir) == _history(reference)
    for key in ("final_top1", "best_top1", "best_epoch", "final_loss"):
        assert got[key] == want[key], (key, got[key], want[key])


def _wandb_epochs(path: Path) -> list[int]:
    """The epochs of a wandb offline run file's per-epoch records (W&B's own step is the global
    optimizer step; each epoch's record carries its ``epoch``)."""
    epochs = []
    for rec in _wandb_records(path):
        if rec.WhichOneof("record_type") == "history":
            epochs += [int(json.loads(item.value_json)) for item in rec.history.item
                       if (item.key or ".".join(item.nested_key)) == "epoch"]
    return epochs


def _wandb_records(path: Path):
    """Records of a wandb offline ``run-<id>.wandb`` file (leveldb-style log, 32 KiB blocks,
    after a 7-byte ':W&B' header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    block, off, pending = 32768, 7, b""
    while off + 7 <= len(data):
        left = block - off % block
        if left < 7:  # block trailer padding
            off += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[off:off + 7])
        chunk = data[off + 7:off + 7 + length]
        off += 7 + length
        if kind == 1:  # full
            payload = chunk
        elif kind == 2:  # first
            pending = chunk
            continue
        elif kind == 3:  # middle
            pending += chunk
            continue
        elif kind == 4:  # last
            payload, pending = pending + chunk, b""
        else:  # zero padding
            continue
        rec = pb.Record()
        rec.ParseFromString(payload)
        yield rec


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """(data dir, run dir) of the LONG config trained locally without interruption.

    Also builds the synthetic corpus and its cache once, so that the jobs of the preemption
    and timeout tests start training at once."""
    work = tmp_path_factory.mktemp("reference")
    data, runs = work / "data", work / "runs"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lastexp", *TINY, *LONG, f"paths.runs={runs}",
         f"paths.data={data}"], cwd=work, env=_env(), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = [p for p in runs.iterdir() if (p / "metrics.json").exists()]
    assert _metrics(run_dir)["status"] == "completed"
    print(f"\n[slurm] reference run: {time.monotonic() - t0:.1f} s")
    return data, run_dir


# ----------------------------------------------------------------------------- tests


@slurm
@cluster
def test_two_job_sweep_runs_under_slurm(request, tmp_path):
    """stream=joint,bone through submitit_slurm, cold data dir: both jobs run as SLURM jobs
    (numeric ids in metrics.json) and complete, with the results of the same runs made
    locally."""
    sweep = _sweep(request, tmp_path / "slurm",
                   [*LAUNCHER, "hydra.launcher.timeout_min=5", *TINY, "stream=joint,bone"],
                   data=tmp_path / "data")
    local = subprocess.Popen(  # the same sweep with Hydra's basic launcher, meanwhile
        [sys.executable, "-m", "lastexp", "--multirun", *TINY, "stream=joint,bone",
         f"paths.runs={tmp_path / 'local' / 'runs'}", f"paths.data={tmp_path / 'data-local'}"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    request.addfinalizer(lambda: local.poll() is None and os.killpg(local.pid, signal.SIGKILL))
    # ~15 s when healthy; a job that hangs (e.g. data-prep workers that ignore SIGTERM under
    # submitit's handlers) would only end at the time limit.
    rc = sweep.wait(timeout=150)
    assert rc == 0, sweep.report()
    local_out, _ = local.communicate(timeout=120)
    assert local.returncode == 0, local_out

    run_dirs = sweep.run_dirs()
    assert [_metrics(d)["stream"] for d in run_dirs] == ["bone", "joint"], sweep.report()
    job_ids = set()
    for run_dir in run_dirs:
        m = _metrics(run_dir)
        assert m["status"] == "completed", m
        assert re.fullmatch(r"\d+", str(m.get("slurm_job_id"))), m
        job_ids.add(m["slurm_job_id"])
        _assert_same_result(run_dir, tmp_path / "local" / "runs" / run_dir.name)
    assert len(job_ids) == 2
    for job in sweep.job_ids():
        assert _sacct_states(job) == ["COMPLETED"], job
    # the sweep's record, submitit's folder with it, is its own: nothing of it in the root
    (record,) = (sweep.runs / ".sweeps").iterdir()
    assert (record / "multirun.yaml").is_file() and (record / ".submitit").is_dir()
    assert not (sweep.runs / "multirun.yaml").exists() and not (sweep.runs / ".submitit").exists()


@slurm
@cluster
def test_preempted_job_requeues_and_resumes(request, tmp_path, reference):
    """USR2 (what SLURM sends on preemption): the job checkpoints mid-epoch, is requeued,
    resumes in the same run directory and ends with the numbers of an uninterrupted run; the
    wandb offline run keeps its id across the requeue."""
    data, ref_dir = reference
    sweep = _sweep(request, tmp_path,
                   [*LAUNCHER, "hydra.launcher.timeout_min=5", *TINY, "logger=wandb", *LONG],
                   data=data)
    (job,) = _wait_until(sweep.job_ids, 60, "the job's submitit folder", sweep)
    run_dir = _wait_until(lambda: next(iter(p for p in sweep.run_dirs()
                                            if (p / "history.csv").exists()), None),
                          90, "history.csv's first row", sweep)
    assert _metrics(run_dir)["status"] == "running"
    first_id = _metrics(run_dir)["slurm_job_id"]
    _cmd("scancel", "--signal=USR2", job)
    t_signal = time.monotonic()
    rc = sweep.wait(timeout=600)
    print(f"\n[slurm] preempted run finished {time.monotonic() - t_signal:.1f} s after USR2")
    assert rc == 0, sweep.report()

    m = _metrics(run_dir)
    assert m["status"] == "completed", m
    assert m.get("resumed_from_epoch", 0) >= 1, m  # it resumed from the checkpoint
    assert m["slurm_job_id"] == first_id  # a requeued job keeps its id
    assert "REQUEUED" in _sacct_states(job), _sacct_states(job)
    logs = sweep.job_logs()
    assert "checkpoint saved" in logs and "lastexp: resuming" in logs, logs
    _assert_same_result(run_dir, ref_dir)

    # wandb: one offline run per job instance, all with the id derived from the run dir
    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) >= 2, files  # before and after the requeue
    ids, epochs = set(), []
    for path in files:
        ids |= {rec.run.run_id for rec in _wandb_records(path)
                if rec.WhichOneof("record_type") == "run"}
        epochs += _wandb_epochs(path)
    assert len(ids) == 1 and all(p.name == f"run-{next(iter(ids))}.wandb" for p in files), ids
    assert sorted(set(epochs)) == list(range(1, LONG_EPOCHS + 1)), epochs


@slurm
@cluster
def test_time_limit_signal_checkpoints_and_requeues(request, tmp_path, reference):
    """timeout_min=1, signal_delay_s=20: USR2 comes 20-50 s before the limit (slurmctld checks
    time limits every 30 s and signals early rather than late), the job stops before SLURM
    kills it, checkpoints, is requeued (max_num_timeout) and completes like an uninterrupted
    run. The 70 epochs take longer than 60 s, so the first instance is always signalled; each
    instance trains >= 10 s minus its start-up, so it may take a few requeues."""
    data, ref_dir = reference
    sweep = _sweep(request, tmp_path,
                   [*LAUNCHER, "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=20",
                    "hydra.launcher.max_num_timeout=8", *TINY, *LONG], data=data)
    rc = sweep.wait(timeout=600)
    assert rc == 0, sweep.report()
    (run_dir,) = sweep.run_dirs()
    (job,) = sweep.job_ids()
    m = _metrics(run_dir)
    assert m["status"] == "completed", m
    logs = sweep.job_logs()
    assert "Job has timed out" in logs and "Requeued job" in logs, logs
    assert "lastexp: resuming" in logs, logs
    states = _sacct_states(job)
    assert "REQUEUED" in states and "TIMEOUT" not in states, states
    _assert_same_result(run_dir, ref_dir)


def _bad_conf(tmp_path: Path) -> Path:
    """A copy of the cluster's slurm.conf whose controller port nobody listens on."""
    text = Path(os.environ["SLURM_CONF"]).read_text()
    conf = tmp_path / "unreachable" / "slurm.conf"
    conf.parent.mkdir()
    conf.write_text(re.sub(r"(?m)^SlurmctldPort=.*\n", "", text) + "SlurmctldPort=6899\n")
    return conf


@slurm
@cluster
@pytest.mark.parametrize("case", ["unreachable", "no_conf", "partition"])
def test_bad_cluster_fails_before_submitting(tmp_path, case):
    overrides = [*LAUNCHER, "hydra.launcher.timeout_min=5", *TINY, "stream=joint,bone"]
    env = _env()
    if case == "unreachable":
        env["SLURM_CONF"] = str(_bad_conf(tmp_path))
        expect = r"cannot reach the SLURM controller .*SLURM_CONF="
    elif case == "no_conf":  # clients then look for the controller in DNS
        env.pop("SLURM_CONF")
        expect = r"cannot reach the SLURM controller .*SLURM_CONF is unset"
    else:
        overrides = [o.replace("partition=debug", "partition=nope") for o in overrides]
        expect = r"hydra.launcher.partition=nope: no such SLURM partition nope; available: debug"
    before = _cmd("squeue", "-h", "-o", "%i")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lastexp", "--multirun", *overrides,
         f"paths.runs={tmp_path / 'runs'}", f"paths.data={tmp_path / 'data'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("lastexp: error:")]
    assert len(errors) == 1 and re.search(expect, errors[0]), out
    assert "Traceback" not in out, out
    assert not _submitit(tmp_path / "runs")  # nothing submitted
    after = set(_cmd("squeue", "-h", "-o", "%i").split())
    assert after <= set(before.split())  # no job of ours appeared (older ones may finish)
    assert time.monotonic() - t0 < 60


@slurm
@cluster
def test_job_failing_on_the_node_is_recorded(request, tmp_path, reference):
    """One job of the sweep fails on the node with a user error (a missing raw_dir): it is
    reported, its run is marked failed with that error, and the other job completes."""
    data, _ = reference
    sweep = _sweep(request, tmp_path,
                   [*LAUNCHER, "hydra.launcher.timeout_min=5", *TINY,
                    "dataset.raw_dir=null,/nonexistent"], data=data)
    rc = sweep.wait(timeout=150)
    out = sweep.output()
    assert rc != 0, out
    assert "dataset.raw_dir='/nonexistent' is not a directory" in out, out
    dirs = sweep.run_dirs()
    assert dirs, sweep.report()
    by_status: dict[str, list[dict]] = {}
    for d in dirs:
        if (d / "metrics.json").exists():
            m = _metrics(d)
            by_status.setdefault(m["status"], []).append(m)
    assert len(by_status.get("completed", [])) == 1, by_status
    assert re.fullmatch(r"\d+", by_status["completed"][0]["slurm_job_id"])
    failed = by_status.get("failed", [])
    assert len(failed) == 1, (f"the failed job left no metrics.json with status failed "
                              f"(run dirs: {[d.name for d in dirs]})")
    assert "/nonexistent" in failed[0]["error"], failed[0]
    assert re.fullmatch(r"\d+", str(failed[0].get("slurm_job_id"))), failed[0]


@slurm
@cluster
def test_dependent_jobs_are_submitted_with_afterok(request, tmp_path):
    """ablation=L11,B7,L10 with run_dependencies=true: L11 reads B7 of the same sweep; L10 reads
    P0, which is in neither the sweep nor the store and is added as a job of its own. The readers
    are submitted with afterok on their producers, start after those finished, and complete."""
    sweep = _sweep(request, tmp_path,
                   [*LAUNCHER, "hydra.launcher.timeout_min=5", "debug=tiny", "logger=none",
                    "ablation=L11,B7,L10", "run_dependencies=true"], data=tmp_path / "data")
    rc = sweep.wait(timeout=480)
    assert rc == 0, sweep.report()
    runs = {m["ablation"]: m for m in map(_metrics, sweep.run_dirs())}
    assert sorted(runs) == ["B7", "L10", "L11", "P0"], sweep.report()
    assert all(m["status"] == "completed" for m in runs.values()), runs
    assert runs["L11"]["started_at"] >= runs["B7"]["finished_at"]
    assert runs["L10"]["started_at"] >= runs["P0"]["finished_at"]
    scripts = sorted(p for f in _submitit(sweep.runs) for p in f.glob("*/*_submission.sh"))
    deps = [re.findall(r"#SBATCH --dependency=(\S+)", p.read_text()) for p in scripts]
    kills = [re.findall(r"#SBATCH --kill-on-invalid-dep=yes", p.read_text()) for p in scripts]
    assert sorted(len(d) for d in deps) == [0, 1, 1], deps  # B7+P0 first, then L11, L10
    assert all(d[0].startswith("afterok:") for d in deps if d) and sum(map(len, kills)) == 2
    out = sweep.output()
    assert "teacher of L10 (synthetic, stream joint, seed 1), run_dependencies=true" in out, out


@slurm
@cluster
def test_failed_dependency_cancels_its_readers(request, tmp_path):
    """B7 fails on its node (a missing raw_dir for it alone): L11, submitted afterok on it, is
    cancelled by SLURM instead of starting, and the sweep reports both."""
    sweep = _sweep(request, tmp_path,
                   [*LAUNCHER, "hydra.launcher.timeout_min=5", "debug=tiny", "logger=none",
                    "+ablation=L11", "run_dependencies=true", "dataset.raw_dir=/nonexistent"],
                   data=tmp_path / "data")
    rc = sweep.wait(timeout=300)
    out = sweep.output()
    assert rc != 0, out
    assert re.search(r"did not run: a job it depends on failed: \d+(_\d+)? \(B7 ", out), out
    dirs = {m.get("ablation"): m for m in map(_metrics, sweep.run_dirs())
            if m.get("ablation")}
    assert dirs["B7"]["status"] == "failed" and "L11" not in dirs, dirs
    for job in sweep.job_ids():
        states = _sacct_states(job)
        assert states and states[-1] in ("FAILED", "CANCELLED"), (job, states)


@slurm
@cluster
def test_missing_dependency_fails_before_submitting(tmp_path):
    before = _cmd("squeue", "-h", "-o", "%i")
    proc = subprocess.run(
        [sys.executable, "-m", "lastexp", "--multirun", *LAUNCHER, "debug=tiny",
         "ablation=L11,L0", f"paths.runs={tmp_path / 'runs'}", f"paths.data={tmp_path / 'd'}"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("lastexp: error:")]
    assert len(errors) == 1 and "teacher B7 (synthetic, stream joint, seed 1)" in errors[0]
    assert "python -m lastexp +ablation=B7 dataset=synthetic stream=joint seed=1" in errors[0]
    assert "Traceback" not in out, out
    assert not _submitit(tmp_path / "runs")
    assert set(_cmd("squeue", "-h", "-o", "%i").split()) <= set(before.split())


@slurm
@cluster
@pytest.mark.parametrize("extra, needles", [
    # the preset's every unmet request, in one line
    ([], ("the nodes of partition debug cannot meet", "hydra.launcher.gpus_per_node=1 (they "
          "have 0 GPUs)", "hydra.launcher.cpus_per_task=8 (they have", "hydra.launcher.mem_gb=48",
          "use hydra.launcher.gpus_per_node=0 (a CPU partition)")),
    (["hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=512"],
     ("the nodes of partition debug cannot meet", "hydra.launcher.cpus_per_task=512 (they have")),
    (["hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
      "hydra.launcher.mem_gb=100000"],
     ("the nodes of partition debug cannot meet", "hydra.launcher.mem_gb=100000 (they have")),
])
def test_a_request_the_partition_cannot_meet_is_refused_before_submitting(tmp_path, extra,
                                                                          needles):
    # the preset asks for one GPU; the local test cluster's node has none (a CPU partition)
    before = _cmd("squeue", "-h", "-o", "%i")
    proc = subprocess.run(
        [sys.executable, "-m", "lastexp", "--multirun", "hydra/launcher=submitit_slurm",
         "hydra.launcher.partition=debug", *extra, "debug=tiny", "seed=1,2",
         f"paths.runs={tmp_path / 'runs'}"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), proc.stderr
    assert not _submitit(tmp_path / "runs")
    assert set(_cmd("squeue", "-h", "-o", "%i").split()) <= set(before.split())


# ------------------------------------------------ preflight unit tests (no cluster needed)


def test_partition_shapes_and_requests_are_compared(tmp_path):
    sinfo = _fake_sinfo(tmp_path, "printf 'cpu*|64|256000|(null)\ngpu|32|512000|gpu:a100:4(S:0-1)"
                                  "\n'")
    assert partition_nodes(None, sinfo=sinfo) == [NodeShape(64, 256000, 0)]
    gpu_nodes = [NodeShape(32, 512000, 4)]
    preset = requested_resources([])  # conf/hydra/launcher/submitit_slurm.yaml
    assert preset == {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 48}
    assert resource_problem("gpu", preset, gpu_nodes) is None
    assert "hydra.launcher.gpus_per_node=0 (a CPU partition)" in resource_problem(
        None, preset, [NodeShape(64, 256000, 0)])
    many = requested_resources(["hydra.launcher.gpus_per_node=8"])
    assert "use hydra.launcher.gpus_per_node=4 at most" in resource_problem("gpu", many, gpu_nodes)
    assert requested_resources(["hydra.launcher.gpus_per_node=null"])["gpus_per_node"] == 0
    assert resource_problem("gpu", preset, []) is None  # sinfo could not say: SLURM decides


def _fake_sinfo(tmp_path: Path, body: str) -> str:
    prog = tmp_path / "sinfo"
    prog.write_text(f"#!/bin/sh\n{body}\n")
    prog.chmod(0o755)
    return str(prog)


def test_check_slurm_lists_partitions_default_first(tmp_path):
    sinfo = _fake_sinfo(tmp_path, "printf 'gpu\\ndebug*\\ngpu\\n'")
    assert check_slurm(None, sinfo=sinfo) == ["debug", "gpu"]
    assert check_slurm("gpu", sinfo=sinfo) == ["debug", "gpu"]
    with pytest.raises(SlurmUnavailable,
                       match=r"^hydra.launcher.partition=nope: no such SLURM partition nope; "
                             r"available: debug \(default\), gpu$"):
        check_slurm("nope", sinfo=sinfo)


def test_check_slurm_unreachable_and_hanging(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", "/etc/x/slurm.conf")
    sinfo = _fake_sinfo(tmp_path, "echo 'slurm_load_partitions: Unable to contact slurm "
                                  "controller (connect failure)' >&2; exit 1")
    with pytest.raises(SlurmUnavailable) as exc:
        check_slurm("debug", sinfo=sinfo)
    msg = str(exc.value)
    assert "\n" not in msg and "Unable to contact slurm controller" in msg
    assert "SLURM_CONF=/etc/x/slurm.conf" in msg and "scontrol ping" in msg
    t0 = time.monotonic()
    with pytest.raises(SlurmUnavailable, match="did not answer within 1 s"):
        check_slurm(None, timeout=1, sinfo=_fake_sinfo(tmp_path, "exec sleep 30"))
    assert time.monotonic() - t0 < 10


def test_check_slurm_not_installed(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SlurmUnavailable, match="not installed here.*submitit_local"):
        check_slurm()


def test_slurm_problem_reads_the_command_line(tmp_path, monkeypatch):
    argv = ["--multirun", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu"]
    assert wants_slurm(argv) and requested_partition(argv) == "gpu"
    assert not wants_slurm(argv[1:])  # no --multirun: Hydra launches nothing
    assert not wants_slurm(["-m", "hydra/launcher=submitit_local"])
    assert requested_partition(argv + ["hydra.launcher.partition=null"]) is None
    monkeypatch.setenv("PATH", str(tmp_path))
    _fake_sinfo(tmp_path, "echo 'debug*'")
    assert slurm_problem(argv[:2]) is None
    assert "no such SLURM partition gpu" in slurm_problem(argv)
    assert slurm_problem(["stream=joint"]) is None  # not a SLURM sweep: no sinfo call
    assert slurm_problem([*argv, "--cfg", "job"]) is None
