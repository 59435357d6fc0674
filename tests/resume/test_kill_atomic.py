"""results and export are atomic as wholes (the run store issue): SIGKILLed anywhere, they
leave the old complete set of files or the new complete set, never 0-byte files or a mix, and
the next command that takes the same lock removes the killed one's ``*.tmp-*`` folder; a full
disk while training is one line and the last good checkpoint stays."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, run_cli
from tests.results.test_results import write_run

pytestmark = pytest.mark.resume

KILL_AT = Path(__file__).with_name("kill_at.py")


def kill_at(module: str, args: list[str], cwd: Path, spec: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LASTEXP_KILL_AT": spec,
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(KILL_AT), module, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def folder(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}.tmp-"))


# --------------------------------------------------------------------------- results

RESULTS_KILLS = [
    "os:write:1:before",  # the first table half-written (in the temporary folder)
    "os:write:7:after",  # some tables written, most not
    "lastexp.io:write_files:1:after",  # every table written, search and the swap not
    "lastexp.io:swap_in:1:before",
    "lastexp.io:_exchange:1:after",  # swapped, the old set not yet removed
    "shutil:rmtree:1:before",
]


def test_results_killed_anywhere_leaves_the_old_or_the_new_set(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "b0_s0", ablation="B0", seed=0, best=80.0)
    write_run(runs, "b1_s0", ablation="B1", seed=0, best=81.0)
    args = ["--runs", "runs", "--out", "out", "--quiet"]
    assert run_cli(args, tmp_path, module="lastexp.results").returncode == 0
    old = folder(tmp_path / "out")
    write_run(runs, "b0_s1", ablation="B0", seed=1, best=84.0)  # the store moves on
    ref = run_cli(["--runs", "runs", "--out", "ref", "--quiet"], tmp_path,
                  module="lastexp.results")
    assert ref.returncode == 0, ref.stderr
    new = folder(tmp_path / "ref")
    assert old.keys() == new.keys() and old != new
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "out", saved)
    for spec in RESULTS_KILLS:
        shutil.rmtree(tmp_path / "out")
        shutil.copytree(saved, tmp_path / "out")
        r = kill_at("lastexp.results", args, tmp_path, spec)
        assert r.returncode == -9, (spec, r.returncode, r.stderr[-2000:])
        got = folder(tmp_path / "out")
        assert got in (old, new), (spec, sorted(k for k in got if got[k] != old.get(k)))
        assert all(got.values()), spec  # no 0-byte file
        again = run_cli(args, tmp_path, module="lastexp.results")  # takes the same lock
        assert again.returncode == 0, again.stderr
        assert folder(tmp_path / "out") == new, spec
        assert leftovers(tmp_path, "out") == [], spec


# --------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("export_kill")
    proc = run_cli(["debug=tiny", "model=last_e_nano", "logger=none", "paths.runs=runs",
                    "paths.data=data"], cwd=work, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p for p in (work / "runs").iterdir() if (p / "metrics.json").exists()]
    return work, run


EXPORT_KEYS = ("int8_bytes", "fp32_bytes", "int8_top1", "calibration_samples", "onnx_path")


def export_state(run: Path) -> tuple[dict, dict]:
    """(export.json, metrics.json); export.json always describes the files beside it."""
    described = json.loads((run / "export" / "export.json").read_text())
    assert described["int8_bytes"] == (run / "export" / "model_int8.onnx").stat().st_size
    assert described["fp32_bytes"] == (run / "export" / "model.onnx").stat().st_size
    assert all(p.stat().st_size > 0 for p in (run / "export").iterdir())
    return described, json.loads((run / "metrics.json").read_text())


EXPORT_KILLS = [
    ("lastexp.export.onnx:save_lean:1:after", True),
    ("lastexp.export.int8:quantize_onnx_int8:1:after", True),
    ("lastexp.io:swap_in:1:before", True),
    # swapped in, metrics.json not yet written: the next export brings metrics.json up to the
    # folder's export.json before anything else
    ("lastexp.io:_exchange:1:after", False),
    ("lastexp.export.run:write_json:2:before", False),
]


def test_export_killed_anywhere_keeps_files_and_metrics_together(trained):
    work, run = trained
    base = [str(run), "export.calibration=16"]
    first = run_cli(base, work, module="lastexp.export")
    assert first.returncode in (0, 1), first.stderr
    old, _ = export_state(run)
    changed = [str(run), "export.calibration=8"]  # another INT8 model: other keys
    for spec, metrics_as_before in EXPORT_KILLS:
        r = kill_at("lastexp.export", changed, work, spec)
        assert r.returncode == -9, (spec, r.returncode, r.stderr[-2000:])
        described, metrics = export_state(run)
        assert described["calibration_samples"] in (16, 8), spec
        if metrics_as_before:  # nothing of the killed export is visible
            assert described["calibration_samples"] == 16, spec
            assert all(metrics[k] == old[k] for k in EXPORT_KEYS), spec
        # the next command taking the run's lock: leftovers gone, metrics = the folder's
        again = run_cli(base, work, module="lastexp.export")
        assert again.returncode in (0, 1), again.stderr
        described, metrics = export_state(run)
        assert described["calibration_samples"] == 16
        assert all(metrics[k] == described[k] for k in EXPORT_KEYS), spec
        assert leftovers(run, "export") == [], spec


# --------------------------------------------------------------------------- a full disk

DISK_FULL = """
import errno, os, runpy, sys
import lastexp.io as lio

real, calls = lio.atomic_write, []

def atomic_write(path, write, mode="w"):
    if str(path).endswith("last.pt"):
        calls.append(path)
        if len(calls) == 2:  # the second epoch's resume point: the disk is full now
            real_write = os.write
            def full(fd, data):
                raise OSError(errno.ENOSPC, "No space left on device")
            os.write = full
            try:
                return real(path, write, mode)
            finally:
                os.write = real_write
    return real(path, write, mode)

lio.atomic_write = atomic_write
sys.argv = ["lastexp", *sys.argv[1:]]
runpy.run_module("lastexp", run_name="__main__", alter_sys=True)
"""


def test_a_full_disk_while_training_is_one_line_and_the_last_checkpoint_stays(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", DISK_FULL, "debug=tiny", "training.epochs=2",
                        "model=last_e_nano", "logger=none", "run_name=full"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("lastexp: error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    assert "no space left on the device for " in errors[0]
    assert "runs/full/checkpoints/last.pt (needs " in errors[0]
    assert "free some space" in errors[0]
    last = torch.load(tmp_path / "runs" / "full" / "checkpoints" / "last.pt",
                      weights_only=False, map_location="cpu")
    assert last["epoch"] <= 1  # the first epoch's resume point, intact and loadable
    assert not list((tmp_path / "runs" / "full").rglob("*.tmp"))
