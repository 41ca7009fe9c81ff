"""Scripts put inside a served page's HTML: only the server's own files, only when the
HTML parser cannot end them early."""

from __future__ import annotations

from pathlib import Path

from bokeh.settings import settings

from explorer.ui.inline_scripts import inline_scripts, safe_inside_html

BOKEH_TAG = '<script type="text/javascript" src="static/js/bokeh.min.js?v=abc123"></script>'


def test_text_that_would_end_the_script_early_is_not_safe():
    assert safe_inside_html("var a = 1; /* <!-- x --> */ var b = '<script>';")
    assert safe_inside_html("/<!--(?:-?>|[\\s\\S]*?(?:-->|$))/, /<(script|pre)/")
    assert not safe_inside_html("var s = '</script>';")
    assert not safe_inside_html("var s = '</SCRIPT >';")
    # "<!--" then "<script" before any "-->": the parser's double-escaped state
    assert not safe_inside_html("var s = '<!-- <script>';")
    assert not safe_inside_html("var s = '<!-- a --> <!-- <Script ';")


def test_the_servers_own_script_comes_inside():
    text = (Path(settings.bokehjs_path()) / "js" / "bokeh.min.js").read_text(encoding="utf-8")
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
