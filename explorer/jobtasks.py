"""The dashboard's background work as plain-data functions a Dask worker (or the
in-process job thread) runs: evaluate a settings file's dict, sweep a grid over one.

No GUI imports, picklable by reference: a job gets :meth:`Settings.to_dict` and rebuilds
the settings on the worker. Each worker process keeps the last few loaded workloads
(network, test and calibration images), keyed by the workload settings and the
checkpoint file's modification time, so that a class's thirty evaluations of one
network load it once per worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHED_WORKLOADS = 4
"""Loaded workloads kept per worker process (LeNet5 with 1000 MNIST images: ~4 MB)."""

LOAD_KEYS = ("model", "data", "limit", "calibration_images")
"""The workload settings that decide what is loaded (trials and batch size do not)."""

_cache: OrderedDict[tuple, Any] = OrderedDict()
_cache_lock = threading.Lock()


def _checkpoint_stamp(model: str) -> tuple[str, float]:
    from explorer.models import _resolve_checkpoint

    try:
        _, path = _resolve_checkpoint(model)
        return str(path), Path(path).stat().st_mtime
    except Exception:  # the loader below gives the clear message
        return model, 0.0


def loaded_workload(workload: Any) -> Any:
    """:func:`explorer.workload.load_workload` of ``workload`` (no download), cached."""
    from explorer.workload import load_workload

    key = (*(getattr(workload, k) for k in LOAD_KEYS), _checkpoint_stamp(workload.model))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    loaded = load_workload(workload, download=False)
    with _cache_lock:
        _cache[key] = loaded
        while len(_cache) > CACHED_WORKLOADS:
            _cache.popitem(last=False)
    return loaded


def warm_worker(workload: dict[str, Any] | None = None) -> str:
    """Run on each worker when the dashboard starts: import the evaluation code and load
    ``workload`` (WorkloadSettings values; default: its defaults), so that the first
    evaluation does not wait for them."""
    import explorer.evaluate
    import explorer.sweep.run  # noqa: F401
    from explorer.settings import WorkloadSettings

    try:
        loaded_workload(WorkloadSettings(**(workload or {})))
    except Exception as exc:  # e.g. the default network's weights missing: jobs say so
        return f"not loaded: {exc}"
    return "ready"


def evaluate_task(settings: dict[str, Any], *, progress: Callable[..., None],
                  cancel: Any) -> dict[str, Any]:
    """Evaluate a settings file's dict (:meth:`explorer.settings.Settings.to_dict`) as
    ``explorer evaluate --config`` does; the result's fields as a dict."""
    from explorer.settings import Settings
    from explorer.workload import evaluate_settings

    progress(0.0, "loading model and data")
    parsed = Settings.from_dict(settings)
    loaded = loaded_workload(parsed.workload)
    result = evaluate_settings(parsed, progress=progress, cancel=cancel, loaded=loaded,
                               download=False)
    return dict(vars(result))


def sweep_task(settings: dict[str, Any], grid: dict[str, list[Any]], trials: int, *,
               progress: Callable[..., None], cancel: Any) -> Any:
    """Run a sweep grid over the crossbar of a settings dict on its workload (the same
    code as ``explorer sweep``); finished rows go out as ``progress(..., extra=rows)``.
    Returns the whole results table."""
    from explorer.settings import Settings
    from explorer.sweep import SweepSpec, run_sweep, sweep_data

    progress(0.0, "loading model and data")
    parsed = Settings.from_dict(settings)
    data = sweep_data(loaded_workload(parsed.workload), parsed.workload.batch_size)
    spec = SweepSpec(base=parsed.crossbar, grid=grid, trials=trials)
    state = {"fraction": 0.0, "message": ""}

    def report(fraction: float, message: str = "") -> None:
        state.update(fraction=fraction, message=message)
        progress(fraction, message)

    def rows(new: list[dict[str, Any]]) -> None:
        progress(state["fraction"], state["message"], new)

    outcome = run_sweep(spec, data, progress=report, cancel=cancel, on_rows=rows)
    if outcome.failed:
        error = next(iter(outcome.failed.values()))
        raise RuntimeError(f"{len(outcome.failed)} grid point(s) failed, e.g. {error}")
    return outcome.table


__all__ = ["evaluate_task", "loaded_workload", "sweep_task", "warm_worker"]
