"""A served page's ``<head>``, with Bokeh's and Panel's JavaScript inside, sent before the
visitor's session is built.

Panel answers a visitor's request only once the session is built (the app's views and
their Bokeh models: ~0.4 s of the server's one thread on 2 cores); only then does the
browser see the page's scripts, fetch 2.9 MB of them and evaluate them (~0.3 s). The two
never overlapped. The ``<head>`` of a page does not depend on its session (title, icons,
the scripts; the session's roots and token are in the ``<body>``), so
:func:`send_head_first` has the server write it – learnt from the first page served at
that address – at once, and build the session while the browser evaluates it. The
scripts come inside that head: fetched as files, their requests would wait behind the
build on the same thread. A second page: 1.59 -> 1.26 s on 2 cores.

A script is put inside only if the HTML parser cannot end it early (no ``</script`` and
no ``<!--`` then ``<script`` before ``-->``); otherwise it stays a separate file. The cost
is ~3 MB of HTML per page view that a browser does not cache (0.8 MB gzip-compressed,
compressed once; the server's own script files are not compressed).

Only for plain pages: with a login, an authorisation callback or a redirect the server's
own answer is left as it is. Installed by the server entry (``apps/explorer.py``) only.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import zlib
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEAD_END = "</head>"
GZIP_LEVEL = 9
"""zlib level of the head's compression (once per address: ~0.1 s)."""
GZIP_WBITS = 31
"""zlib window bits for a gzip stream."""

# `<script type="text/javascript" src="static/js/bokeh.min.js?v=…"></script>` as Bokeh
# and Panel write them (with `../` before `static` for apps below the server's root)
_LOCAL_SCRIPT = re.compile(
    r'<script type="text/javascript" src="(?:\.\./)*static/(js|extensions/panel)/'
    r'([^"?]+)(?:\?v=[0-9a-f]+)?"></script>')


def _static_root(kind: str) -> Path:
    """Where the server's static route ``static/<kind>/`` reads its files."""
    if kind == "js":
        from bokeh.settings import settings

        return Path(settings.bokehjs_path()) / "js"
    import panel

    return Path(panel.__file__).parent / "dist"


def safe_inside_html(text: str) -> bool:
    """Whether ``text`` can stand between ``<script>`` and ``</script>`` unchanged."""
    low = text.lower()
    if "</script" in low:
        return False
    start = low.find("<!--")
    while start != -1:
        end = low.find("-->", start + 4)
        opening = low.find("<script", start + 4)
        if opening != -1 and (end == -1 or opening < end):
            return False
        if end == -1:
            break
        start = low.find("<!--", end + 3)
    return True


def _script_text(kind: str, relative: str) -> str | None:
    """A static script's text if it is one of the server's files and safe inline (read
    when a head is learnt, once per address: not kept)."""
    root = _static_root(kind).resolve()
    path = (root / relative).resolve()
    if root not in path.parents or path.suffix != ".js" or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return text if safe_inside_html(text) else None


def inline_scripts(html: str) -> str:
    """``html`` with each of the server's own script files put inside its tag."""

    def inline(match: re.Match[str]) -> str:
        text = _script_text(match.group(1), match.group(2))
        return match.group(0) if text is None else f"<script>{text}\n</script>"

    return _LOCAL_SCRIPT.sub(inline, html)


@dataclasses.dataclass(frozen=True)
class Head:
    """A page's head as Panel wrote it (``text``) and as sent first, with the scripts
    inside: gzip-compressed (``gzipped``, 0.8 MB instead of 2.9, the compression kept open
    for the rest of the page) and, for the rare browser that refuses gzip, ``plain``
    (decompressed when asked: only the compressed form is kept)."""

    text: str
    gzipped: bytes
    _compression: Any = dataclasses.field(repr=False)

    @classmethod
    def of(cls, text: str) -> Head:
        compression = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
        gzipped = (compression.compress(inline_scripts(text).encode("utf-8"))
                   + compression.flush(zlib.Z_SYNC_FLUSH))
        return cls(text, gzipped, compression)

    @property
    def plain(self) -> bytes:
        """The head with its scripts, UTF-8, uncompressed."""
        return zlib.decompressobj(GZIP_WBITS).decompress(self.gzipped)

    def rest(self, page_rest: str, gzipped: bool) -> bytes:
        """The bytes that follow the head sent: ``page_rest``, compressed in the same
        gzip stream when the head went compressed."""
        data = page_rest.encode("utf-8")
        if not gzipped:
            return data
        compression = self._compression.copy()  # the state right after the head
        return compression.compress(data) + compression.flush()


class HeadCache:
    """Heads learnt from pages served, by request path."""

    def __init__(self) -> None:
        self._heads: dict[str, Head] = {}

    def get(self, path: str) -> Head | None:
        return self._heads.get(path)

    def learn(self, path: str, page: str) -> None:
        """Keep the head of ``page`` (a whole HTML page) for later visitors of ``path``
        (inlining and compressing it, ~0.1 s, only if it is not the head kept already:
        pages answered as Panel does, during a burst, all pass here)."""
        cut = page.find(HEAD_END)
        known = self._heads.get(path)
        if cut != -1 and (known is None or known.text != page[:cut]):
            self._heads[path] = Head.of(page[:cut])

    def forget(self, path: str) -> None:
        self._heads.pop(path, None)


HEADS = HeadCache()
_pages_in_progress = 0
"""Page requests being answered now (on the server's one thread)."""


def _plain_page_request(handler: Any) -> bool:
    """Whether the server's answer to this request is sure to be its HTML page: no login
    (which may redirect), no authorisation callback (which may refuse) and not the
    address without its prefix's slash (redirected)."""
    from panel.config import config

    auth = handler.application.auth_provider
    if any(getattr(auth, name, None) is not None
           for name in ("get_user", "get_user_async", "get_login_url", "login_url")):
        return False
    if config.authorize_callback:
        return False
    prefix = handler.application.prefix
    return not (prefix and handler.request.path == prefix and not prefix.endswith("/"))


def _accepts_gzip(request: Any) -> bool:
    """Whether the request's ``Accept-Encoding`` lists gzip (without ``q=0``)."""
    for coding in request.headers.get("Accept-Encoding", "").split(","):
        name, _, quality = coding.strip().partition(";")
        if name.strip().lower() == "gzip":
            return quality.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00",
                                                            "q=0.000")
    return False


def _page_text(chunk: Any) -> str | None:
    if isinstance(chunk, bytes):
        return chunk.decode("utf-8")
    return chunk if isinstance(chunk, str) else None


def _wrap_get(panel_get: Any) -> Any:
    """Panel's ``DocHandler.get`` with the head sent first (when it is known)."""

    @functools.wraps(panel_get)
    async def get(self: Any, *args: Any, **kwargs: Any) -> None:
        global _pages_in_progress
        path = self.request.path
        # only when no other page is being built: a class opening 30 tabs at once would
        # otherwise get 30 heads whose scripts the browsers evaluate while the server
        # builds the sessions (each build then takes ~3 s on 2 cores, and sessions went
        # unused for longer than their lifetime); the others get Panel's usual answer
        quiet = _pages_in_progress == 0
        plain_page = _plain_page_request(self)
        known = HEADS.get(path) if quiet and plain_page else None
        write_page = self.write
        gzipped = known is not None and _accepts_gzip(self.request)
        if known is not None:
            # the headers Panel would set, then the head, before the session exists
            self.set_header("Content-Type", "text/html")
            self.set_header("Cache-Control", "no-store")
            if gzipped:
                self.set_header("Content-Encoding", "gzip")
                self.set_header("Vary", "Accept-Encoding")
            write_page(known.gzipped if gzipped else known.plain)
            await self.flush()

        def write(chunk: Any) -> None:
            page = _page_text(chunk)
            if page is None or HEAD_END not in page:
                write_page(chunk)  # not an HTML page (Panel wrote something else)
                return
            if known is None:
                if plain_page:
                    HEADS.learn(path, page)  # compressed only when new or changed
                write_page(chunk)
                return
            head, _ = page.split(HEAD_END, 1)
            if head != known.text:  # not expected: learn the new one for later visitors
                log.warning("the page's head at %s changed; learning it again", path)
                HEADS.learn(path, page)
            write_page(known.rest(page[len(head):], gzipped))

        self.write = write
        _pages_in_progress += 1
        try:
            await panel_get(self, *args, **kwargs)
        finally:
            _pages_in_progress -= 1
            del self.write

    get.__wrapped_panel_get__ = panel_get  # type: ignore[attr-defined]
    return get


def send_head_first() -> bool:
    """Have Panel's page handler send the head first (once; idempotent). Returns whether
    it is installed (Panel's server module must be importable)."""
    from panel.io import server

    if not hasattr(server.DocHandler.get, "__wrapped_panel_get__"):
        server.DocHandler.get = _wrap_get(server.DocHandler.get)
    return True


def restore_panel_get() -> None:
    """Put Panel's own handler back (tests)."""
    from panel.io import server

    panel_get = getattr(server.DocHandler.get, "__wrapped_panel_get__", None)
    if panel_get is not None:
        server.DocHandler.get = panel_get
