"""``explorer cost``: energy, latency and area per image of a network on a crossbar,
without an evaluation (the layer inputs of the calibration images)."""

from __future__ import annotations

import argparse
from typing import Any

from explorer.cli import print_json
from explorer.commands._options import add_settings_arguments

NAME = "cost"
HELP = ("Energy (by component), latency and area per image of a network on a simulated "
        "crossbar, and TOPS/W – from the counters and the calibration images, no evaluation.")

EPILOG = """\
Component models and constants: DNN+NeuroSim V1.3 (assets/cost_constants.json names the
source of every entry; --cost-constants FILE replaces it). The array-read energy uses the
programmed conductances and the layer inputs of the calibration images (the first
--calibration-images of the training split). Not counted: buffers, interconnect, pooling
and activation units, leakage. See docs/cost.md for how far to trust the numbers."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--ignore-checkpoint", action="store_true",
                        help="use only the checkpoint's weights: default crossbar settings, "
                             "no codebooks or learned ranges")
    add_settings_arguments(parser)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="torch device (default cpu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def cost_of_settings(settings: Any, ignore_checkpoint: bool = False,
                     device: str = "cpu") -> tuple[Any, str, str]:
    """The :class:`~explorer.cost.CostReport` of ``settings`` (the workload's network and
    calibration images; no test images), the dataset name and where the calibration
    images came from."""
    from explorer.cost import estimate
    from explorer.crossbar import to_crossbar
    from explorer.models import network_from_checkpoint, read_named_checkpoint
    from explorer.workload import analog_builder, calibration_images, default_dataset

    work = settings.workload
    ckpt, path = read_named_checkpoint(work.model)
    model = network_from_checkpoint(ckpt, path).to(device).eval()
    data = work.data or default_dataset(model)
    images, source = calibration_images(data, work.calibration_images)
    builder = analog_builder(ckpt, ignore_checkpoint)
    if builder is not None:
        builder.check(model)
    build = to_crossbar if builder is None else builder
    analog = build(model, settings.crossbar, images.to(device))
    return estimate(analog, settings.crossbar), data, source


def run(args: argparse.Namespace) -> int:
    import torch

    from explorer.commands.evaluate import cost_summary, describe_cost, resolve_settings
    from explorer.errors import InputError

    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: cuda is not available on this machine; use cpu")
    settings, _, report = resolve_settings(args)
    cost, data, source = cost_of_settings(settings, args.ignore_checkpoint, args.device)
    out = cost.to_dict()
    if args.json:
        print_json({**cost_summary(out), "model": settings.workload.model, "data": data,
                    "calibration": source, "checkpoint": report, "cost": out,
                    "settings": settings.to_dict()})
        return 0
    print(f"{settings.workload.model}: layer inputs of {source}")
    print(describe_cost(out))
    print(f"{'layer':<12}{'energy pJ':>12}{'adc':>10}{'dac_wl':>10}{'array':>10}"
          f"{'shift_add':>11}{'latency µs':>12}{'area mm²':>10}")
    for name, layer in cost.layers.items():
        e = layer.energy_pj
        print(f"{name:<12}{layer.energy_total_pj:>12,.1f}{e['adc']:>10,.1f}"
              f"{e['dac_wl']:>10,.1f}{e['array']:>10,.1f}{e['shift_add']:>11,.1f}"
              f"{layer.latency_ns / 1e3:>12,.2f}{sum(layer.area_mm2.values()):>10.4f}")
    for note in cost.notes:
        print(f"note: {note}")
    return 0
