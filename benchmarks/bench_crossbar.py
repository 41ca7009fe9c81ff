"""Crossbar simulation cost against plain torch, and peak memory of a 10,000-image evaluation.

    python benchmarks/bench_crossbar.py [--repeats 7] [--skip-memory] [--json]

Prints the ratios of ``explorer bench`` (issue 5's targets: LeNet5 ≤ 1.5×, aim
1.3×; bit-serial 8-bit ≤ 10×; ResNet-20 batch 256 ≤ 2.5×; issue 14: LeNet5 with per-read
noise and per-column ADC ≤ 1.5×), wall time and CPU time, and
the peak resident memory of ``evaluate`` on 10,000 images (target < 2 GB), each
measured in a fresh subprocess so earlier work does not count. Ratios are medians over
alternating plain/crossbar pairs (see ``explorer/commands/bench.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {"lenet5_ratio": 1.5, "lenet5_bitserial_ratio": 10.0, "lenet5_read_noise_ratio": 1.5,
           "resnet20_ratio": 2.5}
MEMORY_LIMIT_MB = 2048

_MEMORY_SCRIPT = r"""
import json, resource, sys, torch
from explorer.commands.bench import bench_config
from explorer.data import load_dataset
from explorer.evaluate import evaluate
from explorer.models import build_model

arch, serial = sys.argv[1], sys.argv[2] == "1"
gen = torch.Generator().manual_seed(0)
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(0)
    model = build_model(arch).eval()
if arch == "lenet5":
    digits = load_dataset("mnist-embedded", "train").images
    images = digits.repeat(3, 1, 1, 1)[:10000]
else:
    images = torch.randint(0, 256, (10000, 3, 32, 32), dtype=torch.uint8, generator=gen)
labels = torch.randint(0, 10, (10000,), generator=gen)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = evaluate(model, (images, labels), bench_config(serial), trials=1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"images": result.images, "seconds": round(result.seconds, 2),
                  "peak_mb": round(peak / 1024, 1), "before_mb": round(before / 1024, 1)}))
"""


def peak_memory(arch: str, bit_serial: bool) -> dict:
    """Peak RSS (MB, Linux ru_maxrss) of a fresh process evaluating 10,000 images."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, arch, "1" if bit_serial else "0"],
                         cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from explorer.commands.bench import run_benchmarks

    result = run_benchmarks(repeats=args.repeats)
    if not args.skip_memory:
        for arch, serial in (("lenet5", False), ("lenet5", True), ("resnet20", False)):
            key = f"memory_{arch}{'_bitserial' if serial else ''}_10000"
            result[key] = peak_memory(arch, serial)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"torch threads: {result['threads']}, {result['repeats']} plain/crossbar pairs")
    for key, target in TARGETS.items():
        name = key.removesuffix("_ratio")
        ok = "ok" if result[key] <= target else "OVER TARGET"
        print(f"{name:17s} plain {result[f'{name}_plain_ms']:8.1f} ms  crossbar "
              f"{result[f'{name}_crossbar_ms']:8.1f} ms (batch {result[f'{name}_crossbar_batch']})"
              f"  ratio {result[key]:5.2f}× (best/best {result[f'{name}_best_ratio']:5.2f}×, "
              f"CPU time {result[f'{name}_cpu_ratio']:5.2f}×)"
              f"  target ≤ {target}×  {ok}")
    for key, value in result.items():
        if key.startswith("memory_"):
            ok = "ok" if value["peak_mb"] < MEMORY_LIMIT_MB else "OVER 2 GB"
            print(f"{key}: peak {value['peak_mb']:.0f} MB ({value['seconds']} s)  {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
