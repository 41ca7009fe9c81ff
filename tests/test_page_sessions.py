"""A page's session waits for its websocket (explorer/ui/page_sessions.py): Bokeh would
discard it after the unused lifetime (300 ms here) and build another for the websocket.
Sessions are counted in the server (no timings asserted); waits poll a condition with a
deadline, and the one wait for time itself is the unused lifetime, which a control page
served the way Panel does shows has passed."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import panel as pn
import pytest
from serving import free_port, wait_until

from explorer.ui import page_sessions

DEADLINE_S = 60  # only reached when something is broken (a loaded 2-core machine)


def _wait_until(condition, what: str, timeout: float = DEADLINE_S) -> None:
    wait_until(condition, what, timeout)


@pytest.fixture
def served() -> Iterator[tuple[int, dict]]:
    """A small Panel app served in this process; yields its port and its live sessions."""
    port = free_port()
    server = pn.serve({"page": lambda: pn.pane.Markdown("a page")}, port=port,
                      address="127.0.0.1", threaded=True, show=False, start=True,
                      check_unused_sessions_milliseconds=100,
                      unused_session_lifetime_milliseconds=300)
    try:
        def registered() -> list:
            return [srv for srv, _panel, _docs in list(pn.state._servers.values())
                    if srv.port == port]

        _wait_until(lambda: bool(registered()), "the server is registered")
        context = registered()[0]._tornado._applications["/page"]
        yield port, context._sessions
    finally:
        page_sessions.restore_panel_get_session()
        server.stop()


def _open_page(port: int, sessions: dict) -> str:
    """GET the page (no websocket); the id of the session it built."""
    before = set(sessions)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/page", timeout=DEADLINE_S) as r:
        assert r.status == 200
    (new,) = set(sessions) - before
    return new


def test_a_pages_session_waits_for_its_websocket_then_goes_when_it_closes(served):
    from bokeh.client import pull_session

    port, sessions = served
    page_sessions.keep_page_sessions()
    held = _open_page(port, sessions)
    page_sessions.restore_panel_get_session()
    control = _open_page(port, sessions)  # built later, not held
    _wait_until(lambda: control not in sessions, "the server discards the control page")
    assert held in sessions  # older than the control, past its lifetime, still there
    # its websocket comes (as the page's would), then the tab closes
    client = pull_session(session_id=held, url=f"http://127.0.0.1:{port}/page")
    client.close()
    # well within the 60 s grace: gone once its connection has come and gone
    _wait_until(lambda: held not in sessions, "the closed session is discarded", 30)


def test_a_session_whose_websocket_never_comes_goes_after_the_grace(served, monkeypatch):
    port, sessions = served
    monkeypatch.setattr(page_sessions, "GRACE_S", 1.0)
    page_sessions.keep_page_sessions()
    held = _open_page(port, sessions)
    _wait_until(lambda: held not in sessions, "the unconnected session is discarded")
