"""Work that may wait until the browser has the answer to the control it changed.

Panel processes one browser change with the document held: every watcher runs, then
all patches go out together. A view that is not what the user is looking at (the
programming spread under the histograms, say) would make the histograms wait for it.
:class:`Deferred` runs such a view's update once the held patch of the change has been
written, still with the document locked.

It waits for the write, not a number of ticks: Panel writes a held patch from a task
that, while the socket is busy, retries every 10 ms, and a callback queued for the next
tick ran in that gap (measured: the histograms' patch left 12-25 ms later, after the
programming view). Panel keeps the documents with patches still to write in
``panel.io.document._WRITE_BLOCK`` / ``_WRITE_MSGS`` (private names: if a Panel release
drops them the wait ends at once, and the test of this order fails).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import panel as pn
from panel.io import document as panel_document

from explorer.ui.session import served_document

RECHECK_MS = 2
"""How often a deferred call checks again whether Panel has written the patch (ms)."""
MAX_WAIT_MS = 1000
"""Run anyway after this long (a socket that never drains must not stop the view)."""


def patch_pending(doc: Any) -> bool:
    """Whether Panel still has patches of ``doc`` to write to the browser."""
    return any(doc in getattr(panel_document, name, ())
               for name in ("_WRITE_BLOCK", "_WRITE_MSGS"))


class Deferred:
    """Call ``callback()`` soon after the current change, once however often requested.

    In a served page the call waits until Panel has written the document's pending patches
    (requests before it runs coalesce into one call); the deferred calls of one change run
    together in one hold, so they reach the browser as one more patch, not one each.
    Elsewhere (notebooks, scripts, tests) it runs at once.
    """

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._pending = False

    def __call__(self, *_events: Any) -> None:
        doc = served_document()
        if doc is None:
            self._callback()
            return
        if self._pending:
            return
        self._pending = True
        waiting = _waiting.setdefault(doc, [])
        waiting.append(weakref.ref(self))
        if len(waiting) == 1:  # the first of this change: schedule the run of them all
            pn.state.execute(partial(_after_patch, doc, 0), schedule=True)

    def _run(self) -> None:
        self._pending = False
        self._callback()


_waiting: weakref.WeakKeyDictionary[Any, list[weakref.ref[Deferred]]] = weakref.WeakKeyDictionary()
"""Deferred calls requested in a served document and not run yet, in request order.

Weak both ways: a session discarded before its scheduled run (Bokeh drops a destroyed
session's callbacks; in a burst of pages the server's clean-up can come before the next
tick) leaves its entry here, and a strong list would keep the deferred calls, their
views and through them the document alive for ever (seen: 17 of 30 closed sessions of a
classroom kept, ~8 MB each)."""


def _after_patch(doc: Any, waited_ms: int) -> None:
    if patch_pending(doc) and waited_ms < MAX_WAIT_MS:
        doc.add_timeout_callback(partial(_after_patch, doc, waited_ms + RECHECK_MS),
                                 RECHECK_MS)
        return
    calls = [deferred for deferred in (ref() for ref in _waiting.pop(doc, ()))
             if deferred is not None]
    with pn.io.hold():  # one patch for all of them
        for deferred in calls:
            pn.state.execute(deferred._run, schedule=False)  # errors: the page's handler
