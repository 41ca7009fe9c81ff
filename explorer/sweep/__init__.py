"""Design-space sweeps: a grid over crossbar and device parameters × Monte-Carlo trials.

A sweep is a :class:`SweepSpec`: a base :class:`~explorer.crossbar.CrossbarConfig`, a grid
``{name: [values]}`` over any of :func:`sweep_parameters` (every ``CrossbarConfig``
parameter but ``seed``, and the device's ``preset``, ``levels``, ``nonlinearity``,
``g_min``, ``g_max``), a number of trials and a base seed. Each grid point is
one :func:`explorer.evaluate.evaluate` call with ``trials`` Monte-Carlo trials and gives
one table row per trial.

* Validation first: names, types and Param bounds of every value, then every grid point's
  full configuration (combinations such as g_min ≥ g_max), before any work starts.
* Seeds come from the grid point: its seed is a hash of its full configuration (and the
  base seed), so its numbers do not depend on which worker runs it, in which order, or on
  which other parameters are swept. Trial ``t`` of a grid point uses
  ``trial_seed(seed, t)`` exactly as ``explorer evaluate --seed SEED --trials T`` does.
* Resumable: with an output folder, every finished grid point's rows are written
  atomically (temporary file + rename) to ``points/<key>.json``; a rerun with the same
  output skips the grid points whose file exists. The key hashes the configuration, seed,
  trials, network weights and images, so changed inputs are recomputed, never mixed up.
  (Folders written before the ``cells/`` → ``points/`` rename are recomputed.)
* Execution: in this process (:func:`run_sweep` without a client: the dashboard's job
  worker, tests) or on Dask distributed (``client=``; see :func:`connect`), each worker
  with one torch thread. The network and images travel once, as one Dask task the grid
  points depend on (recomputed by Dask if the worker holding it dies).

Table columns (:data:`RESULT_COLUMNS` first, then every setting of the configuration):
``point`` (the grid point's key), ``trial``, ``seed``, the swept parameters,
``accuracy``, ``float_accuracy``, the counters ``tiles``, ``cells`` (ReRAM cells),
``adc_conversions``, ``dac_cycles`` (per image), ``seconds`` (wall time of the grid
point's evaluation, all its trials), ``worker`` (host:pid), ``model``, ``data``,
``images``, ``trials``.

Modules: :mod:`~explorer.sweep.grid` (parameters, values, grids),
:mod:`~explorer.sweep.points` (grid points' configurations, seeds, keys, :class:`SweepSpec`),
:mod:`~explorer.sweep.store` (output folder, table), :mod:`~explorer.sweep.run` (evaluation,
in this process or on Dask), :mod:`~explorer.sweep.cluster` (Dask clients),
:mod:`~explorer.sweep.report` (the plot files of ``explorer sweep``). The public names of
the first five are importable from ``explorer.sweep``; each module is imported when one
of its names is first used, so ``from explorer.sweep import sweep_parameters`` (the
command line's ``--help``) loads the grid module only, not the evaluation code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {
    "cluster": ("NO_MALLOC_TRIM", "connect", "default_workers"),
    "grid": ("CONFIG_PARAMETERS", "DEVICE_PARAMETERS", "MAX_CELLS", "MAX_GRID_FILE_BYTES",
             "check_value", "make_grid", "parse_set_option", "parse_value", "read_grid_file",
             "sweep_parameters"),
    "points": ("GridPoint", "SweepSpec", "cell_config", "cell_seed", "config_record"),
    "run": ("ProgressCallback", "SweepData", "SweepOutcome", "evaluate_cell",
            "load_sweep_data", "run_sweep", "sweep_data"),
    "store": ("COUNTER_COLUMNS", "MEASURED_COLUMNS", "RESULT_COLUMNS", "WORKLOAD_COLUMNS",
              "SweepStore", "atomic_write", "results_frame"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


if TYPE_CHECKING:  # the names for type checkers and editors
    from explorer.sweep.cluster import NO_MALLOC_TRIM, connect, default_workers
    from explorer.sweep.grid import (
        CONFIG_PARAMETERS,
        DEVICE_PARAMETERS,
        MAX_CELLS,
        MAX_GRID_FILE_BYTES,
        check_value,
        make_grid,
        parse_set_option,
        parse_value,
        read_grid_file,
        sweep_parameters,
    )
    from explorer.sweep.points import GridPoint, SweepSpec, cell_config, cell_seed, config_record
    from explorer.sweep.run import (
        ProgressCallback,
        SweepData,
        SweepOutcome,
        evaluate_cell,
        load_sweep_data,
        run_sweep,
        sweep_data,
    )
    from explorer.sweep.store import (
        COUNTER_COLUMNS,
        MEASURED_COLUMNS,
        RESULT_COLUMNS,
        WORKLOAD_COLUMNS,
        SweepStore,
        atomic_write,
        results_frame,
    )

__all__ = ["CONFIG_PARAMETERS", "COUNTER_COLUMNS", "DEVICE_PARAMETERS", "MAX_CELLS",
           "MAX_GRID_FILE_BYTES", "MEASURED_COLUMNS", "NO_MALLOC_TRIM", "RESULT_COLUMNS",
           "WORKLOAD_COLUMNS", "GridPoint", "ProgressCallback", "SweepData", "SweepOutcome",
           "SweepSpec", "SweepStore", "atomic_write", "cell_config", "cell_seed", "check_value",
           "config_record", "connect", "default_workers", "evaluate_cell", "load_sweep_data",
           "make_grid", "parse_set_option", "parse_value", "read_grid_file", "results_frame",
           "run_sweep", "sweep_data", "sweep_parameters"]
