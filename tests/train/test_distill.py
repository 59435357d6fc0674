"""Distillation losses against hand computations; the frozen teacher; the logit cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from lastexp.io import write_json
from lastexp.models import build_model
from lastexp.teachers import TeacherError, load_teacher
from lastexp.train.distill import (
    Distiller,
    FeatureProjector,
    IndexedDataset,
    TeacherLogitCache,
    TeacherMember,
    distillation_loss,
    kd_loss,
)


def tiny(name: str = "last_e_nano", k: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, num_classes=k, num_person=1, width_mult=0.25)


def batch(n: int = 4, t: int = 16, k: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, t, 25, 1, generator=g), torch.randint(0, k, (n,), generator=g)


def _softmax(v: list[float]) -> list[float]:
    e = [math.exp(a) for a in v]
    return [a / sum(e) for a in e]


def test_student_columns_match_the_plan():
    # the training plan §3 "Distillation Hyperparameters": nano 0.3 / 0.7, small 0.5 / 0.5,
    # feature weight 0.1, temperature 4, from the composed config the run trains with
    from tests.conftest import compose

    for model, (alpha, beta) in (("last_lite_nano", (0.3, 0.7)),
                                 ("last_lite_small", (0.5, 0.5))):
        d = compose(["distill=from_base", f"model={model}"]).distill
        assert (d.alpha, d.beta, d.gamma, d.tau) == (alpha, beta, 0.1, 4.0), model


def test_kd_with_temperature_by_hand():
    s, t, tau = [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]], [[3.0, 1.0, 0.0], [1.0, 1.0, 1.0]], 2.0
    expected = 0.0
    for si, ti in zip(s, t):
        ps, pt = _softmax([a / tau for a in si]), _softmax([a / tau for a in ti])
        expected += sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))
    expected = tau**2 * expected / len(s)  # batchmean
    got = kd_loss(torch.tensor(s), torch.tensor(t), tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_total_is_weighted_sum_and_zero_weights_are_skipped():
    s = torch.tensor([[1.0, 2.0, 3.0]])
    t = torch.tensor([[3.0, 1.0, 0.0]])
    y = torch.tensor([2])
    ce = -math.log(_softmax([1.0, 2.0, 3.0])[2])
    kd = kd_loss(s, t, 4.0).item()
    total, parts = distillation_loss(s, t, y, None, None, None,
                                     alpha=0.3, beta=0.7, gamma=0.0, tau=4.0)
    assert total.item() == pytest.approx(0.3 * ce + 0.7 * kd, rel=1e-5)
    assert set(parts) == {"ce", "kd"}
    total, parts = distillation_loss(s, None, y, None, None, None,
                                     alpha=1.0, beta=0.0, gamma=0.0, tau=4.0)
    assert set(parts) == {"ce"} and total.item() == pytest.approx(ce, rel=1e-5)


def test_feature_mimicry_through_known_projection_and_time_pooling():
    proj = FeatureProjector([1], [2])
    with torch.no_grad():
        proj.proj[0].weight.copy_(torch.tensor([[[[2.0]]], [[[-1.0]]]]))  # (2, 1, 1, 1)
        proj.proj[0].bias.copy_(torch.tensor([1.0, 0.0]))
    fs = torch.tensor([1.0, 3.0]).view(1, 1, 2, 1)  # student T=2 -> pooled to T=1: 2.0
    ft = torch.tensor([4.0, -1.0]).view(1, 2, 1, 1)  # teacher T=1
    # proj(2.0) = [2*2+1, -2] = [5, -2]; MSE vs [4, -1] = ((1)^2 + (1)^2) / 2 = 1
    total, parts = distillation_loss(
        torch.zeros(1, 3), None, torch.tensor([0]), [fs], [ft], proj,
        alpha=0.0, beta=0.0, gamma=0.5, tau=4.0,
    )
    assert parts == {"feat": pytest.approx(1.0)}
    assert total.item() == pytest.approx(0.5)


def test_projector_maps_student_to_teacher_widths():
    s, t = tiny("last_e_nano"), tiny("last_e_small")
    proj = FeatureProjector.between(s, t)
    assert [(c.in_channels, c.out_channels) for c in proj.proj] == list(
        zip(s.stage_channels, t.stage_channels)
    )


def test_distill_step_leaves_teacher_frozen_and_trains_student_and_projector():
    student, teacher = tiny("last_e_nano"), tiny("last_e_small", seed=3)
    teacher.train()  # the distiller must put it in eval mode itself
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    proj = FeatureProjector.between(student, teacher)
    loss_fn = Distiller(teacher, proj, alpha=0.3, beta=0.7, gamma=0.1, tau=4.0)
    opt = torch.optim.SGD([*student.parameters(), *proj.parameters()], lr=0.1)
    x, y = batch()
    student.train()
    loss, logits = loss_fn(student, x, y)
    loss.backward()
    opt.step()
    assert logits.shape == (4, 5) and torch.isfinite(loss)
    assert set(loss_fn.last_parts) == {"ce", "kd", "feat"}
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    for k, v in teacher.state_dict().items():  # weights and BN running stats
        assert torch.equal(v, before[k]), k
    assert all(p.grad is not None for p in proj.parameters())


def test_ensemble_teacher_sums_weighted_logits():
    a, b = tiny("last_e_nano", seed=4), tiny("last_e_small", seed=5)
    d = Distiller([TeacherMember(a, 0.6), TeacherMember(b, 0.4)], None,
                  alpha=0.5, beta=0.5, gamma=0.0, tau=4.0)
    x, _ = batch()
    with torch.no_grad():
        expected = 0.6 * a(x) + 0.4 * b(x)
    torch.testing.assert_close(d.teacher_logits(x), expected)


def test_logit_cache_equals_live_teacher():
    teacher, student = tiny("last_e_small", seed=6), tiny("last_e_nano")
    x, y = batch(n=10)
    data = torch.utils.data.TensorDataset(x, y)
    live = Distiller(teacher, None, alpha=0.5, beta=0.5, gamma=0.0, tau=4.0)
    cache = TeacherLogitCache.build(live.teacher_logits, data, batch_size=3)
    cached = Distiller(teacher, None, alpha=0.5, beta=0.5, gamma=0.0, tau=4.0, cache=cache)
    assert len(cache) == 10
    loader = torch.utils.data.DataLoader(
        IndexedDataset(data), batch_size=4, shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    student.eval()
    n = 0
    for xb, yb in cached.with_indices(loader):
        torch.testing.assert_close(cache[cached.batch_index], live.teacher_logits(xb),
                                   atol=1e-5, rtol=1e-5)
        l_cached, _ = cached(student, xb, yb)
        l_live, _ = live(student, xb, yb)
        torch.testing.assert_close(l_cached, l_live, atol=1e-5, rtol=1e-5)
        n += len(yb)
    assert n == 10 and cached.batch_index is None


# --------------------------------------------------------------------------- load_teacher


def fake_run(root, *, status="completed", num_classes=5, dataset="ntu60_xsub",
             split="xsub", checkpoint=True):
    run = root / "teacher"
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "metrics.json", {"status": status, "dataset": dataset, "split": split,
                                      "stream": "joint", "best_top1": 50.0})
    model = tiny("last_e_small", k=num_classes, seed=7)
    if checkpoint:
        (run / "checkpoints").mkdir(exist_ok=True)
        torch.save({
            "model": model.state_dict(), "model_name": "last_e_small", "epoch": 3,
            "num_classes": num_classes, "stream": "joint",
            "config": {"model": {"name": "last_e_small", "width_mult": 0.25, "ib_head": False},
                       "dataset": {"name": dataset, "split": split},
                       "preprocessing": {"num_person": 1},
                       "training": {"ib_loss_weight": 0.0}},
        }, run / "checkpoints" / "best.pt")
    return run, model


def test_load_teacher_builds_frozen_model(tmp_path):
    run, original = fake_run(tmp_path)
    model, info = load_teacher(run, num_classes=5, device="cpu", expect_dataset="ntu60_xsub",
                               expect_split="xsub")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert info["model"] == "last_e_small" and info["checkpoint"].endswith("best.pt")
    x, _ = batch()
    original.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x))


@pytest.mark.parametrize(
    "make, kwargs, needle",
    [
        (lambda p: p / "nope", {}, "does not exist"),
        (lambda p: fake_run(p, status="failed")[0], {}, "not 'completed'"),
        (lambda p: fake_run(p, checkpoint=False)[0], {}, "no checkpoints"),
        (lambda p: fake_run(p, num_classes=7)[0], {}, "7 classes"),
        (lambda p: fake_run(p)[0], {"expect_dataset": "ntu120_xsub"}, "dataset"),
        (lambda p: fake_run(p)[0], {"expect_split": "xview"}, "split"),
    ],
)
def test_load_teacher_refuses(tmp_path, make, kwargs, needle):
    with pytest.raises(TeacherError, match=needle) as err:
        load_teacher(make(tmp_path), num_classes=5, **kwargs)
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)


def test_teachers_of_other_streams_get_their_own_input():
    from lastexp.data.streams import to_stream

    student, a, b = tiny("last_e_nano"), tiny("last_e_nano", seed=4), tiny("last_e_small", seed=5)
    d = Distiller([TeacherMember(a, 0.6, "joint"), TeacherMember(b, 0.4, "bone")], None,
                  alpha=0.5, beta=0.5, gamma=0.0, tau=4.0, student_stream="velocity")
    x, y = batch()
    with torch.no_grad():
        expected = 0.6 * a(x) + 0.4 * b(to_stream(x, "bone"))
    torch.testing.assert_close(d.teacher_logits(x), expected)
    student.eval()
    _, logits = d(student, x, y)
    with torch.no_grad():
        torch.testing.assert_close(logits, student(to_stream(x, "velocity")))
    with pytest.raises(ValueError, match="student_stream"):
        Distiller([TeacherMember(a, 1.0, "bone")], None, alpha=1, beta=1, gamma=0, tau=4)


@pytest.mark.learn  # five tiny runs in a row (~1.5 min on 2 cores)
def test_four_stream_ensemble_teacher_end_to_end(tmp_path, shared_data):
    # the training plan §3A: teacher = the LAST-Base four-stream ensemble; run_dependencies
    # trains the four B7 runs the student reads, and the run records each member
    from tests.conftest import run_cli

    streams = ["joint", "bone", "velocity", "bone_velocity"]
    out = run_cli(["+ablation=L11", f"distill.teacher_streams=[{','.join(streams)}]",
                   "stream=velocity", "run_dependencies=true", "debug=tiny", "logger=none",
                   f"paths.runs={tmp_path / 'runs'}", f"paths.data={shared_data}"], tmp_path,
                  timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    (student,) = (tmp_path / "runs").glob("L11_velocity_*/metrics.json")
    m = json.loads(student.read_text())
    assert m["status"] == "completed"
    members = [json.loads((Path(d) / "metrics.json").read_text()) for d in m["teacher_members"]]
    assert [t["stream"] for t in members] == ["velocity", "joint", "bone", "bone_velocity"]
    assert {t["ablation"] for t in members} == {"B7"} and m["teacher"] == m["teacher_members"][0]
