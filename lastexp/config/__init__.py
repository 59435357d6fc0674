"""Structured-config schema for the Hydra app, one module per group with its checks.

Every YAML file under ``conf/`` is merged onto these dataclasses, so a typo'd key or a
value of the wrong type fails at composition time, naming the key. Value checks that a
type cannot express (a negative learning rate, batch_size 0) sit beside each group's schema;
:func:`validate` runs them all.

- :mod:`~lastexp.config.ranges`: :class:`Range`, the allowed values of a number key;
- :mod:`~lastexp.config.model`: ``model``;
- :mod:`~lastexp.config.data`: ``stream``, ``preprocessing``, ``dataset`` and the validation split;
- :mod:`~lastexp.config.training`: ``optimizer``, ``scheduler``, ``training``;
- :mod:`~lastexp.config.teachers`: ``distill``, ``pretrain``, ``ensemble``;
- :mod:`~lastexp.config.bookkeeping`: ``logger``, ``search``, ``paths``;
- :mod:`~lastexp.config.schema`: the root :class:`Config`, the choices, :func:`validate`.

This package must stay importable without torch: ``python -m lastexp --cfg job`` only
composes a config and should take well under a second. The run key derived from a config
lives with the run store (:mod:`lastexp.runstore.key`), command-line aliases in
:mod:`lastexp.aliases`, the errors in :mod:`lastexp.errors`.
"""

from lastexp.config.bookkeeping import LoggerConfig, PathsConfig, SearchConfig, check_paths
from lastexp.config.data import (
    STREAMS,
    SUBJECT_SPLITS,
    DatasetConfig,
    PreprocessingConfig,
    StreamConfig,
    SyntheticConfig,
    check_dataset,
    check_preprocessing,
    check_selection,
    val_subjects_spec,
)
from lastexp.config.model import ModelConfig, check_model
from lastexp.config.ranges import AT_LEAST_ONE, BELOW_ONE, NON_NEGATIVE, POSITIVE, UNIT, Range
from lastexp.config.schema import CHOICES, Config, validate
from lastexp.config.teachers import (
    DistillConfig,
    EnsembleConfig,
    PretrainConfig,
    check_distill,
    check_ensemble,
    weights_problem,
)
from lastexp.config.training import (
    AMP_CHOICES,
    COMPILE_MODES,
    OptimizerConfig,
    SchedulerConfig,
    TrainingConfig,
    amp_mode,
    check_optimizer,
    check_scheduler,
    check_training,
    swa_start_epoch,
)

__all__ = [
    "AMP_CHOICES", "AT_LEAST_ONE", "BELOW_ONE", "CHOICES", "COMPILE_MODES", "NON_NEGATIVE",
    "POSITIVE", "STREAMS", "SUBJECT_SPLITS", "UNIT", "Config", "DatasetConfig", "DistillConfig",
    "EnsembleConfig", "LoggerConfig", "ModelConfig", "OptimizerConfig", "PathsConfig",
    "PreprocessingConfig", "PretrainConfig", "Range", "SchedulerConfig", "SearchConfig",
    "StreamConfig", "SyntheticConfig", "TrainingConfig", "amp_mode", "check_dataset",
    "check_distill", "check_ensemble", "check_model", "check_optimizer", "check_paths",
    "check_preprocessing", "check_scheduler", "check_selection", "check_training",
    "swa_start_epoch", "val_subjects_spec", "validate", "weights_problem",
]
