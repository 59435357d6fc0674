"""``python -m lastexp.export RUN_DIR [export.KEY=VALUE ...]``: one line and exit code 2 for
a bad option or an export that cannot be done, exit code 1 for an INT8 drop over the limit."""

from __future__ import annotations

import sys
from dataclasses import fields

from lastexp.cli import ArgumentParser
from lastexp.errors import ConfigError
from lastexp.export.base import DropOverLimit
from lastexp.export.options import ExportOptions, parse_options
from lastexp.export.run import export_run


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m lastexp.export",
        description="Static INT8 (calibrated PTQ) and ONNX (and TFLite) export of a finished run "
                    "into RUN_DIR/export/. Options: "
                    + " ".join(f"export.{f.name}={f.default}" for f in fields(ExportOptions)),
    )
    parser.add_argument("run_dir")
    parser.add_argument("overrides", nargs="*", metavar="export.KEY=VALUE")
    parser.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "torchscript"])
    parser.add_argument("--data-root", default=None, help="override the run's paths.data")
    args = parser.parse_args(argv)

    def fail(exc: BaseException, code: int) -> int:
        msg = str(exc).strip().splitlines()
        print(f"lastexp.export: error: {msg[0] if msg else exc.__class__.__name__}",
              file=sys.stderr)
        return code

    try:
        opts = parse_options(args.overrides)
    except ConfigError as exc:
        return fail(exc, 2)
    try:
        r = export_run(args.run_dir, opts, exporter=args.exporter, data_root=args.data_root)
    except DropOverLimit as exc:
        return fail(exc, 1)
    except Exception as exc:  # noqa: BLE001 - the CLI's contract is one line and exit 2
        return fail(exc, 2)
    tfl = (f", tflite {r['tflite_top1']:.2f}% int8 {r['tflite_int8_top1']:.2f}%"
           if "tflite_top1" in r else "")
    print(f"exported {args.run_dir}: fp32 {r['fp32_top1_export']:.2f}% int8 "
          f"{r['int8_top1']:.2f}% (drop {r['int8_drop']:.2f} < {opts.max_drop:g}), int8 onnx "
          f"{r['int8_bytes']} B = {r['int8_size_ratio']:.2f} x fp32 onnx {r['fp32_bytes']} B, "
          f"opset {r['onnx_opset']} max|diff| {r['onnx_max_abs_diff']:.2e}{tfl}")
    return 0
