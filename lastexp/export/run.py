"""Exporting one finished run: its model rebuilt, its data read once, then every enabled
format of :data:`~lastexp.export.formats.FORMATS` in order, all into a staged folder that
replaces the run's ``export/`` as a whole (under the run's lock), then metrics.json."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from lastexp.data import load_data
from lastexp.data.streams import to_stream
from lastexp.export.base import DropOverLimit, ExportError, ExportInputs, Format
from lastexp.export.formats import FORMATS
from lastexp.export.options import ExportOptions
from lastexp.io import (
    FolderBusyError,
    folder_lock,
    read_json,
    remove_staged_leftovers,
    staged_folder,
    write_json,
)
from lastexp.runstore import RunDir, RunError
from lastexp.runstore.finished import finished_checkpoint
from lastexp.runstore.layout import EXPORT_DIR
from lastexp.runstore.models import load_model
from lastexp.train.loop import evaluate

CALIBRATION_BATCH = 32


def _data_root(run: RunDir, hydra_cfg: Any) -> Path:
    """``paths.data`` of the run; a relative path is relative to the run's launch directory."""
    root = Path(str(OmegaConf.select(hydra_cfg, "paths.data", default="data")))
    if root.is_absolute():
        return root
    hydra_yaml = run.hydra / "hydra.yaml"
    if hydra_yaml.is_file():
        cwd = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.cwd", default=None)
        if cwd and (Path(cwd) / root).exists():
            return Path(cwd) / root
    return root


def calibration_batches(dataset: Any, samples: int, transform: Any, seed: int,
                        batch_size: int = CALIBRATION_BATCH) -> list[np.ndarray]:
    """``samples`` training samples (all when the split is smaller), drawn with ``seed``, in
    batches of ``batch_size``, as float32 arrays in the model's input stream."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=gen)[:samples].tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, order),
                                         batch_size=batch_size, shuffle=False)
    return [transform(x).numpy().astype(np.float32) for x, _ in loader]


def export_run(
    run_dir: str | Path,
    options: ExportOptions | None = None,
    *,
    exporter: str = "auto",
    batch_size: int = 64,
    data_root: str | Path | None = None,
    formats: tuple[Format, ...] = FORMATS,
) -> dict[str, Any]:
    """Export one finished run; returns the keys added to its metrics.json. Raises
    DropOverLimit (after writing the metrics) when the INT8 drop reaches ``max_drop``."""
    opts = options or ExportOptions()
    t0 = time.time()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"run directory {run_dir} does not exist")
    for fmt in _enabled(formats, opts):
        if fmt.check is not None:
            fmt.check()  # a missing converter is named before any work is done
    try:
        finished, ckpt = finished_checkpoint(run_dir, role="export of")
    except RunError as exc:
        raise ExportError(str(exc)) from None
    run = finished.paths
    for path, want in ((run.export, (None, "folder")), (run.checkpoints, ("folder",))):
        if _kind(path) not in want:  # a link would redirect the export, or the weights read
            raise ExportError(f"{path} is {'a link' if _kind(path) == 'link' else 'no folder'}"
                              "; a run keeps its own folder there: move it away, then export "
                              "again")
    if data_root is not None and not Path(data_root).is_dir():  # no corpus made there
        raise ExportError(f"--data-root {data_root} is not a folder; give the paths.data the "
                          "run was trained with (or leave --data-root out)")
    try:
        with folder_lock(run.path, wait=False, what="another export of this run"):
            remove_staged_leftovers(run.export)  # a killed export's half-written folder
            _sync_export_metrics(run, formats)
            return _export_locked(run, ckpt, opts, t0, formats, exporter=exporter,
                                  batch_size=batch_size, data_root=data_root)
    except FolderBusyError as exc:
        raise ExportError(str(exc)) from None


def _enabled(formats: tuple[Format, ...], opts: ExportOptions) -> list[Format]:
    """The formats the options ask for, each after the formats it needs."""
    enabled: list[Format] = []
    for fmt in formats:
        if not fmt.enabled(opts):
            continue
        missing = [n for n in fmt.needs if n not in {f.name for f in enabled}]
        if missing:
            raise ExportError(f"the {fmt.name} export needs the {', '.join(missing)} export "
                              "before it, which is not enabled")
        enabled.append(fmt)
    return enabled


def _kind(path: Path) -> str | None:
    if path.is_symlink():
        return "link"
    return None if not path.exists() else "folder" if path.is_dir() else "file"


def _format_keys(formats: tuple[Format, ...]) -> set[str]:
    """Every metrics key a format of ``formats`` or of the default table writes (its error
    too): an export's keys replace all of them, as its folder replaces ``export/``."""
    return {k for fmt in (*FORMATS, *formats) for k in (*fmt.keys, fmt.error_key)}


def _sync_export_metrics(run: RunDir, formats: tuple[Format, ...]) -> None:
    """An export killed between swapping its folder in and writing metrics.json left the run's
    metrics describing the files before: they take export.json's keys (what the folder
    holds), as the killed export would have written them."""
    try:
        added = read_json(run.export / "export.json")
        metrics = read_json(run.metrics)
    except (OSError, ValueError):
        return
    if isinstance(added, dict) and isinstance(metrics, dict) and \
            any(metrics.get(k) != v for k, v in added.items()):
        drop = _format_keys(formats)
        kept = {k: v for k, v in metrics.items() if k not in drop}
        write_json(run.metrics, {**kept, **added})


def _export_locked(run: RunDir, ckpt: Path, opts: ExportOptions, t0: float,
                   table: tuple[Format, ...], *, exporter: str, batch_size: int,
                   data_root: str | Path | None) -> dict[str, Any]:
    """export_run's work, under the run's lock: every file into a temporary folder, which
    replaces ``export/`` as a whole; then metrics.json."""
    if not run.hydra_config.is_file():
        raise ExportError(f"{run.path} has no .hydra/config.yaml (not a lastexp run directory)")
    try:
        state, model = load_model(ckpt)
    except RunError as exc:
        raise ExportError(str(exc)) from None
    hydra_cfg = OmegaConf.load(run.hydra_config)
    root = Path(data_root) if data_root is not None else _data_root(run, hydra_cfg)
    measured = _measure(model, state, root, opts.calibration, batch_size=batch_size)
    formats = _enabled(table, opts)
    with staged_folder(run.export) as staged, \
            tempfile.TemporaryDirectory() as scratch:  # a kill leaves the old export/ whole
        inputs = ExportInputs(model=model, **measured, opts=opts, exporter=exporter,
                              name=state.get("model_name", "?"), staged=staged,
                              final=staged.parent / EXPORT_DIR, scratch=Path(scratch))
        added, error = _write_formats(inputs, formats)
        added["export_checkpoint"] = ckpt.name
        added["export_seconds"] = time.time() - t0
        write_json(staged / "export.json", added)
    # keys of an earlier export describe files this one did not write (TFLite's, say): they
    # go (a kill before this write: the next export takes export.json's, _sync_export_metrics)
    drop = _format_keys(table)
    previous = {k: v for k, v in read_json(run.metrics).items() if k not in drop}
    write_json(run.metrics, {**previous, **added})
    if error is not None:
        raise error
    for fmt in formats:
        message = fmt.gate(added, opts, run.metrics) if fmt.gate is not None else None
        if message is not None:
            raise DropOverLimit(message)
    return added


def _measure(model: torch.nn.Module, state: dict[str, Any], root: Path, calibration: int, *,
             batch_size: int) -> dict[str, Any]:
    """What every format reads of the run's data (:class:`ExportInputs`' fields): the test
    split in the model's stream, the PyTorch model's top-1 on it, the traced example, and
    ``calibration`` training samples."""
    cfg = state.get("config") or {}
    data = load_data(cfg["dataset"], cfg["preprocessing"], str(root), seed=int(cfg["seed"]))
    stream = (cfg.get("stream") or {}).get("name") or state.get("stream", "joint")
    loader = torch.utils.data.DataLoader(data.test, batch_size=batch_size, shuffle=False)

    def tf(x: torch.Tensor) -> torch.Tensor:
        return to_stream(x, stream)

    test = [(tf(x), y) for x, y in loader]
    fp32_top1 = evaluate(model, test, device=torch.device("cpu"),
                         transform=lambda x: x)["val_top1"]
    x = test[0][0]
    calib = calibration_batches(data.train, calibration, tf, int(cfg.get("seed", 0)))
    return {"example": x[: min(2, len(x))], "test": test, "calibration": calib,
            "fp32_top1": fp32_top1}


def _write_formats(inputs: ExportInputs, formats: list[Format]
                   ) -> tuple[dict[str, Any], ExportError | None]:
    """Each format's files into ``inputs.staged`` and the keys describing them (paths as they
    will be once ``staged`` is ``export/``), with the error of a ``kept`` format that failed."""
    added: dict[str, Any] = {"fp32_top1_export": inputs.fp32_top1}
    error: ExportError | None = None
    for fmt in formats:
        try:
            written = fmt.write(inputs)
        except ExportError as exc:
            if not fmt.kept:
                raise
            error = error or exc  # what the formats before it wrote stays valid
            added[fmt.error_key] = str(exc).replace(str(inputs.staged), str(inputs.final))
            continue
        if set(written) != set(fmt.keys):
            raise RuntimeError(f"the {fmt.name} format wrote keys {sorted(written)}, not the "
                               f"keys its table row declares {sorted(fmt.keys)}")
        added.update(written)
    return added, error
