"""Do the seed papers' training claims reproduce? -> docs/reproduction.md

    python benchmarks/reproduction.py [--seeds 0 1 2] [--epochs 3] [--workers 2]
                                      [--out docs/reproduction.md] [--raw results.json]
    python benchmarks/reproduction.py --quick        # smoke run: 1 seed, few digits
    python benchmarks/reproduction.py --cifar-only   # only the CIFAR-10 smoke commands
    python benchmarks/reproduction.py --from-raw results.json   # rewrite the document

LeNet5 on the embedded MNIST digits (4,000 train / 1,000 test). To fit the time budget
every network is *fine-tuned* from the bundled float LeNet5 (98.9 %) for ``--epochs``
epochs instead of trained from scratch; the float baseline gets the same fine-tuning,
so each seed compares like with like. Three experiments:

(a) seed 001: 4-bit ADC at tile rows 9, 16, 128 — accuracy drop against an ideal ADC of
    the float network and of ``rq`` networks (weights 16 levels, 8-bit DAC, 4-bit ADC);
(b) seed 002: ``gq`` with 8, 4, 2 levels against float and against uniform QAT (``uq``);
(c) seed 000's setting: ``hwa`` vs float under NL 3 and 6, 8 and 16 levels, 10 %
    programming variation, ``min_error`` mapping, ``offset`` cells.

Each training job runs in a worker process with one torch thread (``--workers`` of them
in parallel). The verdicts in the document are generated from the numbers. The CIFAR-10
section runs the given commands on generated CIFAR-format data (a smoke test: the
commands work, the numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROWS = (9, 16, 128)
GQ_LEVELS = (8, 4, 2)
HWA_DEVICES = ((3.0, 8), (3.0, 16), (6.0, 8), (6.0, 16))
PROG_SIGMA = 0.10
TRIALS = 5
LR = {"float": 3e-4, "gq": 3e-4, "uq": 3e-4, "rq": 1e-4, "hwa": 1e-3}
RQ_QUANT_LR_SCALE = 30.0


# ----------------------------------------------------------------------------- workers
def _setup() -> None:
    import torch

    torch.set_num_threads(1)


def _hardware(kind: str, **values: Any) -> Any:
    from explorer.crossbar import CrossbarConfig
    from explorer.device import DeviceModel

    if kind == "float":
        return CrossbarConfig()
    if kind == "rq":  # (a): weights 16 levels, 8-bit DAC, 4-bit ADC on tile_rows
        return CrossbarConfig(device=DeviceModel(levels=16), mapping="exact", dac_bits=8,
                              adc_bits=4, tile_rows=values["rows"])
    if kind == "levels":  # (b): an ideal analog device with L levels, no converters
        return CrossbarConfig(device=DeviceModel(levels=values["levels"]), dac_bits=None)
    # (c): seed 000's device with programming variation, ideal converters
    return CrossbarConfig(device=DeviceModel(levels=values["levels"], nonlinearity=values["nl"]),
                          mapping="min_error", scheme="offset", prog_sigma=PROG_SIGMA,
                          dac_bits=None, seed=1000 + values["seed"])


class _Data:
    def __init__(self, limit: int | None) -> None:
        from explorer.data import load_dataset

        self.test = load_dataset("mnist-embedded", "test", limit=limit)
        self.calibration = load_dataset("mnist-embedded", "train", limit=256).images.float() / 255

    def accuracy(self, model: Any) -> float:
        from explorer.training import accuracy

        return accuracy(model, self.test)

    def trials(self, model: Any, cfg: Any) -> float:
        from explorer.evaluate import evaluate

        return evaluate(model, self.test, cfg, trials=TRIALS,
                        calibration=self.calibration).accuracy_mean


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one network (fine-tuning the bundled LeNet5) and measure what its experiment
    needs. Runs in a worker process."""
    _setup()
    from explorer.crossbar import CrossbarConfig, to_crossbar
    from explorer.deploy import plain_model, to_crossbar_from_checkpoint
    from explorer.device import DeviceModel
    from explorer.models import read_checkpoint
    from explorer.training import TrainConfig, save_checkpoint, train

    start = time.perf_counter()
    method, seed = job["method"], job["seed"]
    data = _Data(job["test_limit"])
    hardware = _hardware(job["kind"], seed=seed, **job["values"])
    cfg = TrainConfig(model="lenet5-mnist", method=method, hardware=hardware,
                      epochs=job["epochs"], seed=seed, lr=LR[method], limit=job["limit"],
                      quant_lr_scale=RQ_QUANT_LR_SCALE if method == "rq" else 10.0)
    result = train(cfg)
    out: dict[str, Any] = {**job, "trained_accuracy": result.test_accuracy}
    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(Path(folder) / "net.pt", result, cfg)
        ckpt = read_checkpoint(path)
    plain = plain_model(ckpt)
    if method == "float":
        ideal16 = DeviceModel(levels=16)
        out["ideal_adc"] = data.accuracy(to_crossbar(plain, CrossbarConfig(
            device=ideal16, mapping="exact", dac_bits=8), calibration=data.calibration))
        for rows in ROWS:
            for adc_range in ("max", "percentile"):
                analog = to_crossbar(plain, CrossbarConfig(
                    device=ideal16, mapping="exact", dac_bits=8, adc_bits=4, tile_rows=rows,
                    adc_range=adc_range), calibration=data.calibration)
                out[f"adc4_{adc_range}_{rows}"] = data.accuracy(analog)
        for levels in GQ_LEVELS:  # post-training quantization, no fine-tuning for it
            device = DeviceModel(levels=levels)
            for mapping in ("generalized", "min_error"):
                out[f"ptq_{mapping}_{levels}"] = data.accuracy(to_crossbar(
                    plain, CrossbarConfig(device=device, mapping=mapping, dac_bits=None)))
        for nl, levels in HWA_DEVICES:
            out[f"device_{nl:g}_{levels}"] = data.trials(
                plain, _hardware("device", nl=nl, levels=levels, seed=seed))
    elif method == "rq":
        rows = job["values"]["rows"]
        out["adc4_learned"] = data.accuracy(to_crossbar_from_checkpoint(ckpt, data.calibration))
        out["adc4_max"] = data.accuracy(to_crossbar_from_checkpoint(
            ckpt, data.calibration, learned_ranges=False))
        ideal = _hardware("rq", rows=rows)
        ideal.param.update(adc_bits=None, mapping="generalized")
        out["ideal_adc"] = data.accuracy(to_crossbar_from_checkpoint(ckpt, data.calibration,
                                                                     cfg=ideal))
    elif method in ("gq", "uq"):
        out["crossbar"] = data.accuracy(to_crossbar_from_checkpoint(ckpt, data.calibration))
    else:  # hwa
        values = job["values"]
        out["device"] = data.trials(plain, _hardware("device", seed=seed, **values))
    out["seconds"] = time.perf_counter() - start
    return out


def jobs(seeds: list[int], epochs: int, limit: int | None, test_limit: int | None
         ) -> list[dict[str, Any]]:
    common = {"epochs": epochs, "limit": limit, "test_limit": test_limit}
    out = []
    for seed in seeds:  # slowest first, so that parallel workers finish together
        out += [{"method": "rq", "kind": "rq", "seed": seed, "values": {"rows": r}, **common}
                for r in ROWS]
        out += [{"method": "hwa", "kind": "device", "seed": seed,
                 "values": {"nl": nl, "levels": lv}, **common} for nl, lv in HWA_DEVICES]
        out += [{"method": m, "kind": "levels", "seed": seed, "values": {"levels": lv},
                 **common} for lv in GQ_LEVELS for m in ("gq", "uq")]
        out.append({"method": "float", "kind": "float", "seed": seed, "values": {}, **common})
    return out


# ----------------------------------------------------------------------------- report
def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def _pct(values: list[float]) -> str:
    mean, std = _stats(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _pp(values: list[float]) -> str:
    mean, std = _stats(values)
    return f"{100 * mean:+.2f} ± {100 * std:.2f}"


def _compare(diff: tuple[float, float]) -> str:
    mean, std = diff
    if mean > std:
        return "gq better"
    return "uq better" if -mean > std else "no clear difference"


def _select(results: list[dict], method: str, **values: Any) -> list[dict]:
    return [r for r in results if r["method"] == method
            and all(r["values"].get(k) == v for k, v in values.items())]


def report(results: list[dict[str, Any]], args: argparse.Namespace, wall: float,
           cifar: dict[str, Any] | None) -> str:
    floats = _select(results, "float")
    seeds = sorted({r["seed"] for r in results})
    lines = [
        "# Reproducing the seed papers' training claims",
        "",
        f"Generated by `python benchmarks/reproduction.py {' '.join(args.argv)}`".rstrip()
        + f" in {wall / 60:.1f} min ({args.workers} worker process(es), one torch thread each; "
        f"{sum(r['seconds'] for r in results) / 60:.1f} CPU-min of training and evaluation).",
        "",
        "**Setup.** LeNet5 on the embedded MNIST digits "
        f"({'first ' + str(args.limit) + ' of ' if args.limit else ''}4,000 training, "
        f"{args.test_limit or 1000} test digits). **Reduced training**: every network is "
        f"fine-tuned from the bundled float LeNet5 (98.9 %) for {args.epochs} epoch(s) "
        "(Adam, one-cycle schedule, augmentation), not trained from scratch as the papers "
        "do; the float baseline is fine-tuned the same way with the same seed. Learning "
        f"rates: float/gq/uq {LR['float']:g}, rq {LR['rq']:g} (quantizer parameters ×"
        f"{RQ_QUANT_LR_SCALE:g}), hwa {LR['hwa']:g}. Seeds {seeds} (shuffling, "
        "augmentation, relaxation and device noise); tables give mean ± sample std over "
        "seeds, in % (accuracy) or percentage points (pp, drops); one test digit is "
        f"{100 / (args.test_limit or 1000):.1f} pp. Every network is measured "
        "on the crossbar simulator after `explorer.deploy` loads its checkpoint "
        "(codebooks → `generalized` mapping, learned ranges → DAC/ADC).",
        "",
    ]
    # (a) ------------------------------------------------------------------------------
    lines += ["## (a) 4-bit ADC per row chunk (seed 001)", "",
              "Float network: 8-bit DAC, exact weights, 4-bit ADC with the simulator's "
              "calibration (`max` or `percentile` 99.99 of the partial sums); its reference "
              "is the same crossbar with an ideal ADC. rq network: trained through relaxed "
              "16-level weights, 8-bit DAC and 4-bit ADC on the same row chunks; evaluated "
              "with its learned ranges; its reference is the same rq network with an ideal "
              "ADC. *Drop* = reference − 4-bit accuracy.", "",
              "| tile rows | float, ideal ADC | float 4-bit (max) | drop | float 4-bit "
              "(percentile) | drop | rq, ideal ADC | rq 4-bit (learned) | drop | rq 4-bit "
              "(max cal.) | rq drop vs float ideal |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    rq_drops: dict[int, float] = {}
    float_drops: dict[int, float] = {}
    for rows in ROWS:
        rq = sorted(_select(results, "rq", rows=rows), key=lambda r: r["seed"])
        fl = sorted(floats, key=lambda r: r["seed"])
        f_ideal = [r["ideal_adc"] for r in fl]
        f_max = [r[f"adc4_max_{rows}"] for r in fl]
        f_pct = [r[f"adc4_percentile_{rows}"] for r in fl]
        r_ideal = [r["ideal_adc"] for r in rq]
        r_learn = [r["adc4_learned"] for r in rq]
        r_max = [r["adc4_max"] for r in rq]
        f_drop = [a - b for a, b in zip(f_ideal, f_max, strict=True)]
        f_drop_pct = [a - b for a, b in zip(f_ideal, f_pct, strict=True)]
        r_drop = [a - b for a, b in zip(r_ideal, r_learn, strict=True)]
        r_drop_f = [a - b for a, b in zip(f_ideal, r_learn, strict=True)]
        rq_drops[rows] = _stats(r_drop)[0]
        float_drops[rows] = min(_stats(f_drop)[0], _stats(f_drop_pct)[0])
        lines.append(f"| {rows} | {_pct(f_ideal)} | {_pct(f_max)} | {_pp(f_drop)} | "
                     f"{_pct(f_pct)} | {_pp(f_drop_pct)} | {_pct(r_ideal)} | {_pct(r_learn)} | "
                     f"{_pp(r_drop)} | {_pct(r_max)} | {_pp(r_drop_f)} |")
    ok = [rows for rows, d in rq_drops.items() if d <= 0.005]
    lines += ["", "**Verdict.** Seed 001 reports a 0.05 % drop on MNIST; the issue's aim is "
              "≤ 0.5 pp. " + (
                  f"The rq networks stay within 0.5 pp of their ideal-ADC accuracy at tile "
                  f"rows {ok}" if ok else "The rq networks do not stay within 0.5 pp at any "
                  "tile size") + (
                  f" but not at {[r for r in ROWS if r not in ok]}" if ok and len(ok) < 3
                  else "") + ". Against the float network's best calibration the rq drop is "
              + ", ".join(f"{100 * rq_drops[r]:.2f} vs {100 * float_drops[r]:.2f} pp "
                          f"(rows {r})" for r in ROWS) + ". "
              + ("The 0.05 % figure itself is not reached" if min(rq_drops.values()) > 0.0005
                 else "The 0.05 % figure is reached") + " with these short fine-tuning runs.",
              ""]
    # (b) ------------------------------------------------------------------------------
    f_acc = [r["trained_accuracy"] for r in floats]
    lines += ["## (b) Generalized vs uniform quantization (seed 002)", "",
              "Weights only (ideal device, no DAC/ADC): `gq` learns a per-layer codebook "
              "of L values (Lloyd-Max start), `uq` L evenly spaced values with a learned "
              "scale; both are deployed with the `generalized` mapping and their codebook. "
              "Post-training columns: the fine-tuned float network mapped without any "
              "quantization-aware training (Lloyd-Max codebook, resp. the uniform grid "
              "`min_error` gives on a linear device).", "",
              f"Float (fine-tuned the same way): **{_pct(f_acc)} %**.", "",
              "| levels | gq | uq | gq − float (pp) | gq − uq (pp) | PTQ Lloyd-Max | "
              "PTQ uniform |", "|---|---|---|---|---|---|---|"]
    verdicts = []
    for levels in GQ_LEVELS:
        gq = [r["crossbar"] for r in sorted(_select(results, "gq", levels=levels),
                                            key=lambda r: r["seed"])]
        uq = [r["crossbar"] for r in sorted(_select(results, "uq", levels=levels),
                                            key=lambda r: r["seed"])]
        vs_float = [a - b for a, b in zip(gq, f_acc, strict=True)]
        vs_uq = [a - b for a, b in zip(gq, uq, strict=True)]
        lines.append(f"| {levels} | {_pct(gq)} | {_pct(uq)} | {_pp(vs_float)} | {_pp(vs_uq)} |"
                     f" {_pct([r[f'ptq_generalized_{levels}'] for r in floats])} | "
                     f"{_pct([r[f'ptq_min_error_{levels}'] for r in floats])} |")
        verdicts.append((levels, _stats(vs_float), _stats(vs_uq)))
    (_, f8, _), *rest = verdicts
    fewer_ok = all(_compare(d) == "gq better" for _, _, d in rest)
    ptq = {lv: (_stats([r[f"ptq_generalized_{lv}"] for r in floats])[0],
                _stats([r[f"ptq_min_error_{lv}"] for r in floats])[0]) for lv in GQ_LEVELS}
    ptq_wins = [lv for lv, (g, u) in ptq.items() if g > u]
    lines += ["", "**Verdict.** Seed 002: with 8 levels gq matches or beats float — "
              + ("reproduced" if f8[0] >= -f8[1] - 0.001 else "not reproduced")
              + f" (gq − float = {100 * f8[0]:+.2f} ± {100 * f8[1]:.2f} pp). With fewer levels "
              "gq loses less than uniform quantization — "
              + ("reproduced" if fewer_ok else "not reproduced after quantization-aware "
                 "training") + ": "
              + "; ".join(f"{lv} levels: gq − uq = {100 * d[0]:+.2f} ± {100 * d[1]:.2f} pp "
                          f"({_compare(d)})" for lv, _, d in rest) + ". Without training "
              "(post-training columns) the Lloyd-Max codebook beats the uniform grid at "
              + (f"{ptq_wins} levels" if ptq_wins else "no level count")
              + (f" and loses at {[lv for lv in GQ_LEVELS if lv not in ptq_wins]}"
                 if len(ptq_wins) < len(GQ_LEVELS) else "") + ".", ""]
    # (c) ------------------------------------------------------------------------------
    lines += ["## (c) Hardware-aware fine-tuning on nonlinear devices (seed 000's setting)", "",
              f"`min_error` mapping on `offset` cells, {100 * PROG_SIGMA:.0f} % relative "
              f"programming variation, ideal DAC/ADC; {TRIALS} Monte-Carlo programming "
              "draws per network (mean), then mean ± std over seeds. hwa trains through the "
              "same mapping with fresh variation every step (deviation blended in over the "
              "first half).", "",
              "| NL | levels | float | hwa | hwa − float (pp) | hwa noise-free |",
              "|---|---|---|---|---|---|"]
    gains = []
    for nl, levels in HWA_DEVICES:
        fl = [r[f"device_{nl:g}_{levels}"] for r in sorted(floats, key=lambda r: r["seed"])]
        hw = sorted(_select(results, "hwa", nl=nl, levels=levels), key=lambda r: r["seed"])
        hwa = [r["device"] for r in hw]
        gain = [a - b for a, b in zip(hwa, fl, strict=True)]
        gains.append((nl, levels, _stats(gain), _stats(hwa)[0]))
        lines.append(f"| {nl:g} | {levels} | {_pct(fl)} | {_pct(hwa)} | {_pp(gain)} | "
                     f"{_pct([r['trained_accuracy'] for r in hw])} |")
    helped = [f"NL {nl:g} / {lv} levels" for nl, lv, (g, s), _ in gains
              if g > s and g > 0.005]
    failed = [(nl, lv) for nl, lv, _, acc in gains if acc < 0.5]
    lines += ["", "**Verdict.** Seed 000's claim is about the mapping (min-error substitution "
              "rescues nonlinear devices, also under variation); hwa adds training on top. "
              "hwa " + (f"raises the accuracy under variation by more than the seed spread "
                        f"for {', '.join(helped)}" if helped else
                        "does not raise the accuracy beyond the seed spread anywhere") + "."]
    for nl, lv in failed:
        from explorer.device import DeviceModel

        values = 2 * DeviceModel(levels=lv, nonlinearity=nl).normalized_levels() - 1
        below, above = values[values < 0].max(), values[values >= 0].min()
        lines[-1] += (f" It does not rescue NL {nl:g} / {lv} levels: the offset cell's values "
                      f"nearest zero are {below:+.2f} and {above:+.2f} · w_max, so every small "
                      "weight is written far from zero, the first mapped forward pass is at "
                      "chance, and a few straight-through epochs do not recover it (the "
                      "differential scheme or `scale=\"optimal\"`, docs/results.md, address "
                      "that device).")
    lines.append("")
    # notes -----------------------------------------------------------------------------
    lines += ["## What was not reproduced as the papers did it", "",
              "- Training budget: fine-tuning for a few epochs on 4,000 digits, not full "
              "training runs; seed 002's and seed 001's CIFAR-10 and ImageNet-scale results "
              "are out of reach on 2 CPU cores.",
              "- Relaxation: `rq` samples Louizos et al.'s distribution (logistic noise of "
              "scale σ = ⅓ step on the value, each grid point with its cell's probability) "
              "as a *soft rounding of the noisy value* – a tempered sigmoid rescaled to run "
              "exactly from one grid point to the next – rather than the paper's "
              "Gumbel-softmax over a local grid (`--rq-relaxation gumbel` keeps that, with "
              "the two grid points around the value). The soft rounding is continuous in the "
              "value, so its pathwise gradient is unbiased: over values spread on an 8-bit "
              "grid its mean is 1.00 at temperatures 1, 0.3 and 0.1, against 0.41, 0.55 and "
              "0.58 for the two-point Gumbel-softmax, whose sample jumps where the pair "
              "changes. Both tend to the same hard samples as the temperature falls. From "
              "scratch (LeNet5, 8 epochs of which 2 float warm-up, 16 levels, 8-bit DAC, "
              "4-bit ADC on 128 rows): soft rounding 95.9 %, Gumbel-softmax 80.7 % (float "
              "97.7 %); without the float warm-up the Gumbel version reached 40 % in 4 "
              "epochs.",
              "- The rq ADC range starts at the least-squares range of the calibration "
              "batch's partial sums, not at the simulator's `max`; much of rq's gain over "
              "the float network comes from that start (compare the 'rq 4-bit (max cal.)' "
              "column, same weights with the simulator's own calibration).",
              ""]
    lines += cifar_section(cifar)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CIFAR-10
CIFAR_COMMANDS = [
    "explorer train --model resnet20 --data cifar10 --epochs 160 --lr 3e-3 --seed 0 "
    "--out resnet20_cifar10.pt",
    "explorer train --model resnet20_cifar10.pt --data cifar10 --method rq --levels 16 "
    "--dac-bits 8 --adc-bits 4 --tile-rows 9 --batch-size 8 --epochs 15 --lr 1e-4 "
    "--quant-lr-scale 30 --seed 0 --out resnet20_rq.pt",
    "explorer train --model resnet20_cifar10.pt --data cifar10 --method gq --levels 8 "
    "--dac-bits ideal --epochs 15 --lr 3e-4 --seed 0 --out resnet20_gq8.pt",
    "explorer train --model resnet20_cifar10.pt --data cifar10 --method hwa --levels 16 "
    "--nonlinearity 3 --prog-sigma 0.1 --dac-bits ideal --epochs 15 --lr 1e-3 --seed 0 "
    "--out resnet20_hwa.pt",
    "explorer evaluate --model resnet20_cifar10.pt --data cifar10 --adc-bits 4 --tile-rows 9 "
    "--mapping exact",
    "explorer evaluate --model resnet20_rq.pt --data cifar10",
    "explorer evaluate --model resnet20_rq.pt --data cifar10 --adc-bits ideal",
    "explorer evaluate --model resnet20_gq8.pt --data cifar10",
    "explorer evaluate --model resnet20_hwa.pt --data cifar10 --trials 5",
]
CIFAR_SMOKE = {"--epochs": "1", "--limit": "64"}


def write_fake_cifar(root: Path, per_batch: int = 80, seed: int = 0) -> Path:
    """CIFAR-10 in its python-pickle format (cifar-10-batches-py), random pixels."""
    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"batch_label": name, "labels": rng.integers(0, 10, per_batch).tolist(),
                 "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                     "frog", "horse", "ship", "truck"]}, fh)
    return folder


def cifar_smoke() -> dict[str, Any]:
    """Run CIFAR_COMMANDS (epochs 1, 64 images) on generated data; exit status and time."""
    import shlex
    from contextlib import redirect_stdout
    from io import StringIO

    from explorer.cli import main

    runs = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_fake_cifar(root / "data")
        previous = os.environ.get("EXPLORER_DATA")
        os.environ["EXPLORER_DATA"] = str(root / "data")
        cwd = os.getcwd()
        os.chdir(root)
        try:
            for command in CIFAR_COMMANDS:
                argv = shlex.split(command)[1:]
                for option, value in CIFAR_SMOKE.items():
                    if option in argv:
                        argv[argv.index(option) + 1] = value
                    elif option == "--limit" or argv[0] == "train":
                        argv += [option, value]
                start = time.perf_counter()
                with redirect_stdout(StringIO()):
                    code = main(argv)
                runs.append({"command": "explorer " + shlex.join(argv), "exit": code,
                             "seconds": round(time.perf_counter() - start, 1)})
        finally:
            os.chdir(cwd)
            if previous is None:
                os.environ.pop("EXPLORER_DATA", None)
            else:
                os.environ["EXPLORER_DATA"] = previous
    return {"runs": runs}


def cifar_section(cifar: dict[str, Any] | None) -> list[str]:
    lines = ["## CIFAR-10 (not run here)", "",
             "CIFAR-10 cannot be downloaded on this machine. With the data in "
             "`$EXPLORER_DATA/cifar-10-batches-py` (or let `explorer` download it), these are "
             "the commands for seed 001's and seed 002's CIFAR experiments with ResNet-20 "
             "(first layer: signed inputs, two DAC passes). rq with 9-row tiles holds every "
             "chunk's partial sums for the backward pass — about 5 million per ResNet-20 "
             "image (3×3 kernels: one input channel per 9-row chunk) — hence `--batch-size 8` "
             "(≈ 2 GB); with `--tile-rows 64` seven channels share a chunk and larger "
             "batches fit:", "", "```sh",
             *CIFAR_COMMANDS, "```", "",
             "A checkpoint records the crossbar it was trained for, and the rq and gq ones "
             "their codebooks and learned ADC ranges: `explorer evaluate --model` (and "
             "`explorer sweep --model`) uses all of them – codebooks as the `generalized` "
             "mapping, learned ranges in place of the calibrated ones –, so the evaluate "
             "commands above need no crossbar options; options typed change only "
             "themselves (`--adc-bits ideal`: the ideal-ADC reference of seed 001's drop), "
             "`--ignore-checkpoint` evaluates the weights alone. From Python (not run by the "
             "docs test: it needs the CIFAR-10 checkpoint trained above):", "",
             "<!-- no-test -->", "```python",
             "from explorer.deploy import to_crossbar_from_checkpoint",
             "analog = to_crossbar_from_checkpoint(\"resnet20_rq.pt\", calibration=images)",
             "```", ""]
    if cifar is not None:
        lines += ["**Smoke test** on generated CIFAR-format data (random pixels, 80 images "
                  "per batch file; each command with `--epochs 1 --limit 64`):", "",
                  "| command | exit status | seconds |", "|---|---|---|"]
        lines += [f"| `{r['command']}` | {r['exit']} | {r['seconds']} |" for r in cifar["runs"]]
        lines.append("")
    return lines


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N training digits")
    parser.add_argument("--test-limit", type=int, default=None, help="first N test digits")
    parser.add_argument("--out", default=str(ROOT / "docs" / "reproduction.md"))
    parser.add_argument("--raw", default=None, help="also write the raw numbers (JSON)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: seed 0, 1 epoch, 256 train / 200 test digits")
    parser.add_argument("--from-raw", default=None, metavar="JSON",
                        help="write the document from a --raw file, without running anything")
    parser.add_argument("--cifar-only", action="store_true")
    parser.add_argument("--no-cifar", action="store_true")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.seeds, args.epochs, args.limit, args.test_limit = [0, 1], 1, 256, 200
    if args.from_raw:
        raw = json.loads(Path(args.from_raw).read_text())
        for key in ("seeds", "epochs", "workers", "limit", "test_limit", "argv"):
            setattr(args, key, raw["args"][key])
        text = report(raw["results"], args, raw["wall"], raw["cifar"])
        Path(args.out).write_text(text)
        print(f"wrote {args.out} from {args.from_raw}")
        return 0
    _setup()
    cifar = None if args.no_cifar else cifar_smoke()
    if cifar is not None:
        print(json.dumps(cifar, indent=1), flush=True)
    if args.cifar_only:
        return 0 if all(r["exit"] == 0 for r in cifar["runs"]) else 1
    start = time.perf_counter()
    todo = jobs(args.seeds, args.epochs, args.limit, args.test_limit)
    results = []
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_setup) as pool:
        for result in pool.map(run_job, todo):
            results.append(result)
            done = len(results)
            print(f"[{done}/{len(todo)}] {result['method']} seed {result['seed']} "
                  f"{result['values']} {result['seconds']:.0f} s", flush=True)
    wall = time.perf_counter() - start
    if args.raw:
        settings = {key: getattr(args, key) for key in
                    ("seeds", "epochs", "workers", "limit", "test_limit", "argv")}
        Path(args.raw).write_text(json.dumps({"args": settings, "wall": wall, "cifar": cifar,
                                              "results": results}, indent=1))
    text = report(results, args, wall, cifar)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out} ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
