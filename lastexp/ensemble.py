"""Multi-stream score ensembles (the training plan B14, the "4s" rows of §10), CTR-GCN style.

The ensemble score of a test sample is the weighted sum of the members' raw logits (as CTR-GCN's
``ensemble.py`` sums raw scores; no softmax), read from each finished run's
``test_scores.npz``. Members must share dataset, split and the test-sample order. The result is
a run directory of its own (``metrics.json`` with ``stream: "ensemble"``, ``test_scores.npz``).

    python -m lastexp.ensemble RUN_DIR RUN_DIR ... [--weights 0.6 0.6 0.4 0.4] [--out DIR]
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lastexp.cli import ArgumentParser
from lastexp.config import weights_problem
from lastexp.runstore import RunDir, RunError, open_finished, read_metrics, timestamp
from lastexp.runstore.guard import out_dir_problem
from lastexp.runstore.metrics import write_metrics
from lastexp.runstore.scores import ScoresError, read_scores, write_scores

# CTR-GCN's 4-stream weights (joint, bone, joint motion, bone motion).
STREAM_WEIGHTS: dict[str, float] = {
    "joint": 0.6,
    "bone": 0.6,
    "velocity": 0.4,
    "joint_velocity": 0.4,
    "bone_velocity": 0.4,
}


class EnsembleError(ValueError):
    """Members that cannot be combined; the message names the runs."""


def _load_member(run_dir: Path) -> dict[str, Any]:
    try:
        run = open_finished(run_dir, role="member")
    except RunError as exc:
        raise EnsembleError(str(exc)) from None
    metrics, path = run.metrics, run.paths.scores
    if not path.is_file():
        raise EnsembleError(f"{run_dir} has no {path.name}")
    try:
        scores, labels, names = read_scores(path)
    except ScoresError as exc:  # a cut or foreign file: one line, also in an ensemble job
        raise EnsembleError(str(exc)) from None
    if scores.ndim != 2 or len(scores) != len(labels):
        raise EnsembleError(f"{path}: scores {scores.shape} do not match labels {labels.shape}")
    return {"dir": run_dir, "metrics": metrics, "scores": scores, "labels": labels,
            "names": names}


def _check_same(members: list[dict[str, Any]]) -> None:
    ref = members[0]
    for key in ("dataset", "split"):
        values = {str(m["dir"]): m["metrics"].get(key) for m in members}
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{d} ({v})" for d, v in values.items())
            raise EnsembleError(f"members differ in {key}: {listed}")
    protocols = {str(m["dir"]): m["metrics"].get("selection") or "test" for m in members}
    if len(set(protocols.values())) > 1:  # a validation-selected run beside a test-selected one
        listed = ", ".join(f"{d} ({v})" for d, v in protocols.items())
        raise EnsembleError(f"members differ in selection: {listed}")
    for m in members[1:]:
        if m["scores"].shape != ref["scores"].shape:
            raise EnsembleError(
                f"{m['dir']} has scores {m['scores'].shape}, {ref['dir']} {ref['scores'].shape}"
            )
        if len(ref["names"]) and not np.array_equal(m["names"], ref["names"]):
            raise EnsembleError(f"{m['dir']} and {ref['dir']} list the test samples (names) in "
                                "a different order")
        if not np.array_equal(m["labels"], ref["labels"]):
            raise EnsembleError(f"{m['dir']} and {ref['dir']} have different test labels")


def default_weights(streams: list[str]) -> list[float]:
    """CTR-GCN weights by stream (unknown streams get 1.0)."""
    return [STREAM_WEIGHTS.get(s, 1.0) for s in streams]


def _sum_or_none(values: list[Any]) -> Any:
    if any(v is None for v in values):
        return None
    return sum(values)


def _same_ensemble(out_dir: Path, dirs: list[str]) -> bool:
    """Whether ``out_dir`` holds this very ensemble (rewriting it is then a rerun)."""
    existing = read_metrics(RunDir(out_dir).metrics)
    return isinstance(existing, dict) and existing.get("members") == dirs


def ensemble_runs(
    run_dirs: list[str | Path],
    weights: list[float] | None = None,
    out_dir: str | Path | None = None,
    *,
    ablation: str | None = None,
) -> dict[str, Any]:
    """Combine finished runs; write and return the ensemble's metrics.

    ``out_dir`` defaults to ``<parent of the first run>/ensemble_<hash of the members>``.
    """
    if len(run_dirs) < 1:
        raise EnsembleError("an ensemble needs at least one run directory")
    problem = None if out_dir is None else out_dir_problem(out_dir, "--out", may_be_a_run=True)
    if problem:  # the runs root, /, inside a run, ...: refused before anything is read
        raise EnsembleError(problem)
    members = [_load_member(Path(d)) for d in run_dirs]
    _check_same(members)
    streams = [str(m["metrics"].get("stream")) for m in members]
    if weights is None:
        weights = default_weights(streams)
    if len(weights) != len(members):
        raise EnsembleError(f"{len(weights)} weights for {len(members)} runs; give one "
                            "--weights value per run")
    problem = weights_problem(list(weights), "--weights")
    if problem:
        raise EnsembleError(problem)
    scores = sum(w * m["scores"] for w, m in zip(weights, members))
    labels, names = members[0]["labels"], members[0]["names"]
    pred = scores.argmax(1) if len(labels) else np.zeros(0, np.int64)
    top1 = 100.0 * float((pred == labels).mean()) if len(labels) else 0.0

    dirs = [str(Path(m["dir"]).resolve()) for m in members]
    if out_dir is None:
        key = hashlib.sha1("|".join(dirs + [repr(list(weights))]).encode()).hexdigest()[:8]
        out_dir = Path(members[0]["dir"]).resolve().parent / f"ensemble_{key}"
    out_dir = Path(out_dir)
    out = RunDir(out_dir)
    if out_dir.resolve() in {Path(d) for d in dirs}:
        raise EnsembleError(f"--out {out_dir} is one of the ensemble's members; name a new "
                            "directory (or leave --out out)")
    if out.metrics.exists() and not _same_ensemble(out_dir, dirs):
        raise EnsembleError(f"--out {out_dir} already holds another run; name a new directory "
                            "(or leave --out out)")
    first = members[0]["metrics"]
    models = sorted({str(m["metrics"].get("model")) for m in members})
    metrics = {
        "status": "completed",
        "ablation": ablation,
        "model": models[0] if len(models) == 1 else "+".join(models),
        "stream": "ensemble",
        "streams": streams,
        "dataset": first.get("dataset"),
        "split": first.get("split"),
        "preprocessing": first.get("preprocessing"),
        "seed": first.get("seed"),
        "epochs": first.get("epochs"),
        "members": dirs,
        "weights": [float(w) for w in weights],
        "combine": "weighted sum of raw logits (CTR-GCN)",
        "selection": first.get("selection") or "test",
        "best_top1": top1,
        "final_top1": top1,
        "best_epoch": None,
        "member_top1": [m["metrics"].get("final_top1") for m in members],
        "params": _sum_or_none([m["metrics"].get("params") for m in members]),
        "flops": _sum_or_none([m["metrics"].get("flops") for m in members]),
        "train_seconds": _sum_or_none([m["metrics"].get("train_seconds") for m in members]),
        "n_train": first.get("n_train"),
        "n_test": int(len(labels)),
        "num_classes": int(scores.shape[1]),
        "device": first.get("device"),
        "finished_at": timestamp(),
    }
    write_scores(out.scores, scores, labels, names, {"pred_final": pred})
    write_metrics(out.metrics, metrics)
    metrics["run_dir"] = str(out_dir)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m lastexp.ensemble",
        description="Weighted sum of the test logits of finished runs (CTR-GCN ensemble).",
    )
    parser.add_argument("runs", nargs="+", help="run directories (one per stream)")
    parser.add_argument("--weights", nargs="+", type=float, default=None,
                        help="one weight per run (default by stream: joint/bone 0.6, "
                             "velocity/bone_velocity 0.4)")
    parser.add_argument("--out", default=None, help="output run directory")
    parser.add_argument("--ablation", default=None, help="ablation ID recorded (e.g. B14)")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        print(f"lastexp.ensemble: error: one run ({args.runs[0]}) is no ensemble; name two or "
              "more run directories, one per stream", file=sys.stderr)
        return 2
    try:
        m = ensemble_runs(args.runs, args.weights, args.out, ablation=args.ablation)
    except (EnsembleError, OSError, ValueError, KeyError) as exc:
        print(f"lastexp.ensemble: error: {exc}", file=sys.stderr)
        return 2
    print(f"ensemble of {len(m['members'])} runs ({', '.join(m['streams'])}; weights "
          f"{m['weights']}): top-1 {m['final_top1']:.2f}% on {m['n_test']} samples -> "
          f"{m['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
