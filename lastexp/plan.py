"""`python -m lastexp.plan <overrides>`: what a sweep would launch, before launching it.

For every job the same overrides would start (``+sweep=base seed=1,2,3``, ``+ablation=L11``,
``stream=joint,bone``): its run directory, whether it is done, failed, interrupted or missing,
the runs it depends on (distillation teachers, ensemble members) and whether those exist, and
GPU hours: the plan's budget per row and per table next to the hours the run store has spent.

Jobs are expanded exactly as Hydra's basic sweeper does (sweeper params first, then the
command line, cartesian product), and composed with Hydra's compose API; no torch import.
"""

from __future__ import annotations

import itertools
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from tabulate import tabulate

from lastexp import app, catalog
from lastexp.aliases import normalize_overrides
from lastexp.cli import ArgumentParser
from lastexp.dependencies.requirements import is_path, requirements
from lastexp.results.aggregate import prepare, table_rows_cache
from lastexp.results.deltas import table_deltas
from lastexp.results.notes import row_name
from lastexp.results.store import load_store
from lastexp.runstore import (
    RunDir,
    RunIdentity,
    debug_of,
    find_completed,
    is_completed,
    iter_runs,
    newest_per_seed,
)
from lastexp.runstore.key import run_dir_name
from lastexp.runstore.metrics import read_metrics


@dataclass
class Dependency:
    role: str  # teacher | member
    ablation: str
    dataset: str
    stream: str
    seed: int
    debug: str | None = None  # the debug preset: a debug=tiny teacher serves debug=tiny runs
    run_dir: Path | None = None
    in_sweep: bool = False

    @property
    def key(self) -> RunIdentity:
        return RunIdentity(self.ablation, self.dataset, self.stream, self.seed, self.debug)

    @property
    def command(self) -> str:
        return self.key.command()


@dataclass
class Job:
    overrides: list[str]
    cfg: DictConfig
    run_dir: Path
    status: str  # completed | failed | interrupted | running | missing
    hours: float = 0.0
    needs: list[Dependency] = field(default_factory=list)

    @property
    def key(self) -> RunIdentity:
        c = self.cfg
        return RunIdentity(str(c.ablation), str(c.dataset.name), str(c.stream.name),
                           int(c.seed), debug_of(c))


def expand(args: list[str]) -> list[list[str]]:
    """Job override lists, as Hydra's BasicSweeper builds them (inside a compose context)."""
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(args)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    hcfg = compose("config", overrides=fixed, return_hydra_config=True)
    params = OmegaConf.select(hcfg, "hydra.sweeper.params") or {}
    full = [f"{k}={v}" for k, v in params.items()] + list(args)
    lists = []
    for o in parser.parse_overrides(full):
        if o.is_sweep_override():
            key = o.get_key_element()
            lists.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            lists.append([o.input_line])
    return [list(p) for p in itertools.product(*lists)]


def needed_runs(cfg: DictConfig) -> list[Dependency]:
    """The runs this job reads (:func:`~lastexp.dependencies.requirements.requirements`, the rule
    run.py and the launcher use)."""
    return [Dependency("member" if role == "ensemble member" else role, ref, cfg.dataset.name,
                       stream, cfg.seed, debug_of(cfg))
            for role, ref, stream in requirements(cfg) if not is_path(ref)]


def _is_value_override(override: str) -> bool:
    """``key=value`` on a plain key (not a config group, not ``+``/``~``/``hydra.*``)."""
    key = override.split("=", 1)[0]
    if "=" not in override or key[:1] in "+~" or key.startswith("hydra"):
        return False
    return not (app.CONF_DIR / key.split(".")[0]).is_dir() or "." in key


def _parse_value(text: str):
    return OverridesParser.create().parse_override(f"x={text}").value()


def build_plan(args: list[str]) -> list[Job]:
    app.register()
    args = normalize_overrides(args)
    jobs: list[Job] = []
    composed: dict[tuple[str, ...], DictConfig] = {}
    with initialize_config_dir(str(app.CONF_DIR), version_base="1.3"):
        for overrides in expand(args):
            # Compose once per choice of config-group options; plain values (seed=2,
            # training.epochs=5) are set on a copy, as Hydra itself applies them last.
            groups = tuple(o for o in overrides if not _is_value_override(o))
            if groups not in composed:
                composed[groups] = compose("config", overrides=list(groups),
                                           return_hydra_config=True)
            cfg = composed[groups].copy()
            for o in overrides:
                if _is_value_override(o):
                    key, value = o.split("=", 1)
                    OmegaConf.update(cfg, key, _parse_value(value), merge=False)
            run_dir = Path(cfg.paths.runs) / run_dir_name(cfg)
            status, hours = job_status(RunDir(run_dir))
            jobs.append(Job(overrides, cfg, run_dir, status, hours, needed_runs(cfg)))
    planned = {j.key for j in jobs}
    for job in jobs:
        for dep in job.needs:
            found = find_completed(job.cfg.paths.runs, dep.key)
            dep.run_dir = found.run_dir if found else None
            dep.in_sweep = dep.key in planned
    return jobs


def job_status(run: RunDir) -> tuple[str, float]:
    """A planned job's run: its status (``missing``, ``corrupt``, or metrics.json's) and the
    hours it has trained."""
    if not run.metrics.exists():
        return "missing", 0.0
    m = read_metrics(run.metrics)
    if isinstance(m, str):
        return "corrupt", 0.0
    return str(m.get("status", "unknown")), float(m.get("train_seconds") or 0) / 3600


def spent_hours(runs_root: str) -> dict[str, float]:
    """GPU hours (train_seconds / 3600) spent per ablation ID over the whole run store."""
    spent: dict[str, float] = defaultdict(float)
    for rec in iter_runs(runs_root):
        abl = rec.metrics.get("ablation")
        if abl:
            spent[abl] += float(rec.metrics.get("train_seconds") or 0) / 3600
    return spent


def render(jobs: list[Job]) -> str:
    rows = []
    for i, job in enumerate(jobs):
        c = job.cfg
        needs = []
        for d in job.needs:
            state = "ok" if d.run_dir else ("in sweep" if d.in_sweep else "MISSING")
            needs.append(f"{d.role} {d.ablation}/{d.stream}: {state}")
        budget = catalog.ABLATIONS[c.ablation].gpu_hours if c.ablation in catalog.ABLATIONS \
            else None
        rows.append([i, c.ablation or "-", c.model.name, c.stream.name, c.dataset.name, c.seed,
                     job.status, f"{job.hours:.2f}", budget if budget is not None else "-",
                     "; ".join(needs) or "-", job.run_dir.name])
    out = [tabulate(rows, headers=["#", "ablation", "model", "stream", "dataset", "seed",
                                   "status", "h spent", "h budget", "needs", "run dir"])]
    counts = defaultdict(int)
    for job in jobs:
        counts[job.status] += 1
    out.append("\njobs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
               + f" (of {len(jobs)})")
    missing = {d.command for j in jobs for d in j.needs if not d.run_dir and not d.in_sweep}
    if missing:
        out.append("missing dependencies, produce them with (or pass run_dependencies=true):")
        out += [f"  {cmd}" for cmd in sorted(missing)]
    runs_root = jobs[0].cfg.paths.runs if jobs else "runs"
    spent = spent_hours(runs_root)
    tables = sorted({catalog.ABLATIONS[j.cfg.ablation].table for j in jobs
                     if j.cfg.ablation in catalog.ABLATIONS})
    for name in tables:
        table = catalog.TABLES[name]
        ids = catalog.ids(name)
        used = sum(spent.get(i, 0.0) for i in ids)
        out.append(f"GPU hours, {table.title}: {used:.1f} h spent of the plan's "
                   f"~{table.budget_hours:.0f} h budget")
    if "lite" in tables:
        note = maskclr_due_note(runs_root)
        if note:
            out.append(note)
    include_debug = any(debug_of(j.cfg) for j in jobs)
    out += power_lines(runs_root, tables, include_debug)
    return "\n".join(out)


def power_lines(runs_root: str, tables: list[str], include_debug: bool = False) -> list[str]:
    """For each row of ``tables`` with runs on both sides of its Δ (main configs, as the
    results tables compare them): the seeds per side needed for 80% power at α = 0.05 to detect
    the Δ observed so far, given the pooled seed std (statsmodels' TTestIndPower)."""
    if not tables or not Path(runs_root).is_dir():
        return []
    df, problems = load_store(runs_root, warn=False)
    runs = prepare(df, problems, include_debug=include_debug)
    out = []
    for name in tables:
        rows = table_rows_cache(runs, name)
        datasets = runs.datasets(runs.tabled(runs.completed))
        deltas = table_deltas(name, runs, datasets)
        lines = []
        for row in rows:
            for ds in datasets:
                d = deltas.get((id(row), ds))
                if d is None or d.value is None:
                    continue
                n_row, n_base = row.cell(ds).n, row.baseline_row.cell(
                    ds, catalog.compared_rule(row.rule)).n
                need = (f"{d.seeds_for_power} seeds per side" if d.seeds_for_power is not None
                        else "needs n >= 2 on both sides" if min(n_row, n_base) < 2
                        else "undefined (zero spread or zero Δ)")
                lines.append(f"  {row_name(row)} vs {row_name(row.baseline_row)} on {ds}: "
                             f"Δ {d.value:+.2f} (n={n_row} vs {n_base}): {need}")
        if lines:
            out.append(f"Seeds for 80% power at α = 0.05 to detect the observed Δ (pooled seed "
                       f"std), {catalog.TABLES[name].title}:")
            out += lines
    return out


def maskclr_due_note(runs_root: str) -> str | None:
    """The training plan §4's MaskCLR rule (:func:`lastexp.catalog.maskclr_decision`, the one the
    results tables state) on the store: a line when L12 is due, None otherwise."""
    done = [r for r in iter_runs(runs_root) if is_completed(r.metrics)]
    kept, _ = newest_per_seed(done, lambda r: r.metrics, lambda r: r.run_dir)  # as the tables
    decision = catalog.maskclr_decision(r.metrics for r in kept)
    if decision is None or not decision[0]:
        return None
    _, row, mean = decision
    return (f"MaskCLR is due (the training plan §4): the best Lite distillation on NTU-60 xsub, "
            f"{row} ({catalog.MASKCLR_MODEL}, mean over seeds), is {mean:.1f}% < "
            f"{catalog.MASKCLR_THRESHOLD:.0f}%; run L12")


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m lastexp.plan", description=__doc__.split("\n")[0])
    ap.add_argument("overrides", nargs="*", help="the overrides you would pass to --multirun")
    args = ap.parse_args(argv)
    try:
        jobs = build_plan(args.overrides)
    except Exception as exc:  # composition errors name the key; print them as one line
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        print(f"lastexp.plan: error: {msg}", file=sys.stderr)
        return 2
    print(render(jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
