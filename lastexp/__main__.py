"""`python -m lastexp [overrides]`: compose the config with Hydra and run one training job."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from lastexp.config import register_configs, register_resolvers

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_configs()
register_resolvers()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from lastexp.run import run_job  # torch is imported here, never at composition time

    return run_job(cfg)


if __name__ == "__main__":
    main()
