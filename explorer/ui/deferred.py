"""Work that may wait until the browser has the answer to the control it changed.

Panel processes one browser change with the document held: every watcher runs, then
all patches go out together. A view that is not what the user is looking at (the
programming spread under the histograms, say) would make the histograms wait for it.
:class:`Deferred` runs such a view's update on the server loop's next tick instead:
after the held patch of the change has been sent, still with the document locked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn

from explorer.ui.session import served_document


class Deferred:
    """Call ``callback()`` soon after the current change, once however often requested.

    In a served page the call waits for the next tick of the server's loop (requests
    before it runs coalesce into one call); elsewhere (notebooks, scripts, tests) it runs
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
        pn.state.execute(self._run, schedule=True)

    def _run(self) -> None:
        self._pending = False
        with pn.io.hold():  # one patch for the whole update
            self._callback()
