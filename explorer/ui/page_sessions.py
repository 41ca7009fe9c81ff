"""A page's session waits for its websocket (bounded) instead of being built twice.

Bokeh discards a session that has had no connection for its unused lifetime, counted
from when it was built, and builds a new one when the page's websocket then comes. When
30 tabs open at once, the server builds their pages back to back on its one thread, and
each tab's script files wait behind the other builds: in the classroom benchmark 27 of
30 sessions were discarded before their websocket came and built again for it (every
build twice; the last tab idle after 93-114 s). Here a page's session is kept from
expiring until its first connection, or at most :data:`GRACE_S` seconds; after that
Bokeh's own lifetime rules apply as before (a closed tab's session goes after the
unused lifetime). Installed by ``apps/explorer.py``, like ``page_head``.
"""

from __future__ import annotations

import time
from typing import Any

GRACE_S = 60.0
"""Longest a page's session is kept for a websocket that has not come (seconds)."""
CHECK_S = 0.5
"""How often a kept session is checked for its first connection (seconds)."""


def hold_until_connected(session: Any, grace_s: float = GRACE_S,
                         check_s: float = CHECK_S) -> None:
    """Keep Bokeh from discarding ``session`` until it has a connection or ``grace_s``
    seconds have passed (once per session; a session served from its own loop)."""
    if session.connection_count > 0 or getattr(session, "_held_for_socket", False):
        return
    session._held_for_socket = True
    session.block_expiration()
    deadline = time.monotonic() + grace_s
    unsubscribed_at = session._last_unsubscribe_time  # its build, until a socket leaves

    def connected() -> bool:  # now, or a connection came and went between two checks
        return (session.connection_count > 0
                or session._last_unsubscribe_time != unsubscribed_at)

    def check() -> None:
        if session.destroyed:  # the server is stopping: nothing to hand back
            return
        if connected() or time.monotonic() >= deadline:
            session.unblock_expiration()
            return
        session._loop.call_later(check_s, check)

    session._loop.call_later(check_s, check)


def _wrap_get_session(panel_get_session: Any) -> Any:
    async def get_session(handler: Any) -> Any:
        session = await panel_get_session(handler)
        if getattr(session, "_loop", None) is not None:  # not Panel's warm-up stub
            hold_until_connected(session, GRACE_S)
        return session

    get_session.__wrapped_panel_get_session__ = panel_get_session  # type: ignore[attr-defined]
    return get_session


def keep_page_sessions() -> bool:
    """Install the hold on Panel's page handler (once); True when installed."""
    from panel.io import server

    if not hasattr(server.DocHandler.get_session, "__wrapped_panel_get_session__"):
        server.DocHandler.get_session = _wrap_get_session(server.DocHandler.get_session)
    return True


def restore_panel_get_session() -> None:
    """Panel's own ``DocHandler.get_session`` again (tests)."""
    from panel.io import server

    panel_get_session = getattr(server.DocHandler.get_session,
                                "__wrapped_panel_get_session__", None)
    if panel_get_session is not None:
        server.DocHandler.get_session = panel_get_session
