"""Milliseconds per map_model + error histogram (LeNet5, ResNet-20), and Lloyd-Max on 1M weights.

Run from the repository root:  python benchmarks/bench_mapping.py [--repeats 15] [--json]

Each figure is the median wall time of ``--repeats`` runs (after one warm-up), for
every method × scale × scheme. The ratio column divides it by plain torch doing a
uniform round-to-nearest quantization of the same layers in the same run
(``torch.round(w / s * k) * s / k`` per layer), the cheapest thing a mapper could do.
Issue 4's targets: LeNet5 ≤ 20 ms, ResNet-20 ≤ 300 ms, Lloyd-Max on 1M weights ≤ 1 s.
The machine's load average is printed: other work on the two cores inflates every number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.device import DeviceModel
from explorer.mapping import METHODS, SCALES, SCHEMES, lloyd_max, map_model
from explorer.models import analog_layers, build_model, load_pretrained
from explorer.paths import assets_dir


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (caches, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def models() -> dict[str, torch.nn.Module]:
    lenet = (load_pretrained("lenet5-mnist") if (assets_dir() / "lenet5_mnist.pt").is_file()
             else build_model("lenet5"))
    return {"lenet5": lenet, "resnet20": build_model("resnet20").eval()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--preset", default="AlOx/HfO2")
    parser.add_argument("--levels", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, 2 on this machine)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = DeviceModel.from_preset(args.preset, levels=args.levels)
    rows = []
    for name, model in models().items():
        weights = [m.weight.detach() for _, m in analog_layers(model)]

        def plain_torch(ws: list[torch.Tensor] = weights) -> None:
            for w in ws:
                s = w.abs().max()
                torch.histc(torch.round(w / s * 7) * s / 7 - w, bins=64)

        base = median_ms(plain_torch, args.repeats)
        for scheme in SCHEMES:
            for method in METHODS:
                for scale in SCALES:
                    def run(model: torch.nn.Module = model, method: str = method,
                            scheme: str = scheme, scale: str = scale) -> None:
                        for result in map_model(model, device, method, scheme, scale).values():
                            result.histogram(bins=64)

                    ms = median_ms(run, args.repeats)
                    rows.append({"model": name, "weights": sum(w.numel() for w in weights),
                                 "scheme": scheme, "method": method, "scale": scale,
                                 "ms": ms, "ratio_vs_torch_round": ms / base})
    w1m = torch.randn(1_000_000, generator=torch.Generator().manual_seed(0))
    lloyd = {f"lloyd_max_1M_{k}_levels_ms": median_ms(lambda k=k: lloyd_max(w1m, k),
                                                       max(3, args.repeats // 3))
             for k in (8, 64, 256)}
    report = {"device": f"{args.preset}, {args.levels} levels", "torch_threads":
              torch.get_num_threads(), "load_average": os.getloadavg(), "rows": rows, **lloyd}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"map_model + histogram, {report['device']}, torch threads "
          f"{report['torch_threads']}, load average {report['load_average'][0]:.1f}")
    print(f"{'model':9s} {'scheme':18s} {'method':12s} {'scale':8s} {'ms':>8s} {'× round':>8s}")
    for r in rows:
        print(f"{r['model']:9s} {r['scheme']:18s} {r['method']:12s} {r['scale']:8s} "
              f"{r['ms']:8.2f} {r['ratio_vs_torch_round']:8.1f}")
    for key, value in lloyd.items():
        print(f"{key}: {value:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
