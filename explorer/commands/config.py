"""``explorer config``: the settings as JSON – the declared defaults, or what the options
(and ``--config FILE``) describe; the file ``--config`` takes back."""

from __future__ import annotations

import argparse

from explorer.commands._options import add_settings_arguments, settings_from_args

NAME = "config"
HELP = ("Print the settings (device, mapping, converters, noise, workload) as JSON: the "
        "defaults, or what the options describe; `evaluate`/`sweep --config FILE` take it.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="write the JSON to FILE instead of printing it")
    parser.add_argument("--json", action="store_true",
                        help="accepted for symmetry: the output is always JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    text = settings_from_args(args).to_json()
    if args.out is None:
        print(text)
    else:
        out = Path(args.out)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(out)
    return 0
