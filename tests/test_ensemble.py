"""Stream ensembles over hand-made run directories."""

from __future__ import annotations

import numpy as np
import pytest

from lastexp.ensemble import EnsembleError, ensemble_runs, main
from lastexp.io import read_json, write_json

LABELS = np.array([0, 1, 2, 1])
NAMES = np.array(["a", "b", "c", "d"])


def member(root, name, stream, scores, *, split="xsub", names=NAMES, status="completed"):
    run = root / name
    run.mkdir(parents=True)
    write_json(run / "metrics.json", {
        "status": status, "model": "last_e_base", "stream": stream, "dataset": "ntu60_xsub",
        "split": split, "seed": 1, "params": 100, "flops": 1000, "train_seconds": 10.0,
        "final_top1": 0.0, "preprocessing": "t64_uniform",
    })
    np.savez(run / "test_scores.npz", scores=np.asarray(scores, dtype=np.float32),
             labels=LABELS, names=names)
    return run


def test_default_stream_weights_are_applied(tmp_path):
    # joint alone gets 1/4 right, velocity alone 2/4; 0.6 * joint + 0.4 * velocity gets 3/4.
    joint = [[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0.9, 0]]
    vel = [[0, 1, 0], [0, 2, 0], [0, 0, 2], [0, 0, 1]]
    runs = [member(tmp_path, "j", "joint", joint), member(tmp_path, "v", "velocity", vel)]
    m = ensemble_runs(runs, out_dir=tmp_path / "ens", ablation="B14")
    assert m["weights"] == [0.6, 0.4]
    expected = 0.6 * np.array(joint) + 0.4 * np.array(vel)
    assert m["final_top1"] == m["best_top1"] == pytest.approx(
        100 * (expected.argmax(1) == LABELS).mean())
    saved = read_json(tmp_path / "ens" / "metrics.json")
    assert saved["status"] == "completed" and saved["stream"] == "ensemble"
    assert saved["ablation"] == "B14" and saved["dataset"] == "ntu60_xsub"
    assert saved["params"] == 200 and saved["flops"] == 2000 and saved["train_seconds"] == 20.0
    assert saved["n_test"] == 4 and len(saved["members"]) == 2
    with np.load(tmp_path / "ens" / "test_scores.npz") as z:
        np.testing.assert_allclose(z["scores"], expected, rtol=1e-6)
        assert list(z["names"]) == list(NAMES)
        # the ensemble's one weight set: its predictions, from the combined scores
        assert list(z["pred_final"]) == expected.argmax(1).tolist()
        assert sorted(z.files) == ["labels", "names", "pred_final", "scores"]
    assert saved["selection"] == "test"  # members from before `selection`: the test split


def test_explicit_weights_and_cli(tmp_path, capsys):
    a = member(tmp_path, "a", "joint", [[1, 0, 0]] * 4)
    b = member(tmp_path, "b", "bone", [[0, 1, 0]] * 4)
    assert main([str(a), str(b), "--weights", "1", "3", "--out", str(tmp_path / "e")]) == 0
    assert "top-1 50.00%" in capsys.readouterr().out  # class 1 everywhere: b and d right
    assert read_json(tmp_path / "e" / "metrics.json")["weights"] == [1.0, 3.0]


def test_refuses_split_mismatch_naming_the_runs(tmp_path, capsys):
    a = member(tmp_path, "xsub_run", "joint", [[1, 0, 0]] * 4)
    b = member(tmp_path, "xview_run", "bone", [[1, 0, 0]] * 4, split="xview")
    with pytest.raises(EnsembleError, match="split") as err:
        ensemble_runs([a, b], out_dir=tmp_path / "e")
    assert "xsub_run" in str(err.value) and "xview_run" in str(err.value)
    assert not (tmp_path / "e").exists()
    assert main([str(a), str(b)]) == 2
    assert "split" in capsys.readouterr().err


def test_refuses_other_sample_order_and_unfinished_runs(tmp_path):
    a = member(tmp_path, "a", "joint", [[1, 0, 0]] * 4)
    b = member(tmp_path, "b", "bone", [[1, 0, 0]] * 4, names=NAMES[::-1])
    with pytest.raises(EnsembleError, match="order"):
        ensemble_runs([a, b])
    c = member(tmp_path, "c", "bone", [[1, 0, 0]] * 4, status="failed")
    with pytest.raises(EnsembleError, match="completed"):
        ensemble_runs([a, c])
    with pytest.raises(EnsembleError, match="2 weights for 1"):
        ensemble_runs([a], weights=[1.0, 2.0])


def test_members_of_another_selection_protocol_are_refused(tmp_path):
    a = member(tmp_path, "a", "joint", [[1, 0, 0]] * 4)
    b = member(tmp_path, "b", "bone", [[0, 1, 0]] * 4)
    write_json(b / "metrics.json", {**read_json(b / "metrics.json"), "selection": "validation"})
    with pytest.raises(EnsembleError, match="differ in selection"):
        ensemble_runs([a, b], out_dir=tmp_path / "e")


def test_predictions_of_a_run_stored_before_them(tmp_path):
    """A test_scores.npz without pred_* arrays reads as labels and names only: no guess."""
    from lastexp.runstore.scores import PREDICTIONS, read_predictions, write_scores

    old = member(tmp_path, "old", "joint", [[1, 0, 0]] * 4) / "test_scores.npz"
    got = read_predictions(old)
    assert sorted(got) == ["labels", "names"] and list(got["labels"]) == list(LABELS)
    new = tmp_path / "new.npz"
    write_scores(new, np.eye(3)[[0, 1, 2, 2]], LABELS, NAMES,
                 {"pred_best": [0, 1, 1, 1], "pred_final": [0, 1, 2, 2]})
    got = read_predictions(new, ["pred_best", "pred_swa"])
    assert sorted(got) == ["labels", "names", "pred_best"]
    assert got["pred_best"].dtype.kind == "i" and list(got["pred_best"]) == [0, 1, 1, 1]
    assert PREDICTIONS == {"best_top1": "pred_best", "final_top1": "pred_final",
                           "swa_top1": "pred_swa"}
    with pytest.raises(ValueError, match="shape"):
        write_scores(new, np.eye(3)[[0, 1]], LABELS[:2], NAMES[:2], {"pred_final": [0]})
