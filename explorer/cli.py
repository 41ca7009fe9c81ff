"""The ``explorer`` command line.

Sub-commands are discovered: every module in :mod:`explorer.commands` defines
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Only the command
being run is imported: the overview (``explorer --help``) reads each module's ``NAME``
and ``HELP`` from its source, so it loads no torch. Bad input
(:class:`~explorer.errors.InputError`, Param's bound errors) ends with exit status 2
and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer import __version__, commands
from explorer.errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse parser whose usage errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _commands() -> dict[str, tuple[str, str]]:
    """``{NAME: (module name, HELP)}`` of every command module, read from the sources
    (literal ``NAME``/``HELP`` assignments), sorted by name; nothing is imported."""
    found = {}
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        source = Path(commands.__path__[0], f"{info.name}.py").read_text(encoding="utf-8")
        consts: dict[str, str] = {}
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                    isinstance(node.targets[0], ast.Name) and \
                    node.targets[0].id in ("NAME", "HELP"):
                consts[node.targets[0].id] = ast.literal_eval(node.value)
        found[consts["NAME"]] = (f"{commands.__name__}.{info.name}", consts["HELP"])
    return dict(sorted(found.items()))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser, one sub-parser per discovered command; the options of command
    ``only`` are added (only its module is imported); with None, only the overview."""
    parser = _Parser(
        prog="explorer",
        description="Crossbar Explorer: ReRAM crossbar simulation of trained neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in _commands().items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if only == name:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_run=module.run)
    return parser


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (numpy/torch scalars converted)."""
    print(json.dumps(obj, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``explorer`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen if chosen in _commands() else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except (InputError, ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"explorer {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"explorer {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `explorer info | head`: the reader left, nothing to report
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
