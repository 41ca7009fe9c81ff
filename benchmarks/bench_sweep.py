"""Sweep throughput: evaluations (grid point × trial) per minute, in this process and on a
local Dask cluster of 1 and 2 worker processes (one torch thread each).

LeNet5 on the embedded MNIST test digits, a 4 × 3 grid (levels × nonlinearity) with a
6-bit ADC and 5 % programming variation. Each cluster is warmed up (workers started,
torch imported, one grid point evaluated) before the timed sweeps (best and median of
``--repeats``). Prints one JSON object;
the load average shows how busy the machine was (the numbers scale with free cores).

    python benchmarks/bench_sweep.py [--images 1000] [--trials 2] [--workers 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from explorer.crossbar import CrossbarConfig
from explorer.sweep import SweepSpec, connect, load_sweep_data, run_sweep

GRID = {"levels": [4, 8, 16, 32], "nonlinearity": [0.0, 1.0, 3.0]}


def measure(spec: SweepSpec, data, repeats: int, client=None) -> dict:
    warm = SweepSpec(base=spec.base, grid={"levels": [5]}, trials=1)
    run_sweep(warm, data, client=client)  # start workers, import torch, ship the data
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        outcome = run_sweep(spec, data, client=client)
        seconds = time.perf_counter() - start
        assert outcome.complete and not outcome.failed
        rates.append(60 * len(outcome.table) / seconds)
    rates.sort()
    return {"rows": len(outcome.table), "evaluations_per_minute_best": round(rates[-1], 1),
            "evaluations_per_minute_median": round(rates[len(rates) // 2], 1),
            "evaluations_per_minute_all": [round(r, 1) for r in rates]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="timed sweeps per setting")
    args = parser.parse_args()

    torch.set_num_threads(1)  # the in-process reference uses one thread, as a worker does
    data = load_sweep_data("lenet5-mnist", limit=args.images)
    base = CrossbarConfig(adc_bits=6, prog_sigma=0.05)
    spec = SweepSpec(base=base, grid=GRID, trials=args.trials)
    results = {"images": args.images, "grid_points": 12, "trials": args.trials,
               "cores": len(os.sched_getaffinity(0)), "load_average_before": os.getloadavg()}
    results["in_process_1_thread"] = measure(spec, data, args.repeats)
    for n in args.workers:
        client, cluster = connect(workers=n)
        try:
            results[f"dask_{n}_workers"] = measure(spec, data, args.repeats, client)
        finally:
            client.close()
            cluster.close()
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
