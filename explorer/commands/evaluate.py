"""``explorer evaluate``: accuracy of a trained network written into a crossbar."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from explorer.cli import print_json
from explorer.errors import InputError

NAME = "evaluate"
HELP = "Accuracy of a trained network on a simulated ReRAM crossbar (Monte-Carlo trials)."

_DEFAULT_LEVELS = 16


def bits_or_ideal(text: str) -> int | None:
    """argparse type: an integer number of bits, or ``ideal``/``none`` for None."""
    if text.strip().lower() in ("ideal", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of bits (1 … 16) or 'ideal'") from None


def add_crossbar_arguments(parser: argparse.ArgumentParser) -> None:
    """Options naming the CrossbarConfig parameters (shared with ``explorer bench``)."""
    from explorer.mapping import METHODS, SCALES, SCHEMES
    from explorer.tiles import ADC_RANGES

    dev = parser.add_argument_group("device")
    dev.add_argument("--preset", default=None,
                     help="device preset (Ag:a-Si, TaOx/HfOx, AlOx/HfO2, EpiRAM, ideal)")
    dev.add_argument("--device-csv", default=None, metavar="PATH",
                     help="measured conductances (CSV with a 'conductance' column, Siemens)")
    dev.add_argument("--levels", type=int, default=None,
                     help=f"programmable levels, 2 … 1024 (default: preset's or "
                          f"{_DEFAULT_LEVELS})")
    dev.add_argument("--nonlinearity", type=float, default=None,
                     help="potentiation nonlinearity NL (default: preset's or 0, linear)")
    xb = parser.add_argument_group("crossbar")
    xb.add_argument("--mapping", default="min_error", choices=METHODS,
                    help="weight to level method (default min_error)")
    xb.add_argument("--scheme", default="offset", choices=SCHEMES,
                    help="cell scheme (default offset)")
    xb.add_argument("--scale", default="max", choices=SCALES, help="weight scale (default max)")
    xb.add_argument("--tile-rows", type=int, default=128, help="word lines read at once (128)")
    xb.add_argument("--tile-cols", type=int, default=128, help="bit lines per tile (128)")
    xb.add_argument("--dac-bits", type=bits_or_ideal, default=8,
                    help="input DAC bits 1 … 16 or 'ideal' (default 8)")
    xb.add_argument("--adc-bits", type=bits_or_ideal, default=None,
                    help="ADC bits 1 … 16 or 'ideal' (default ideal)")
    xb.add_argument("--adc-range", default="max", choices=ADC_RANGES,
                    help="ADC range calibration (default max)")
    xb.add_argument("--adc-percentile", type=float, default=99.99,
                    help="percentile for --adc-range percentile (default 99.99)")
    xb.add_argument("--adc-fixed-range", type=float, default=1.0,
                    help="fraction of full scale for --adc-range fixed (default 1)")
    xb.add_argument("--bit-serial", action="store_true", help="bit-serial inputs")
    xb.add_argument("--prog-sigma", type=float, default=0.0,
                    help="programming variation σ, relative (default 0)")
    xb.add_argument("--read-sigma", type=float, default=0.0,
                    help="read noise σ, relative, per forward pass (default 0)")
    xb.add_argument("--stuck-at-gmin", type=float, default=0.0, help="fraction stuck at Gmin")
    xb.add_argument("--stuck-at-gmax", type=float, default=0.0, help="fraction stuck at Gmax")
    xb.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")


def device_from_args(args: argparse.Namespace) -> Any:
    """The DeviceModel the options describe."""
    from explorer.device import DeviceModel

    if args.device_csv is not None:
        if args.preset is not None or args.levels is not None or args.nonlinearity is not None:
            raise InputError("--device-csv: a measured table defines the levels and curve; "
                             "do not combine it with --preset, --levels or --nonlinearity")
        return DeviceModel.from_csv(args.device_csv)
    overrides: dict[str, Any] = {}
    if args.nonlinearity is not None:
        overrides["nonlinearity"] = args.nonlinearity
    if args.preset is not None:
        return DeviceModel.from_preset(args.preset, levels=args.levels, **overrides)
    levels = _DEFAULT_LEVELS if args.levels is None else args.levels
    return DeviceModel(levels=levels, **overrides)


def config_from_args(args: argparse.Namespace) -> Any:
    """The CrossbarConfig the options describe (Param's errors name the parameter)."""
    from explorer.crossbar import CrossbarConfig

    cfg = CrossbarConfig(
        device=device_from_args(args), mapping=args.mapping, scheme=args.scheme,
        scale=args.scale, tile_rows=args.tile_rows, tile_cols=args.tile_cols,
        dac_bits=args.dac_bits, adc_bits=args.adc_bits, adc_range=args.adc_range,
        adc_percentile=args.adc_percentile, adc_fixed_range=args.adc_fixed_range,
        bit_serial=args.bit_serial, prog_sigma=args.prog_sigma, read_sigma=args.read_sigma,
        stuck_at_gmin=args.stuck_at_gmin, stuck_at_gmax=args.stuck_at_gmax, seed=args.seed)
    cfg.validate()
    return cfg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="lenet5-mnist",
                        help="pretrained name (lenet5-mnist) or checkpoint path")
    parser.add_argument("--data", default=None,
                        help="dataset (default: the model's, e.g. mnist-embedded)")
    parser.add_argument("--limit", type=int, default=None, help="first N test images")
    add_crossbar_arguments(parser)
    parser.add_argument("--trials", type=int, default=1, help="Monte-Carlo trials (default 1)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per batch (500)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="torch device (default cpu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _calibration(data: str, where: str, fallback: Any) -> tuple[Any, str]:
    """Calibration images: the first 256 of the train split, else of the evaluated set."""
    from explorer.evaluate import calibration_images

    return calibration_images(data, fallback, where)


def run(args: argparse.Namespace) -> int:
    import torch

    from explorer.data import load_dataset
    from explorer.evaluate import evaluate
    from explorer.models import MODELS, load_pretrained

    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: cuda is not available on this machine; use cpu")
    cfg = config_from_args(args)
    model = load_pretrained(args.model, device=args.device)
    data = args.data
    if data is None:
        data = next(spec.dataset for spec in MODELS.values() if type(model) is spec.build)
    dataset = load_dataset(data, "test", limit=args.limit)
    calibration, calibration_source = _calibration(data, args.device, dataset)
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(fraction: float, message: str) -> None:
            print(f"\r{100 * fraction:5.1f} % {message:30s}", end="", file=sys.stderr)
    result = evaluate(model, dataset, cfg, trials=args.trials, batch_size=args.batch_size,
                      calibration=calibration, progress=progress, device=args.device)
    if progress is not None:
        print(file=sys.stderr)
    out = result.to_dict()
    out.update(model=args.model, data=data, calibration=calibration_source)
    if args.json:
        print_json(out)
        return 0
    std = f" ± {100 * result.accuracy_std:.2f}" if result.trials > 1 else ""
    print(f"{args.model} on {data} ({result.images} images): crossbar accuracy "
          f"{100 * result.accuracy_mean:.2f}{std} % over {result.trials} trial(s), "
          f"float {100 * result.float_accuracy:.2f} %")
    total = result.counters["total"]
    print(f"tiles {total['tiles']}, cells {total['cells']:,}, ADC conversions/image "
          f"{total['adc_conversions']:,}, DAC cycles/image {total['dac_cycles']:,}; "
          f"{result.seconds:.1f} s")
    return 0
