"""``explorer train``: train a network and write a checkpoint atomically."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from explorer.cli import print_json

NAME = "train"
HELP = "Train a network (float) on a dataset's train split and save a checkpoint."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="lenet5",
                        help="architecture (lenet5, vgg8, resnet20) or checkpoint to fine-tune")
    parser.add_argument("--data", default="mnist-embedded", help="dataset name")
    parser.add_argument("--method", default="float", help="training method (float)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--no-augment", action="store_true", help="disable random affine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--out", required=True, help="checkpoint path (.pt) to write")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from explorer.training import TrainConfig, save_checkpoint, train

    cfg = TrainConfig(model=args.model, data=args.data, method=args.method, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, augment=not args.no_augment,
                      seed=args.seed, limit=args.limit, device=args.device)
    with tqdm(total=1000, desc="train", unit="‰", file=sys.stderr, disable=None,
              bar_format="{l_bar}{bar}| {postfix}") as bar:

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
        print(f"test accuracy {100 * (result.test_accuracy or 0):.2f} % "
              f"after {cfg.epochs} epochs in {result.seconds:.1f} s -> {path}")
    return 0
