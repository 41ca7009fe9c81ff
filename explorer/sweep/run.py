"""Running a sweep: the network and images (:class:`SweepData`), one grid point
(:func:`evaluate_cell`, on a worker), the whole grid in this process or on Dask
(:func:`run_sweep`)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from explorer.evaluate import DEFAULT_BATCH_SIZE, Cancelled, evaluate
from explorer.sweep.points import GridPoint, SweepSpec, _digest, cell_config, config_record
from explorer.sweep.store import COST_COLUMNS, COUNTER_COLUMNS, SweepStore, results_frame

ProgressCallback = Callable[[float, str], None]


@dataclass
class SweepData:
    """The network and the images every grid point is evaluated on."""

    model: nn.Module
    images: Tensor
    labels: Tensor
    calibration: Tensor
    model_name: str
    data_name: str
    calibration_source: str
    batch_size: int = DEFAULT_BATCH_SIZE
    analog_builder: Any = None
    """How a grid point's crossbar is built (None: ``to_crossbar``; a checkpoint's learned
    settings: :class:`explorer.deploy.CheckpointBuilder`)."""
    _digest: str = field(default="", repr=False)

    def digest(self) -> str:
        """sha256 of the weights, images, labels and calibration images (hex), and of the
        checkpoint's learned settings when they are used."""
        if not self._digest:
            tensors = [t.detach().cpu().contiguous() for t in self.model.state_dict().values()]
            tensors += [self.images.cpu().contiguous(), self.labels.cpu().contiguous(),
                        self.calibration.cpu().contiguous()]
            chunks = [t.numpy().tobytes() for t in tensors]
            if self.analog_builder is not None:
                chunks.append(self.analog_builder.fingerprint().encode())
            self._digest = _digest(chunks)
        return self._digest


def load_sweep_data(model: str = "lenet5-mnist", data: str | None = None,
                    limit: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                    download: bool = True, learned_settings: bool = False,
                    calibration_images: int | None = None) -> SweepData:
    """Load a trained network (pretrained name or checkpoint), its test images and its
    calibration images with the shared loader (:func:`explorer.workload.load_workload`:
    the training split calibrates, as in ``explorer evaluate`` and the dashboard).

    ``data`` defaults to the network's dataset. ``learned_settings``: a checkpoint's
    codebooks and learned DAC/ADC ranges are applied on every grid point, as ``explorer
    evaluate`` does (:class:`explorer.deploy.CheckpointBuilder`). Bad names, checkpoints
    or limits raise :class:`InputError` naming the setting.
    """
    from explorer.settings import WorkloadSettings
    from explorer.settings.base import checked_value
    from explorer.workload import load_workload

    values = {"model": model, "data": data or "", "limit": limit, "batch_size": batch_size}
    if calibration_images is not None:
        values["calibration_images"] = calibration_images
    for key, value in values.items():
        checked_value(key, WorkloadSettings.param[key], value)
    return sweep_data(load_workload(WorkloadSettings(**values), download=download),
                      batch_size, learned_settings)


def sweep_data(loaded: Any, batch_size: int = DEFAULT_BATCH_SIZE,
               learned_settings: bool = False) -> SweepData:
    """The :class:`SweepData` of a :class:`explorer.workload.LoadedWorkload`."""
    from explorer.workload import analog_builder

    builder = analog_builder(loaded.checkpoint) if learned_settings else None
    if builder is not None:
        builder.check(loaded.model)  # before any grid point runs
    return SweepData(loaded.model, loaded.images, loaded.labels, loaded.calibration,
                     loaded.model_name, loaded.data_name, loaded.calibration_source,
                     batch_size, builder)


def evaluate_cell(spec_values: dict[str, Any], data: SweepData,
                  torch_threads: int | None = None,
                  cancel: threading.Event | None = None) -> list[dict[str, Any]]:
    """Evaluate one grid point: its rows (one per trial). ``spec_values`` holds ``base``,
    ``values``, ``device_overrides``, ``seed``, ``key``, ``trials``, ``swept`` (names).

    ``torch_threads``: set torch's intra-op threads first (Dask workers use 1).
    """
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    values = spec_values["values"]
    cfg = cell_config(spec_values["base"], values, spec_values["device_overrides"])
    cfg.seed = spec_values["seed"]
    result = evaluate(data.model, (data.images, data.labels), cfg, trials=spec_values["trials"],
                      batch_size=data.batch_size, calibration=data.calibration, cancel=cancel,
                      analog_builder=data.analog_builder)
    total = result.counters["total"]
    record = config_record(cfg)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    rows = []
    for trial, accuracy in enumerate(result.accuracies):
        row: dict[str, Any] = {"point": spec_values["key"], "trial": trial, "seed": cfg.seed}
        row.update({name: values[name] for name in spec_values["swept"]})
        row.update(accuracy=accuracy, float_accuracy=result.float_accuracy,
                   **{k: int(total[k]) for k in COUNTER_COLUMNS},
                   **{k: float(result.cost[k]) for k in COST_COLUMNS}, seconds=result.seconds,
                   worker=worker, model=data.model_name, data=data.data_name,
                   images=result.images, trials=result.trials)
        row.update({k: v for k, v in record.items() if k not in row})
        rows.append(row)
    return rows


def _return(data: SweepData) -> SweepData:
    """Identity: a Dask task whose result is the network and images (see run_sweep)."""
    return data




@dataclass
class SweepOutcome:
    """What a sweep did: the table (all finished rows of this grid), grid points skipped
    (done before) and computed, failures by key, wall time (s), rows computed."""

    table: Any
    cells: int
    skipped: int
    computed: int
    failed: dict[str, str]
    seconds: float
    folder: Path | None = None
    rows_computed: int = 0

    @property
    def complete(self) -> bool:
        """True when every grid point has its rows."""
        return self.skipped + self.computed == self.cells

    @property
    def evaluations_per_minute(self) -> float:
        """Rows (grid point × trial) computed by this run per minute of wall time."""
        return 60.0 * self.rows_computed / self.seconds if self.seconds > 0 else 0.0


def run_sweep(spec: SweepSpec, data: SweepData, out: str | Path | None = None,
              client: Any = None, progress: ProgressCallback | None = None,
              cancel: threading.Event | None = None,
              on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
              flush_seconds: float = 30.0,
              cells: Sequence[GridPoint] | None = None) -> SweepOutcome:
    """Evaluate every grid point of ``spec`` on ``data``; returns the table.

    ``out``: the output folder (resumable; None keeps everything in memory). ``client``:
    a ``distributed.Client`` (None: evaluate here, one grid point after another).
    ``progress(fraction, message)`` after every grid point; ``cancel`` stops before the
    next one (in this process: within one batch) and raises
    :class:`~explorer.evaluate.Cancelled` after saving the finished rows; ``on_rows(rows)``
    receives each grid point's rows as they arrive (finished ones first). A failing one is
    recorded in ``failed`` (its rows missing: a rerun retries it); the others go on.
    ``cells``: ``spec.cells(data.digest())`` if already computed (validation is the same).
    Nothing is written before every grid point has been validated.
    """
    start = time.perf_counter()
    cells = list(cells) if cells is not None else spec.cells(data.digest())
    swept = list(spec.grid)
    store = SweepStore(out) if out is not None else None
    done: dict[str, list[dict[str, Any]]] = {}
    if store is not None:
        store.create()
        store.write_spec(_spec_record(spec, data, len(cells)))
        done = store.finished(cells)
    rows_by_key = dict(done)
    failed: dict[str, str] = {}
    todo = [c for c in cells if c.key not in done]
    if on_rows is not None and done:
        on_rows([row for c in cells if c.key in done for row in done[c.key]])
    last_flush = time.monotonic()

    def table() -> Any:
        return results_frame((row for c in cells if c.key in rows_by_key
                              for row in rows_by_key[c.key]), swept)

    def finished(key: str, rows: list[dict[str, Any]] | None, error: str = "") -> None:
        nonlocal last_flush
        if rows is None:
            failed[key] = error
        elif key not in rows_by_key:  # every grid point's rows exactly once
            rows_by_key[key] = rows
            if store is not None:
                store.write_point(key, rows)
            if on_rows is not None:
                on_rows(rows)
        if progress is not None:
            n = len(rows_by_key) + len(failed)
            progress(n / len(cells), f"{n} of {len(cells)} grid points")
        if store is not None and time.monotonic() - last_flush > flush_seconds:
            store.write_table(table())
            last_flush = time.monotonic()

    if progress is not None:
        progress(len(done) / len(cells), f"{len(done)} of {len(cells)} grid points done before")
    tasks = [{"base": spec.base, "values": c.values, "device_overrides": spec.device_overrides,
              "seed": c.seed, "key": c.key, "trials": spec.trials, "swept": swept}
             for c in todo]
    try:
        if client is None:
            _run_here(tasks, data, finished, cancel)
        else:
            _run_dask(tasks, data, client, finished, cancel)
    finally:
        frame = table()
        if store is not None:
            store.write_table(frame)
    computed = [key for key in rows_by_key if key not in done]
    return SweepOutcome(frame, len(cells), len(done), len(computed), failed,
                        time.perf_counter() - start, store.folder if store else None,
                        sum(len(rows_by_key[key]) for key in computed))


def _run_here(tasks: list[dict[str, Any]], data: SweepData,
              finished: Callable[..., None], cancel: threading.Event | None) -> None:
    for task in tasks:
        if cancel is not None and cancel.is_set():
            raise Cancelled("sweep cancelled")
        try:
            rows = evaluate_cell(task, data, cancel=cancel)
        except Cancelled:
            raise
        except Exception as exc:  # a failing grid point is recorded; the sweep goes on
            finished(task["key"], None, f"{type(exc).__name__}: {exc}")
        else:
            finished(task["key"], rows)


def _run_dask(tasks: list[dict[str, Any]], data: SweepData, client: Any,
              finished: Callable[..., None], cancel: threading.Event | None) -> None:
    import dask
    from distributed import as_completed

    if not tasks:
        return
    # the network and images: one task all grid points depend on (Dask copies its result to the
    # workers that need it, and recomputes it if the worker holding it dies)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "2GB"}):
        shared = client.submit(_return, data, pure=False)
    submitted = client.map(evaluate_cell, tasks, data=shared, torch_threads=1, pure=False)
    futures = {future: task["key"] for future, task in zip(submitted, tasks, strict=True)}
    try:
        for future in as_completed(futures, loop=client.loop):
            key = futures[future]
            if future.status == "error":
                exc = future.exception()
                finished(key, None, f"{type(exc).__name__}: {exc}")
            else:
                finished(key, future.result())
            future.release()
            if cancel is not None and cancel.is_set():
                raise Cancelled("sweep cancelled")
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        shared.release()


def _spec_record(spec: SweepSpec, data: SweepData, points: int) -> dict[str, Any]:
    return {"grid": spec.grid, "trials": spec.trials, "seed": spec.seed, "points": points,
            "device_overrides": spec.device_overrides, "base": config_record(spec.base),
            "model": data.model_name, "data": data.data_name, "images": len(data.images),
            "calibration": data.calibration_source, "workload_digest": data.digest()}


