"""Seconds of the exact IR-drop solve: a 128×128 tile, 1,000 input vectors (issue 15: < 2 s).

Run from the repository root:  python benchmarks/bench_wires.py [--repeats 5] [--json]

Random conductances in [1, 10] µS, inputs in [0, 0.5] V, NeuroSim's 22 nm wires (2.1 Ω
per row segment, 6.4 Ω per column segment). Reported: the median and best wall time of
``column_currents(..., method="solve")`` and of ``"first_order"``, the plain ``v @ G``
product in the same run and the mean relative current loss. The machine's load average is
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

from explorer.wires import column_currents


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    G = torch.rand(args.size, args.size, generator=gen, dtype=torch.float64) * 9e-6 + 1e-6
    v = torch.rand(args.vectors, args.size, generator=gen, dtype=torch.float64) * 0.5
    out = {"size": args.size, "vectors": args.vectors, "load": os.getloadavg()[0],
           "threads": torch.get_num_threads()}
    for method in ("solve", "first_order"):
        times = timed(lambda m=method: column_currents(G, v, 2.1, 6.4, m), args.repeats)
        out[f"{method}_s_median"] = round(statistics.median(times), 4)
        out[f"{method}_s_best"] = round(min(times), 4)
    plain = timed(lambda: v @ G, args.repeats)
    out["plain_matmul_s"] = round(statistics.median(plain), 6)
    loss = 1 - column_currents(G, v, 2.1, 6.4, "solve") / (v @ G)
    out["mean_relative_loss"] = round(float(loss.mean()), 4)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for key, value in out.items():
            print(f"{key:22s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
