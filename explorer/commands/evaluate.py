"""``explorer evaluate``: accuracy of a trained network written into a crossbar."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from explorer.cli import print_json
from explorer.commands._options import (  # noqa: F401  (shared with train, sweep, map)
    add_crossbar_arguments,
    bits_or_ideal,
    config_from_args,
    device_from_args,
    typed_options,
)
from explorer.errors import InputError

NAME = "evaluate"
HELP = "Accuracy of a trained network on a simulated ReRAM crossbar (Monte-Carlo trials)."

EPILOG = """\
A checkpoint written by `explorer train` records the crossbar it was trained for: its
device, converters, tiles, noise and seed are then the defaults, and options typed here
change only themselves (e.g. --adc-bits 6). What training learned is applied: codebooks
(gq, uq, rq) become the generalized mapping, learned DAC/ADC ranges (rq) replace the
calibrated ones. --ignore-checkpoint evaluates its weights with the plain defaults."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--model", default="lenet5-mnist",
                        help="pretrained name (lenet5-mnist) or checkpoint path (a checkpoint "
                             "of `explorer train` brings its crossbar settings)")
    parser.add_argument("--ignore-checkpoint", action="store_true",
                        help="use only the checkpoint's weights: default crossbar settings, "
                             "no codebooks or learned ranges")
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


def checkpoint_config(args: argparse.Namespace, ckpt: dict[str, Any]
                      ) -> tuple[Any, Any, dict[str, Any] | None]:
    """The configuration, the crossbar builder (None: plain ``to_crossbar``) and a report
    of what came from ``--model``'s checkpoint ``ckpt`` (None: it records no crossbar)."""
    from explorer.deploy import checkpoint_settings, crossbar_config_from_checkpoint

    if ckpt.get("hardware") is None:
        return config_from_args(args), None, None
    method = str(ckpt.get("method", "float"))
    if args.ignore_checkpoint:
        return config_from_args(args), None, {"method": method, "used": False, "overridden": [],
                                              "codebooks": 0, "learned_ranges": 0}
    base = crossbar_config_from_checkpoint(ckpt)
    settings = checkpoint_settings(ckpt)
    cfg = config_from_args(args, base=base)
    return cfg, settings, {"method": method, "used": True, "overridden": typed_options(args),
                           **settings.applied(cfg)}


def describe_checkpoint(report: dict[str, Any]) -> str:
    """One line saying which settings came from the checkpoint."""
    if not report["used"]:
        return (f"checkpoint ({report['method']}): its settings ignored (--ignore-checkpoint); "
                "its weights with the options given and the defaults")
    typed = report["overridden"]
    parts = [f"checkpoint ({report['method']}): crossbar settings from the checkpoint"
             + (f" except {', '.join(typed)}" if typed else "")]
    if report["codebooks"]:
        parts.append(f"codebooks in {report['codebooks']} layer(s) (generalized mapping)")
    if report["learned_ranges"]:
        parts.append(f"learned DAC/ADC ranges in {report['learned_ranges']} layer(s)")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    import torch

    from explorer.data import load_dataset
    from explorer.evaluate import evaluate
    from explorer.models import MODELS, network_from_checkpoint, read_named_checkpoint

    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: cuda is not available on this machine; use cpu")
    ckpt, path = read_named_checkpoint(args.model)
    cfg, builder, report = checkpoint_config(args, ckpt)
    model = network_from_checkpoint(ckpt, path).to(args.device)
    if builder is not None:
        builder.check(model)
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
                      calibration=calibration, progress=progress, device=args.device,
                      analog_builder=builder)
    if progress is not None:
        print(file=sys.stderr)
    out = result.to_dict()
    out.update(model=args.model, data=data, calibration=calibration_source, checkpoint=report)
    if args.json:
        print_json(out)
        return 0
    std = f" ± {100 * result.accuracy_std:.2f}" if result.trials > 1 else ""
    print(f"{args.model} on {data} ({result.images} images): crossbar accuracy "
          f"{100 * result.accuracy_mean:.2f}{std} % over {result.trials} trial(s), "
          f"float {100 * result.float_accuracy:.2f} %")
    if report is not None:
        print(describe_checkpoint(report))
    total = result.counters["total"]
    print(f"tiles {total['tiles']}, cells {total['cells']:,}, ADC conversions/image "
          f"{total['adc_conversions']:,}, DAC cycles/image {total['dac_cycles']:,}; "
          f"{result.seconds:.1f} s")
    return 0
