"""What the cost estimate adds to an evaluation (issue 16's target: under 5 %).

Run from the repository root:  python benchmarks/bench_cost.py [--repeats 7] [--json]

LeNet5 on the 1000 embedded test digits, 256 calibration images, 4-bit ADC, one trial,
one torch thread, at 16 and 128 tile rows. Two parts are timed: ``estimate()`` on a built
crossbar, and the per-word-line input statistics recorded during calibration
(timed inside each ``to_crossbar``). Their sum is divided by the median time of the
whole evaluation without them (``evaluate`` with the statistics and the estimate switched
off), so the figure is a ratio measured in the same run. The machine's load average is
printed: other work on the two cores inflates every number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import explorer.evaluate as ev
from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.data import load_dataset
from explorer.models import load_pretrained
from explorer.tiles import TiledLayer
from explorer.workload import calibration_images


class _NoCost:
    def to_dict(self) -> dict:
        return {}


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_pretrained("lenet5-mnist")
    test = load_dataset("mnist-embedded", "test")
    images, _ = calibration_images("mnist-embedded", 256)
    real_estimate, real_stats = ev.estimate, TiledLayer._input_stats
    out = {"load_average": os.getloadavg()[0]}
    for rows in (16, 128):
        cfg = CrossbarConfig(adc_bits=4, tile_rows=rows)
        analog = to_crossbar(model, cfg, calibration=images)
        estimate_s = _median(lambda a=analog, c=cfg: real_estimate(a, c), args.repeats)
        spent: list[float] = []

        def timed(self, x, spent=spent):
            start = time.perf_counter()
            out = real_stats(self, x)
            spent[-1] += time.perf_counter() - start
            return out

        TiledLayer._input_stats = timed
        for _ in range(args.repeats):  # the statistics' own time inside each calibration
            spent.append(0.0)
            to_crossbar(model, cfg, calibration=images)
        stats_s = statistics.median(spent)
        ev.estimate = lambda a, c: _NoCost()
        TiledLayer._input_stats = lambda self, x: {}
        try:
            evaluation = _median(lambda c=cfg: ev.evaluate(model, test, c, calibration=images),
                                 args.repeats)
        finally:
            ev.estimate, TiledLayer._input_stats = real_estimate, real_stats
        added = estimate_s + stats_s
        out[f"rows_{rows}"] = {"evaluation_ms": 1e3 * evaluation, "estimate_ms": 1e3 * estimate_s,
                               "input_stats_ms": 1e3 * stats_s,
                               "cost_share": added / evaluation}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"load average {out['load_average']:.2f}")
    for rows in (16, 128):
        r = out[f"rows_{rows}"]
        print(f"tile rows {rows:>3}: evaluation {r['evaluation_ms']:.1f} ms, estimate "
              f"{r['estimate_ms']:.2f} ms, input statistics {r['input_stats_ms']:.1f} ms: "
              f"cost adds {100 * r['cost_share']:.1f} %")


if __name__ == "__main__":
    main()
