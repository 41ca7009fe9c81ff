"""``explorer sweep``: accuracy over a grid of crossbar/device parameters × trials, on Dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from explorer.cli import print_json
from explorer.commands._options import add_settings_arguments
from explorer.errors import InputError

NAME = "sweep"
HELP = ("Accuracy over a grid of crossbar/device parameters × Monte-Carlo trials, on Dask "
        "(a local cluster or tcp://HOST:8786); a resumable CSV/Parquet table and plots.")

EPILOG = """\
examples:
  explorer sweep --set levels=4,8,16,32 --set nonlinearity=0,1,3,6 --trials 3 --out sweep1
  explorer sweep --grid grid.yaml --adc-bits 6 --scheduler tcp://10.0.0.5:8786 --out sweep2
grid file (YAML or JSON): a mapping of parameter names to value lists, e.g.
  levels: [4, 8, 16]
  adc_bits: [4, 6, 8, ideal]
Options not swept (--preset, --adc-bits, ...) fix the other parameters. A checkpoint written
by `explorer train` (--model PATH) brings the crossbar it was trained for as the defaults of
those options, and its codebooks and learned DAC/ADC ranges, as in `explorer evaluate`
(--ignore-checkpoint: its weights only). Rerunning with the same --out skips the grid points
already done."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from explorer.sweep import sweep_parameters

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    grid = parser.add_argument_group("grid")
    grid.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2,…",
                      help="sweep a parameter over values (repeatable); names: "
                           + ", ".join(sweep_parameters()))
    grid.add_argument("--grid", default=None, metavar="FILE",
                      help="YAML or JSON file mapping parameter names to value lists")
    parser.add_argument("--ignore-checkpoint", action="store_true",
                        help="use only the checkpoint's weights: default crossbar settings, "
                             "no codebooks or learned ranges")
    # --config, device, crossbar and workload options (--model, --trials per grid point …)
    add_settings_arguments(parser)
    run = parser.add_argument_group("running")
    run.add_argument("--out", required=True, metavar="DIR",
                     help="output folder: results.csv, results.parquet, plots, points/ "
                          "(rerun with the same folder to resume)")
    run.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                     help="an existing Dask scheduler (default: a local cluster)")
    run.add_argument("--workers", type=int, default=None,
                     help="local cluster: worker processes, one thread each "
                          "(default: one per core)")
    run.add_argument("--in-process", action="store_true",
                     help="no Dask: evaluate the grid points one by one in this process")
    run.add_argument("--timeout", type=float, default=3.0,
                     help="seconds to wait for --scheduler before giving up (default 3)")
    run.add_argument("--no-plots", action="store_true", help="write the table only")
    run.add_argument("--json", action="store_true", help="print one JSON summary object")


def grid_from_args(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The grid of ``--grid FILE`` and the ``--set`` options (a name given twice is an error)."""
    from explorer.sweep import make_grid, parse_set_option, read_grid_file

    axes: list[tuple[str, Any]] = []
    if args.grid is not None:
        axes.extend(read_grid_file(args.grid).items())
    for option in args.set:
        axes.append(parse_set_option(option))
    return make_grid(axes)


def _check_options(args: argparse.Namespace, grid: dict[str, list[Any]]) -> None:
    if args.in_process and (args.scheduler is not None or args.workers is not None):
        raise InputError("--in-process: runs without Dask; do not combine it with --scheduler "
                         "or --workers")
    if args.scheduler is not None and args.workers is not None:
        raise InputError("--workers: sets the size of a local cluster; an existing "
                         "--scheduler brings its own workers")
    if args.device_csv is not None:
        clash = [n for n in ("preset", "levels", "nonlinearity", "g_min", "g_max") if n in grid]
        if clash:
            raise InputError(f"--device-csv: a measured table defines the device; do not "
                             f"sweep {', '.join(clash)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {str(out)!r} exists and is not a folder")
    if args.timeout is not None and not 0 < args.timeout <= 600:
        raise InputError(f"--timeout: must be in (0, 600] seconds, got {args.timeout}")


def run(args: argparse.Namespace) -> int:
    from explorer.commands.evaluate import describe_checkpoint, resolve_settings
    from explorer.sweep import SweepSpec, connect, run_sweep, sweep_data
    from explorer.workload import load_workload

    grid = grid_from_args(args)
    _check_options(args, grid)
    settings, _, checkpoint = resolve_settings(args)
    work = settings.workload
    overrides = {k: getattr(args, k) for k in ("levels", "nonlinearity")
                 if getattr(args, k) is not None}
    spec = SweepSpec(base=settings.crossbar, grid=grid, trials=work.trials,
                     seed=settings.crossbar.seed, device_overrides=overrides)
    client = cluster = None
    if args.scheduler is not None:  # an unreachable scheduler fails in seconds, first
        client, cluster = connect(args.scheduler, timeout=args.timeout)
    try:
        learned = checkpoint is not None and checkpoint["used"]
        data = sweep_data(load_workload(work, allow_code=True), work.batch_size,
                          learned_settings=learned)
        cells = spec.cells(data.digest())  # every grid point validated before any work
        if client is None and not args.in_process:
            client, cluster = connect(None, args.workers)
    except BaseException:
        if client is not None:
            client.close()
        raise
    bar = _progress_bar(len(cells), quiet=args.json)
    try:
        outcome = run_sweep(spec, data, out=args.out, client=client, cells=cells,
                            progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    plots: dict[str, str] = {}
    note = ""
    if not args.no_plots and len(outcome.table):
        from explorer.sweep.report import save_plots

        plots, note = save_plots(outcome.table, list(grid), Path(args.out))
    summary = {
        "out": str(Path(args.out)), "points": outcome.cells, "skipped": outcome.skipped,
        "computed": outcome.computed, "failed": outcome.failed, "rows": len(outcome.table),
        "trials": spec.trials, "images": len(data.images), "seconds": outcome.seconds,
        "evaluations_per_minute": outcome.evaluations_per_minute,
        "files": {"csv": str(Path(args.out) / "results.csv"),
                  "parquet": str(Path(args.out) / "results.parquet"), **plots},
        "plot_note": note,
        "checkpoint": checkpoint,
    }
    if args.json:
        print_json(summary)
    else:
        print(f"{outcome.cells} grid points × {spec.trials} trial(s) on {len(data.images)} "
              f"images: {outcome.computed} evaluated, {outcome.skipped} already done, "
              f"{len(outcome.failed)} failed; {outcome.seconds:.1f} s")
        print(f"table: {summary['files']['csv']} and results.parquet ({len(outcome.table)} rows)")
        if checkpoint is not None:
            varied = [n for n in ("mapping", "dac_bits", "adc_bits") if n in grid]
            print(describe_checkpoint(checkpoint)
                  + (f" (counted on the base settings; {', '.join(varied)} swept)"
                     if varied and checkpoint["used"] else ""))
        for kind, path in plots.items():
            print(f"plot ({kind}): {path}")
        if note:
            print(note)
    for key, error in list(outcome.failed.items())[:3]:
        print(f"explorer sweep: grid point {key} failed: {error}", file=sys.stderr)
    return 0 if outcome.complete else 1


class _Bar:
    """tqdm progress bar over grid points fed with (fraction, message) callbacks."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.total = total
        self.bar = tqdm(total=total, unit="point", file=sys.stderr, dynamic_ncols=True)

    def update(self, fraction: float, message: str) -> None:
        self.bar.update(round(fraction * self.total) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _progress_bar(total: int, quiet: bool) -> _Bar | None:
    if quiet or not sys.stderr.isatty():
        return None
    return _Bar(total)
