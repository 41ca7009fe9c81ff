"""``explorer evaluate``: accuracy of a trained network written into a crossbar."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from explorer.cli import print_json
from explorer.commands._options import (
    add_settings_arguments,
    config_from_args,
    settings_from_args,
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
calibrated ones. --ignore-checkpoint evaluates its weights with the plain defaults.

Time: --drift pcm|reram|measured with --time-s T evaluates T seconds after programming;
--times 1,3600,86400,2.6e6,3.2e7 evaluates every trial's programming draw at each of
these times in one run (with --json: a list of one record per time)."""


def parse_times(text: str) -> list[float]:
    """``--times`` text (comma-separated seconds) → list of floats; one-line errors."""
    import math

    from explorer.evaluate import MAX_TIMES

    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seconds "
                                         "(e.g. 1,3600,86400)")
    values = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{item!r} is not allowed; times are seconds "
                                             "after programming, >= 0")
        values.append(value)
    if len(values) > MAX_TIMES:
        raise argparse.ArgumentTypeError(f"{len(values)} times given; at most {MAX_TIMES}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--ignore-checkpoint", action="store_true",
                        help="use only the checkpoint's weights: default crossbar settings, "
                             "no codebooks or learned ranges")
    add_settings_arguments(parser)  # --config, device, crossbar and workload (--model …)
    parser.add_argument("--programmed", default=None, metavar="DIR",
                        help="evaluate exactly the conductances and DAC/ADC ranges a folder "
                             "of `explorer export` holds, with its settings (workload "
                             "options may change the images)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="torch device (default cpu)")
    parser.add_argument("--times", type=parse_times, default=None, metavar="T1,T2,...",
                        help="seconds after programming to evaluate at, comma-separated "
                             "(needs --drift); reuses the mapping and programming draws")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (with --times: a list, one record per time)")


def resolve_settings(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict | None]:
    """The settings of a run (declared defaults < ``--model``'s checkpoint < ``--config``
    < typed options), the checkpoint, and a report of what came from the checkpoint
    (None: it records no crossbar)."""
    from explorer.models import model_checkpoint
    from explorer.settings import Settings, WorkloadSettings
    from explorer.settings.options import read_config
    from explorer.workload import analog_builder, checkpoint_base

    model, weights = args.model, args.weights
    if (model is None or weights is None) and args.config is not None:
        configured = Settings.from_dict(read_config(args.config)).workload
        model = configured.model if model is None else model
        weights = configured.weights if weights is None else weights
    if model is None:
        model = WorkloadSettings.param["model"].default
    ckpt = model_checkpoint(model, weights or "")
    base = checkpoint_base(Settings(), ckpt, args.ignore_checkpoint)
    settings = settings_from_args(args, base=base)
    settings.workload.model = model
    if ckpt.get("hardware") is None:
        return settings, ckpt, None
    method = str(ckpt.get("method", "float"))
    if args.ignore_checkpoint:
        return settings, ckpt, {"method": method, "used": False, "overridden": [],
                                "codebooks": 0, "learned_ranges": 0}
    builder = analog_builder(ckpt)
    return settings, ckpt, {"method": method, "used": True, "overridden": typed_options(args),
                            **builder.applied(settings.crossbar)}


def checkpoint_config(args: argparse.Namespace, ckpt: dict[str, Any]
                      ) -> tuple[Any, Any, dict[str, Any] | None]:
    """The crossbar configuration, the crossbar builder (None: plain ``to_crossbar``) and a
    report of what came from ``--model``'s checkpoint ``ckpt`` (None: it records no
    crossbar)."""
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


def evaluate_programmed(args: argparse.Namespace, progress: Any = None
                        ) -> tuple[Any, Any, dict | None]:
    """``--programmed DIR``: the settings of the export, its result on the (possibly
    changed) workload with exactly its conductances, and the export's checkpoint report."""
    from explorer.evaluate import evaluate
    from explorer.programmed import TrialBuilder, read_manifest
    from explorer.settings import Settings
    from explorer.workload import analog_builder, load_workload

    typed = typed_options(args)
    if args.config is not None:
        typed.insert(0, "--config")
    if args.ignore_checkpoint:
        typed.append("--ignore-checkpoint")
    if args.trials not in (None, 1):
        typed.append("--trials")
    if typed:
        raise InputError(f"--programmed: the exported folder defines the crossbar and its one "
                         f"trial; do not combine it with {', '.join(typed)}")
    manifest = read_manifest(args.programmed)
    try:
        base = Settings.from_dict(manifest.get("settings"))
    except InputError as exc:
        raise InputError(f"--programmed: the manifest's settings: {exc}") from None
    settings = settings_from_args(args, base=base)
    settings.workload.trials = 1
    trial = manifest.get("trial", 0)
    if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
        raise InputError(f"--programmed: the manifest's trial {trial!r} is not an integer >= 0")
    work = settings.workload
    loaded = load_workload(work, allow_code=True)
    ckpt_builder = analog_builder(loaded.checkpoint, bool(manifest.get("ignore_checkpoint")))
    builder = TrialBuilder(trial, ckpt_builder, folder=args.programmed, manifest=manifest)
    result = evaluate(loaded.model, (loaded.images, loaded.labels), settings.crossbar,
                      trials=1, batch_size=work.batch_size, calibration=loaded.calibration,
                      progress=progress, device=args.device, analog_builder=builder)
    result.calibration = loaded.calibration_source
    result.workload = {"model": loaded.model_name, "data": loaded.data_name,
                       "images": len(loaded.images), "programmed": str(args.programmed),
                       "trial": trial}
    return settings, result, manifest.get("checkpoint")


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

    from explorer.coverage import digital_warning
    from explorer.workload import evaluate_settings

    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: cuda is not available on this machine; use cpu")
    times = getattr(args, "times", None)
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(fraction: float, message: str) -> None:
            print(f"\r{100 * fraction:5.1f} % {message:30s}", end="", file=sys.stderr)
    if args.programmed is not None:
        if times is not None:
            raise InputError("--times: evaluates drift from a fresh programming; an exported "
                             "folder (--programmed) holds one programmed state")
        settings, result, report = evaluate_programmed(args, progress)
    else:
        settings, _, report = resolve_settings(args)
        if times is not None and settings.crossbar.drift == "none":
            raise InputError("--times: drift is 'none', so every time gives the same "
                             "accuracy; choose a drift model (--drift pcm|reram|measured)")
        result = evaluate_settings(settings, device=args.device, progress=progress,
                                   ignore_checkpoint=args.ignore_checkpoint, allow_code=True,
                                   times=times)
    if progress is not None:
        print(file=sys.stderr)
    if times is not None:
        return _report_times(result, settings, args.json)
    out = result.to_dict()
    model, data = settings.workload.model, result.workload["data"]
    out.update(model=model, data=data, checkpoint=report, settings=settings.to_dict())
    if args.programmed is not None:
        out["programmed"] = {"folder": args.programmed, "trial": result.workload["trial"]}
    out.update(cost_summary(result.cost))
    if args.json:
        print_json(out)
        return 0
    std = f" ± {100 * result.accuracy_std:.2f}" if result.trials > 1 else ""
    print(f"{model} on {data} ({result.images} images): crossbar accuracy "
          f"{100 * result.accuracy_mean:.2f}{std} % over {result.trials} trial(s), "
          f"float {100 * result.float_accuracy:.2f} %")
    if args.programmed is not None:
        print(f"programmed conductances and DAC/ADC ranges from {args.programmed} (trial "
              f"{result.workload['trial']})")
    elif report is not None:
        print(describe_checkpoint(report))
    from explorer.nonideal import describe_programming

    print(describe_programming(settings.crossbar, settings.crossbar.device))
    warning = digital_warning(out)
    if warning is not None:
        print(warning)
    total = result.counters["total"]
    print(f"tiles {total['tiles']}, cells {total['cells']:,}, ADC conversions/image "
          f"{total['adc_conversions']:,}, DAC cycles/image {total['dac_cycles']:,}; "
          f"calibrated on {result.calibration}; {result.seconds:.1f} s")
    print(describe_cost(result.cost))
    return 0


def cost_summary(cost: dict[str, Any]) -> dict[str, Any]:
    """The cost keys printed at the top of ``--json``."""
    keys = ("energy_pj_per_image", "energy_breakdown_pj", "latency_ns_per_image", "area_mm2",
            "tops_per_w", "tops_per_mm2")
    return {key: cost[key] for key in keys}


def describe_cost(cost: dict[str, Any]) -> str:
    """One line: energy per image by component, latency, area, TOPS/W."""
    parts = ", ".join(f"{k} {v:,.1f}" for k, v in cost["energy_breakdown_pj"].items())
    s = cost["settings"]
    return (f"cost ({s['tech_node']} nm, {s['adc_type']} ADC, {s['cols_per_adc']} columns per "
            f"ADC): {cost['energy_pj_per_image']:,.1f} pJ/image ({parts}), "
            f"{cost['latency_ns_per_image'] / 1e3:,.2f} µs/image, {cost['area_mm2']:.4f} mm², "
            f"{cost['tops_per_w']:,.1f} TOPS/W")
def _report_times(result: Any, settings: Any, as_json: bool) -> int:
    """Accuracy at each time after programming: a JSON list or one line per time."""
    cfg = settings.crossbar
    common = {"model": settings.workload.model, "data": result.workload["data"],
              "images": result.images, "trials": result.trials, "drift": cfg.drift,
              "drift_compensation": cfg.drift_compensation, "ir_drop": cfg.ir_drop,
              "float_accuracy": result.float_accuracy}
    records = [{**record, **common} for record in result.times]
    if as_json:
        print_json(records)
        return 0
    print(f"{common['model']} on {common['data']} ({result.images} images, {result.trials} "
          f"trial(s)): drift {cfg.drift}, compensation {cfg.drift_compensation}, float "
          f"{100 * result.float_accuracy:.2f} %")
    for record in records:
        std = f" ± {100 * record['accuracy_std']:.2f}" if result.trials > 1 else ""
        print(f"t = {record['time_s']:>10g} s  accuracy {100 * record['accuracy_mean']:.2f}{std} %")
    return 0
