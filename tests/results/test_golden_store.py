"""The results command on a committed run store gives committed bytes.

``golden/runs`` is a hand-made store of 48 run dirs, as the trainer, ``lastexp.ensemble`` and
``lastexp.export`` write them (metrics.json, history.csv for the curve pairs, one ``.hydra``):

- base: B0, B1, B7, B8 with 2-3 seeds; B2, B9-B12 without runs; B3 seed 2 failed (CUDA OOM),
  B4 interrupted, B5 running; B6 completed with ``best_top1`` NaN (unreadable); B7 on four
  streams, on ntu60_xview and ntu120_xsub, and an older duplicate of seed 1 in a SLURM job dir;
  B13 with ``swa_top1`` (plus one older run without it); B14 as two ensemble runs;
- lite: L0 (plus a debug=tiny synthetic run), L5 small and nano with export metrics
  (``int8_bytes``), L6, L9 with ``final_top1`` Infinity (unreadable), L10 small and nano with
  ``teacher``, L11 with one single teacher and one four-stream ``teacher_members`` run whose
  mean is below 88 % while its best seed is not (the MaskCLR rule), L12 with its pretraining
  figures; one truncated metrics.json;
- preprocessing: P0, P1 (t300_crop64), P2; P3 without runs;
- outside the catalog: a run with no ablation and one with an unknown ID (B15).

``golden/expected`` holds every text file the command writes (md, csv, tex). The PNG figures
are not compared: matplotlib's bytes vary with its version and fonts; what is checked is that
each figure the tables link to was drawn, and nothing else.

The only output that depends on where the command runs is the provenance note's git commit
(``git_provenance`` of the working directory). The command runs in a temporary directory with
``GIT_CEILING_DIRECTORIES`` at its parent, so git finds no repository and the note says
``commit unknown`` whatever checkout the tests run from.

Regenerate the expected files (only for a deliberate change of output, in its own commit):
``python -m tests.results.test_golden_store --write``.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
STORE = GOLDEN / "runs"
EXPECTED = GOLDEN / "expected"
FIGURE_LINK = re.compile(r"^!\[[^\]]*\]\(([^)]+)\)$", re.MULTILINE)


def run_results(workdir: Path, out: Path) -> subprocess.CompletedProcess:
    """``python -m lastexp.results`` on the golden store, from ``workdir`` (outside any git
    repository, see the module docstring), writing into ``out``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(PYTHONPATH=str(REPO), GIT_CEILING_DIRECTORIES=str(workdir.parent))
    return subprocess.run(
        [sys.executable, "-m", "lastexp.results", "--runs", str(STORE), "--out", str(out),
         "--quiet"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def text_files(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` but the PNG figures, by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix != ".png"}


def linked_figures(files: dict[str, bytes]) -> set[str]:
    return {m for data in files.values() for m in FIGURE_LINK.findall(data.decode("utf-8"))}


def diff(name: str, expected: bytes, got: bytes) -> str:
    lines = difflib.unified_diff(expected.decode("utf-8").splitlines(),
                                 got.decode("utf-8").splitlines(), f"expected/{name}",
                                 f"got/{name}", lineterm="", n=1)  # fmt: skip
    return "\n".join(list(lines)[:40])


def test_golden_store_gives_the_committed_bytes(tmp_path: Path):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    out = tmp_path / "out"
    proc = run_results(workdir, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got, expected = text_files(out), text_files(EXPECTED)
    assert sorted(got) == sorted(expected), "files written differ from golden/expected"
    changed = [name for name in expected if got[name] != expected[name]]
    assert not changed, "\n\n".join(diff(n, expected[n], got[n]) for n in changed)
    pngs = {p.name for p in out.iterdir() if p.suffix == ".png"}
    assert pngs == linked_figures(got) and pngs, "figures drawn differ from those linked"


def write_expected() -> None:
    """Replace golden/expected with the command's current text output."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir, out = Path(tmp) / "cwd", Path(tmp) / "out"
        workdir.mkdir()
        proc = run_results(workdir, out)
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        shutil.rmtree(EXPECTED, ignore_errors=True)
        EXPECTED.mkdir()
        for name, data in text_files(out).items():
            (EXPECTED / name).write_bytes(data)
    print(f"wrote {len(list(EXPECTED.iterdir()))} files to {EXPECTED}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.results.test_golden_store --write")
    write_expected()
