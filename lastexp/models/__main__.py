"""``python -m lastexp.models [--json]``: parameters and FLOPs of every registered model."""

from __future__ import annotations

import argparse
import json

from lastexp.cli import ArgumentParser

from . import available_models, build_model, count_flops, count_params


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a model needs a frame and a class)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count (give 1 or more)")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m lastexp.models", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--num-classes", type=positive_int, default=60)
    parser.add_argument("--frames", type=positive_int, default=64, help="T of the FLOP count")
    args = parser.parse_args(argv)

    rows = []
    for name in available_models():
        model = build_model(name, num_classes=args.num_classes)
        rows.append(
            {
                "name": name,
                "params": count_params(model),
                "flops": count_flops(model, num_frames=args.frames),
                "stage_channels": list(model.stage_channels),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'model':<14} {'params':>10} {'GFLOPs/sample':>14}  stage channels")
    for r in rows:
        gflops = r["flops"] / 1e9
        print(f"{r['name']:<14} {r['params']:>10,} {gflops:>14.3f}  {r['stage_channels']}")
    print(f"({args.num_classes} classes, T={args.frames}, M=1; FLOPs = 2 x multiply-adds)")


if __name__ == "__main__":
    main()
