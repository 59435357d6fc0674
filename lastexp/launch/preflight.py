"""Preflight for SLURM sweeps: is the cluster reachable, does the partition exist, and can
its nodes meet what each job asks for (GPUs, CPUs, memory)?

Without it, ``python -m lastexp --multirun hydra/launcher=submitit_slurm ...`` against an
unreachable controller or a wrong partition ends in a submitit traceback (after sbatch's own
retries), with the sweep directory already created. :func:`slurm_problem` runs ``sinfo`` once
(bounded by a timeout) and turns each failure into one line naming the problem and the fix.

Hydra-independent: it reads the command-line overrides, and the requested resources from the
``hydra.launcher`` node of the config that ``lastexp/command_checks.py`` composed before Hydra
starts (without one, from the preset and the command line).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from lastexp.app import CONF_DIR

LAUNCHER = "submitit_slurm"
SINFO_TIMEOUT_S = 20.0
PRESET = CONF_DIR / "hydra" / "launcher" / f"{LAUNCHER}.yaml"


class SlurmUnavailable(RuntimeError):
    """The SLURM cluster cannot take the sweep; the message says why and what to do."""


def _conf_hint() -> str:
    conf = os.environ.get("SLURM_CONF")
    return f"SLURM_CONF={conf}" if conf else "SLURM_CONF is unset"


def check_slurm(partition: str | None = None, timeout: float = SINFO_TIMEOUT_S,
                sinfo: str | None = None) -> list[str]:
    """Raise :class:`SlurmUnavailable` unless ``sinfo`` answers and lists ``partition``.

    Returns the partitions sinfo lists (the default one first, without its ``*``).
    ``partition=None`` means the cluster's default partition: only reachability is checked.
    """
    prog = sinfo or shutil.which("sinfo")
    if prog is None:
        raise SlurmUnavailable(
            f"hydra/launcher={LAUNCHER}: the SLURM client programs (sinfo, sbatch) are not "
            "installed here; submit from a cluster login node, or run the sweep on this "
            "machine with hydra/launcher=submitit_local")
    try:
        proc = subprocess.run([prog, "-h", "-o", "%P"], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(
            f"hydra/launcher={LAUNCHER}: the SLURM controller did not answer within "
            f"{timeout:.0f} s (sinfo timed out; {_conf_hint()}); check that slurmctld runs "
            "(scontrol ping) and that SLURM_CONF names the right cluster") from None
    except OSError as exc:
        raise SlurmUnavailable(f"hydra/launcher={LAUNCHER}: cannot run {prog} "
                               f"({exc.strerror or exc}); check the SLURM installation") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        # the last line is the decisive one (e.g. "fatal: Could not establish a configuration
        # source" after the DNS SRV lookups; "Unable to contact slurm controller")
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise SlurmUnavailable(
            f"hydra/launcher={LAUNCHER}: cannot reach the SLURM controller (sinfo: {why}; "
            f"{_conf_hint()}); point SLURM_CONF at the cluster's slurm.conf and check that "
            "slurmctld runs (scontrol ping); for the local test cluster: "
            "python tools/local_slurm.py start (from a clone)")
    names = [p.strip() for p in proc.stdout.split() if p.strip()]
    default = [p.rstrip("*") for p in names if p.endswith("*")]
    listed = default + [p.rstrip("*") for p in names if not p.endswith("*")]
    listed = list(dict.fromkeys(listed))
    if not listed:
        raise SlurmUnavailable(f"hydra/launcher={LAUNCHER}: the SLURM cluster lists no "
                               f"partition (sinfo; {_conf_hint()}); ask the cluster's admins")
    if partition is not None:
        wanted = [p.strip() for p in str(partition).split(",") if p.strip()]
        missing = [p for p in wanted if p not in listed]
        if missing:
            avail = ", ".join(f"{p} (default)" if p in default else p for p in listed)
            raise SlurmUnavailable(
                f"hydra.launcher.partition={partition}: no such SLURM partition "
                f"{', '.join(missing)}; available: {avail}")
    return listed


def _override(arg: str) -> tuple[str, str] | None:
    if "=" not in arg or arg.startswith("-"):
        return None
    key, value = arg.split("=", 1)
    return key.lstrip("+~"), value


def wants_slurm(argv: list[str]) -> bool:
    """True when the command line sends a multirun to the SLURM launcher."""
    multirun = any(a in ("--multirun", "-m") for a in argv)
    launcher = any((_override(a) or ("", ""))[0] == "hydra/launcher"
                   and (_override(a) or ("", ""))[1] == LAUNCHER for a in argv)
    return multirun and launcher


def requested_partition(argv: list[str]) -> str | None:
    """The partition from ``hydra.launcher.partition=...`` (last one wins); None = default."""
    partition = None
    for arg in argv:
        kv = _override(arg)
        if kv and kv[0] == "hydra.launcher.partition":
            value = kv[1].strip().strip("'\"")
            partition = None if value.lower() in ("", "null", "none") else value
    return partition


def slurm_problem(argv: list[str], timeout: float = SINFO_TIMEOUT_S,
                  launcher: Mapping[str, Any] | None = None) -> str | None:
    """One-line problem for the command's checks before Hydra starts, or None (also when the
    command line does not ask for the SLURM launcher, or only asks for help/config output).
    ``launcher``: the composed ``hydra.launcher`` node, when there is one."""
    if any(a in ("--cfg", "-c", "--help", "-h", "--info", "--hydra-help") for a in argv):
        return None
    if not wants_slurm(argv):
        return None
    partition = requested_partition(argv)
    try:
        check_slurm(partition, timeout=timeout)
    except SlurmUnavailable as exc:
        return str(exc)
    if partition is not None and "," in partition:
        return None  # several partitions: SLURM picks one that fits
    return resource_problem(partition, requested_resources(argv, launcher),
                            partition_nodes(partition, timeout))


@dataclass(frozen=True)
class NodeShape:
    """What one node of a partition offers, as sinfo reports it."""

    cpus: int
    mem_mb: int
    gpus: int


def _gpus(gres: str) -> int:
    """GPUs in a sinfo GRES field such as ``gpu:4``, ``gpu:a100:8(S:0-1)``, ``(null)``."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu":
            count = parts[-1] if len(parts) > 1 else "1"
            total += int(count) if count.isdigit() else 1
    return total


def partition_nodes(partition: str | None, timeout: float = SINFO_TIMEOUT_S,
                    sinfo: str | None = None) -> list[NodeShape]:
    """The node shapes of ``partition`` (None: the default one); [] when sinfo cannot say."""
    prog = sinfo or shutil.which("sinfo")
    if prog is None:
        return []
    cmd = [prog, "-h", "-o", "%P|%c|%m|%G"]
    if partition:
        cmd += ["-p", partition]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, OSError):
        return []
    nodes = []
    for line in proc.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 4 or (partition is None and not fields[0].endswith("*")):
            continue
        cpus, mem = re.sub(r"\D", "", fields[1]), re.sub(r"\D", "", fields[2])
        if cpus and mem:
            nodes.append(NodeShape(int(cpus), int(mem), _gpus(fields[3])))
    return nodes


def requested_resources(argv: list[str],
                        launcher: Mapping[str, Any] | None = None) -> dict[str, float]:
    """``gpus_per_node``, ``cpus_per_task`` and ``mem_gb`` a job asks for (null counts as 0):
    the composed ``launcher`` node's values when given (the command line's fixed overrides
    are in it), else the command line's ``hydra.launcher.*`` values, else the preset's."""
    source = OmegaConf.load(PRESET) if launcher is None else launcher
    overrides = argv if launcher is None else []  # the composed node holds them already
    wanted: dict[str, float] = {}
    for key in ("gpus_per_node", "cpus_per_task", "mem_gb"):
        value = source.get(key)
        for arg in overrides:
            kv = _override(arg)
            if kv and kv[0] == f"hydra.launcher.{key}" and "," not in kv[1]:
                value = kv[1].strip().strip("'\"")
        try:
            wanted[key] = float(value) if value not in (None, "", "null", "None") else 0.0
        except ValueError:
            continue  # not a number: Hydra's own check reports it
    return wanted


def resource_problem(partition: str | None, wanted: dict[str, float],
                     nodes: list[NodeShape]) -> str | None:
    """One line naming every request no node of the partition can meet (GPUs, CPUs, memory),
    each with its fix, so one corrected command fits."""
    if not nodes:
        return None
    where = f"partition {partition}" if partition else "the default partition"
    problems, fixes = [], []
    gpus = max(n.gpus for n in nodes)
    if wanted.get("gpus_per_node", 0) > gpus:
        problems.append(f"hydra.launcher.gpus_per_node={wanted['gpus_per_node']:g} "
                        f"(they have {gpus} GPUs)")
        fixes.append("hydra.launcher.gpus_per_node=0 (a CPU partition)" if gpus == 0 else
                     f"hydra.launcher.gpus_per_node={gpus} at most")
    cpus = max(n.cpus for n in nodes)
    if wanted.get("cpus_per_task", 0) > cpus:
        problems.append(f"hydra.launcher.cpus_per_task={wanted['cpus_per_task']:g} "
                        f"(they have {cpus} CPUs)")
        fixes.append(f"hydra.launcher.cpus_per_task={cpus} or fewer")
    mem_gb = max(n.mem_mb for n in nodes) / 1024
    if wanted.get("mem_gb", 0) > mem_gb:
        problems.append(f"hydra.launcher.mem_gb={wanted['mem_gb']:g} (they have "
                        f"{mem_gb:.1f} GB)")
        fixes.append(f"hydra.launcher.mem_gb={int(mem_gb)} or less")
    if not problems:
        return None
    other = ", or choose a GPU partition with hydra.launcher.partition=..." if any(
        "gpus_per_node" in p for p in problems) else ""
    return (f"the nodes of {where} cannot meet {'; '.join(problems)}: use "
            f"{', '.join(fixes)}{other}")
