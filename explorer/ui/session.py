"""Process- and session-level plumbing for the dashboard: the shared job runner, session
ids, end-of-session hooks and handing work from the worker thread back to a session."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import panel as pn
from panel.io.state import set_curdoc

from explorer.jobs import JobRunner

RUNNER_CACHE_KEY = "crossbar-explorer:job-runner"
_local_ids = itertools.count(1)
_runner_lock = threading.Lock()


def job_runner() -> JobRunner:
    """The one job runner of this process, kept in ``pn.state.cache`` so that
    ``panel serve --dev`` reloads of our modules do not start a second worker."""
    with _runner_lock:  # sessions may be built on several threads (panel serve --num-threads)
        runner = pn.state.cache.get(RUNNER_CACHE_KEY)
        if runner is None:
            runner = pn.state.cache[RUNNER_CACHE_KEY] = JobRunner()
        return runner


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
