"""Figures of docs/time_and_wires.md: LeNet5 accuracy against time and against tile rows.

    python benchmarks/time_wires_figures.py [--trials 3] [--json]

1. ``docs/time_accuracy.png`` – accuracy against the time since programming (1 s … 10
   years) for ``pcm`` and ``reram`` drift, without and with per-column drift compensation
   (differential pairs, the default 16-level 1–10 µS cell, 8-bit DAC, ideal ADC; mean ±
   std over ``--trials`` programming draws, each evolved through all times).
2. ``docs/wires_accuracy.png`` – accuracy against tile rows with IR drop at 2 Ω and 10 Ω
   per wire segment (rows and columns), exact network solve and first order (points where
   the first-order loss reaches 100 % are left out), same crossbar, no drift.

Everything is measured when the script runs (1,000 embedded MNIST test digits, ranges
calibrated on the first 256 training digits); the numbers are printed (``--json``) and
written beside the figures as ``docs/time_and_wires.json``. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.crossbar import CrossbarConfig  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.device import DeviceModel  # noqa: E402
from explorer.errors import InputError  # noqa: E402
from explorer.evaluate import evaluate  # noqa: E402
from explorer.models import load_pretrained  # noqa: E402
from explorer.workload import calibration_images  # noqa: E402

YEAR = 365.25 * 24 * 3600
TIMES = [1.0, 60.0, 3600.0, 86400.0, 7 * 86400.0, 2.6e6, YEAR, 10 * YEAR]
TILE_ROWS = [16, 32, 64, 128, 256, 512]
RESISTANCES = [2.0, 10.0]
SCHEMES = ["differential", "offset"]


def base_config(scheme: str = "differential", **values: object) -> CrossbarConfig:
    return CrossbarConfig(device=DeviceModel(levels=16), scheme=scheme, dac_bits=8,
                          adc_bits=None, seed=0, **values)


def time_curves(model, test, calibration, trials: int) -> dict[str, list[dict]]:
    curves = {}
    for drift in ("pcm", "reram"):
        for comp in ("none", "column"):
            cfg = base_config(drift=drift, drift_compensation=comp)
            out = evaluate(model, test, cfg, trials=trials, calibration=calibration, times=TIMES)
            curves[f"{drift}/{comp}"] = [{k: r[k] for k in ("time_s", "accuracy_mean",
                                                            "accuracy_std")} for r in out.times]
            print(f"time: {drift}/{comp} done", file=sys.stderr, flush=True)
    return curves


def rows_curves(model, test, calibration) -> dict[str, list[dict]]:
    curves: dict[str, list[dict]] = {}
    for scheme in SCHEMES:
        for method in ("solve", "first_order"):
            for r in RESISTANCES:
                points = []
                for rows in TILE_ROWS:
                    cfg = base_config(scheme, ir_drop=method, r_row=r, r_col=r, tile_rows=rows)
                    try:
                        out = evaluate(model, test, cfg, calibration=calibration)
                    except InputError:  # first order beyond its range (loss >= 100 %)
                        continue
                    points.append({"tile_rows": rows, "accuracy": out.accuracy_mean})
                    print(f"rows: {scheme} {method} {r:g} Ω {rows} rows {out.seconds:.0f} s",
                          file=sys.stderr, flush=True)
                curves[f"{scheme}/{method}/{r:g}"] = points
        ideal = evaluate(model, test, base_config(scheme), calibration=calibration)
        curves[f"{scheme}/ideal"] = [{"tile_rows": rows, "accuracy": ideal.accuracy_mean}
                                     for rows in TILE_ROWS]
    return curves


def plot(results: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    styles = {"none": "--", "column": "-"}
    colors = {"pcm": "tab:red", "reram": "tab:blue"}
    for key, points in results["time"].items():
        drift, comp = key.split("/")
        t = [p["time_s"] for p in points]
        m = [100 * p["accuracy_mean"] for p in points]
        s = [100 * p["accuracy_std"] for p in points]
        ax.errorbar(t, m, yerr=s, ls=styles[comp], color=colors[drift], marker="o", ms=3,
                    capsize=2, label=f"{drift}, compensation {comp}")
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("LeNet5 accuracy (%)")
    for label, x in (("1 h", 3600), ("1 day", 86400), ("1 year", YEAR)):
        ax.axvline(x, color="0.85", lw=0.8, zorder=0)
        ax.text(x, ax.get_ylim()[0], f" {label}", fontsize=7, color="0.5", va="bottom")
    ax.legend(fontsize=8)
    ax.set_title("Drift: LeNet5 on differential pairs (16 levels, 1–10 µS)", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "time_accuracy.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.0), dpi=120, sharey=True)
    for ax, scheme in zip(axes, SCHEMES, strict=True):
        for key, points in results["rows"].items():
            parts = key.split("/")
            if parts[0] != scheme:
                continue
            xs = [p["tile_rows"] for p in points]
            ys = [100 * p["accuracy"] for p in points]
            if parts[1] == "ideal":
                ax.plot(xs, ys, color="0.5", ls=":", label="ideal wires")
                continue
            method, r = parts[1], parts[2]
            ax.plot(xs, ys, marker="o", ms=3, ls="-" if method == "solve" else "--",
                    color="tab:green" if r == "2" else "tab:purple",
                    label=f"{r} Ω/segment, {method.replace('_', ' ')}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(TILE_ROWS, [str(r) for r in TILE_ROWS])
        ax.set_xlabel("tile rows (word lines read at once)")
        ax.set_title(f"IR drop, {scheme} cells (16 levels, 1–10 µS)", fontsize=9)
    axes[0].set_ylabel("LeNet5 accuracy (%)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "wires_accuracy.png")
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    model = load_pretrained("lenet5-mnist")
    test = load_dataset("mnist-embedded", "test")
    calibration, _ = calibration_images("mnist-embedded", 256)
    results = {"time": time_curves(model, test, calibration, args.trials),
               "rows": rows_curves(model, test, calibration)}
    results["seconds"] = round(time.perf_counter() - start, 1)
    folder = Path(args.out)
    plot(results, folder)
    (folder / "time_and_wires.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for key, points in results["time"].items():
            print(key, " ".join(f"{100 * p['accuracy_mean']:.1f}" for p in points))
        for key, points in results["rows"].items():
            print(key, " ".join(f"{p['tile_rows']}:{100 * p['accuracy']:.1f}" for p in points))
        print(f"{results['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
