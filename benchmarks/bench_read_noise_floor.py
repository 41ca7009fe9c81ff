"""What per-read noise must cost at least: the products it needs, against plain torch.

    python benchmarks/bench_read_noise_floor.py [--repeats 11] [--json]

Exact per-read conductance noise (docs/physics.md, "Read noise") needs, for every layer,
the partial sums (inputs × cells) and a second product of the same size (squared inputs ×
cell variances), then one normal number per conversion. This script times, on the
crossbar of ``explorer bench``'s ``lenet5_read_noise`` (LeNet5, batch 500, 128×128
tiles, per-column ADC, read σ 2 %), on each layer's real input:

* plain torch: the whole model, and its five layers alone;
* the crossbar's two products per layer alone (``products_ms``), nothing else;
* the fused noise-and-ADC pass alone (``noise_ms``) and the whole noisy crossbar.

``floor_ratio`` = (plain model − plain layers + the crossbar's products) / plain model:
what the crossbar would cost if drawing numbers, converting and adding up were free.
Compare it with ``explorer bench``'s target for ``lenet5_read_noise_ratio`` (1.5×).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def layer_inputs(model: torch.nn.Module, x: torch.Tensor, names: dict[str, str]
                 ) -> dict[str, torch.Tensor]:
    """The input each named submodule receives when ``model(x)`` runs."""
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [modules[full].register_forward_hook(
        lambda _m, args, _out, short=short: seen.__setitem__(short, args[0]))
        for short, full in names.items()]
    model(x)
    for hook in hooks:
        hook.remove()
    return seen


def time_layer(layer: torch.nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(ms of the layer's two products, ms of its fused noise + ADC pass) on input ``x``."""
    from explorer.read_kernels import add_read_noise
    from explorer.readnoise import read_variance

    planes, coeffs = layer._planes(layer._prepare(x))
    n_planes = coeffs.numel()
    grouped = next(v for k, v in layer.columns.cache.items() if k[0] == "grouped")
    step = float(layer.adc_range) / ((1 << int(layer.settings.adc_bits)) - 1)
    sums = layer._psums(planes, grouped, n_planes)
    sums = sums.view(sums.shape[0], n_planes, layer.plan.count, -1)
    noise = layer.read_noise

    def both() -> torch.Tensor:
        layer._psums(planes, grouped, n_planes)
        return read_variance(layer, lambda: layer.columns.variances(layer, noise), noise,
                              planes, layer._dac_step() / step, n_planes, sums.shape)

    variance = both()
    return best_ms(both, repeats), best_ms(
        lambda: add_read_noise(sums, variance, 0.0, noise.generator, (0.0, 63.0)), repeats)


@torch.no_grad()
def measure(repeats: int) -> dict[str, float]:
    from explorer.commands.bench import LENET5_BATCH, _lenet5, bench_config
    from explorer.crossbar import to_crossbar

    model, images, calibration, _ = _lenet5()
    analog = to_crossbar(model.eval(), bench_config(read_noise=True), calibration=calibration)
    x = images[:LENET5_BATCH]
    analog_names = {n.split(".")[-1]: n for n, _ in analog.named_modules()
                    if n.split(".")[-1] in LAYERS}
    plain_inputs = layer_inputs(model, x, {n: n for n in LAYERS})
    analog_inputs = layer_inputs(analog, x, analog_names)
    modules = dict(analog.named_modules())
    out: dict[str, float] = {"plain_model_ms": best_ms(lambda: model(x), repeats),
                             "crossbar_model_ms": best_ms(lambda: analog(x), repeats)}
    plain_layers = products = noise = 0.0
    for short in LAYERS:
        plain_layer = getattr(model, short)
        plain_layers += best_ms(lambda m=plain_layer, i=plain_inputs[short]: m(i), repeats)
        layer_products, layer_noise = time_layer(modules[analog_names[short]],
                                                 analog_inputs[short], repeats)
        products += layer_products
        noise += layer_noise
    out.update(plain_layers_ms=plain_layers, products_ms=products, noise_ms=noise)
    out["floor_ratio"] = (out["plain_model_ms"] - plain_layers + products) / out["plain_model_ms"]
    out["crossbar_ratio"] = out["crossbar_model_ms"] / out["plain_model_ms"]
    return {k: round(v, 3) for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
