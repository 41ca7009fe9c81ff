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

from collections.abc import Callable
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
    (requests before it runs coalesce into one call); elsewhere (notebooks, scripts, tests) it runs
    at once.
    """

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._pending = False

    @property
    def pending(self) -> bool:
        return self._pending

    def __call__(self, *_events: Any) -> None:
        if served_document() is None:
            self._callback()
            return
        if self._pending:
            return
        self._pending = True
        self._waited_ms = 0
        pn.state.execute(self._after_patch, schedule=True)

    def _after_patch(self) -> None:
        doc = served_document()
        if doc is not None and patch_pending(doc) and self._waited_ms < MAX_WAIT_MS:
            self._waited_ms += RECHECK_MS
            doc.add_timeout_callback(self._after_patch, RECHECK_MS)
            return
        pn.state.execute(self._run, schedule=False)  # errors go to the page's handler

    def _run(self) -> None:
        self._pending = False
        with pn.io.hold():  # one patch for the whole update
            self._callback()
