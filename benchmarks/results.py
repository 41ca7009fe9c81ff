"""Accuracy of the pretrained LeNet5 on simulated crossbars -> docs/results.md.

    python benchmarks/results.py [--out docs/results.md] [--trials 3]

Everything is measured when the script runs (1,000 embedded MNIST test digits, DAC/ADC
ranges calibrated on the first 256 training digits); the sentences under each table are
generated from the measured numbers, so they change with them. Runtime: a few minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from explorer.crossbar import CrossbarConfig  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.device import PRESETS, DeviceModel  # noqa: E402
from explorer.evaluate import EvaluationResult, evaluate  # noqa: E402
from explorer.models import load_pretrained  # noqa: E402

ADC_BITS = (3, 4, 5, 6, 8, None)
TILE_ROWS = (9, 64, 128)
ADC_RANGES = ("max", "percentile")
LEVELS = (4, 8, 16, 32)
NONLINEARITIES = (0.0, 1.0, 3.0, 6.0)
MAPPINGS = ("linear", "min_error", "generalized")
SCHEMES = ("offset", "differential")
SIGMAS = (0.0, 0.05, 0.10, 0.20)
DEVICES = ("Ag:a-Si", "TaOx/HfOx", "AlOx/HfO2", "EpiRAM")
ADC_SIGMA = 0.05


class Lab:
    """The model, the digits and a cache of evaluations keyed by their settings."""

    def __init__(self, trials: int) -> None:
        self.model = load_pretrained("lenet5-mnist")
        self.test = load_dataset("mnist-embedded", "test")
        self.calibration = load_dataset("mnist-embedded", "train", limit=256).images.float() / 255
        self.trials = trials
        self.count = 0
        self.float_accuracy: float | None = None

    def run(self, trials: int | None = None, **settings: Any) -> EvaluationResult:
        self.count += 1
        result = evaluate(self.model, self.test, CrossbarConfig(**settings),
                          trials=trials or self.trials, calibration=self.calibration)
        self.float_accuracy = result.float_accuracy
        return result


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def cell(result: EvaluationResult) -> str:
    if result.trials == 1:
        return pct(result.accuracy_mean)
    return f"{pct(result.accuracy_mean)} ± {pct(result.accuracy_std)}"


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def bits_name(bits: int | None) -> str:
    return "ideal" if bits is None else f"{bits}-bit"


def verdict(ok: bool, yes: str, no: str) -> str:
    return yes if ok else no


def span(values: list[float]) -> str:
    """'a–b %' of accuracies (fractions), or 'a %' when they are all equal."""
    low, high = pct(min(values)), pct(max(values))
    return f"{low} %" if low == high else f"{low}–{high} %"


def points(values: list[float]) -> str:
    """'a to b points' of accuracy differences (fractions)."""
    low, high = 100 * min(values), 100 * max(values)
    return f"{low:.1f} points" if f"{low:.1f}" == f"{high:.1f}" else \
        f"{low:.1f} to {high:.1f} points"


# ----------------------------------------------------------------------------- sections


def adc_section(lab: Lab) -> str:
    res: dict[tuple, EvaluationResult] = {}
    for adc_range in ADC_RANGES:
        for tile_rows in TILE_ROWS:
            for bits in ADC_BITS:
                res[adc_range, tile_rows, bits] = lab.run(
                    mapping="exact", dac_bits=8, adc_bits=bits, adc_range=adc_range,
                    tile_rows=tile_rows, prog_sigma=ADC_SIGMA)
    header = ["ADC range", "tile rows"] + [bits_name(b) for b in ADC_BITS]
    rows = [[adc_range, str(tile_rows)] + [cell(res[adc_range, tile_rows, b]) for b in ADC_BITS]
            for adc_range in ADC_RANGES for tile_rows in TILE_ROWS]

    def drop(bits: int, adc_range: str, tile_rows: int = 128) -> float:
        return (res[adc_range, tile_rows, None].accuracy_mean
                - res[adc_range, tile_rows, bits].accuracy_mean)

    best4 = min(drop(4, r, t) for r in ADC_RANGES for t in TILE_ROWS)
    worst4 = max(drop(4, r, t) for r in ADC_RANGES for t in TILE_ROWS)
    drop8 = max(abs(drop(8, r, t)) for r in ADC_RANGES for t in TILE_ROWS)
    drop6 = max(drop(6, r, t) for r in ADC_RANGES for t in TILE_ROWS)
    three = {(r, t): res[r, t, 3].accuracy_mean for r in ADC_RANGES for t in TILE_ROWS}
    pct_better = [three["percentile", t] - three["max", t] for t in TILE_ROWS]
    tiles_effect = [res[r, 9, 3].accuracy_mean - res[r, 128, 3].accuracy_mean
                    for r in ADC_RANGES]
    monotone = all(res[r, t, a].accuracy_mean <= res[r, t, b].accuracy_mean + 0.003
                   for r in ADC_RANGES for t in TILE_ROWS
                   for a, b in pairwise(ADC_BITS))
    four_bit = verdict(
        worst4 <= 0.005, "as small: the claim holds here even without training",
        "larger: this is the loss the paper's training sets out to remove (its motivation "
        "matches, its trained result is not reproduced without training)")
    words = [
        f"Weights are written without level quantization (`exact`) with {pct(ADC_SIGMA)} % "
        f"programming variation, inputs through an 8-bit DAC; each row chunk's partial sum "
        f"goes through the ADC (one range per layer, calibrated on 256 training digits).",
        "",
        f"- Fewer ADC bits {verdict(monotone, 'never help', 'do not always hurt')} here "
        f"(within 0.3 %, the noise of 1,000 digits). An 8-bit ADC is within "
        f"{pct(drop8)} % of the ideal one everywhere, 6 bits lose at most {pct(drop6)} %.",
        f"- 4 bits lose {pct(best4)}–{pct(worst4)} % against an ideal ADC. Seed 001 reports "
        f"0.05 % on MNIST, but after training with relaxed quantization of the ADC outputs; "
        f"without that training our loss is {four_bit}.",
        f"- At 3 bits the calibration matters: a percentile range instead of the maximum "
        f"changes accuracy by {', '.join(f'{100 * d:+.1f}' for d in pct_better)} points "
        f"(tiles of {', '.join(map(str, TILE_ROWS))} rows). aihwkit's measurement (4-bit "
        f"ADC between 11.6 % and 92.5 % depending on its range) makes the same point: "
        f"the range, not only the bit count, decides.",
        f"- Smaller tiles (9 rows: more, smaller partial sums) against 128 rows at 3 bits: "
        f"{', '.join(f'{100 * d:+.1f}' for d in tiles_effect)} points ({' / '.join(ADC_RANGES)} "
        f"range).",
    ]
    return "\n".join(["## ADC resolution × tile rows × ADC range", "",
                      table(header, rows), "", *words])


def mapping_section(lab: Lab, sigma: float, trials: int) -> tuple[str, dict]:
    res: dict[tuple, EvaluationResult] = {}
    for scheme in SCHEMES:
        for mapping in MAPPINGS:
            for nl in NONLINEARITIES:
                for levels in LEVELS:
                    res[scheme, mapping, nl, levels] = lab.run(
                        trials=trials, device=DeviceModel(levels=levels, nonlinearity=nl),
                        mapping=mapping, scheme=scheme, dac_bits=8, adc_bits=None,
                        prog_sigma=sigma)
    header = ["scheme", "mapping"] + [f"NL {nl:g} / {lv}" for nl in NONLINEARITIES
                                      for lv in LEVELS]
    rows = [[scheme, mapping] + [cell(res[scheme, mapping, nl, lv]) for nl in NONLINEARITIES
                                 for lv in LEVELS]
            for scheme in SCHEMES for mapping in MAPPINGS]
    title = ("## Levels × nonlinearity × mapping × scheme, no variation (one deterministic "
             "draw)" if sigma == 0 else
             f"## Levels × nonlinearity × mapping × scheme, {pct(sigma)} % programming "
             f"variation ({trials} trials)")
    intro = ("Columns: nonlinearity NL / programmable levels. 8-bit DAC, ideal ADC, "
             "w_max = max |w| (`scale=\"max\"`).")
    return "\n".join([title, "", intro, "", table(header, rows)]), res


def mapping_words(res0: dict, res5: dict, float_acc: float) -> str:
    def acc(res: dict, scheme: str, mapping: str, nl: float, levels: int) -> float:
        return res[scheme, mapping, nl, levels].accuracy_mean

    strong = [(nl, lv) for nl in NONLINEARITIES if nl >= 1 for lv in LEVELS]
    lin_off = [acc(res0, "offset", "linear", nl, lv) for nl, lv in strong]
    min_off = [acc(res0, "offset", "min_error", nl, lv) for nl, lv in strong]
    usable = 0.9  # a rescue brings the network back to use, not from 10 % to 20 %
    rescued = sum(m >= usable and m > li + 0.05 for m, li in zip(min_off, lin_off, strict=True))
    lifted = [m for m, li in zip(min_off, lin_off, strict=True) if li + 0.05 < m < usable]
    lin_diff = [acc(res0, "differential", "linear", nl, lv) for nl, lv in strong]
    min_diff_nl6 = {lv: acc(res0, "differential", "min_error", 6.0, lv) for lv in LEVELS}
    gen = [acc(res0, s, "generalized", nl, lv) for s in SCHEMES for nl in NONLINEARITIES
           for lv in LEVELS]
    gen8 = [acc(res0, s, "generalized", nl, 8) for s in SCHEMES for nl in NONLINEARITIES]
    lin_nl0 = [acc(res0, s, "linear", 0.0, lv) for s in SCHEMES for lv in LEVELS]
    min_nl0 = [acc(res0, s, "min_error", 0.0, lv) for s in SCHEMES for lv in LEVELS]
    working = [(nl, lv) for nl, lv in strong if acc(res0, "offset", "min_error", nl, lv) > 0.9]
    var_loss = [acc(res0, "offset", "min_error", nl, lv) - acc(res5, "offset", "min_error", nl, lv)
                for nl, lv in working]
    gen_nl = max(abs(acc(res0, s, "generalized", nl, lv) - acc(res0, s, "generalized", 0.0, lv))
                 for s in SCHEMES for nl in NONLINEARITIES for lv in LEVELS)
    seed000 = verdict(rescued >= len(strong) // 2,
                      "This matches the paper's claim that it vastly rescues linear mapping.",
                      "This contradicts the paper's claim.")
    seed002 = verdict(min(gen8) >= float_acc - 0.005,
                      "matching the 32-bit network as the paper reports",
                      "close to but below the 32-bit network (the paper reports matching or "
                      "beating it, after quantization-aware training)")
    immune = verdict(max(var_loss) <= 0.01, "here too it loses at most 1 point",
                     "here it loses more than 1 point in some settings")
    lines = [
        f"The float network scores {pct(float_acc)} % on these digits.",
        "",
        f"- Seed 000 (offset scheme): at NL ≥ 1, `linear` gives {span(lin_off)}, `min_error` "
        f"{span(min_off)}; min-error substitution rescues {rescued} of {len(strong)} "
        f"nonlinear settings (back to ≥ {pct(usable)} %)"
        + (f"; in {len(lifted)} more it lifts chance to only {span(lifted)}, which is no "
           "rescue" if lifted else "") +
        f". {seed000} It needs enough levels: with 4 levels, or 8 at NL ≥ 3, it fails too.",
        f"- At NL 0 the two methods are the same algorithm: linear {span(lin_nl0)}, "
        f"min_error {span(min_nl0)}.",
        f"- With the `differential` scheme `linear` keeps {span(lin_diff)} at NL ≥ 1 (the "
        f"sign survives the nonlinear levels), while "
        f"`min_error` with w_max = max |w| at NL 6 gives "
        f"{', '.join(f'{pct(min_diff_nl6[lv])} % ({lv} levels)' for lv in LEVELS)}: with few "
        f"levels it rounds small weights to zero. `scale=\"optimal\"` is the remedy (not "
        f"tabulated here).",
        f"- Seed 002 (`generalized`, a free Lloyd-Max codebook written by write-verify): "
        f"{span(gen)} over all devices and schemes; with 8 levels {span(gen8)} against "
        f"{pct(float_acc)} % float — {seed002}. The nonlinearity changes it by at most "
        f"{100 * gen_nl:.1f} points, true by construction: write-verify is assumed to reach "
        f"any conductance on the curve exactly (`snap_codebook=True` writes the codebook to "
        f"the device's levels instead, comparable with `min_error`).",
        f"- 5 % programming variation costs `min_error` (offset, NL ≥ 1, the {len(working)} "
        f"settings above 90 % without variation) {points(var_loss)}. Seed 000 calls the "
        f"method immune to device variation; {immune}.",
    ]
    return "\n".join(lines)


def variation_line(mapping: str, losses: list[float], usable: list[str]) -> str:
    """One sentence: accuracy lost from σ = 0 to 20 % per device that works at σ = 0."""
    costs = ", ".join(f"{100 * losses[DEVICES.index(d)]:.1f} points ({d})" for d in usable)
    broken = [d for d in DEVICES if d not in usable]
    line = f"- `{mapping}`: going from σ = 0 to 20 % costs {costs or 'nothing measurable'}"
    if broken:
        line += f"; at chance already without variation: {', '.join(broken)}"
    return line + "."


def variation_section(lab: Lab) -> str:
    trials = lab.trials
    res: dict[tuple, EvaluationResult] = {}
    for name in DEVICES:
        for mapping in MAPPINGS:
            for sigma in SIGMAS:
                res[name, mapping, sigma] = lab.run(
                    trials=trials, device=DeviceModel.from_preset(name), mapping=mapping,
                    scheme="offset", dac_bits=8, adc_bits=None, prog_sigma=sigma)
    header = ["device (levels, NL)", "mapping"] + [f"σ {pct(s)} %" for s in SIGMAS]
    rows = []
    for name in DEVICES:
        spec = PRESETS[name]
        for mapping in MAPPINGS:
            rows.append([f"{name} ({spec['levels']}, {spec['nonlinearity']:g})", mapping]
                        + [cell(res[name, mapping, s]) for s in SIGMAS])
    at20 = {m: [res[d, m, 0.0].accuracy_mean - res[d, m, 0.20].accuracy_mean for d in DEVICES]
            for m in MAPPINGS}
    best_at_20 = {d: max(MAPPINGS, key=lambda m, d=d: res[d, m, 0.20].accuracy_mean)
                  for d in DEVICES}
    usable = {m: [d for d in DEVICES if res[d, m, 0.0].accuracy_mean > 0.5] for m in MAPPINGS}
    words = [
        f"NeuroSim's four devices with their own levels and nonlinearity, offset scheme, "
        f"relative programming variation G·(1 + σN) redrawn in each of {trials} trials; "
        f"8-bit DAC, ideal ADC.",
        "",
        *[variation_line(m, at20[m], usable[m]) for m in MAPPINGS],
        f"- Best mapping at σ = 20 %: "
        f"{', '.join(f'{d}: {best_at_20[d]}' for d in DEVICES)}.",
    ]
    return "\n".join(["## Programming variation", "", table(header, rows), "", *words])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    if args.trials < 3:
        parser.error("--trials: at least 3 (the tables report mean ± std)")
    start = time.perf_counter()
    lab = Lab(args.trials)
    adc = adc_section(lab)
    plain_text, res0 = mapping_section(lab, 0.0, 1)
    noisy_text, res5 = mapping_section(lab, 0.05, args.trials)
    words = mapping_words(res0, res5, float(lab.float_accuracy))
    variation = variation_section(lab)
    seconds = time.perf_counter() - start
    doc = "\n\n".join([
        "# Results: LeNet5 on simulated ReRAM crossbars",
        f"Written by `python benchmarks/results.py` in {seconds / 60:.1f} min "
        f"({lab.count} evaluations, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads). Pretrained LeNet5 (`lenet5-mnist`), the 1,000 embedded MNIST test "
        f"digits; DAC/ADC ranges calibrated on the first 256 training digits. Accuracy in %, "
        f"mean ± sample standard deviation over Monte-Carlo trials (new programming draw each "
        f"trial); a single number is a deterministic setting. 128×128 tiles unless stated.",
        adc, plain_text, noisy_text, words, variation,
    ]) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    print(f"wrote {out} ({lab.count} evaluations, {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
