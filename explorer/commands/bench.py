"""``explorer bench``: cost of the crossbar simulation against a plain torch forward pass.

Three timings, each a ratio against the plain torch forward pass of the same model on
the same images, measured in the same run: plain and crossbar passes alternate, and the
ratio is the median over these pairs (robust when other programs share the cores);
``*_best_ratio`` divides the best times instead:

* ``lenet5_ratio`` – LeNet5 on 2,000 embedded MNIST digits (batches of 500), 128×128
  tiles, 8-bit DAC, 6-bit ADC, 5 % programming variation; the analog time includes the
  trial's programming draw (:meth:`CrossbarModel.reprogram`).
* ``lenet5_bitserial_ratio`` – the same with bit-serial 8-bit inputs (the crossbar
  takes the batches ``evaluate`` uses: 500 / 8 planes = 62 images).
* ``lenet5_read_noise_ratio`` – the LeNet5 crossbar with 2 % read noise drawn per read
  and per-column ADC input (each column and the reference column converted; issue 14).
* ``resnet20_ratio`` – ResNet-20 on one batch of 256 CIFAR-shaped images, same crossbar.
* ``lenet5_time_wires_ratio`` – LeNet5 as ``lenet5_ratio`` with first-order IR drop
  (NeuroSim's 22 nm wires), PCM drift one day after programming and per-column drift
  compensation, ideal ADC (:func:`time_wires_config`); each run redraws the programming
  and drift and refolds the wires (issue 15's target: ≤ 1.5×).

Mapping and calibration happen once per configuration and are reported separately
(``*_setup_ms``). ``*_cpu_ratio`` is the same ratio in process CPU time, a check on
wall times taken while other programs share the cores.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from explorer.cli import print_json

NAME = "bench"
HELP = "Time the crossbar simulation against plain torch (LeNet5, bit-serial, ResNet-20)."

MEASUREMENTS = ("lenet5", "lenet5_bitserial", "lenet5_read_noise", "resnet20",
                "lenet5_time_wires")
LENET5_IMAGES = 2000
LENET5_BATCH = 500
RESNET20_BATCH = 256
CALIBRATION_IMAGES = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed plain/crossbar pairs per measurement (default 7)")
    parser.add_argument("--only", choices=MEASUREMENTS,
                        default=None, help="run one measurement only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def bench_config(bit_serial: bool = False, read_noise: bool = False) -> Any:
    """The crossbar timed by the benchmark (issue 5's settings; ``read_noise``: issue 14's
    2 % per-read noise with per-column ADC input)."""
    from explorer.crossbar import CrossbarConfig
    from explorer.device import DeviceModel

    extra: dict[str, Any] = dict(read_sigma=0.02, adc_input="per_column") if read_noise else {}
    return CrossbarConfig(device=DeviceModel(levels=16, nonlinearity=1.0), mapping="min_error",
                          scheme="offset", tile_rows=128, tile_cols=128, dac_bits=8,
                          adc_bits=6, prog_sigma=0.05, bit_serial=bit_serial, seed=0, **extra)


def time_wires_config() -> Any:
    """The crossbar of ``lenet5_time_wires_ratio``: :func:`bench_config` with first-order IR
    drop, PCM drift at one day, per-column compensation and an ideal ADC."""
    cfg = bench_config()
    cfg.param.update(adc_bits=None, ir_drop="first_order", drift="pcm", time_s=86400.0,
                     drift_compensation="column")
    return cfg


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


@torch.no_grad()
def compare(model: nn.Module, images: Tensor, cfg: Any, calibration: Tensor, batch_size: int,
            repeats: int, split_planes: bool = True) -> dict[str, float]:
    """Best-of-``repeats`` wall times (ms) of plain and crossbar inference and their ratio.

    One crossbar "run" = a new programming draw plus the forward pass over all images,
    in the batches :func:`explorer.evaluate.evaluate` uses (``batch_size`` divided by
    the input planes when ``split_planes``; the plain model always takes ``batch_size``).
    """
    from explorer.crossbar import to_crossbar
    from explorer.evaluate import analog_batch_size

    model = model.eval()
    start = time.perf_counter()
    analog = to_crossbar(model, cfg, calibration=calibration)
    setup = time.perf_counter() - start
    batches = list(images.split(batch_size))
    analog_batch = analog_batch_size(analog, batch_size) if split_planes else batch_size
    analog_batches = list(images.split(analog_batch))

    def plain() -> None:
        for x in batches:
            model(x)

    trial = iter(range(1, 1 << 30))

    def crossbar() -> None:
        analog.reprogram(next(trial))
        for x in analog_batches:
            analog(x)

    plain(), crossbar()  # warm-up (allocator, oneDNN primitives)
    plain_times, analog_times = [], []
    for _ in range(repeats):
        plain_times.append(_timed(plain))
        analog_times.append(_timed(crossbar))
    best_plain, best_analog = min(t[0] for t in plain_times), min(t[0] for t in analog_times)
    pairs = sorted(a[0] / p[0] for p, a in zip(plain_times, analog_times, strict=True))
    cpu_pairs = sorted(a[1] / p[1] for p, a in zip(plain_times, analog_times, strict=True))
    return {"plain_ms": 1e3 * best_plain, "crossbar_ms": 1e3 * best_analog,
            "ratio": statistics.median(pairs), "best_ratio": best_analog / best_plain,
            "cpu_ratio": statistics.median(cpu_pairs), "setup_ms": 1e3 * setup,
            "crossbar_batch": analog_batch}


def _lenet5() -> tuple[nn.Module, Tensor, Tensor, str]:
    from explorer.data import load_dataset
    from explorer.errors import InputError
    from explorer.models import build_model, load_pretrained

    try:
        model, weights = load_pretrained("lenet5-mnist"), "lenet5-mnist"
    except InputError:  # not trained yet: timing does not depend on the weight values
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, weights = build_model("lenet5").eval(), "random init"
    train = load_dataset("mnist-embedded", "train", limit=LENET5_IMAGES + CALIBRATION_IMAGES)
    images = train.images.float().div_(255)
    return model, images[:LENET5_IMAGES], images[LENET5_IMAGES:], weights


def _resnet20() -> tuple[nn.Module, Tensor, Tensor]:
    from explorer.models import build_model

    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("resnet20").eval()
    images = torch.rand(RESNET20_BATCH + CALIBRATION_IMAGES // 4, 3, 32, 32, generator=gen)
    return model, images[:RESNET20_BATCH], images[RESNET20_BATCH:]


def run_benchmarks(repeats: int = 7, only: str | None = None) -> dict[str, Any]:
    """All measurements as plain data (ratios and milliseconds)."""
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "repeats": repeats}
    if only in (None, "lenet5", "lenet5_bitserial", "lenet5_read_noise"):
        model, images, calibration, weights = _lenet5()
        out["lenet5_weights"] = weights
        for key, serial, noise in (("lenet5", False, False), ("lenet5_bitserial", True, False),
                                   ("lenet5_read_noise", False, True)):
            if only not in (None, key):
                continue
            timing = compare(model, images, bench_config(serial, noise), calibration,
                             LENET5_BATCH, repeats)
            out[f"{key}_ratio"] = round(timing["ratio"], 3)
            out.update({f"{key}_{name}": round(value, 2) for name, value in timing.items()
                        if name != "ratio"})
    if only in (None, "lenet5_time_wires"):
        model, images, calibration, weights = _lenet5()
        out["lenet5_weights"] = weights
        timing = compare(model, images, time_wires_config(), calibration, LENET5_BATCH, repeats)
        out["lenet5_time_wires_ratio"] = round(timing["ratio"], 3)
        out.update({f"lenet5_time_wires_{name}": round(value, 2)
                    for name, value in timing.items() if name != "ratio"})
    if only in (None, "resnet20"):
        model, images, calibration = _resnet20()
        timing = compare(model, images, bench_config(), calibration, RESNET20_BATCH, repeats,
                         split_planes=False)  # one batch of 256, as issue 5 asks
        out["resnet20_ratio"] = round(timing["ratio"], 3)
        out.update({f"resnet20_{name}": round(value, 2) for name, value in timing.items()
                    if name != "ratio"})
    return out


def run(args: argparse.Namespace) -> int:
    from explorer.errors import InputError

    if args.repeats < 1:
        raise InputError(f"--repeats: must be at least 1, got {args.repeats}")
    result = run_benchmarks(args.repeats, args.only)
    if args.json:
        print_json(result)
        return 0
    for key in MEASUREMENTS:
        if f"{key}_ratio" in result:
            print(f"{key:17s} plain {result[f'{key}_plain_ms']:8.1f} ms   crossbar "
                  f"{result[f'{key}_crossbar_ms']:8.1f} ms   ratio {result[f'{key}_ratio']:.2f}× "
                  f"(median of pairs; best/best {result[f'{key}_best_ratio']:.2f}×)")
    return 0
