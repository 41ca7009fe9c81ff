"""What the page SHOWS after real mouse and keyboard input (playwright + Debian Chromium):
a drag of the Levels slider, a drag of a drawn curve point (PointDraw), keyboard use of
the main controls. The rendered table text, the histograms' data in the page and their
pixels are checked against the core's numbers for the same settings, computed here.

Skipped with a reason when playwright or /usr/bin/chromium is missing; every wait polls a
condition in the page, nothing sleeps.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from test_browser import (  # noqa: F401  (fixtures: browser, server)
    HISTOGRAMS,
    LEVEL_MARKERS,
    TIMEOUT_MS,
    Page,
    browser,
    server,
    wait_text,
)

pytestmark = pytest.mark.ui

WORKLOAD = "LeNet5 · MNIST (embedded digits)"
SLIDER_START, SLIDER_END = 2, 256  # explorer.ui.device_editor's levels slider
DRAWN_POINTS = """() => {
  // screen position and value of every red cross (the PointDraw points) of the curve plot
  const seen = new Set(); const stack = [...Bokeh.index];
  while (stack.length) {
    const v = stack.pop();
    if (v == null || seen.has(v)) continue;
    seen.add(v);
    if (v.frame !== undefined && v.renderer_views !== undefined) {
      for (const r of v.renderer_views.keys()) {
        const d = r.data_source && r.data_source.data;
        if (d && 'conductance_uS' in d && r.glyph && r.glyph.marker
            && r.glyph.marker.value === 'x') {
          const rect = v.canvas_view.el.getBoundingClientRect();
          const xs = Array.from(d.pulse), ys = Array.from(d.conductance_uS);
          return xs.map((x, i) => [rect.left + v.frame.x_scale.compute(x),
                                   rect.top + v.frame.y_scale.compute(ys[i]), x, ys[i]]);
        }
      }
    }
    for (const c of (v.child_views ?? [])) stack.push(c);
    if (v.renderer_views) for (const rv of v.renderer_views.values()) stack.push(rv);
  }
  return null;
}"""
CURVE = """() => {
  for (const m of Bokeh.documents[0].all_models)
    if (m.data && 'pulse' in m.data && 'conductance_uS' in m.data && m.data.pulse.length > 50)
      return JSON.stringify(Array.from(m.data.conductance_uS));
  return '';
}"""


def shown_table(page: Page) -> dict[tuple[str, str], list[float]]:
    """The error table as the page renders it: (layer, method) -> the numbers shown."""
    out = {}
    for text in page.page.locator(".mapping-table tbody tr").all_inner_texts():
        layer, method, *numbers = (cell.strip() for cell in text.split("\t"))
        out[(layer, method)] = [float(n) for n in numbers]
    return out


def core_view(levels: int, points: tuple | None = None):
    """The core's mapping view for the page's default settings with ``levels`` (and a
    drawn curve ``points`` = (pulses, µS)), built here."""
    from explorer.crossbar import CrossbarConfig
    from explorer.device import DeviceModel
    from explorer.ui.app import WORKLOADS, network_weights
    from explorer.ui.mapping_view import MappingView

    device = DeviceModel.from_preset("AlOx/HfO2", levels=levels)
    if points is not None:
        device.set_points(np.asarray(points[0], float), np.asarray(points[1], float) * 1e-6)
    weights, _ = network_weights(WORKLOADS[WORKLOAD].model)
    return MappingView(device, CrossbarConfig(device=device), weights)


def assert_page_shows(page: Page, view) -> None:
    """The rendered table and the page's histogram data are the core's numbers."""
    from explorer.ui.mapping_view import TABLE_COLUMNS

    numeric = [c for c, _ in TABLE_COLUMNS if c not in ("layer", "method")]

    def table_matches() -> bool:
        shown = shown_table(page)
        expected = {(r["layer"], r["method"]): [r[c] for c in numeric]
                    for r in view.stats.to_dict("records")}
        # the formatter shows at most 5 decimals: rounding moves a number by <= 5e-6
        return shown.keys() == expected.keys() and all(
            np.allclose(shown[k], expected[k], rtol=0, atol=5.1e-6) for k in expected)

    deadline_ok = False
    for _ in range(200):  # re-read the DOM after each idle: no sleeping
        page.wait_idle()
        if table_matches():
            deadline_ok = True
            break
        page.page.wait_for_function(
            "() => new Promise(r => requestAnimationFrame(() => r(true)))")
    assert deadline_ok, (shown_table(page), view.stats)
    expected_hist = sorted(view.histograms.groupby("method", sort=False)["count"]
                           .apply(lambda c: [float(v) for v in c]).tolist())
    assert sorted(json.loads(page.histograms())) == expected_hist


def assert_programming_shows(page: Page, levels: int) -> None:
    """The programming spread table (updated on the tick after the mapping histograms)
    shows the core's programming view for ``levels``, built here."""
    from explorer.crossbar import CrossbarConfig
    from explorer.device import DeviceModel
    from explorer.ui.app import WORKLOADS, network_weights
    from explorer.ui.programming_view import TABLE_COLUMNS, ProgrammingView

    device = DeviceModel.from_preset("AlOx/HfO2", levels=levels)
    weights, _ = network_weights(WORKLOADS[WORKLOAD].model)
    view = ProgrammingView(device, CrossbarConfig(device=device), weights)
    numeric = [c for c, _ in TABLE_COLUMNS if c != "layer"]
    expected = {r["layer"]: [float(r[c]) for c in numeric] for r in view.stats.to_dict("records")}

    def shown() -> dict[str, list[float]]:
        rows = page.page.locator(".programming-table .slick-row").all_inner_texts()
        return {layer: [float(n.replace(",", "")) for n in numbers]  # pulses: 12,345
                for layer, *numbers in (text.split("\n") for text in rows)}

    for _ in range(200):  # re-read the DOM after each idle: no sleeping
        page.wait_idle()
        now = shown()
        if now.keys() == expected.keys() and all(  # 4 decimals shown
                np.allclose(now[k], expected[k], rtol=0, atol=5.1e-5) for k in expected):
            return
        page.page.wait_for_function(
            "() => new Promise(r => requestAnimationFrame(() => r(true)))")
    raise AssertionError((shown(), expected))


def histogram_pixels(page: Page) -> bytes:
    return page.page.locator(".mapping-histograms canvas").first.screenshot()


def drag_slider_to(page: Page, css_class: str, value: int) -> None:
    """Press the mouse on the slider's handle, move to ``value``'s place, release."""
    handle = page.page.locator(f".{css_class}-slider .noUi-handle").first
    base = page.page.locator(f".{css_class}-slider .noUi-base").first.bounding_box()
    box = handle.bounding_box()
    x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    x1 = base["x"] + base["width"] * (value - SLIDER_START) / (SLIDER_END - SLIDER_START)
    page.page.mouse.move(x0, y0)
    page.page.mouse.down()
    page.page.mouse.move(x1, y0, steps=12)
    page.page.mouse.up()


def test_a_mouse_drag_of_the_levels_slider_redraws_the_table_and_histograms(tab):
    tab.type_into("levels", "8")
    tab.page.wait_for_function(f"() => ({LEVEL_MARKERS})() === 8")
    assert_page_shows(tab, core_view(8))
    tab.open_section("Programming")  # in the page before the drag: redrawn after
    assert_programming_shows(tab, 8)
    before = histogram_pixels(tab)
    drag_slider_to(tab, "levels", 80)
    tab.page.wait_for_function(f"() => ({LEVEL_MARKERS})() > 40")
    levels = int(tab.page.locator(".levels input").input_value())
    assert abs(levels - 80) <= 2  # where the mouse let go (a pixel is ~0.9 levels)
    assert tab.page.evaluate(LEVEL_MARKERS) == levels
    # issue 18's bug: the table kept the 8-level numbers while its source held the new
    assert_page_shows(tab, core_view(levels))
    assert histogram_pixels(tab) != before  # the drawn histograms changed too
    assert_programming_shows(tab, levels)  # the deferred view followed, redrawn
    assert tab.errors() == []


def test_dragging_a_drawn_point_changes_the_curve_histograms_and_table(tab):
    points = tab.page.evaluate(DRAWN_POINTS)
    assert points and len(points) >= 4
    i = len(points) // 2
    x, y, _pulse, g_before = points[i]
    y_next = points[i + 1][1]  # the next point's conductance is larger: higher up
    tab.page.mouse.move(x, y)
    tab.page.mouse.down()
    tab.page.mouse.move(x, (y + y_next) / 2, steps=8)  # up, but below the next point
    tab.page.mouse.up()
    tab.page.wait_for_function(
        f"() => {{ const p = ({DRAWN_POINTS})(); return p && p[{i}][3] > {g_before + 0.5}; }}")
    moved = tab.page.evaluate(DRAWN_POINTS)
    curve_before, hist_before = tab.page.evaluate(CURVE), tab.histograms()
    tab.page.get_by_role("button", name="Use drawn curve").click()
    wait_text(tab, r"Curve: drawn curve")
    tab.page.wait_for_function(f"() => ({CURVE})() !== {json.dumps(curve_before)}")
    tab.wait_histograms_change(hist_before)
    pulses, g_us = [p[2] for p in moved], [p[3] for p in moved]
    assert_page_shows(tab, core_view(16, (pulses, g_us)))
    assert tab.errors() == []


HISTOGRAM_LEGEND = """() => {
  // the histogram plot's legend: the page position of its box, and whether each method's
  // histogram (the renderer with data) and its legend item are shown
  const seen = new Set(); const stack = [...Bokeh.index];
  while (stack.length) {
    const v = stack.pop();
    if (v == null || seen.has(v)) continue;
    seen.add(v);
    if (v.renderer_views !== undefined && v.model.css_classes
        && v.model.css_classes.includes('mapping-histograms')) {
      const rect = v.canvas_view.el.getBoundingClientRect();
      let box = null, legend = null; const shown = {};
      for (const [r, rv] of v.renderer_views) {
        if (r.type === 'Legend') { box = rv.bbox; legend = rv; }
        if (r.glyph && r.glyph.type === 'Quad') {
          const color = r.glyph.fill_color.value;
          const key = 'top' in r.data_source.data ? 'histogram' : 'legend';  // stand-in: {}
          shown[color] = {...(shown[color] ?? {}), [key]: r.visible};
        }
      }
      // the pixels of the first item's swatch (each item draws it on a canvas of its own)
      const canvas = (legend.shadow_el ?? legend.el).querySelector('canvas');
      const swatch = canvas == null ? [] : Array.from(canvas.getContext('2d').getImageData(
        0, 0, canvas.width, canvas.height).data);
      return {left: rect.left + box.left, top: rect.top + box.top, shown: shown, swatch: swatch};
    }
    for (const c of (v.child_views ?? [])) stack.push(c);
    if (v.renderer_views) for (const rv of v.renderer_views.values()) stack.push(rv);
  }
  return null;
}"""


def test_a_click_on_a_legend_item_hides_and_shows_that_histogram(tab):
    """The legend is drawn by stand-ins (explorer/ui/plot_legend.py): a mouse click on
    its first item (linear) hides the linear histogram itself, a second shows it."""
    from explorer.ui.mapping_view import METHOD_COLORS

    linear = METHOD_COLORS["linear"]
    legend = tab.page.evaluate(HISTOGRAM_LEGEND)
    assert legend["shown"][linear] == {"histogram": True, "legend": True}, legend
    # the swatch is drawn: reddish pixels (linear's colour at alpha 0.45 on white)
    pixels = np.asarray(legend["swatch"]).reshape(-1, 4)
    assert ((pixels[:, 0] > pixels[:, 1] + 40) & (pixels[:, 0] > pixels[:, 2] + 40)).any()
    for expected in (False, True):
        # the first item's glyph: inside the box, past its padding
        tab.page.mouse.click(legend["left"] + 20, legend["top"] + 18)
        tab.page.wait_for_function(
            f"() => ({HISTOGRAM_LEGEND})().shown[{json.dumps(linear)}].histogram === "
            f"{json.dumps(expected)}", timeout=TIMEOUT_MS)
        shown = tab.page.evaluate(HISTOGRAM_LEGEND)["shown"]
        assert shown[linear] == {"histogram": expected, "legend": expected}
        others = [c for c in shown if c != linear]
        assert others and all(shown[c]["histogram"] == shown[c]["legend"] for c in others)
    assert tab.errors() == []


def test_the_main_controls_work_from_the_keyboard(tab):
    # Tab from the levels box back to its slider's handle, then arrow keys
    tab.page.locator(".levels input").focus()
    tab.page.keyboard.press("Shift+Tab")
    focused = tab.page.evaluate(
        "() => { let a = document.activeElement; while (a && a.shadowRoot && "
        "a.shadowRoot.activeElement) a = a.shadowRoot.activeElement; return a.className; }")
    assert "noUi-handle" in focused
    before = tab.histograms()
    tab.page.keyboard.press("ArrowRight")
    tab.page.keyboard.press("ArrowRight")
    tab.page.wait_for_function(f"() => ({LEVEL_MARKERS})() === 18")
    tab.wait_histograms_change(before)
    assert tab.page.locator(".levels input").input_value() == "18"
    assert_page_shows(tab, core_view(18))
    # the number box: select, type, Enter
    tab.page.locator(".levels input").focus()
    tab.page.keyboard.press("Control+A")
    tab.page.keyboard.type("12")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_function(f"() => ({LEVEL_MARKERS})() === 12")
    assert_page_shows(tab, core_view(12))
    # Evaluate from the keyboard: focus the button, press Enter
    tab.page.locator(".accuracy-limit input").focus()
    tab.page.keyboard.press("Control+A")
    tab.page.keyboard.type("50")
    tab.page.keyboard.press("Enter")
    tab.wait_idle()
    tab.page.locator(".accuracy-run button").focus()
    tab.page.keyboard.press("Enter")
    status = wait_text(tab, r"Run 1 done in")
    assert re.search(r"accuracy \d+\.\d\d%", status)
    assert tab.errors() == []


@pytest.fixture
def tab(browser, server):  # noqa: F811
    page = Page(browser, server)
    yield page
    page.close()


def test_training_from_the_page_bad_input_then_a_checkpoint_in_the_menu(tab, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("EXPLORER_CHECKPOINTS", str(tmp_path))
    tab.open_section("Train")
    tab.type_into("train-epochs", "0")
    tab.wait_idle()
    tab.page.locator(".train-run button").click()
    wait_text(tab, r"Epochs: 0 is not allowed")
    assert list(tmp_path.iterdir()) == []
    tab.type_into("train-epochs", "1")
    tab.type_into("train-limit", "256")
    tab.wait_idle()
    tab.page.locator(".train-estimate button").click()
    wait_text(tab, r"Estimated training time on this machine: about \d+ s \(2 steps")
    tab.page.locator(".train-run button").click()
    status = wait_text(tab, r"is now in the workload menus")
    name = re.search(r"Trained in \d+ s, test accuracy [\d.]+%: (.+) is now", status).group(1)
    tab.open_section("Sweep")  # (its menu is in the page once it is opened)
    options = tab.page.locator("select").evaluate_all(
        "(els) => els.flatMap((e) => Array.from(e.options).map((o) => o.textContent))")
    assert options.count(name) == 2  # the accuracy runner's menu and the sweep's
    assert [p.suffix for p in sorted(tmp_path.iterdir())] == [".json", ".pt"]
    assert tab.errors() == []


def test_sidebar_groups_open_by_click_and_keyboard_and_their_controls_work(tab):
    assert tab.page.locator(".adc-bits select").count() == 0  # not in the page until opened
    tab.open_sidebar_section("Crossbar & converters")
    assert tab.sidebar_header("Crossbar & converters").inner_text().startswith("\u25be")
    tab.page.locator(".adc-bits select").select_option("4 bits")
    tab.page.wait_for_url(re.compile(r"adc_bits=4"))  # the page's link follows
    # from the keyboard: focus the Settings header, Enter; the CLI command shows the change
    settings = "Settings: export, import, CLI command"
    tab.open_sidebar_section(settings, keyboard=True)
    command = tab.page.locator(".cli-command textarea")
    assert "--adc-bits 4" in command.input_value()
    # closing hides the group (Space on the focused header), reopening shows it as it was
    tab.sidebar_header("Crossbar & converters").focus()
    tab.page.keyboard.press(" ")
    tab.page.locator(".adc-bits select").wait_for(state="hidden")
    tab.open_sidebar_section("Crossbar & converters", keyboard=True)
    assert tab.page.locator(".adc-bits select").input_value() == "4 bits"
    assert tab.errors() == []
