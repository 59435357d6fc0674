"""What identifies a run to the runs that read it: ablation, dataset, stream, seed and the
debug preset. A teacher trained under ``debug=tiny`` serves only ``debug=tiny`` students; the
run itself, ``python -m lastexp.plan`` and the SLURM launcher all match runs by this one key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@dataclass(frozen=True)
class RunIdentity:
    ablation: str
    dataset: str
    stream: str
    seed: int
    debug: str | None = None

    def describe(self) -> str:
        return f"{self.ablation} ({self.dataset}, stream {self.stream}, seed {self.seed})"

    def matches(self, metrics: dict[str, Any]) -> bool:
        """Whether a run's metrics.json is this run's (every identity field equal)."""
        return (metrics.get("ablation") == self.ablation
                and metrics.get("dataset") == self.dataset
                and metrics.get("stream") == self.stream
                and metrics.get("seed") == self.seed
                and metrics.get("debug") == self.debug)

    def args(self, extra: list[str] | None = None) -> list[str]:
        """The command-line overrides that produce this run; ``extra`` are the dependent
        run's shared overrides (paths, debug preset, ...:
        :func:`lastexp.dependencies.requirements.shared_overrides`)."""
        extra = list(extra or [])
        if self.debug and not any(o.lstrip("+").startswith("debug=") for o in extra):
            extra.append(f"debug={self.debug}")
        return [f"+ablation={self.ablation}", f"dataset={self.dataset}",
                f"stream={self.stream}", f"seed={self.seed}", *extra]

    def command(self, extra: list[str] | None = None) -> str:
        """The exact command that produces this run (see :meth:`args`)."""
        return "python -m lastexp " + " ".join(self.args(extra))


def debug_of(cfg: DictConfig) -> str | None:
    """The debug preset a config was composed with: from its ``hydra`` node, which
    ``compose(..., return_hydra_config=True)`` and a running job carry; else from the running
    Hydra job; None when there is neither."""
    try:
        return cfg.hydra.runtime.choices.get("debug")
    except Exception:  # noqa: BLE001 -- composed without the hydra node
        pass
    try:
        return HydraConfig.get().runtime.choices.get("debug")
    except ValueError:  # no Hydra job is running
        return None


def identity_of(cfg: DictConfig) -> RunIdentity | None:
    """The identity of the run ``cfg`` trains; None for a config that is no ablation run."""
    if not cfg.get("ablation") or "dataset" not in cfg:
        return None
    return RunIdentity(str(cfg.ablation), str(cfg.dataset.name), str(cfg.stream.name),
                       int(cfg.seed), debug_of(cfg))
