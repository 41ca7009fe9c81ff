"""The dashboard's sections under the mapping views are tabs whose Bokeh models are made
only once a tab is opened (``explorer.ui.sections.LazyTabs``): a new page starts smaller,
and an opened section shows the same, current content as if it had been there all along."""

from __future__ import annotations

import html

import pytest
from bokeh.document import Document
from bokeh.models import ImportedStyleSheet

from explorer.jobs import JobRunner
from explorer.ui.app import SECTIONS, Explorer

TIMEOUT = 120  # seconds; only reached when something is broken
HEADINGS = {  # a heading of each section
    "Accuracy": "Accuracy on the crossbar",
    "Cost": "Cost per image",
    "Time & wires": "Time and wires",
    "Layers": "Layers: which layer hurts most, and why",
    "Sweep": "Accuracy over a grid of up to",
    "Train": "Train a network for this crossbar",
}


@pytest.fixture
def runner():
    r = JobRunner()
    yield r
    r.shutdown(cancel=True, timeout=TIMEOUT)


def texts(doc: Document) -> str:
    """Every text of the document's HTML/Markdown models, unescaped."""
    return "\n".join(html.unescape(m.text) for m in doc.models
                     if isinstance(getattr(m, "text", None), str))


def test_a_section_is_in_the_page_only_once_opened(runner):
    app = Explorer(runner=runner, sync_url=False)
    doc = Document()
    doc.add_root(app.__panel__().get_root(doc))
    assert set(HEADINGS) == set(SECTIONS)
    shown = texts(doc)
    assert HEADINGS["Accuracy"] in shown  # the first tab is open
    assert not [t for s, t in HEADINGS.items() if s != "Accuracy" and t in shown]
    at_load = len(doc.models)
    for i, section in enumerate(SECTIONS[1:], 1):
        app.open_section(section)
        assert HEADINGS[section] in texts(doc), section
        assert app.sections.opened == list(SECTIONS[:i + 1])  # the opened ones stay
    app.open_section("Accuracy")
    assert all(t in texts(doc) for t in HEADINGS.values())
    assert at_load < 0.8 * len(doc.models), (at_load, len(doc.models))


def test_the_cost_runs_no_job_until_its_section_is_opened(runner):
    app = Explorer(runner=runner, sync_url=False)
    doc = Document()
    doc.add_root(app.__panel__().get_root(doc))
    app.config.device.levels = 5
    assert app.cost.job is None  # a page nobody opened Cost on costs the workers nothing
    app.open_section("Cost")
    assert app.cost.job.wait(TIMEOUT) == "done"
    shown = f"{app.cost.report.energy_pj_per_image:,.1f} pJ per image"
    assert shown in texts(doc)


def test_a_section_closed_during_a_change_shows_the_new_numbers_when_reopened(runner):
    app = Explorer(runner=runner, sync_url=False)
    doc = Document()
    doc.add_root(app.__panel__().get_root(doc))
    app.open_section("Cost")
    assert app.cost.job.wait(TIMEOUT) == "done"
    before = f"{app.cost.report.energy_pj_per_image:,.1f} pJ per image"
    assert before in texts(doc)
    app.open_section("Accuracy")
    app.config.device.levels = 4  # while the cost is not shown
    assert app.cost.job.wait(TIMEOUT) == "done"
    after = f"{app.cost.report.energy_pj_per_image:,.1f} pJ per image"
    assert after != before
    app.open_section("Cost")
    assert after in texts(doc) and before not in texts(doc)


def test_a_section_updated_while_hidden_keeps_this_servers_stylesheets(runner):
    """A pane updated while another tab is shown must not point its CSS at the CDN
    (with pn.Tabs(dynamic=True) the hidden pane left the document, and Panel rendered
    its stylesheets for no document: cdn.holoviz.org)."""
    app = Explorer(runner=runner, sync_url=False)
    doc = Document()
    doc._template_variables["dist_url"] = "static/extensions/panel/"  # as when served
    doc.add_root(app.__panel__().get_root(doc))
    app.open_section("Cost")
    assert app.cost.job.wait(TIMEOUT) == "done"
    app.open_section("Accuracy")
    app.config.device.levels = 4  # the cost's summary changes while hidden
    assert app.cost.job.wait(TIMEOUT) == "done"
    app.open_section("Cost")
    urls = [m.url for m in doc.models if isinstance(m, ImportedStyleSheet)]
    assert urls and not [u for u in urls if u.startswith("http")], urls
