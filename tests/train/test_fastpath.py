"""The speed settings of issue "fast path": ``training.amp`` (off | fp16 | bf16),
``training.compile`` and ``training.channels_last``, on CPU.

Compiled runs are marked ``compile`` (cold Inductor compilation of a tiny model takes about
3 minutes on 2 cores) and run as their own CI step; everything else is in the default run.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from lastexp.config import amp_mode
from lastexp.models import available_models, build_model, family_flags, set_causal
from lastexp.runstore.key import run_key
from lastexp.train.fastpath import Precision, compiled, to_channels_last, unwrap
from tests.conftest import compose, run_cli

# lr 0.01: at debug=tiny's lr 0.1 this debug-width model is chaotic enough to amplify float
# rounding (1e-7) to 3e-3 of the loss within three epochs, dropout off (measured): a curve
# comparison there could not tell a wrong dropout mask from rounding.
TINY = ["debug=tiny", "logger=none", "model=last_e_nano", "training.epochs=2",
        "training.save_interval=1", "optimizer.lr=0.01"]
# NHWC convolutions and compiled (fused) kernels sum in other orders than eager NCHW ones;
# at lr 0.01 the two-epoch losses agree to the 6 digits history.csv keeps (measured)
CURVE_REL = 1e-4


def args(root: Path, data: Path, *extra: str) -> list[str]:
    return [*TINY, f"paths.runs={root / 'runs'}", f"paths.data={data}", *extra]


def one_run(root: Path) -> Path:
    (metrics,) = (root / "runs").rglob("metrics.json")
    return metrics.parent


def curve(run: Path) -> list[tuple[float, float]]:
    with open(run / "history.csv") as f:
        return [(float(r["train_loss"]), float(r["val_loss"])) for r in csv.DictReader(f)]


def assert_same_curve(a: list, b: list, rel: float = CURVE_REL) -> None:
    assert len(a) == len(b)
    for (ta, va), (tb, vb) in zip(a, b):
        assert ta == pytest.approx(tb, rel=rel) and va == pytest.approx(vb, rel=rel)


def rewind_to_epoch_1(run: Path) -> None:
    """Make a finished run look killed after epoch 1: its epoch-1 checkpoint becomes last.pt
    and metrics.json says running, so the next command resumes it."""
    ckpt = run / "checkpoints"
    shutil.copyfile(ckpt / "epoch_0001.pt", ckpt / "last.pt")
    m = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**m, "status": "running"}))


def train(root: Path, data: Path, *extra: str) -> str:
    root.mkdir(exist_ok=True)
    out = run_cli(args(root, data, *extra), root, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# ----------------------------------------------------------------------------- units


def test_amp_true_keeps_its_meaning_and_modes_are_explicit():
    assert amp_mode(True, "cuda") == "fp16" and amp_mode(True, "cpu") == "off"
    assert amp_mode(False, "cuda") == "off" and amp_mode("false", "cuda") == "off"
    assert amp_mode("bf16", "cpu") == "bf16" and amp_mode("fp16", "cpu") == "fp16"
    assert amp_mode("off", "cuda") == "off"
    fp16, bf16, off = Precision("fp16"), Precision("bf16"), Precision("off")
    assert fp16.dtype is torch.float16 and fp16.scaled
    assert isinstance(fp16.scaler(torch.device("cpu")), torch.amp.GradScaler)
    assert bf16.dtype is torch.bfloat16 and bf16.scaler(torch.device("cpu")) is None
    assert off.dtype is None and off.scaler(torch.device("cpu")) is None


def test_speed_settings_stay_out_of_the_run_identity():
    base = run_key(compose())
    for extra in (["training.compile=true"], ["training.channels_last=true"],
                  ["training.compile=true", "training.compile_mode=max-autotune"]):
        assert run_key(compose(extra)) == base, extra
    assert run_key(compose(["training.amp=bf16"])) != base  # precision changes the numbers


def full_model(name: str) -> torch.nn.Module:
    """The family with every optional component it has switched on (its flags, from the
    registry: a family refuses the flags of components it lacks), attention in every stage
    where the family has it, at debug width."""
    common = {"num_classes": 10, "num_person": 2, "width_mult": 0.25, "dropout": 0.1,
              "drop_path_rate": 0.1}
    on = {flag: True if isinstance(default, bool) else [True] * len(default)
          for flag, default in family_flags(name).items()
          if isinstance(default, bool) or isinstance(default, tuple)}
    assert on, f"{name}: no optional component"
    return build_model(name, **common, **on)


@pytest.mark.compile  # dynamo tracing of all eight families: ~2 minutes
@pytest.mark.parametrize("name", available_models())
def test_no_graph_breaks_in_the_compiled_forward(name):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = full_model(name).train()
    x = torch.randn(2, 3, 16, 25, 2)
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    feats = torch._dynamo.explain(model)(x, return_features=True)
    assert feats.graph_break_count == 0, [str(b.reason) for b in feats.break_reasons]
    set_causal(model, True)  # causal training mode (B12, L9) switches per batch
    causal = torch._dynamo.explain(model)(x)
    assert causal.graph_break_count == 0, [str(b.reason) for b in causal.break_reasons]


def test_channels_last_and_compile_wrappers_keep_plain_state_dicts():
    model = build_model("last_lite_nano", num_classes=10)
    keys = list(model.state_dict())
    to_channels_last(model)
    wrapper = compiled(model)
    assert unwrap(wrapper) is model
    assert list(unwrap(wrapper).state_dict()) == keys
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    fresh = build_model("last_lite_nano", num_classes=10)
    fresh.load_state_dict(model.state_dict())  # a channels_last checkpoint loads plainly


# ----------------------------------------------------------------------------- runs


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_runs_train_and_evaluate_on_cpu(tmp_path, shared_data, amp):
    train(tmp_path, shared_data, f"training.amp={amp}")
    run = one_run(tmp_path)
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["amp"] == amp
    assert m["nonfinite_losses_skipped"] == 0
    assert all(torch.isfinite(torch.tensor(row)).all() for row in curve(run))
    assert 0 <= m["final_top1"] <= 100


@pytest.mark.slow
def test_channels_last_trains_the_same_and_resumes_either_way(tmp_path, shared_data):
    eager, fast = tmp_path / "eager", tmp_path / "fast"
    train(eager, shared_data)
    train(fast, shared_data, "training.channels_last=true")
    ref = curve(one_run(eager))
    assert_same_curve(curve(one_run(fast)), ref)
    # a channels_last run resumes in the same run directory without it, and the other way
    for root, extra in ((fast, []), (eager, ["training.channels_last=true"])):
        run = one_run(root)
        rewind_to_epoch_1(run)
        out = train(root, shared_data, *extra)
        assert "resuming" in out and one_run(root) == run
        assert_same_curve(curve(run), ref)


@pytest.mark.compile
def test_compiled_run_trains_the_same_and_resumes_either_way(tmp_path, shared_data):
    """Same loss curve as eager (dropout masks included: see fastpath.compiled), SWA on; the
    checkpoint of a compiled run resumes uncompiled and the other way round; the compiled
    run's weights export; a compiled student distils from a compiled teacher."""
    swa = ["training.swa_start=1"]
    eager, fast = tmp_path / "eager", tmp_path / "fast"
    train(eager, shared_data, *swa)
    train(fast, shared_data, *swa, "training.compile=true")
    ref = curve(one_run(eager))
    assert_same_curve(curve(one_run(fast)), ref)
    m_eager = json.loads((one_run(eager) / "metrics.json").read_text())
    m_fast = json.loads((one_run(fast) / "metrics.json").read_text())
    assert m_fast["swa_top1"] == pytest.approx(m_eager["swa_top1"], abs=100 / m_fast["n_test"])
    for root, extra in ((fast, []), (eager, ["training.compile=true"])):
        run = one_run(root)
        rewind_to_epoch_1(run)
        out = train(root, shared_data, *swa, *extra)
        assert "resuming" in out and one_run(root) == run
        assert_same_curve(curve(run), ref)

    # a tiny run: one flipped test sample is more than the plan's 1-point INT8 limit
    exported = run_cli([str(one_run(fast)), "export.max_drop=100"], tmp_path,
                       module="lastexp.export", timeout=900)
    assert exported.returncode == 0, exported.stderr[-2000:]

    student = tmp_path / "student"
    train(student, shared_data, "training.compile=true", "distill=from_existing",
          f"distill.teacher={one_run(eager)}", "training.epochs=1")
    m = json.loads((one_run(student) / "metrics.json").read_text())
    assert m["status"] == "completed" and m["teacher"] == str(one_run(eager))
