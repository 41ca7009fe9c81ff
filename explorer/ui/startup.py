"""Server start-up: build what every session shares before the first visitor.

``panel serve apps/explorer.py --warm`` runs the app once before the server listens:
that run imports torch, Panel and the app, loads the default network's weights (cached
for all sessions by :func:`explorer.ui.app.network_weights`), and here starts the job
runner's Dask cluster and waits until its workers have imported the evaluation code and
loaded the default workload. Without ``--warm`` the first visitor's session does the
imports and the cluster starts in the background (the page does not wait for it).
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from explorer.ui.session import job_runner, served_document

log = logging.getLogger(__name__)

WORKER_WARM_TIMEOUT_S = 120.0
"""Longest the warm-up waits for the cluster and its workers (then the server starts
anyway; jobs wait for the workers)."""

_lock = threading.Lock()
_state: dict[str, float] = {}


def freeze_startup_objects() -> bool:
    """Once per process, before the first page is built: collect garbage, then move every
    object alive (the imported modules: torch, Panel, Bokeh, HoloViews, the app's code) to
    the garbage collector's permanent generation. Returns whether it froze now.

    A full collection walks every tracked object: with those ~400,000 it held the server's
    one thread for 190 ms (500 ms on a busy machine), and full collections come often in a
    class (Panel runs one 5 s after a session ends, :func:`release_memory` another, Python
    its own). What a page builds later stays collectable.
    """
    with _lock:
        if _state.get("frozen"):
            return False
        gc.collect()
        gc.freeze()
        _state["frozen"] = time.monotonic()
        return True


def is_warm_run() -> bool:
    """True while ``panel serve --warm`` runs the app before the server listens (a
    session without a server context)."""
    doc = served_document()
    return doc is not None and doc.session_context.server_context is None


def default_workload() -> dict:
    """The dashboard's default workload settings (what its first evaluation loads)."""
    from explorer.ui.accuracy import AccuracyRunner
    from explorer.ui.workload import WorkloadSettings

    defaults = {k: AccuracyRunner.param[k].default for k in ("limit", "calibration_images")}
    chosen = WorkloadSettings()
    return {"model": chosen.model, "data": chosen.data, **defaults}


def warm_up(wait: bool, workload: dict | None = None) -> dict[str, float]:
    """Once per process: start the job runner; with ``wait``, block until its Dask
    workers are up and have loaded ``workload`` (the dashboard's default workload
    settings). Returns the seconds each step took (empty after the first call)."""
    with _lock:
        if "started" in _state:
            return {}
        _state["started"] = time.monotonic()
        runner = job_runner()
        timings: dict[str, float] = {}
        if wait and getattr(runner, "kind", "") == "dask":
            start = time.perf_counter()
            if runner.wait_ready(WORKER_WARM_TIMEOUT_S):
                timings["cluster_s"] = time.perf_counter() - start
                start = time.perf_counter()
                try:
                    from explorer.jobtasks import warm_worker

                    answers = runner.client.run(warm_worker, workload)
                    timings["workers_warm_s"] = time.perf_counter() - start
                    log.info("job workers warmed: %s", answers)
                except Exception:  # the workers load it with the first job instead
                    log.exception("could not warm the job workers")
            else:
                log.warning("job runner not ready: %s", runner.start_error)
        return timings
