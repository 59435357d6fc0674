"""Weight-decay exclusions of the training recipe, decided by parameter name and module kind."""

import torch
from torch import nn

from lastexp.train.optim import build_optimizer, no_decay_names, param_groups


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm(4)
        self.alpha = nn.Parameter(torch.zeros(3))
        self.gcn_edge = nn.Parameter(torch.ones(3, 5, 5))
        self.A_learned = nn.Parameter(torch.zeros(5, 5))
        self.pool_gate = nn.Parameter(torch.zeros(1))
        self.fc = nn.Linear(4, 2)


def test_no_decay_names():
    names = no_decay_names(Toy())
    assert names == {
        "conv.bias", "bn.weight", "bn.bias", "ln.weight", "ln.bias", "alpha", "gcn_edge",
        "A_learned", "pool_gate", "fc.bias",
    }


def test_groups_split_and_weight_decay_values():
    model = Toy()
    decay, no_decay = param_groups(model, 0.0004)
    assert decay["weight_decay"] == 0.0004 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model.conv.weight), id(model.fc.weight)}
    assert len(no_decay["params"]) == 10


def test_sgd_nesterov_and_adamw():
    sgd = build_optimizer(Toy(), name="sgd", lr=0.1, weight_decay=4e-4)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    adamw = build_optimizer(Toy(), name="adamw", lr=1e-3, weight_decay=0.05, betas=[0.9, 0.99])
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.9, 0.99)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.05, 0.0]
