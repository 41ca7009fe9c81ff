"""The dashboard in a real browser (playwright + Debian Chromium).

Skipped with a reason when playwright or /usr/bin/chromium is missing. Every wait polls a
condition in the page (``wait_for_function`` / ``wait_for``); nothing sleeps.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "benchmarks"))
from bench_ui import open_section, wait_for_line  # noqa: E402  (shared with the bench)
from serving import free_port  # noqa: E402

from explorer.ui.sections import slug  # noqa: E402

# The dashboard screenshot is written to the test's tmp_path, never over the tracked file.
# To refresh the README's picture deliberately, run with EXPLORER_UPDATE_SCREENSHOT=1:
#   EXPLORER_UPDATE_SCREENSHOT=1 .venv/bin/python -m pytest tests/ui -k panel_serve
# and commit docs/screenshot.png.
DOCS_SCREENSHOT = PROJECT / "docs" / "screenshot.png"
UPDATE_SCREENSHOT = os.environ.get("EXPLORER_UPDATE_SCREENSHOT") == "1"
TIMEOUT_MS = 90_000  # generous: the CI machine may be busy; reached only when broken
IDLE = ("() => window.Bokeh !== undefined && Bokeh.documents.length > 0 "
        "&& Bokeh.documents[0].is_idle")
HISTOGRAMS = """() => {
  const out = [];
  for (const m of Bokeh.documents[0].all_models) {
    if (m.data && 'top' in m.data && 'left' in m.data && m.data.top.length > 0
        && !(m.tags || []).includes('programming-histogram'))  // the mapping view's only
      out.push(Array.from(m.data.top));
  }
  return JSON.stringify(out.sort());
}"""
LEVEL_MARKERS = """() => {
  for (const m of Bokeh.documents[0].all_models) {
    if (m.data && 'pulse' in m.data && 'conductance_uS' in m.data && m.data.pulse.length > 2
        && Array.from(m.data.pulse).every((p, i) => p === i))
      return m.data.pulse.length;
  }
  return -1;
}"""
SIDEBAR_SECTION_SHOWN = """(css) => {
  for (const m of Bokeh.documents[0].all_models)
    if ((m.css_classes || []).includes(css)) return m.visible && m.children.length > 0;
  return false;
}"""
BAD_CSV = b"conductance\n1e-6\nabc\n3e-6\n"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"Debian Chromium not found at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server():
    """apps/explorer.py served in this process (so tests can see the job runner).

    Sessions expire 5 s after their tab closes (Bokeh's default is 15 s). A session
    discarded between its page's HTML and its websocket is rebuilt (see
    test_a_session_rebuilt_for_its_websocket_loads_nothing_from_the_cdn).
    """
    import panel as pn

    port = free_port()
    app_file = str(PROJECT / "apps" / "explorer.py")
    thread = pn.serve({"explorer": app_file}, port=port, threaded=True, show=False,
                      start=True, check_unused_sessions_milliseconds=500,
                      unused_session_lifetime_milliseconds=5000)
    yield f"http://localhost:{port}/explorer"
    thread.stop()


class Page:
    """A browser tab on the dashboard that records console messages and requests."""

    def __init__(self, browser, url: str, routes: dict | None = None) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        for pattern, handler in (routes or {}).items():
            self.page.route(pattern, handler)
        self.page.set_default_timeout(TIMEOUT_MS)
        self.console: list[tuple[str, str]] = []
        self.hosts: set[str] = set()
        self.closed = False
        self.page.on("console", lambda msg: self.console.append((msg.type, msg.text)))
        self.page.on("pageerror", lambda exc: self.console.append(("pageerror", str(exc))))
        self.page.on("request", lambda req: self.hosts.add(req.url.split("/")[2]))
        self.page.on("requestfailed", lambda req: self.console.append(("requestfailed", req.url)))
        self.page.goto(url, timeout=TIMEOUT_MS)
        self.wait_idle()

    def wait_idle(self) -> None:
        self.page.wait_for_function(IDLE, timeout=TIMEOUT_MS)

    def histograms(self) -> str:
        return self.page.evaluate(HISTOGRAMS)

    def wait_histograms_change(self, before: str) -> str:
        self.page.wait_for_function(f"() => ({HISTOGRAMS})() !== {json.dumps(before)}",
                                    timeout=TIMEOUT_MS)
        return self.histograms()

    def type_into(self, css_class: str, value: str) -> None:
        box = self.page.locator(f".{css_class} input")
        box.fill(value)
        box.press("Enter")

    def open_section(self, title: str) -> None:
        """Click the main column's tab ``title`` (its content is sent only then) and wait
        until the page has it."""
        open_section(self.page, title)

    def sidebar_header(self, title: str):
        """The sidebar group ``title``'s header button (▸ closed, ▾ open)."""
        return self.page.get_by_role("button", name=re.compile(rf"^. {re.escape(title)}$"))

    def open_sidebar_section(self, title: str, keyboard: bool = False) -> None:
        """Open the sidebar's group ``title`` (a click, or Enter on its focused header) and
        wait until the page has its controls (they are sent only then)."""
        header = self.sidebar_header(title)
        if keyboard:
            header.focus()
            self.page.keyboard.press("Enter")
        else:
            header.click()
        self.page.wait_for_function(SIDEBAR_SECTION_SHOWN, arg=f"lazy-section-{slug(title)}",
                                    timeout=TIMEOUT_MS)
        self.wait_idle()

    def errors(self) -> list[tuple[str, str]]:
        bad = ("error", "pageerror", "requestfailed")
        return [(kind, text) for kind, text in self.console if kind in bad]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.context.close()


@pytest.fixture
def tab(browser, server):
    page = Page(browser, server)
    yield page
    page.close()


def wait_text(page: Page, pattern: str) -> str:
    locator = page.page.get_by_text(re.compile(pattern)).first
    locator.wait_for(timeout=TIMEOUT_MS)
    return locator.inner_text()


def run_sweep_and_see_its_heatmap(page: Page) -> None:
    """A 2 × 2 sweep in the page; its heatmap shows one cell per grid point."""
    page.open_section("Sweep")
    page.type_into("sweep-x-values", "4, 16")
    page.type_into("sweep-y-values", "0, 3")
    page.type_into("sweep-limit", "20")
    page.wait_idle()
    page.page.locator(".sweep-run button").click()
    wait_text(page, r"Sweep done: 4 evaluations\.")
    heatmaps = """() => Array.from(Bokeh.documents[0].all_models).filter(
      (m) => m.data && 'zvalues' in m.data && 'xi' in m.data && m.data.zvalues.length === 4
    ).map((m) => Array.from(m.data.zvalues))"""
    page.page.wait_for_function(f"() => ({heatmaps})().length > 0")
    cells = page.page.evaluate(heatmaps)[-1]  # mean accuracy (%) per grid point
    assert all(0 <= a <= 100 for a in cells), cells
    assert max(cells) > 50, cells  # 16 levels without nonlinearity: far above chance (10 %)


# -- tests -------------------------------------------------------------------------------------
def test_page_loads_with_no_console_errors_and_no_external_requests(tab):
    # the handler does collect: Bokeh's own startup messages are there
    assert any("Websocket connection" in text for _, text in tab.console), tab.console
    assert tab.errors() == []
    assert tab.hosts == {tab.page.url.split("/")[2]}  # offline: no CDN, no web fonts
    assert json.loads(tab.histograms())  # three histograms with data
    assert tab.page.get_by_text("Weight → conductance mapping").is_visible()


MODEL_COUNT = "() => Bokeh.documents[0].all_models.size"
SECTION_TEXT = {  # a heading of each section that the page draws only once it is opened
    "Cost": "Cost per image",
    "Time & wires": "Time and wires",
    "Layers": "Layers: which layer hurts most, and why",
    "Sweep": "Accuracy over a grid of up to",
    "Train": "Train a network for this crossbar",
}


def test_sections_are_sent_when_opened_and_then_work(tab):
    # the first section (the accuracy runner) is open; the others are not in the page yet
    assert tab.page.get_by_text("Accuracy on the crossbar").is_visible()
    for text in SECTION_TEXT.values():
        assert tab.page.get_by_text(text).count() == 0, text
    models = [tab.page.evaluate(MODEL_COUNT)]
    for title, text in SECTION_TEXT.items():
        tab.open_section(title)
        tab.page.get_by_text(text).first.wait_for(state="visible")
        models.append(tab.page.evaluate(MODEL_COUNT))
    assert models == sorted(set(models)), models  # each section brought its models
    # a section shows what is current when it is opened again (the cost of a change
    # made while it was closed), and follows changes while it is open: the core's cost
    from explorer.crossbar import CrossbarConfig
    from explorer.device import DeviceModel
    from explorer.ui.cost_panel import CostPanel

    def cost_text(levels: int) -> str:
        config = CrossbarConfig(device=DeviceModel.from_preset("AlOx/HfO2", levels=levels))
        return f"{CostPanel(config).report.energy_pj_per_image:,.1f} pJ per image"

    def server_has(text: str) -> bool:  # a served session's cost panel shows it (not
        # one of cost_text's, which have no document)
        return any(type(o) is CostPanel and o._doc is not None and text in o.summary.object
                   for o in gc.get_objects())

    tab.open_section("Cost")
    energy = tab.page.get_by_text(re.compile(r"[\d,.]+ pJ per image")).first
    sync_api.expect(energy).to_have_text(cost_text(16), timeout=TIMEOUT_MS)
    tab.open_section("Accuracy")
    tab.type_into("levels", "4")
    expected = cost_text(4)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not server_has(expected):  # the closed section got its new cost
        assert time.monotonic() < deadline, "the cost of 4 levels never came"
        tab.page.wait_for_timeout(100)  # polls the server's cost panels
    tab.open_section("Cost")
    assert energy.inner_text() == expected  # at once: no job or change after the click
    tab.type_into("levels", "8")
    sync_api.expect(energy).to_have_text(cost_text(8), timeout=TIMEOUT_MS)
    tab.open_section("Accuracy")
    assert tab.page.get_by_text("Accuracy on the crossbar").is_visible()
    print("Bokeh models in the page: at load, then with each section open:", models)
    assert tab.errors() == []
    assert tab.hosts == {tab.page.url.split("/")[2]}  # opened sections: no CDN either


def test_a_session_rebuilt_for_its_websocket_loads_nothing_from_the_cdn(browser, monkeypatch):
    """Bokeh discards a session that has no connection for the unused-session lifetime
    (a slow browser on a busy server) and rebuilds it when the page's websocket comes,
    without the HTML that tells Panel where its files are: the rebuilt page, and a
    section opened in it, must still take their stylesheets from this server."""
    import panel as pn

    from explorer.ui import page_sessions

    # the served app keeps a page's session for its websocket (60 s at most): here the
    # browser is later than that (no hold at all)
    monkeypatch.setattr(page_sessions, "hold_until_connected", lambda *args: None)

    port = free_port()
    created: list[str] = []  # ids of the sessions this server built, in order

    def record(context) -> None:
        if context.request.headers.get("Host", "").endswith(f":{port}"):
            created.append(context.id)

    pn.state.on_session_created(record)
    thread = pn.serve({"explorer": str(PROJECT / "apps" / "explorer.py")}, port=port,
                      threaded=True, show=False, start=True,
                      check_unused_sessions_milliseconds=50,
                      unused_session_lifetime_milliseconds=1)

    def hold_bokeh_js(route) -> None:
        # the page's HTML came with a session: the page connects only once Bokeh has
        # discarded it
        server = pn.state._servers[thread.server_id][0]
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while server.get_sessions("/explorer") and time.monotonic() < deadline:
            time.sleep(0.05)  # polls the server's session list
        route.continue_()

    page = None
    try:
        page = Page(browser, f"http://localhost:{port}/explorer",
                    routes={"**/bokeh.min.js*": hold_bokeh_js})
        assert len(created) == 2 and created[0] == created[1], created  # rebuilt
        page.open_section("Layers")
        page.page.get_by_text(SECTION_TEXT["Layers"]).wait_for()
        assert page.errors() == [], page.console
        assert page.hosts == {f"localhost:{port}"}
    finally:
        if page is not None:
            page.close()
        thread.stop()
        pn.state._on_session_created.remove(record)


def test_levels_and_nonlinearity_change_the_histogram_data(tab):
    from explorer.crossbar import CrossbarConfig
    from explorer.device import DeviceModel
    from explorer.ui.app import WORKLOADS, network_weights
    from explorer.ui.mapping_view import MappingView

    before = tab.histograms()
    tab.type_into("levels", "8")
    after_levels = tab.wait_histograms_change(before)
    tab.page.wait_for_function(f"() => ({LEVEL_MARKERS})() === 8")
    tab.type_into("nonlinearity", "0")
    after_nl = tab.wait_histograms_change(after_levels)
    assert len({before, after_levels, after_nl}) == 3
    # the page shows exactly what the core computes for these settings
    device = DeviceModel.from_preset("AlOx/HfO2", levels=8, nonlinearity=0.0)
    weights, _ = network_weights(WORKLOADS["LeNet5 · MNIST (embedded digits)"].model)
    view = MappingView(device, CrossbarConfig(device=device), weights)
    expected = sorted(view.histograms.groupby("method", sort=False)["count"]
                      .apply(lambda c: [float(v) for v in c]).tolist())
    assert sorted(json.loads(after_nl)) == expected
    assert tab.errors() == []


def test_an_evaluation_runs_to_completion_and_shows_the_accuracy(tab):
    from explorer.crossbar import CrossbarConfig
    from explorer.data import load_dataset
    from explorer.device import DeviceModel
    from explorer.evaluate import evaluate
    from explorer.models import load_pretrained

    tab.type_into("accuracy-limit", "200")
    tab.type_into("accuracy-trials", "2")
    tab.wait_idle()
    tab.page.locator(".accuracy-run button").click()
    status = wait_text(tab, r"Run 1 done in")
    expected = evaluate(load_pretrained("lenet5-mnist"),
                        load_dataset("mnist-embedded", limit=200, download=False),
                        CrossbarConfig(device=DeviceModel.from_preset("AlOx/HfO2", levels=16)),
                        trials=2)
    assert f"accuracy {expected.accuracy_mean:.2%}" in status
    wait_text(tab, rf"Accuracy {re.escape(f'{expected.accuracy_mean:.2%}')}")
    assert tab.errors() == []


def test_an_evaluation_can_be_cancelled(tab):
    tab.type_into("accuracy-trials", "100")
    tab.wait_idle()
    tab.page.locator(".accuracy-run button").click()
    wait_text(tab, r"Run 1: trial \d+/100")
    tab.page.locator(".accuracy-cancel button").click()
    wait_text(tab, r"Run 1 cancelled\.")
    assert tab.page.get_by_text(re.compile(r"Run 1 done")).count() == 0
    assert tab.errors() == []


def test_a_bad_csv_shows_the_message_and_keeps_the_curve(tab):
    before = tab.histograms()
    tab.page.locator(".device-csv input[type=file]").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": BAD_CSV}])
    message = wait_text(tab, r"Rejected 'bad\.csv'")
    assert "row 3" in message and "'abc' is not a number" in message
    assert tab.page.evaluate(LEVEL_MARKERS) == 16
    assert tab.histograms() == before
    assert tab.errors() == []


def test_two_sessions_url_settings_and_a_closed_tab_cancels_its_job(browser, server):
    from explorer.ui.session import job_runner

    # bit-serial inputs, 9-row tiles, a 6-bit ADC and per-read noise make the first tab's run
    # long (8 planes × 14 chunks per conv window × 100 trials; warm Dask workers finished the
    # bit-serial run alone before the closed session was discarded), so that it is still
    # running when its tab closes, however fast the machine
    first = Page(browser, server + "?bit_serial=true&tile_rows=9&adc_bits=6&read_sigma=0.02")
    second = Page(browser, server + "?levels=12&nonlinearity=3.0")  # a shared link
    try:
        assert second.page.evaluate(LEVEL_MARKERS) == 12
        assert first.page.evaluate(LEVEL_MARKERS) == 16
        first.type_into("accuracy-trials", "100")
        first.wait_idle()
        first.page.locator(".accuracy-run button").click()
        wait_text(first, r"Run 1: trial \d+/100")
        running = [job for job in job_runner().pending() if job.status == "running"]
        assert len(running) == 1
        # the other session stays responsive while the worker is busy
        before = second.histograms()
        second.type_into("levels", "4")
        second.wait_histograms_change(before)
        second.page.wait_for_url(re.compile(r"levels=4"))  # the link follows the settings
        assert not running[0].finished
        assert second.page.get_by_text(re.compile(r"Run \d")).count() == 0  # its own history
        assert first.histograms() != second.histograms()
        first.close()  # closing the tab ends the session, which cancels its job
        assert running[0].wait(TIMEOUT_MS / 1000) == "cancelled"
        assert first.errors() == [] and second.errors() == []
    finally:
        first.close()
        second.close()


def readme_serve_command() -> tuple[dict[str, str], list[str]]:
    """The README's serve command: the environment it sets and the flags after the app."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- serve-command -->", 1)[1].split("```bash", 1)[1]
    words = block.split("```", 1)[0].split("&&")[-1].split()
    panel = next(i for i, word in enumerate(words) if word.endswith("panel"))
    assert words[panel + 1:panel + 3] == ["serve", "apps/explorer.py"], words
    return dict(word.split("=", 1) for word in words[:panel]), words[panel + 3:]


def test_panel_serve_of_the_app_file(browser, tmp_path):
    """The README's `panel serve apps/explorer.py …` from another folder: loads, evaluates,
    screenshot, sweeps; a later visitor's page (its head sent before its session was
    built) shows the settings of its own URL."""
    port = free_port()
    readme_env, readme_flags = readme_serve_command()
    assert "--warm" in readme_flags
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | readme_env
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(PROJECT / "apps" / "explorer.py"),
         *readme_flags, "--port", str(port), "--address", "127.0.0.1",
         "--allow-websocket-origin", f"127.0.0.1:{port}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader: threading.Thread | None = None
    try:
        lines, reader = wait_for_line(server, "Bokeh app running at", TIMEOUT_MS / 1000)
        page = Page(browser, f"http://127.0.0.1:{port}/explorer")
        idle_seconds = time.perf_counter() - started
        assert page.errors() == [], page.console
        assert page.page.get_by_text("could not start").count() == 0
        page.type_into("accuracy-limit", "500")
        page.type_into("accuracy-trials", "3")
        page.type_into("levels", "8")
        page.wait_idle()
        page.page.locator(".accuracy-run button").click()
        wait_text(page, r"Run 1 done in")
        page.page.mouse.move(0, 0)  # no tooltip in the picture
        page.wait_idle()
        screenshot = tmp_path / "screenshot.png"
        page.page.screenshot(path=str(screenshot), full_page=True)
        png = screenshot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        width, height = struct.unpack(">II", png[16:24])  # IHDR: the full page, not a sliver
        assert width >= 1400 and height >= 1000, (width, height)
        if UPDATE_SCREENSHOT:
            shutil.copyfile(screenshot, DOCS_SCREENSHOT)
        # HoloViews is imported only when the first sweep is queued (not with the page)
        run_sweep_and_see_its_heatmap(page)
        assert page.errors() == []
        page.close()
        print(f"page idle {idle_seconds:.1f} s after `panel serve` started")

        later = Page(browser, f"http://127.0.0.1:{port}/explorer?levels=23&preset=ag_si")
        assert later.page.locator(".levels input").input_value() == "23"
        assert later.errors() == [] and later.hosts == {f"127.0.0.1:{port}"}
        # its head came before its session was built, Bokeh's scripts inside it
        # (explorer/ui/page_head.py): the browser fetched no script file of Bokeh's
        fetched = later.page.evaluate(
            "performance.getEntriesByType('resource').map(r => r.name)")
        assert not [url for url in fetched if "/static/js/bokeh" in url], fetched
        assert json.loads(later.histograms())
        later.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        if reader is not None:
            reader.join(timeout=30)
        server.stdout.close()
        output = "".join(lines)
    assert "not a package" not in output and "Traceback" not in output, output
    # nor a complaint of Bokeh's validation about the page's models (E-1001 … W-1005 …)
    assert re.search(r"\b[EW]-\d{4} \(", output) is None, output
