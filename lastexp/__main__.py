"""`python -m lastexp [overrides]`: compose the config with Hydra and run one training job."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lastexp.config import normalize_overrides, register_configs, register_resolvers

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_configs()
register_resolvers()


def preflight(argv: list[str]) -> str | None:
    """Checks that must happen before Hydra creates a run directory (its callbacks cannot
    abort a run): the runs root named by ``paths.runs`` must be a writable directory."""
    if any(a in ("--cfg", "-c", "--help", "-h", "--info", "--hydra-help") for a in argv):
        return None
    runs = "runs"
    for arg in argv:
        if arg.startswith("paths.runs="):
            runs = arg.split("=", 1)[1]
    if "," in runs:  # a sweep over runs roots: each job checks its own
        return None
    root = Path(runs)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (f"paths.runs={runs}: cannot create the runs directory ({exc.strerror}); "
                "choose a writable paths.runs")
    if not os.access(root, os.W_OK | os.X_OK):
        return (f"paths.runs={runs}: the runs directory is not writable; "
                "choose a writable paths.runs")
    return None


def check_single_ablation(argv: list[str]) -> str | None:
    for arg in argv:
        if arg.startswith("ablation="):
            value = arg.split("=", 1)[1]
            if value.startswith("["):
                return (f"{arg}: one run takes one ablation; to run several, sweep them: "
                        f"--multirun ablation={value.strip('[]')}")
    return None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from lastexp.run import run_job  # torch is imported here, never at composition time

    return run_job(cfg)


if __name__ == "__main__":
    sys.argv[1:] = normalize_overrides(sys.argv[1:])
    from lastexp.launch.preflight import slurm_problem

    problem = (check_single_ablation(sys.argv[1:]) or preflight(sys.argv[1:])
               or slurm_problem(sys.argv[1:]))
    if problem:
        print(f"lastexp: error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
