"""The dashboard's sections under the mapping views are tabs whose Bokeh models are made
only once a tab is opened (``pn.Tabs(dynamic=True)``): a new page starts smaller, and an
opened section shows the same, current content as if it had been there all along."""

from __future__ import annotations

import html

import pytest
from bokeh.document import Document

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
    for section in SECTIONS[1:]:
        app.open_section(section)
        assert HEADINGS[section] in texts(doc), section
        assert HEADINGS["Accuracy"] not in texts(doc)
    app.open_section("Accuracy")
    assert HEADINGS["Accuracy"] in texts(doc)
    app.sections.dynamic = False  # every section drawn at once, as before
    assert all(t in texts(doc) for t in HEADINGS.values())
    assert at_load < 0.8 * len(doc.models), (at_load, len(doc.models))


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
