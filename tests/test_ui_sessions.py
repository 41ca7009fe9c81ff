"""Closed dashboard sessions leave nothing behind: apps/explorer.py served in this process,
sessions opened and closed with Bokeh's client (no browser), and then no view of theirs
is alive (weak references, counts – no timings).

Bokeh keeps a closed session until its unused-session lifetime has passed: the test waits
for the server to discard the sessions (polling that condition, with a deadline), then
collects garbage and counts the dashboards still alive.
"""

from __future__ import annotations

import gc
import socket
import weakref
from pathlib import Path

import serving
from serving import free_port

PROJECT = Path(__file__).resolve().parents[1]
DEADLINE_S = 120  # only reached when something is broken (a loaded 2-core machine)
SESSIONS = 3


def wait_until(condition, what: str, timeout: float = DEADLINE_S) -> None:
    serving.wait_until(condition, what, timeout)


def test_closed_sessions_leave_no_dashboard_alive(monkeypatch):
    import panel as pn
    import panel.models  # the client side must know Panel's models
    from bokeh.client import pull_session

    from explorer.ui import app as app_module

    monkeypatch.setenv("EXPLORER_JOBS", "thread")
    built: weakref.WeakSet = weakref.WeakSet()

    class CountedExplorer(app_module.Explorer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.add(self)

    monkeypatch.setattr(app_module, "Explorer", CountedExplorer)
    port = free_port()
    thread = pn.serve({"explorer": str(PROJECT / "apps" / "explorer.py")}, port=port,
                      address="127.0.0.1", threaded=True, show=False, start=True,
                      check_unused_sessions_milliseconds=100,
                      unused_session_lifetime_milliseconds=300)
    try:
        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        def registered() -> list:
            # Bokeh's server listens from its constructor; Panel registers it just after
            return [srv for srv, _panel, _docs in list(pn.state._servers.values())
                    if srv.port == port]

        wait_until(listening, "the server listens")
        wait_until(lambda: bool(registered()), "Panel has registered the server")
        server = registered()[0]

        def live_sessions() -> int:
            return sum(len(ctx.sessions) for ctx in server._tornado._applications.values())

        for _ in range(SESSIONS):
            session = pull_session(url=f"http://127.0.0.1:{port}/explorer")
            session.close()
        del session
        assert len(built) >= 1  # the sessions did build dashboards (this counts them)
        wait_until(lambda: live_sessions() == 0, "the server discarded the closed sessions")

        def all_collected() -> bool:
            gc.collect()
            return len(built) == 0

        # the last destroy hooks may still run on the server's loop: poll, with a deadline
        try:
            wait_until(all_collected, "the closed sessions' dashboards are collected", 10)
        except AssertionError:
            held = next(iter(built), None)
            holders = [type(r).__name__ for r in gc.get_referrers(held)] if held else []
            raise AssertionError(f"{len(built)} of {SESSIONS} closed sessions' dashboards "
                                 f"are still alive (held by {holders})") from None
    finally:
        thread.stop()
