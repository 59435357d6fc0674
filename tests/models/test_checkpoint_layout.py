"""A family's checkpoint layout stays what finished runs were saved with: the state-dict keys,
their order (the optimizer's state follows the parameters' order) and shapes, at every flag off
and with each flag on alone. The fingerprints were recorded from the models before their
blocks and stage loop moved to ``lastexp.models.backbone``; a restructuring that renames or
reorders a layer would leave old ``last.pt`` / ``best.pt`` files unloadable and fails here.
A flag added later is not listed here, so adding one touches no file of this test."""

from __future__ import annotations

import hashlib

import pytest
import torch

from lastexp.models import build_model

WIDTH = 0.25  # small and fast; the layout's names and order do not depend on the width
LAYOUTS = {  # "<model>[+<flag>]": sha1 of the "key shape" lines of the state dict, in order
    "last_base": "f2b2375296b23a4d",
    "last_base+cross_temporal": "5cd3dedd8d123503",
    "last_base+factorized_att": "e6d60658c380c419",
    "last_base+freq_gate": "d8bc00fc57086610",
    "last_base+hbra": "366fef28dfc73d0e",
    "last_base+ib_head": "e8ccccd082cd3fef",
    "last_base+partitioned_attention": "7f4dd0de5676004b",
    "last_base+prototype_graph": "41bc5d574b08394a",
    "last_e_base": "74ef6ce3f412748c",
    "last_e_base+ib_head": "37dd8751df262240",
    "last_e_base+use_st_att": "90ed6f0bcff495fb",
    "last_e_large": "c640a1f9156d4f87",
    "last_e_large+ib_head": "7b035ed76eda133f",
    "last_e_large+use_st_att": "e4d1e5b19dfe8903",
    "last_e_nano": "b1f1019052db7bae",
    "last_e_nano+ib_head": "0118a6ef032b1c98",
    "last_e_nano+use_st_att": "c8cddc3dc28301c4",
    "last_e_small": "ac8d35386bbb6bfb",
    "last_e_small+ib_head": "af968fc93cef9f86",
    "last_e_small+use_st_att": "ffb588a66dc0f2e0",
    "last_lite_nano": "f065427c4d3b5f49",
    "last_lite_nano+body_region_shift": "f065427c4d3b5f49",
    "last_lite_nano+dct_gate": "f32aa3e9a4d2e8a1",
    "last_lite_nano+frame_gate": "3f7f9402d77eb9f7",
    "last_lite_nano+ib_head": "1ff4af0d5136b967",
    "last_lite_nano+joint_embed": "fd0468abcc531d6a",
    "last_lite_small": "c2047ffe5ed23a81",
    "last_lite_small+body_region_shift": "c2047ffe5ed23a81",
    "last_lite_small+dct_gate": "738fc24e93325d00",
    "last_lite_small+frame_gate": "6bae3cfcd1ab8e12",
    "last_lite_small+ib_head": "f3ade191fabf4c61",
    "last_lite_small+joint_embed": "4a519008f054fe87",
    "last_v2_base": "02a608075bb5412c",
    "last_v2_base+ib_head": "d73b87a5d62da2aa",
}


def fingerprint(name: str, flag: str | None) -> str:
    kwargs = {}
    if flag == "use_st_att":
        kwargs[flag] = (True, True, True)
    elif flag is not None:
        kwargs[flag] = True
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, num_person=2, width_mult=WIDTH, **kwargs)
    lines = "\n".join(f"{k} {tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha1(lines.encode()).hexdigest()[:16]


@pytest.mark.parametrize("case", sorted(LAYOUTS))
def test_checkpoint_layout_is_unchanged(case):
    name, _, flag = case.partition("+")
    assert fingerprint(name, flag or None) == LAYOUTS[case], (
        f"{case}: the state dict's keys, order or shapes changed; checkpoints of finished runs "
        "would no longer load")
