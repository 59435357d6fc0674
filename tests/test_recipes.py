"""The recipes of the training notes, reproduced exactly: each expected value below is the
notes' own number (the training recipe's tables and commands, the training plan's §2 and §7),
never one read back from lastexp."""

from __future__ import annotations

import json

import pytest
import torch

from lastexp import build
from lastexp.aliases import normalize_overrides
from lastexp.config import swa_start_epoch, validate
from lastexp.errors import ConfigError
from lastexp.models import build_model, count_params
from lastexp.models.blocks import DropPath
from lastexp.train.early_stopping import EarlyStopping
from lastexp.train.schedule import build_scheduler
from tests.conftest import compose, run_cli


def test_supervised_runs_are_not_augmented_by_default():
    assert compose().training.augment is False
    for row in ("B7", "L5", "P0"):
        assert compose([f"ablation={row}"]).training.augment is False


# the training recipe's regularisation stack: "IB loss | weight=0.01 | (base/large)"
@pytest.mark.parametrize("model,weight", [("last_e_base", 0.01), ("last_e_large", 0.01),
                                          ("base_e_v3", 0.01), ("last_e_nano", 0.0),
                                          ("last_e_small", 0.0)])
def test_ib_loss_weight_follows_the_model(model, weight):
    cfg = compose([f"model={model}"])
    assert cfg.training.ib_loss_weight == weight
    assert compose().training.ib_loss_weight == 0.01  # the default run: base, Phase A+B+D


# the training recipe's model table: nano 83K, small 345K, base 720K, large 1.08M, LAST-v2 ~9.2M
@pytest.mark.parametrize("model,notes", [("nano_e_v3", 83e3), ("small_e_v3", 345e3),
                                         ("base_e_v3", 720e3), ("large_e_v3", 1.08e6),
                                         ("base", 9.2e6)])
def test_params_of_the_default_run_match_the_model_table(model, notes):
    cfg = compose([f"model={model}"])
    params = count_params(build.model(cfg.model, num_classes=60, num_person=2,
                                      ib_loss_weight=cfg.training.ib_loss_weight))
    assert abs(params - notes) / notes <= 0.15, params


def test_the_ib_variance_branch_is_training_only():
    with_ib = build_model("last_e_base", num_classes=60, ib_head=True)
    plain = build_model("last_e_base", num_classes=60)
    c = with_ib.stage_channels[-1]
    # fc_mu (c x c + c) is read at inference; fc_logvar only in training
    assert count_params(with_ib) - count_params(plain) == c * c + c
    with_ib.eval()
    x = torch.randn(2, 3, 16, 25, 1)
    _, feats = with_ib(x, return_features=True)
    assert feats["logvar"] is None and torch.equal(feats["z"], feats["mu"])


def test_swa_start_takes_a_fraction_of_the_epochs():
    # the training plan §7: swa_start = int(0.75 * total_epochs)
    assert swa_start_epoch(0.75, 200) == 150 and swa_start_epoch(0.75, 90) == 67
    assert swa_start_epoch(10, 200) == 10 and swa_start_epoch(None, 200) is None
    b13 = compose(["ablation=B13"])
    assert b13.training.swa_start == 0.75
    validate(compose(["ablation=B13", "debug=tiny"]))  # one epoch: averages from epoch 0
    with pytest.raises(ConfigError, match="training.swa_start"):
        validate(compose(["training.swa_start=1.5"]))


def test_last_base_droppath_is_per_stage():
    # the training plan §2: DropPath [0.0, 0.1, 0.2], linearly increasing across stages
    model = build_model("last_base", num_classes=60, drop_path_rate=0.2)
    rates = [sorted({round(m.drop_prob, 6) for m in stage.modules() if isinstance(m, DropPath)})
             for stage in model.stages]
    assert rates == [[0.0], [0.1], [0.2]]


def lrs(**kw) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=kw["lr"])
    sched = build_scheduler(opt, **kw)
    out = []
    for _ in range(kw["epochs"]):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_from_zero():
    got = lrs(name="cosine_warmup", epochs=10, lr=0.1, warmup_epochs=5, warmup_start_lr=0.0,
              min_lr=0.0)
    # the vision guide's lr = peak * epoch / warmup_epochs; the peak from epoch 5 on
    assert got[:6] == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08, 0.1])
    validate(compose(["scheduler.warmup_start_lr=0"]))


def test_warmup_above_the_peak_is_refused_naming_both_keys():
    validate(compose(["optimizer=adamw"]))  # the option brings the plan's start, 1e-5
    with pytest.raises(ConfigError) as err:
        validate(compose(["optimizer=adamw", "scheduler.warmup_start_lr=0.01"]))
    assert "scheduler.warmup_start_lr" in str(err.value) and "optimizer.lr" in str(err.value)


# the training recipe's Phase A+B+D command, --set replaced by Hydra overrides as written
SEED_000 = [
    "model=base_e_v3", "training.epochs=90", "training.batch_size=32", "optimizer.lr=0.1",
    "optimizer.weight_decay=0.0004", "model.dropout=0.3", "scheduler=cosine_warmup_restart",
    "scheduler.min_lr=0.0001", "training.amp=true", "seed=42",
    "training.gradient_clip=1.0", "training.gradient_accumulation_steps=2",
    "training.warmup_epochs=5", "training.warmup_start_lr=0.01", "training.label_smoothing=0.1",
    "training.ib_loss_weight=0.01", "training.save_interval=10", "training.nesterov=true",
    "training.momentum=0.9", "training.restart_period=30", "training.restart_mult=1",
    "model.drop_path_rate=0.15", "model.use_st_att=false,false,true",
]


def test_the_recipe_command_runs_as_written():
    cfg = compose(normalize_overrides(SEED_000))
    validate(cfg)
    assert cfg.model.name == "last_e_base" and list(cfg.model.use_st_att) == [False, False, True]
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.nesterov,
            cfg.optimizer.weight_decay) == (0.1, 0.9, True, 0.0004)
    assert (cfg.scheduler.warmup_epochs, cfg.scheduler.warmup_start_lr, cfg.scheduler.min_lr,
            cfg.scheduler.restart_period, cfg.scheduler.restart_mult) == (5, 0.01, 0.0001, 30, 1)
    assert (cfg.training.epochs, cfg.training.batch_size, cfg.training.ib_loss_weight,
            cfg.seed) == (90, 32, 0.01, 42)
    # the training plan §2's stream key, and its stream names
    assert compose(normalize_overrides(["data.dataset.stream=joint_velocity"])).stream.name \
        == "velocity"


def test_recipe_command_through_the_cli(tmp_path):
    out = run_cli([*SEED_000, "--cfg", "job"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "restart_period: 30" in out.stdout and "ib_loss_weight: 0.01" in out.stdout


def test_early_stopping_monitors_loss_with_min_delta():
    rows = [{"val_top1": 10, "val_loss": 2.0}, {"val_top1": 12, "val_loss": 1.95},
            {"val_top1": 14, "val_loss": 1.94}, {"val_top1": 16, "val_loss": 1.935}]
    loss = EarlyStopping(2, "val_loss", min_delta=0.02)
    for i, row in enumerate(rows):
        loss.update(row)
        assert loss.should_stop == (i == 3)  # epochs 3 and 4 gain < 0.02 over epoch 2
    top1 = EarlyStopping(2, "val_top1", min_delta=1.0).replay(rows)
    assert not top1.should_stop and top1.best_epoch == 4
    assert not EarlyStopping(None).replay(rows).should_stop


def test_debug_overfit_memorises_and_says_so(tmp_path, shared_data):
    out = run_cli(["debug=overfit", "model=last_e_nano", "logger=none",
                   f"paths.runs={tmp_path / 'runs'}", f"paths.data={shared_data}",
                   "dataset.limit=8"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "overfit check passed: all 8 training samples memorised after" in out.stdout
    (metrics,) = (tmp_path / "runs").rglob("metrics.json")
    m = json.loads(metrics.read_text())
    assert m["memorised"] is True and m["epochs_done"] == m["memorised_at_epoch"] < 200


# the training plan §3's distillation table: (alpha, beta, head dropout) per student column,
# and the recipe both columns share
@pytest.mark.parametrize("distill,model,alpha,beta,dropout", [
    ("from_base", "last_lite_nano", 0.3, 0.7, 0.1),
    ("from_base", "last_lite_small", 0.5, 0.5, 0.15),
    ("from_base", "shiftfuse_nano", 0.3, 0.7, 0.1),
    ("from_existing", "last_lite_small", 0.5, 0.5, 0.15),  # §3B: alpha = beta = 0.5
    ("from_existing", "last_lite_nano", 0.5, 0.5, 0.1),
])
def test_distillation_recipe_follows_the_student(distill, model, alpha, beta, dropout):
    cfg = compose([f"distill={distill}", f"model={model}"])
    d, t = cfg.distill, cfg.training
    assert (d.alpha, d.beta, d.gamma, d.tau, cfg.model.dropout) == (alpha, beta, 0.1, 4.0,
                                                                    dropout)
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.nesterov) == ("sgd", 0.1, True)
    assert (cfg.scheduler.name, cfg.scheduler.warmup_epochs) == ("cosine_warmup", 5)
    assert (t.epochs, t.batch_size * t.gradient_accumulation_steps, t.label_smoothing,
            t.gradient_clip, cfg.model.drop_path_rate) == (120, 64, 0.0, 1.0, 0.0)


def test_distillation_recipe_shows_in_cfg_job(tmp_path):
    out = run_cli(["distill=from_base", "model=last_lite_nano", "--cfg", "job"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "alpha: 0.3" in out.stdout and "beta: 0.7" in out.stdout
    assert "epochs: 120" in out.stdout


def test_a_checkpoint_with_the_old_linear_warmup_is_refused_in_one_line(tmp_path, shared_data):
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    args = ["debug=tiny", "logger=none", "model=last_e_nano", "run_name=old",
            "training.epochs=3", "scheduler.warmup_epochs=2",
            f"paths.runs={tmp_path / 'runs'}", f"paths.data={shared_data}"]
    assert run_cli(args, tmp_path).returncode == 0
    run = tmp_path / "runs" / "old"
    ckpt = run / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=True)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    old = SequentialLR(opt, [LinearLR(opt, start_factor=0.1, total_iters=4),
                             CosineAnnealingLR(opt, T_max=5)], milestones=[5])
    state["scheduler"] = old.state_dict()  # what lastexp wrote before the LambdaLR warmup
    torch.save(state, ckpt)
    m = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**m, "status": "running"}))
    out = run_cli(args, tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "fresh=true" in lines[0], out.stderr[-1500:]


@pytest.mark.parametrize("overrides, needle", [
    (["ablation=L11", "stream=bone", "distill.teacher_streams=[joint,velocity]"],
     "lacks the student's stream bone"),
    (["ablation=L11", "distill.teacher_streams=[joint,joint]"], "names a stream twice"),
    (["ablation=L11", "distill.teacher_streams=[joint,elbow]"], "'elbow' is not one of"),
    (["ablation=L11", "distill.teacher=runs/x", "distill.teacher_streams=[joint,bone]"],
     "needs an ablation ID"),
    (["distill.teacher_streams=[joint,bone]"], "no effect without distillation"),
])
def test_ensemble_teacher_streams_are_checked(overrides, needle):
    with pytest.raises(ConfigError, match="distill.teacher") as err:
        validate(compose(overrides))
    assert needle in str(err.value)


def test_a_new_option_at_its_default_keeps_the_run_identity():
    # distill.teacher_streams came after runs were stored: at [] it must not rename them
    from lastexp.runstore.key import identity

    assert "teacher_streams" not in identity(compose(["ablation=L11"]))["distill"]
    with_ensemble = compose(["ablation=L11", "distill.teacher_streams=[joint,bone]"])
    assert identity(with_ensemble)["distill"]["teacher_streams"] == ["joint", "bone"]
