"""``explorer inspect``: per layer mapping error, ADC clipping, partial sums, output SNR,
sensitivity and tile conductances – which layer hurts most, and why."""

from __future__ import annotations

import argparse
from typing import Any

from explorer.cli import print_json
from explorer.commands._options import add_settings_arguments
from explorer.errors import InputError

NAME = "inspect"
HELP = ("A look inside every crossbar layer: mapping error, ADC clipping and partial sums, "
        "output SNR, sensitivity (only this layer analog) and tile conductances.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ignore-checkpoint", action="store_true",
                        help="use only the checkpoint's weights: default crossbar settings")
    add_settings_arguments(parser)
    look = parser.add_argument_group("inspection")
    look.add_argument("--trial", type=int, default=0,
                      help="Monte-Carlo trial whose programmed cells are inspected (default 0)")
    look.add_argument("--bins", type=int, default=41,
                      help="partial-sum histogram bins per layer (default 41)")
    look.add_argument("--stats-images", type=int, default=256,
                      help="images for partial sums, SNR and heatmaps (default 256)")
    look.add_argument("--heatmap-tiles", type=int, default=4,
                      help="conductance heatmaps of the first N tiles per layer (default 4)")
    look.add_argument("--heatmap-size", type=int, default=64,
                      help="largest heatmap side; larger tiles are block-averaged (default 64)")
    look.add_argument("--no-sensitivity", action="store_true",
                      help="skip the one-layer-analog accuracy runs")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="torch device (default cpu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``explorer inspect`` reports, as plain data."""
    import torch

    from explorer.commands.evaluate import resolve_settings
    from explorer.inspect import inspect_network
    from explorer.workload import analog_builder, load_workload

    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: cuda is not available on this machine; use cpu")
    settings, _, report = resolve_settings(args)
    loaded = load_workload(settings.workload, allow_code=True)
    builder = analog_builder(loaded.checkpoint, args.ignore_checkpoint)
    if builder is not None:
        builder.check(loaded.model)
    result = inspect_network(
        loaded.model, loaded.images, loaded.labels, settings.crossbar, loaded.calibration,
        trial=args.trial, bins=args.bins, stats_images=args.stats_images,
        heatmap_tiles=args.heatmap_tiles, heatmap_size=args.heatmap_size,
        sensitivity=not args.no_sensitivity, batch_size=settings.workload.batch_size,
        device=args.device, analog_builder=builder)
    return {"model": settings.workload.model, "data": loaded.data_name,
            "calibration": loaded.calibration_source, **result, "checkpoint": report,
            "settings": settings.to_dict()}


def _db(value: float | None) -> str:
    return "exact" if value is None else f"{value:.1f}"


def run(args: argparse.Namespace) -> int:
    from explorer.coverage import digital_warning

    report = collect(args)
    if args.json:
        print_json(report)
        return 0
    print(f"{report['model']} on {report['data']} ({report['images']} images, trial "
          f"{report['trial']}): crossbar accuracy {100 * report['accuracy']:.2f} %, float "
          f"{100 * report['float_accuracy']:.2f} %")
    print(f"{'layer':16s} {'tiles':>5s} {'rmse/w_max':>10s} {'clip %':>7s} {'SNR dB':>7s} "
          f"{'cells dB':>8s} {'conv. dB':>8s} {'alone %':>8s}")
    for layer in report["layers"]:
        alone = layer.get("sensitivity")
        shown = f"{100 * alone['accuracy']:8.2f}" if alone else f"{'-':>8s}"
        print(f"{layer['name']:16s} {layer['tiles']:5d} {layer['mapping']['rmse_rel']:10.4f} "
              f"{100 * layer['clip_rate']:7.2f} {_db(layer['snr_db']):>7s} "
              f"{_db(layer['snr_cells_db']):>8s} {_db(layer['snr_converters_db']):>8s} "
              f"{shown}")
    worst = report["worst"]
    if worst is not None:
        if worst["drop"] > 0:
            print(f"hurts most: {worst['layer']} (alone on a crossbar: "
                  f"{100 * worst['accuracy']:.2f} %, {100 * worst['drop']:.2f} points below "
                  f"float, ± {100 * worst['stderr']:.2f} binomial standard error) – "
                  f"{worst['reason']}")
        else:
            print("no layer alone on a crossbar costs accuracy")
    warning = digital_warning(report)
    if warning is not None:
        print(warning)
    print(f"calibrated on {report['calibration']}; {report['seconds']:.1f} s")
    return 0
