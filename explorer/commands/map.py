"""``explorer map``: per-layer error of writing a trained network's weights into a device."""

from __future__ import annotations

import argparse
from typing import Any

from explorer.cli import print_json
from explorer.commands._options import device_from_args as shared_device_from_args
from explorer.errors import InputError
from explorer.settings import WorkloadSettings
from explorer.settings.options import add_part_arguments

NAME = "map"
HELP = "Per-layer weight error of mapping a trained network onto a device's conductance levels."

DEFAULT_PRESET = "AlOx/HfO2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from explorer.device import PRESETS
    from explorer.mapping import METHODS, SCALES, SCHEMES

    parser.add_argument("--model", default="lenet5-mnist",
                        help="pretrained name (lenet5-mnist), checkpoint path, "
                             "FILE.py:FUNCTION or FILE.pt2")
    dev = parser.add_argument_group("device")
    dev.add_argument("--preset", default=None, choices=list(PRESETS),
                     help=f"device preset (default {DEFAULT_PRESET} unless --device-csv)")
    dev.add_argument("--device-csv", default=None, metavar="PATH",
                     help="measured conductances: CSV with a header and one column "
                          "conductance (S), conductance_uS or resistance_ohm")
    dev.add_argument("--levels", type=int, default=None,
                     help="programmable levels, 2 … 1024 (default: the preset's)")
    dev.add_argument("--nonlinearity", type=float, default=None,
                     help="potentiation NL, −10 … 10 (default: the preset's)")
    dev.add_argument("--g-min", type=float, default=None, help="lowest conductance, S")
    dev.add_argument("--g-max", type=float, default=None, help="highest conductance, S")
    mp = parser.add_argument_group("mapping")
    mp.add_argument("--method", default="min_error", choices=METHODS,
                    help="weight to level method (default min_error)")
    mp.add_argument("--scheme", default="offset", choices=SCHEMES,
                    help="cell scheme (default offset)")
    mp.add_argument("--scale", default="max", choices=SCALES,
                    help="weight scale: max |w| or least-squares optimal (default max)")
    mp.add_argument("--clip", type=float, default=None, metavar="PERCENTILE",
                    help="use this percentile of |w| (0 … 100] as w_max")
    add_part_arguments(parser, WorkloadSettings,
                       skip=[k for k in WorkloadSettings.knobs() if k != "weights"])
    parser.add_argument("--bins", type=int, default=32,
                        help="error histogram bins per layer (default 32)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def device_from_args(args: argparse.Namespace) -> Any:
    """The DeviceModel the device options describe (default: the :data:`DEFAULT_PRESET`).

    The shared helper of ``evaluate``/``train``/``sweep`` with this command's default:
    the mapping error is reported on a real device's curve unless one is chosen, where
    ``evaluate`` starts from a linear 16-level device (both defaults are in the help texts).
    """
    return shared_device_from_args(args, default_preset=DEFAULT_PRESET)


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``explorer map`` reports, as plain data."""
    from explorer.mapping import map_model, overall_stats
    from explorer.models import load_network

    if args.bins < 1:
        raise InputError(f"--bins: must be at least 1, got {args.bins}")
    device = device_from_args(args)
    model, _ = load_network(args.model, args.weights or "", allow_code=True)
    results = map_model(model, device, method=args.method, scheme=args.scheme,
                        scale=args.scale, clip=args.clip)
    layers = []
    for name, result in results.items():
        counts, edges = result.histogram(bins=args.bins)
        layers.append({"name": name, "shape": list(result.w.shape), **result.stats(),
                       "w_scale": result.w_scale,
                       "histogram": {"counts": counts.tolist(), "edges": edges.tolist()}})
    return {
        "model": args.model,
        "device": {"preset": device.preset, "source": device.source, "g_min": device.g_min,
                   "g_max": device.g_max, "levels": device.levels,
                   "nonlinearity": device.nonlinearity},
        "method": args.method, "scheme": args.scheme, "scale": args.scale, "clip": args.clip,
        "layers": layers,
        "overall": overall_stats(results),
    }


def run(args: argparse.Namespace) -> int:
    report = collect(args)
    if args.json:
        print_json(report)
        return 0
    d = report["device"]
    print(f"{report['model']} on {d['preset'] or d['source']}: {d['levels']} levels, "
          f"NL {d['nonlinearity']:g}, {d['g_min']:.4g} … {d['g_max']:.4g} S; "
          f"{report['method']}, {report['scheme']}, scale {report['scale']}")
    print(f"{'layer':12s} {'weights':>8s} {'w_max':>9s} {'rmse':>9s} {'mean|e|':>9s} "
          f"{'max|e|':>9s} {'rmse/w_max':>10s}")
    for layer in report["layers"]:
        print(f"{layer['name']:12s} {layer['n_weights']:8d} {layer['w_max']:9.4g} "
              f"{layer['rmse']:9.4g} {layer['mean_abs']:9.4g} {layer['max_abs']:9.4g} "
              f"{layer['rmse_rel']:10.4f}")
    o = report["overall"]
    print(f"{'overall':12s} {o['n_weights']:8d} {'':9s} {o['rmse']:9.4g} {o['mean_abs']:9.4g} "
          f"{o['max_abs']:9.4g}")
    return 0
