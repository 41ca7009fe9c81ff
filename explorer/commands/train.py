"""``explorer train``: train a network for a crossbar and write a checkpoint atomically.

Methods: ``float``; ``gq`` (generalized-quantization QAT, a learned codebook of
``--levels`` values per layer); ``uq`` (uniform QAT, the baseline of ``gq``); ``rq``
(relaxed quantization of weights, ``--dac-bits`` inputs and each ``--tile-rows`` chunk's
``--adc-bits`` partial sums); ``hwa`` (forward through the device levels with
``--prog-sigma`` / ``--read-sigma`` noise). The crossbar options are those of
``explorer evaluate``; the checkpoint records them, and ``explorer evaluate --model PATH``
takes the file.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from explorer.cli import print_json
from explorer.commands._options import (
    add_crossbar_arguments,
    config_from_args,
    seed_from_args,
    settings_from_args,
)
from explorer.settings import WorkloadSettings
from explorer.settings.options import add_part_arguments

TRAIN_INPUTS = ("weights", "input_size", "mean", "std", "split_fraction")
"""Workload knobs training takes (generated options); the others are its own."""

NAME = "train"
HELP = ("Train a network (float, gq, uq, rq or hwa) on a dataset's train split for a "
        "crossbar and save a checkpoint.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from explorer.qlayers import METHODS

    parser.add_argument("--model", default="lenet5",
                        help="architecture (lenet5, vgg8, resnet20), a pretrained name / "
                             "checkpoint to fine-tune (e.g. lenet5-mnist), FILE.py:FUNCTION "
                             "(a function returning an nn.Module) or FILE.pt2")
    parser.add_argument("--data", default="mnist-embedded", help="dataset name")
    parser.add_argument("--method", default="float", choices=METHODS,
                        help="float; gq: generalized-quantization QAT; uq: uniform QAT; rq: "
                             "relaxed quantization (weights, DAC, ADC); hwa: hardware-aware")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--warmup-epochs", type=int, default=None,
                        help="float epochs before the quantizers switch on (default: a "
                             "quarter of --epochs when training an architecture from "
                             "scratch, 0 when fine-tuning)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--quant-lr-scale", type=float, default=10.0,
                        help="learning rate of quantizer parameters ÷ the weights' (10)")
    parser.add_argument("--temperature", type=float, nargs=2, default=(1.0, 0.1),
                        metavar=("START", "END"), help="rq: Gumbel-softmax temperature, "
                        "annealed exponentially (default 1 0.1)")
    parser.add_argument("--rq-relaxation", default="soft_round", choices=("soft_round", "gumbel"),
                        help="rq: soft_round (logistic noise, then a tempered rounding "
                             "continuous between grid points; default) or gumbel (Louizos et "
                             "al.'s two-point Gumbel-softmax)")
    parser.add_argument("--hwa-ramp", type=float, default=0.5,
                        help="hwa: fraction of training over which the device deviation is "
                             "blended in (default 0.5)")
    parser.add_argument("--no-augment", action="store_true", help="disable random affine")
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--out", required=True, help="checkpoint path (.pt) to write")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_crossbar_arguments(parser)  # --levels, --adc-bits, --tile-rows, …, --seed
    add_part_arguments(parser, WorkloadSettings,
                       skip=[k for k in WorkloadSettings.knobs() if k not in TRAIN_INPUTS])


def run(args: argparse.Namespace) -> int:
    from explorer.training import TrainConfig, save_checkpoint, train

    inputs = settings_from_args(args).workload
    cfg = TrainConfig(model=args.model, data=args.data,
                      **{k: getattr(inputs, k) for k in TRAIN_INPUTS}, method=args.method,
                      epochs=args.epochs,
                      warmup_epochs=args.warmup_epochs,
                      batch_size=args.batch_size, lr=args.lr, augment=not args.no_augment,
                      seed=seed_from_args(args), limit=args.limit, device=args.device,
                      hardware=config_from_args(args), quant_lr_scale=args.quant_lr_scale,
                      temperature_start=args.temperature[0],
                      temperature_end=args.temperature[1], hwa_ramp=args.hwa_ramp,
                      rq_relaxation=args.rq_relaxation)
    with tqdm(total=1000, desc=f"train {cfg.method}", unit="‰", file=sys.stderr,
              disable=None, bar_format="{l_bar}{bar}| {postfix}") as bar:

        def progress(fraction: float, message: str) -> None:
            bar.n = int(fraction * 1000)
            bar.set_postfix_str(message, refresh=False)
            bar.refresh()

        result = train(cfg, progress=progress)
    path = save_checkpoint(args.out, result, cfg)
    summary = {**result.metadata(cfg), "out": str(path), "seconds": round(result.seconds, 2),
               "history": result.history}
    if args.json:
        print_json(summary)
    else:
        print(f"{cfg.method}: test accuracy {100 * (result.test_accuracy or 0):.2f} % "
              f"after {cfg.epochs} epochs in {result.seconds:.1f} s -> {path}")
    return 0
