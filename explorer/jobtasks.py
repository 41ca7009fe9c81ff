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


__all__ = ["download_task", "estimate_task", "evaluate_task", "loaded_workload", "sweep_task",
           "train_task", "warm_worker"]


# ----------------------------------------------------------------------------- training
def _train_config(spec: dict[str, Any], **overrides: Any) -> Any:
    from explorer.settings import Settings
    from explorer.training import TrainConfig

    hardware = Settings.from_dict(spec["settings"]).crossbar if spec.get("settings") else None
    values = {k: spec[k] for k in ("model", "data", "method", "epochs", "limit", "batch_size",
                                   "seed") if spec.get(k) is not None}
    if hardware is not None:
        values["hardware"] = hardware
    return TrainConfig(**{**values, **overrides})


def estimate_task(spec: dict[str, Any], *, progress: Callable[..., None],
                  cancel: Any) -> dict[str, Any]:
    """Time a few training steps of ``spec`` (a :func:`train_task` spec) on this worker
    and extrapolate to the whole training: ``{"seconds", "steps", "seconds_per_step"}``.
    Quantized steps are timed (float warm-up steps are cheaper: an upper estimate)."""
    import math
    import time

    from explorer.data import load_dataset
    from explorer.training import Trainer

    progress(0.0, "loading the training images")
    size = len(load_dataset(spec["data"], "train", limit=spec.get("limit"), download=False))
    batch = int(spec.get("batch_size") or 128)
    probe_steps = 3
    cfg = _train_config(spec, epochs=1, warmup_epochs=0, fused_kernels=False,
                        limit=min(size, probe_steps * batch))
    trainer = Trainer(cfg)
    stamps: list[float] = []

    def tick(fraction: float, message: str = "") -> None:
        stamps.append(time.perf_counter())
        progress(fraction, f"timing step {len(stamps)}/{trainer.steps_per_epoch}")

    start = time.perf_counter()
    trainer.run_epoch(0, tick, cancel)
    timed = stamps[1:] if len(stamps) > 1 else [start, *stamps]
    per_step = (timed[-1] - timed[0]) / max(1, len(timed) - 1)
    steps = math.ceil(size / batch) * int(spec["epochs"])
    return {"seconds": per_step * steps, "steps": steps, "seconds_per_step": per_step,
            "images": size}


def train_task(spec: dict[str, Any], *, progress: Callable[..., None],
               cancel: Any) -> dict[str, Any]:
    """Train as ``explorer train`` does (``spec``: model, data, method, epochs, limit,
    batch_size, seed, settings = the crossbar trained for as a settings dict) and return
    the checkpoint's bytes (the server writes the file: the worker may be elsewhere)
    with a summary. Nothing is written here but a temporary file, removed again."""
    import os
    import tempfile

    from explorer.training import save_checkpoint, train

    progress(0.0, "loading the training images")
    cfg = _train_config(spec)
    result = train(cfg, progress=progress, cancel=cancel)
    fd, tmp = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    try:
        save_checkpoint(tmp, result, cfg)
        with open(tmp, "rb") as file:
            payload = file.read()
    finally:
        os.unlink(tmp)
    return {"checkpoint": payload, "architecture": result.architecture, "data": cfg.data,
            "method": cfg.method, "epochs": cfg.epochs, "seconds": result.seconds,
            "test_accuracy": result.test_accuracy}


def download_task(name: str, *, progress: Callable[..., None], cancel: Any) -> dict[str, int]:
    """Download dataset ``name`` (both splits) into the data folder via torchvision; a
    machine offline gets :class:`~explorer.errors.DatasetMissingError`'s message."""
    from explorer.data import load_dataset

    sizes = {}
    for i, split in enumerate(("train", "test")):
        progress(i / 2, f"getting the {split} split")
        sizes[split] = len(load_dataset(name, split, download=True))
    return sizes


def inspect_task(settings: dict[str, Any], *, progress: Callable[..., None],
                 cancel: Any) -> dict[str, Any]:
    """The dashboard's Layers view: :func:`explorer.inspect.inspect_network` of the
    workload and crossbar ``settings`` (a settings file's plain data) on a worker."""
    from explorer.inspect import inspect_network
    from explorer.settings import Settings

    chosen = Settings.from_dict(settings)
    progress(0.0, "loading model and data")
    loaded = loaded_workload(chosen.workload)
    return inspect_network(loaded.model, loaded.images, loaded.labels, chosen.crossbar,
                           loaded.calibration, heatmap_tiles=1)


def time_task(settings: dict[str, Any], times: list[float], *, progress: Callable[..., None],
              cancel: Any, on_time: Callable[[dict[str, Any]], None] | None = None,
              ) -> dict[str, Any]:
    """Accuracy at each time after programming for the dashboard's time view (one
    evaluation per time with the same seed: the same mapping, programming and drift draws),
    and the relative current loss of every tile (IR drop). ``on_time(record)`` is called as
    each time finishes (in-process runner; on Dask the records come with the result)."""
    from explorer.crossbar import to_crossbar
    from explorer.settings import Settings
    from explorer.workload import evaluate_settings

    chosen = Settings.from_dict(settings)
    loaded = loaded_workload(chosen.workload)
    records = []
    for k, t in enumerate(times):
        def step(fraction: float, message: str, k: int = k, t: float = t) -> None:
            progress((k + fraction) / len(times), f"t = {t:g} s: {message}")
        result = evaluate_settings(chosen, progress=step, cancel=cancel, loaded=loaded,
                                   times=[t])
        record = {key: result.times[0][key]
                  for key in ("time_s", "accuracy_mean", "accuracy_std")}
        records.append(record)
        if on_time is not None:
            on_time(record)
    analog = to_crossbar(loaded.model, chosen.crossbar, loaded.calibration)
    return {"times": records, "losses": tile_losses(analog)}


def tile_losses(analog: Any) -> dict[str, list[Any]]:
    """Relative current loss (%) of every tile of a programmed crossbar, as heatmap data
    (``x`` column tile, ``y`` layer row chunk, ``loss``, ``layer``, ``tile``)."""
    xs, ys, losses, layers, tiles = [], [], [], [], []
    row = 0
    for name, layer in analog.analog_layers():
        physics = getattr(layer, "physics", None)
        if physics is None:
            continue
        loss = physics.tile_losses().detach().cpu()
        for chunk in range(loss.shape[0]):
            for col in range(loss.shape[1]):
                xs.append(col)
                ys.append(row)
                losses.append(100 * float(loss[chunk, col]))
                layers.append(f"{name} rows {chunk}")
                tiles.append(col)
            row += 1
    return {"x": xs, "y": ys, "loss": losses, "layer": layers, "tile": tiles}


_cost_inputs: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()


def _cost_workload(model: str, data: str, images: int) -> tuple[Any, Any]:
    """The network (eval mode) and ``images`` training images for the cost estimate,
    cached per worker like :func:`loaded_workload`."""
    from explorer.models import network_from_checkpoint, read_named_checkpoint
    from explorer.workload import calibration_images, default_dataset

    key = (model, data, images, _checkpoint_stamp(model))
    with _cache_lock:
        if key in _cost_inputs:
            _cost_inputs.move_to_end(key)
            return _cost_inputs[key]
    ckpt, path = read_named_checkpoint(model)
    network = network_from_checkpoint(ckpt, path).eval()
    calibration, _ = calibration_images(data or default_dataset(network), images,
                                        download=False)
    with _cache_lock:
        _cost_inputs[key] = (network, calibration)
        while len(_cost_inputs) > CACHED_WORKLOADS:
            _cost_inputs.popitem(last=False)
    return network, calibration


def cost_task(settings: dict[str, Any], *, progress: Callable[..., None],
              cancel: Any) -> Any:
    """The dashboard's cost panel: :func:`explorer.cost.estimate` of the workload's
    network mapped onto the crossbar of ``settings`` (a settings file's plain data) and
    calibrated on ``workload.calibration_images`` training images, as ``explorer cost``
    does. Returns the :class:`~explorer.cost.CostReport`."""
    from explorer.cost import estimate
    from explorer.crossbar import to_crossbar
    from explorer.settings import Settings

    chosen = Settings.from_dict(settings)
    crossbar, work = chosen.crossbar, chosen.workload
    crossbar.validate()
    progress(0.0, "mapping and calibrating")
    network, images = _cost_workload(work.model, work.data, work.calibration_images)
    return estimate(to_crossbar(network, crossbar, calibration=images), crossbar)
