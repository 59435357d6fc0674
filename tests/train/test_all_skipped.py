"""An epoch whose every batch is skipped as non-finite trained nothing: the run must fail with
one line, not go on to complete (fewer batches than training.max_nonfinite_steps)."""

import pytest
import torch

from lastexp.train.loop import NanGuard, NonFiniteError, train_one_epoch
from tests.train.test_loop import batches, ctx_for, make_model


def test_an_epoch_of_only_nonfinite_batches_fails():
    model = make_model()
    bad = [(torch.full_like(x, float("inf")), y) for x, y in batches(n=3)]
    ctx = ctx_for(model, guard=NanGuard(max_consecutive=20))
    with pytest.raises(NonFiniteError, match="all 3 training batches") as info:
        train_one_epoch(model, bad, ctx)
    assert "\n" not in str(info.value) and "dataset.npz" in str(info.value)


def test_one_finite_batch_is_enough():
    model = make_model()
    data = batches(n=3)
    data[0] = (torch.full_like(data[0][0], float("nan")), data[0][1])
    out = train_one_epoch(model, data, ctx_for(model))
    assert out["progress"].seen == 12


def test_an_npz_whose_coordinates_overflow_is_refused_before_training(tmp_path):
    """Coordinates near float32's limit (every batch would sum to inf) are beyond any capture:
    the npz is refused in one line before a batch trains, and no run completes."""
    import numpy as np

    from tests.conftest import run_cli

    x = np.full((8, 10, 150), 3e38, dtype=np.float32)
    y = np.eye(60)[list(range(8))]
    np.savez(tmp_path / "huge.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    r = run_cli(["dataset=ntu60_xview", "dataset.npz=huge.npz", f"paths.data={tmp_path / 'd'}",
                 "logger=none", "debug=tiny", "run_name=huge"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-1500:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "beyond 1000 m" in lines[0] and "dataset.npz" in lines[0], lines
    metrics = tmp_path / "runs" / "huge" / "metrics.json"
    assert not metrics.exists() or '"completed"' not in metrics.read_text()
