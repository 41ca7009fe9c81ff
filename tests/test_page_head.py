"""A served page's head goes out, with the scripts inside, before its session is built
(explorer/ui/page_head.py): only the server's own script files, only when the HTML
parser cannot end them early, and only on a server that is building no other page."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import panel as pn
import pytest
from bokeh.settings import settings
from serving import free_port

from explorer.ui import page_head
from explorer.ui.page_head import HEADS, inline_scripts, safe_inside_html

BOKEH_TAG = '<script type="text/javascript" src="static/js/bokeh.min.js?v=abc123"></script>'
BOKEH_JS = Path(settings.bokehjs_path()) / "js" / "bokeh.min.js"
WAIT_S = 60


def test_text_that_would_end_the_script_early_is_not_safe():
    assert safe_inside_html("var a = 1; /* <!-- x --> */ var b = '<script>';")
    assert safe_inside_html("/<!--(?:-?>|[\\s\\S]*?(?:-->|$))/, /<(script|pre)/")
    assert not safe_inside_html("var s = '</script>';")
    assert not safe_inside_html("var s = '</SCRIPT >';")
    # "<!--" then "<script" before any "-->": the parser's double-escaped state
    assert not safe_inside_html("var s = '<!-- <script>';")
    assert not safe_inside_html("var s = '<!-- a --> <!-- <Script ';")


def test_the_servers_own_script_comes_inside():
    text = BOKEH_JS.read_text(encoding="utf-8")
    page = inline_scripts("<meta>" + BOKEH_TAG + "<script>init()</script>")
    assert "static/js" not in page.replace(text, "") and text in page
    assert page.startswith("<meta><script>") and page.endswith("</script><script>init()</script>")
    assert inline_scripts(BOKEH_TAG.replace("static/", "../../static/")).count(text) == 1


def test_other_scripts_stay_files():
    for tag in (BOKEH_TAG.replace("bokeh.min.js", "no-such-file.js"),
                BOKEH_TAG.replace("bokeh.min.js", "../../../../../../../etc/passwd"),
                BOKEH_TAG.replace("bokeh.min.js", "../settings.py"),
                '<script type="text/javascript" src="https://cdn.example.org/x.js"></script>'):
        assert inline_scripts(tag) == tag


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def gated_server():
    """A served app whose session build waits for ``gate`` (set by the test) and says
    when it has started; Panel's handler with the head sent first."""
    page_head.send_head_first()
    gate, started = threading.Event(), threading.Event()
    gate.set()

    def app():
        started.set()
        assert gate.wait(WAIT_S), "the test never let the build finish"
        return pn.pane.Markdown("gated page")

    port = free_port()
    server = pn.serve({"gated": app}, port=port, address="127.0.0.1", threaded=True,
                      show=False, start=True, websocket_origin=[f"127.0.0.1:{port}"])
    try:
        _wait_listening(port)
        yield port, gate, started
    finally:
        gate.set()
        server.stop()
        HEADS.forget("/gated")
        page_head.restore_panel_get()


@contextlib.contextmanager
def _get(port: int, encoding: str = "identity") -> Iterator[http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        connection.request("GET", "/gated", headers={"Accept-Encoding": encoding})
        yield connection.getresponse()
    finally:
        connection.close()


def _page(port: int) -> str:
    with _get(port) as response:
        return response.read().decode()


def test_the_head_arrives_while_the_session_is_being_built(gated_server):
    port, gate, started = gated_server
    first = _page(port)  # Panel's own page; its head is learnt
    assert 'src="static/js/bokeh.min.js' in first
    known = HEADS.get("/gated")
    assert known is not None and first.startswith(known.text)

    gate.clear()
    started.clear()
    with _get(port) as response:
        assert response.status == 200 and response.getheader("Content-Type") == "text/html"
        head = response.read(len(known.plain))  # arrives although the build cannot finish
        assert started.wait(WAIT_S) and not gate.is_set()
        gate.set()
        rest = response.read().decode()
    assert head == known.plain
    assert BOKEH_JS.read_text(encoding="utf-8").encode() in head
    assert b'src="static/js/bokeh.min.js' not in head
    assert rest.startswith(page_head.HEAD_END) and "gated page" not in head.decode()
    # the same body as Panel's page: its roots and its (own) session token
    assert rest.count("data-root-id") == first.count("data-root-id") >= 1
    assert '"token":' in rest and rest.rstrip().endswith("</html>")


def test_a_browser_that_accepts_gzip_gets_the_head_compressed(gated_server):
    port, gate, started = gated_server
    first = _page(port)
    known = HEADS.get("/gated")
    gate.clear()
    started.clear()
    with _get(port, "br, gzip;q=0.8, deflate") as response:
        assert response.getheader("Content-Encoding") == "gzip"
        head = response.read(len(known.gzipped))  # before the session is built
        assert started.wait(WAIT_S) and not gate.is_set()
        gate.set()
        rest = response.read()
    assert len(head) < len(known.plain) / 3
    stream = zlib.decompressobj(zlib.MAX_WBITS | 16)
    assert stream.decompress(head) == known.plain  # readable before the rest arrives
    body = stream.decompress(rest) + stream.flush()
    assert stream.eof and gzip.decompress(head + rest) == known.plain + body
    assert body.decode().startswith(page_head.HEAD_END)
    assert body.decode().count("data-root-id") == first.count("data-root-id") >= 1
    with _get(port, "gzip;q=0, identity") as response:  # refused: sent as it is
        assert response.getheader("Content-Encoding") is None
        assert response.read().startswith(known.plain)


def test_a_server_building_another_page_answers_as_panel_does(gated_server, monkeypatch):
    port, _, _ = gated_server
    _page(port)
    assert HEADS.get("/gated") is not None
    learnt = HEADS.get("/gated")
    monkeypatch.setattr(page_head, "_pages_in_progress", 1)  # another page is being built
    page = _page(port)
    assert 'src="static/js/bokeh.min.js' in page and page.count("<head>") == 1
    assert HEADS.get("/gated") is learnt  # the same head: not inlined and compressed again


def test_pages_behind_a_login_or_an_authorisation_are_left_as_they_are(monkeypatch):
    auth = SimpleNamespace(get_user=None, get_user_async=None, get_login_url=None,
                           login_url=None)
    handler = SimpleNamespace(application=SimpleNamespace(prefix="", auth_provider=auth),
                              request=SimpleNamespace(path="/explorer"))
    assert page_head._plain_page_request(handler)
    auth.login_url = "/login"
    assert not page_head._plain_page_request(handler)
    auth.login_url = None
    monkeypatch.setattr(pn.config, "authorize_callback", lambda user: True)
    assert not page_head._plain_page_request(handler)
    monkeypatch.setattr(pn.config, "authorize_callback", None)
    handler.application.prefix = handler.request.path = "/course"  # redirected to /course/
    assert not page_head._plain_page_request(handler)
