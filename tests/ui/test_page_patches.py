"""A change from the page goes out as one patch, written before the views it defers are
recomputed (playwright + Debian Chromium; skipped with a reason without them).

A small page served in this process: a number box made by
:func:`explorer.ui.widgets.undelayed` whose change updates two plots' data in two
separate holds and asks a :class:`explorer.ui.deferred.Deferred` for a third. The
server's writes to the browser are counted (Panel's ``dispatch_tornado``): the change
must leave in one message, written before the deferred view starts (order and counts,
no timings).
"""

from __future__ import annotations

import socket
import threading

import pytest
import serving
from serving import free_port
from test_browser import TIMEOUT_MS, browser  # noqa: F401  (fixture: browser)

pytestmark = pytest.mark.ui


DEADLINE_S = 60  # reached only when broken


def wait_until(condition, what: str) -> None:
    serving.wait_until(condition, what, DEADLINE_S, poll_s=0.02)


@pytest.fixture
def served_page():
    import panel as pn
    import panel.io.document as panel_document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    from explorer.ui.deferred import Deferred, patch_pending
    from explorer.ui.widgets import undelayed

    log: list[tuple[str, object]] = []
    lock = threading.Lock()
    dispatch = panel_document.dispatch_tornado

    def counted_dispatch(conn, events=None, msg=None):
        with lock:
            log.append(("write", None))
        return dispatch(conn, events=events, msg=msg)

    def page():
        box = undelayed(pn.widgets.IntInput(value=1, label="levels"))
        sources = {k: ColumnDataSource({"x": [0], "y": [0]})
                   for k in ("a", "b", "late", "later")}
        fig = figure(width=200, height=200)
        for source in sources.values():
            fig.scatter("x", "y", source=source)

        def late() -> None:
            doc = pn.state.curdoc
            with lock:
                log.append(("deferred", patch_pending(doc)))
            sources["late"].data = {"x": [box.value], "y": [0]}

        def later() -> None:
            with lock:
                log.append(("deferred too", None))
            sources["later"].data = {"x": [box.value], "y": [0]}

        deferred, deferred_too = Deferred(late), Deferred(later)

        def on_value(event) -> None:
            for key in ("a", "b"):  # two views, each updating in its own hold
                with pn.io.hold():
                    sources[key].data = {"x": [event.new], "y": [1]}
            deferred()
            deferred_too()
            deferred()  # asked twice: runs once

        box.param.watch(on_value, "value")
        return pn.Column(box, pn.pane.Bokeh(fig))

    panel_document.dispatch_tornado = counted_dispatch
    port = free_port()
    server = pn.serve({"page": page}, port=port, address="127.0.0.1", threaded=True,
                      show=False, start=True)
    try:
        wait_until(lambda: _listening(port), "the server listens")
        yield f"http://127.0.0.1:{port}/page", log, lock
    finally:
        panel_document.dispatch_tornado = dispatch
        server.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


SOURCES_X = """() => {
  const xs = [];
  for (const m of Bokeh.documents[0].all_models)
    if (m.data && 'x' in m.data && 'y' in m.data) xs.push(m.data.x[0]);
  return xs.sort().join(',');
}"""


def test_a_change_leaves_in_one_patch_written_before_the_deferred_view(
        browser, served_page):  # noqa: F811  (the imported fixture)
    url, log, lock = served_page
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(url, timeout=TIMEOUT_MS)
        page.wait_for_function("() => window.Bokeh !== undefined && Bokeh.documents.length > 0"
                               " && Bokeh.documents[0].is_idle", timeout=TIMEOUT_MS)
        assert page.evaluate(SOURCES_X) == "0,0,0,0"
        with lock:
            log.clear()
        box = page.locator("input").first
        box.fill("7")
        box.press("Enter")
        page.wait_for_function(f"() => ({SOURCES_X})() === '7,7,7,7'", timeout=TIMEOUT_MS)
        with lock:
            events = list(log)
        kinds = [kind for kind, _ in events]
        first_deferred = kinds.index("deferred")
        assert kinds[:first_deferred].count("write") == 1, events  # one held patch
        assert events[first_deferred][1] is False, events  # nothing left to write
        assert kinds.count("deferred") == 1
        # both deferred views in one more patch, after the first
        after = kinds[first_deferred:]
        assert after.index("deferred too") < after.index("write"), events
        assert after.count("write") == 1, events
    finally:
        context.close()
