"""A served page whose JavaScript (Bokeh's and Panel's bundles) comes inside its HTML.

With ``panel serve --reuse-sessions warm`` Panel writes a new visitor's HTML at once
(from the session built at start-up) and builds the visitor's own session right after,
on the server's one thread, while the browser evaluates the page's JavaScript. Scripts
fetched as separate files would wait behind that build (their requests arrive a few
milliseconds after the HTML, when the thread is already busy for ~0.4 s); inside the
HTML they are evaluated while the session is built (a second page: 1.45 -> 1.25 s on 2
cores). The cost: ~3 MB of HTML per page view that a browser cannot cache – fine on a
classroom's network, and only with ``--reuse-sessions``.

A script is put inside only if the HTML parser cannot end it early: no ``</script`` in
it and no ``<!--`` followed by ``<script`` before its ``-->`` (the "double-escaped"
state); otherwise it stays a separate file.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from markupsafe import Markup

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


@functools.cache
def _script_text(kind: str, relative: str) -> str | None:
    """A static script's text if it is one of the server's files and safe inline."""
    root = _static_root(kind).resolve()
    path = (root / relative).resolve()
    if root not in path.parents or path.suffix != ".js" or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return text if safe_inside_html(text) else None


def inline_scripts(script_tags: str) -> Markup:
    """``script_tags`` (the page's ``bokeh_js``) with each local script's file inside."""

    def inline(match: re.Match[str]) -> str:
        text = _script_text(match.group(1), match.group(2))
        return match.group(0) if text is None else f"<script>{text}\n</script>"

    return Markup(_LOCAL_SCRIPT.sub(inline, str(script_tags)))


@functools.cache
def _page_template() -> Any:
    from panel.io.resources import parse_template

    return parse_template(
        "{% extends base %}"
        "{% block js_resources %}{{ inline_scripts(bokeh_js) if bokeh_js }}{% endblock %}")


def put_scripts_inside(doc: Any) -> None:
    """Have ``doc``'s HTML page (Panel's own page otherwise) carry its scripts inside."""
    from panel.io.resources import BASE_TEMPLATE

    doc.template = _page_template()
    doc.template_variables.update(base=BASE_TEMPLATE, inline_scripts=inline_scripts)
