"""The results command over a run store made by real tiny runs (2 ablations x 2 seeds)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("real_store")
    out = run_cli(["--multirun", "debug=tiny", "logger=none", "ablation=L0,L1", "seed=1,2",
                   f"paths.runs={root / 'runs'}", f"paths.data={shared_data}"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    return root


def test_lite_table_from_real_runs(real_store, tmp_path):
    out = run_cli(["--runs", str(real_store / "runs"), "--out", str(tmp_path / "a")], real_store,
                  module="lastexp.results")
    assert out.returncode == 0, out.stderr[-2000:]
    lite = (tmp_path / "a" / "lite.md").read_text()
    l0 = next(line for line in lite.splitlines() if line.startswith("| L0"))
    l1 = next(line for line in lite.splitlines() if line.startswith("| L1"))
    assert "n=2" in l0 and "n=2" in l1 and "±" in l1
    assert "+" in l1.split("|")[5] or "-" in l1.split("|")[5]  # a Δ against L0
    assert "| L2" in lite and "—" in lite  # rows without runs are shown as missing
    for name in ("base", "lite", "preprocessing", "paper"):
        for ext in ("md", "csv", "tex"):
            assert (tmp_path / "a" / f"{name}.{ext}").exists(), f"{name}.{ext}"

    again = run_cli(["--runs", str(real_store / "runs"), "--out", str(tmp_path / "b")],
                    real_store, module="lastexp.results")
    assert again.returncode == 0
    for f in sorted((tmp_path / "a").glob("*.md")) + sorted((tmp_path / "a").glob("*.csv")):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
