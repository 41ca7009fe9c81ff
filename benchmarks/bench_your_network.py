"""Seconds to convert torchvision's resnet18 and to inspect LeNet5 (issue 17's targets).

Run from the repository root:  python benchmarks/bench_your_network.py [--repeats 3] [--json]

* ``resnet18``: :func:`~explorer.crossbar.to_crossbar` of torchvision's resnet18 (random
  weights, no download) with the default min_error mapping and ideal converters, and
  with exact mapping; the ratio divides it by ``copy.deepcopy`` of the same network in
  the same run (the least a conversion that leaves the model unchanged must do).
  Target: under 5 s.
* ``inspect``: :func:`~explorer.inspect.inspect_network` of LeNet5 on the 1,000 embedded
  MNIST test images, 4-bit ADC, 128 rows (sensitivity included), against the plain
  torch forward pass of the same images in the same run. Target: under 30 s on 2 cores.

Each figure is the median of ``--repeats`` runs; the load average is printed: other work
on the cores inflates every number.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.data import load_dataset
from explorer.inspect import inspect_network
from explorer.models import load_pretrained


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    base = median_s(lambda: copy.deepcopy(resnet), args.repeats)
    default = median_s(lambda: to_crossbar(resnet, CrossbarConfig(dac_bits=None)), args.repeats)
    exact = median_s(lambda: to_crossbar(resnet, CrossbarConfig(mapping="exact",
                                                                 dac_bits=None)), args.repeats)
    lenet = load_pretrained("lenet5-mnist")
    test = load_dataset("mnist-embedded", "test")
    calibration = load_dataset("mnist-embedded", "train", limit=256).images.float() / 255
    images = test.images.float() / 255
    with torch.no_grad():
        forward = median_s(lambda: lenet(images), args.repeats)
    cfg = CrossbarConfig(adc_bits=4, tile_rows=128)
    inspect = median_s(lambda: inspect_network(lenet, test.images, test.labels, cfg,
                                               calibration), args.repeats)
    report = {"torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
              "resnet18_convert_min_error_s": default, "resnet18_convert_exact_s": exact,
              "resnet18_deepcopy_s": base, "convert_ratio_vs_deepcopy": default / base,
              "lenet5_inspect_1000_images_s": inspect, "lenet5_forward_1000_images_s": forward,
              "inspect_ratio_vs_forward": inspect / forward}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"torch threads {report['torch_threads']}, load average "
          f"{report['load_average'][0]:.1f}")
    print(f"resnet18 to_crossbar: min_error {default:.2f} s, exact {exact:.2f} s "
          f"(deepcopy {base:.3f} s, ratio {default / base:.0f}x); target < 5 s")
    print(f"LeNet5 inspect, 1000 images, 4-bit ADC: {inspect:.2f} s (plain forward "
          f"{forward * 1000:.1f} ms, ratio {inspect / forward:.0f}x); target < 30 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
