"""The ``model`` group's schema and its check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING, DictConfig

from lastexp.config.ranges import AT_LEAST_ONE, BELOW_ONE, UNIT, Range
from lastexp.errors import ConfigError


@dataclass
class ModelConfig:
    RANGES: ClassVar[dict[str, Range]] = {  # the allowed values of this group's numbers
        "width_mult": Range(0, 8, low_open=True),
        "drop_path_rate": UNIT, "dropout": BELOW_ONE, "num_prototypes": AT_LEAST_ONE,
    }

    name: str = MISSING  # registry key in lastexp.models
    width_mult: float = 1.0  # debug=tiny narrows every stage, keeping every component on
    drop_path_rate: float = 0.0
    dropout: float = 0.0
    use_st_att: list[bool] = field(default_factory=lambda: [False, False, True])
    # The families' component flags, one typed field each (Hydra types model.X=... with it).
    # Which family reads which is its Flags dataclass (lastexp.models.family_flags); a flag
    # set on a family that does not read it is refused there, at its default it is unused.
    cross_temporal: bool = False
    prototype_graph: bool = False
    num_prototypes: int = 15
    freq_gate: bool = False
    partitioned_attention: bool = False
    hbra: bool = False
    factorized_att: bool = False
    ib_head: bool = False
    joint_embed: bool = False
    frame_gate: bool = False
    body_region_shift: bool = False
    dct_gate: bool = False


def check_model(m: DictConfig) -> None:
    if len(m.use_st_att) != 3:
        raise ConfigError(
            "model.use_st_att must list one flag per stage, e.g. [false,false,true]"
        )
