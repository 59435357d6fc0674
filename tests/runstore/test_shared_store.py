"""A shared run store: files follow the umask, so a colleague (another user) reads a run that
one user wrote with ``python -m lastexp.results``."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from lastexp.io import atomic_write
from lastexp.runstore import RunDir, write_metrics
from lastexp.runstore.scores import write_scores
from lastexp.train.checkpoint import save_checkpoint
from tests.conftest import REPO

READER = "lastexp_reader"

# The reader imports what results needs while it may still read the interpreter's folders (the
# test's environment can live below a private home), then becomes the other user and reads
# the store and writes the tables as that user only.
AS_READER = """
import io, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.backends.backend_agg
import matplotlib.pyplot as plt
fig = plt.figure()  # what a figure's drawing imports on first use
plt.plot([0, 1], [0, 1])
fig.savefig(io.BytesIO(), format="png")
plt.close(fig)
import shutil, tempfile
import lastexp.results.__main__ as results
import lastexp.results.plots
# one whole run first, into a throwaway folder: every module and font the tables and figures load
# on first use (a glyph's fallback font) is loaded while the interpreter's folders are readable
warm = tempfile.mkdtemp()
results.main([*sys.argv[3:sys.argv.index("--out")], "--out", warm + "/t", "--quiet"])
shutil.rmtree(warm)
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
assert os.getuid() == uid and os.geteuid() == uid
sys.exit(results.main(sys.argv[3:]))
"""


def reader() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(READER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                               "/usr/sbin/nologin", READER], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot add the user {READER}: {made.stderr.strip()}")
        pw = pwd.getpwnam(READER)
    return pw.pw_uid, pw.pw_gid


@pytest.fixture
def shared_tmp():
    """A folder outside pytest's private (0700) tmp tree, as a shared store would be."""
    old = os.umask(0o022)
    path = Path(tempfile.mkdtemp(prefix="lastexp-shared-"))
    path.chmod(0o755)
    yield path
    os.umask(old)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def write_a_run(runs: Path) -> RunDir:
    """A finished run, written by the writers training uses (each atomically)."""
    run = RunDir(runs / "b0_joint_s1")
    write_metrics(run.metrics, {
        "status": "completed", "ablation": "B0", "model": "last_base", "stream": "joint",
        "dataset": "synthetic", "preprocessing": "t64_uniform", "seed": 1, "epochs": 2,
        "best_top1": 88.0, "best_epoch": 1, "final_top1": 87.5, "params": 10, "flops": 20,
        "train_seconds": 3.0, "device": "cpu", "n_train": 4, "n_test": 4,
        "finished_at": "2026-01-01T00:00:00"})
    atomic_write(run.history, lambda f: f.write(
        "epoch,lr,train_loss,train_top1,val_loss,val_top1,seconds\n0,0.1,1,50,1,88,1\n"))
    write_scores(run.scores, np.eye(4, dtype=np.float32), np.arange(4), np.array(list("abcd")))
    save_checkpoint(run.last, {"epoch": 1})
    return run


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to add a user and act as it")
def test_a_run_written_by_one_user_is_read_by_another(shared_tmp):
    uid, gid = reader()
    runs = shared_tmp / "runs"
    run = write_a_run(runs)
    for p in run.path.rglob("*"):
        want = 0o755 if p.is_dir() else 0o644
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))
    out = shared_tmp / "theirs"
    out.mkdir()
    os.chown(out, uid, gid)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLCONFIGDIR": str(out / ".mpl"),
           "HOME": str(out)}
    r = subprocess.run([sys.executable, "-c", AS_READER, str(uid), str(gid), "--runs",
                        str(runs), "--out", str(out / "tables"), "--quiet"], cwd=out,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 runs read" in r.stdout and "(1 completed" in r.stdout and "0 unreadable" in r.stdout
    assert (out / "tables" / "base.md").stat().st_uid == uid
    b0 = [ln for ln in (out / "tables" / "base.md").read_text().splitlines()
          if ln.startswith("| B0 ")]
    assert b0 and "88" in b0[0], b0  # the run's best_top1, read as the other user
