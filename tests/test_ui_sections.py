"""The dashboard's sections under the mapping views are tabs whose Bokeh models are made
only once a tab is opened (``explorer.ui.sections.LazyTabs``): a new page starts smaller,
and an opened section shows the same, current content as if it had been there all along."""

from __future__ import annotations

import html

import pytest
from bokeh.document import Document
from bokeh.models import ImportedStyleSheet, TextAreaInput

from explorer.jobs import JobRunner
from explorer.ui.app import SECTIONS, Explorer

TIMEOUT = 120  # seconds; only reached when something is broken
HEADINGS = {  # a heading of each section
    "Accuracy": "Accuracy on the crossbar",
    "Programming": "Programming spread",
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


def test_closed_sections_views_are_built_when_first_opened_with_the_current_workload(
        runner):
    from explorer.ui.layers_view import LayersView
    from explorer.ui.workload import WORKLOADS

    app = Explorer(runner=runner, sync_url=False)
    doc = Document()
    doc.add_root(app.__panel__().get_root(doc))
    assert [t for t in SECTIONS if app.sections.built(t)] == ["Accuracy"]
    other = next(name for name, w in WORKLOADS.items()
                 if w.model != WORKLOADS[app.accuracy.workload].model)
    app.accuracy.workload = other  # while Layers is not built
    app.open_section("Layers")
    assert app.sections.built("Layers") and isinstance(app.layers, LayersView)
    assert app.layers.model == WORKLOADS[other].model
    assert not app.sections.built("Sweep")


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


# -- the sidebar's collapsible groups (LazySections) ---------------------------------------------
def css_models(doc: Document, css_class: str) -> list:
    return [m for m in doc.models if css_class in (getattr(m, "css_classes", None) or [])]


def test_a_sidebar_group_is_in_the_page_only_once_opened_and_stays_when_closed(runner):
    app = Explorer(runner=runner, sync_url=False)
    doc = Document()
    doc.add_root(app.__panel__().get_root(doc))
    groups = app.sidebar_sections
    assert groups.titles[:2] == ["Non-idealities", "Crossbar & converters"]
    assert groups.opened == [] and css_models(doc, "levels")  # the device editor is built
    assert not css_models(doc, "adc-bits") and not css_models(doc, "read-sigma")
    at_load = len(doc.models)
    app.open_sidebar_section("Crossbar & converters")
    (adc,) = css_models(doc, "adc-bits")
    assert adc.value == "ideal" and not css_models(doc, "read-sigma")
    opened = len(doc.models)
    assert opened > at_load
    holder = css_models(doc, "lazy-section-crossbar-converters")[0]
    assert holder.visible and holder.children
    groups.close("Crossbar & converters")
    assert not holder.visible and css_models(doc, "adc-bits") == [adc]  # hidden, not removed
    assert groups.opened == ["Crossbar & converters"] and groups.shown == []
    app.config.adc_bits = 6  # a closed group's controls still follow the config
    assert adc.value == "6 bits"
    for title in groups.titles:
        groups.open(title)
    assert css_models(doc, "read-sigma") and "explorer evaluate" in texts_and_values(doc)
    assert len(doc.models) > opened


def texts_and_values(doc: Document) -> str:
    """:func:`texts` and the values of the text areas (the CLI command)."""
    return texts(doc) + "\n".join(m.value for m in doc.models if isinstance(m, TextAreaInput))


def test_knobs_set_by_url_or_import_while_their_group_is_closed_show_once_opened(runner):
    from explorer.ui.app import CONFIG_URL_PARAMS
    from explorer.ui.url_state import url_proxy

    app = Explorer(runner=runner, sync_url=False)
    doc = Document()
    doc.add_root(app.__panel__().get_root(doc))
    url = url_proxy(app.config, CONFIG_URL_PARAMS)  # what Location.sync sets
    url.param.update(adc_bits="5", read_sigma="0.03")
    assert (app.config.adc_bits, app.config.read_sigma) == (5, 0.03)
    settings = app.export_settings()
    settings["converters"]["dac_bits"] = 4
    settings["wires"]["ir_drop"] = "solve"
    app.import_settings(settings)
    assert app.config.dac_bits == 4 and app.config.ir_drop == "solve"
    assert not css_models(doc, "adc-bits")
    app.open_sidebar_section("Crossbar & converters")
    assert css_models(doc, "adc-bits")[0].value == "5 bits"
    assert css_models(doc, "dac-bits")[0].value == "4 bits"
    app.open_sidebar_section("Non-idealities")
    assert [m.value for m in css_models(doc, "read-sigma")
            if "value" in m.properties()] == [0.03]
    app.open_sidebar_section("Wires")
    (ir_drop,) = css_models(doc, "ir-drop")  # radio buttons
    assert ir_drop.labels[ir_drop.active] == "solve"
    app.open_sidebar_section(groups_settings := app.sidebar_sections.titles[-1])
    assert groups_settings.startswith("Settings")
    assert "--dac-bits 4" in texts_and_values(doc) and "--adc-bits 5" in texts_and_values(doc)


def test_a_problem_in_a_closed_group_is_shown_above_the_headers(runner):
    app = Explorer(runner=runner, sync_url=False)
    doc = Document()
    doc.add_root(app.__panel__().get_root(doc))
    (alert,) = css_models(doc, "lazy-sections-problems")
    assert not alert.visible
    app.config.param.update(stuck_at_gmin=0.7, stuck_at_gmax=0.6)
    assert alert.visible and "stuck_at_gmin + stuck_at_gmax" in alert.text
    app.open_sidebar_section("Non-idealities")  # its own note shows it now: not twice
    assert not alert.visible
    assert sum("stuck_at_gmin + stuck_at_gmax" in t for t in texts(doc).split("\n\n")) >= 1
    app.sidebar_sections.close("Non-idealities")
    assert alert.visible
    app.config.stuck_at_gmax = 0.1
    assert not alert.visible
