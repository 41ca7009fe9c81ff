"""Process- and session-level plumbing for the dashboard: the shared job runner, session
ids, end-of-session hooks and handing work from the worker thread back to a session."""

from __future__ import annotations

import atexit
import itertools
import os
import threading
from collections.abc import Callable
from typing import Any

import panel as pn
from panel.io.state import set_curdoc

from explorer.errors import InputError
from explorer.jobs import DaskJobRunner, JobRunner

RUNNER_CACHE_KEY = "crossbar-explorer:job-runner"
JOBS_ENV = "EXPLORER_JOBS"
"""``dask`` or ``thread``: where the dashboard's jobs run (default: Dask worker processes
when served, this process's job thread in notebooks and tests)."""
SCHEDULER_ENV = "EXPLORER_SCHEDULER"
"""A Dask scheduler address (``tcp://HOST:8786``) for the dashboard's jobs, the one
``explorer sweep --scheduler`` takes; unset: a LocalCluster started with the server."""
EXIT_WAIT_S = 30.0
"""Longest the interpreter's exit waits for a running in-process job (seconds)."""
_local_ids = itertools.count(1)
_runner_lock = threading.Lock()


def runner_kind() -> str:
    """``dask`` or ``thread`` (:data:`JOBS_ENV`; by default ``dask`` when served or when
    :data:`SCHEDULER_ENV` names a scheduler)."""
    kind = os.environ.get(JOBS_ENV, "").strip().lower()
    if kind and kind not in ("dask", "thread"):
        raise InputError(f"{JOBS_ENV}: expected 'dask' or 'thread', got {kind!r}")
    if kind:
        return kind
    served = served_document() is not None or os.environ.get(SCHEDULER_ENV)
    return "dask" if served else "thread"


def _log_jobs() -> None:
    """The server's log shows each job queued and started (owner, label): who waited."""
    import logging

    logger = logging.getLogger("explorer.jobs")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # once, not again through the server's root handler


def job_runner(kind: str | None = None) -> Any:
    """The one job runner of this process (a :class:`~explorer.jobs.DaskJobRunner` or a
    :class:`~explorer.jobs.JobRunner`, see :func:`runner_kind`), kept in
    ``pn.state.cache`` so that ``panel serve --dev`` reloads do not start a second one.
    A Dask runner's cluster starts in the background and is closed at exit."""
    with _runner_lock:  # sessions may be built on several threads (panel serve --num-threads)
        runner = pn.state.cache.get(RUNNER_CACHE_KEY)
        if runner is None:
            if (kind or runner_kind()) == "dask":
                scheduler = os.environ.get(SCHEDULER_ENV) or None
                _log_jobs()
                runner = DaskJobRunner(scheduler=scheduler)
                atexit.register(runner.shutdown)
            else:
                runner = JobRunner()
                # a job still running in the (daemon) thread while the interpreter ends
                # aborts it (torch): at exit, cancel what waits and let the running one end
                atexit.register(runner.shutdown, timeout=EXIT_WAIT_S)
            pn.state.cache[RUNNER_CACHE_KEY] = runner
        return runner


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the system (glibc ``malloc_trim``): run
    when a session ends, so a server's memory returns after a class closes its tabs."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


RELEASE_DELAY_S = 1.0
"""How long after a session ends its memory is handed back (its end-of-session hooks run
while its document and views still exist; they are gone once Bokeh has discarded it)."""
_release_scheduled = threading.Event()


def release_memory_soon(delay_s: float = RELEASE_DELAY_S) -> None:
    """:func:`release_memory` once, ``delay_s`` seconds from now, on this thread's event
    loop (several sessions ending together share one call); at once without a loop."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        release_memory()
        return
    if _release_scheduled.is_set():
        return
    _release_scheduled.set()

    def release() -> None:
        _release_scheduled.clear()
        release_memory()

    loop.call_later(delay_s, release)


def served_document():
    """The Bokeh document of the current server session, or None (notebook, script, test)."""
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        return doc
    return None


def session_owner() -> str:
    """An owner id for jobs: the server session id, else a new id for this view."""
    doc = served_document()
    if doc is not None:
        return f"session-{doc.session_context.id}"
    return f"local-{next(_local_ids)}"


def on_session_end(callback: Callable[[], None]) -> bool:
    """Call ``callback()`` when the current browser session closes; False outside a server
    session (then there is nothing to close)."""
    doc = served_document()
    if doc is None:
        return False
    doc.on_session_destroyed(lambda _context: callback())
    return True


def call_in_session(doc, fn: Callable[[], None]) -> None:
    """Run ``fn`` where it may touch the session's widgets: for a served document on its
    event loop (thread-safe, from any thread); otherwise at once."""
    if doc is None:
        fn()
        return
    with set_curdoc(doc):
        pn.state.execute(fn, schedule=True)
