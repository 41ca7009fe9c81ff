"""``explorer export``: the programmed conductances of one trial, per tile, with a manifest."""

from __future__ import annotations

import argparse
from typing import Any

from explorer.cli import print_json
from explorer.commands._options import add_settings_arguments
from explorer.errors import InputError

NAME = "export"
HELP = ("Write the programmed conductances of one Monte-Carlo trial per tile (.npz, CSV with "
        "--csv) and a JSON manifest; `explorer evaluate --programmed DIR` reads them back.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ignore-checkpoint", action="store_true",
                        help="use only the checkpoint's weights: default crossbar settings")
    add_settings_arguments(parser)
    parser.add_argument("--trial", type=int, default=0,
                        help="Monte-Carlo trial whose programmed cells are written (default 0)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="new folder for manifest.json and tiles/")
    parser.add_argument("--csv", action="store_true", help="also write each tile as CSV")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="torch device (default cpu)")
    parser.add_argument("--json", action="store_true", help="print the manifest summary as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from explorer.commands.evaluate import resolve_settings
    from explorer.evaluate import evaluate
    from explorer.programmed import TrialBuilder, write_programmed
    from explorer.workload import analog_builder, load_workload

    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: cuda is not available on this machine; use cpu")
    if isinstance(args.trial, bool) or args.trial < 0:
        raise InputError(f"--trial: must be an integer >= 0, got {args.trial}")
    settings, _, report = resolve_settings(args)
    work = settings.workload
    loaded = load_workload(work, allow_code=True)
    base = analog_builder(loaded.checkpoint, args.ignore_checkpoint)
    if base is not None:
        base.check(loaded.model)
    builder = TrialBuilder(args.trial, base)
    result = evaluate(loaded.model, (loaded.images, loaded.labels), settings.crossbar,
                      trials=1, batch_size=work.batch_size, calibration=loaded.calibration,
                      device=args.device, analog_builder=builder)
    info: dict[str, Any] = {
        "model": work.model, "data": loaded.data_name, "images": result.images,
        "trial": args.trial, "seed": settings.crossbar.seed,
        "ignore_checkpoint": bool(args.ignore_checkpoint),
        "accuracy": result.accuracy_mean, "float_accuracy": result.float_accuracy,
        "calibration": loaded.calibration_source,
        "device": settings.crossbar.summary()["device"], "settings": settings.to_dict(),
        "checkpoint": report}
    manifest = write_programmed(builder.analog, args.out, info, csv=args.csv)
    tiles = sum(len(layer["tiles"]) for layer in manifest["layers"])
    summary = {"out": args.out, "layers": len(manifest["layers"]), "tiles": tiles,
               "accuracy": result.accuracy_mean, "float_accuracy": result.float_accuracy,
               "images": result.images, "trial": args.trial, "seed": info["seed"]}
    if args.json:
        print_json(summary)
        return 0
    print(f"{work.model} on {loaded.data_name} ({result.images} images), trial {args.trial}: "
          f"crossbar accuracy {100 * result.accuracy_mean:.2f} %, float "
          f"{100 * result.float_accuracy:.2f} %")
    print(f"wrote {tiles} tiles of {len(manifest['layers'])} layers to {args.out} "
          f"(manifest.json{', CSV' if args.csv else ''})")
    return 0
