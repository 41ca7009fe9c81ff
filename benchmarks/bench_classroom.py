"""A classroom on one dashboard server (loopback only, bounded): N browser tabs open at
once, each sets its own number of levels and starts evaluations; a few greedy tabs start
three. Checks and reports:

* every evaluation finishes, with the right accuracy (the same settings evaluated here
  with :func:`explorer.workload.evaluate_settings`), none lost or duplicated (each tab's
  history has exactly its runs, numbered 1..k);
* fair order between sessions: the greedy tabs queue their three runs before the others
  press Evaluate once; in the server's job log (queued/started lines) no session may be
  served twice while another session's job waited the whole time in between
  (round-robin; first come, first served would run the greedy tabs' runs first). The
  order in which the pages showed their results is reported too;
* the server process's memory (RSS): after start-up, with N idle sessions, and after
  they close (issue 18's target: back within 50 MB of the start).

    python benchmarks/bench_classroom.py [--sessions 30] [--greedy 5] [--limit 100] [--json]

Needs playwright and /usr/bin/chromium. The server is ``PYTHONMALLOC=malloc panel serve
apps/explorer.py --warm`` as the README serves it (``--pymalloc``: Python's own allocator)
with its Dask workers (cores − 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "benchmarks"))

from bench_ui import CHROMIUM, CHROMIUM_ARGS, IDLE, free_port, load_average  # noqa: E402

SESSION_LIFETIME_MS = 2000
HISTORY_ROW_SEEN_AT = """(k) => {
  // the page's clock (ms) once the accuracy history shows k rows (through shadow roots)
  const all = (root, selector, out) => {
    out.push(...root.querySelectorAll(selector));
    for (const el of root.querySelectorAll('*'))
      if (el.shadowRoot) all(el.shadowRoot, selector, out);
    return out;
  };
  let rows = 0;
  for (const host of all(document, '.accuracy-history', []))
    rows += all(host.shadowRoot ?? host, 'tbody tr', []).length;
  return rows >= k ? Date.now() : false;
}"""


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


JOB_LOG = re.compile(r"jobs: (queued|started) (\d+) (\S+) ?(.*)")
EVALUATION_LABEL = re.compile(r"run \d+$")
"""The accuracy runner's job labels; the page's other jobs (the cost panel's, one per
settings change, owner ``cost-…``) take their turns too but are not counted as runs."""


def unfair_starts(lines: list[str]) -> list[str]:
    """Round-robin breaches in the server's job log (:func:`explorer.jobs.turn_violations`:
    an owner started twice while another owner waited the whole time in between and was
    not served meanwhile)."""
    from explorer.jobs import turn_violations

    events = [m.groups() for m in map(JOB_LOG.search, lines) if m]
    return turn_violations((kind, owner) for kind, _job, owner, _label in events)


def reference_accuracies(levels: list[int], limit: int) -> dict[int, float]:
    """The accuracy each tab's settings must give, evaluated in this process."""
    from explorer.crossbar import CrossbarConfig
    from explorer.device import DeviceModel
    from explorer.settings import Settings, WorkloadSettings
    from explorer.ui.accuracy import AccuracyRunner
    from explorer.workload import evaluate_settings

    out = {}
    for n in sorted(set(levels)):
        device = DeviceModel.from_preset("AlOx/HfO2", levels=n)
        settings = Settings(crossbar=CrossbarConfig(device=device), workload=WorkloadSettings(
            model="lenet5-mnist", data="mnist-embedded", limit=limit, trials=1,
            calibration_images=AccuracyRunner.param.calibration_images.default))
        out[n] = evaluate_settings(settings, download=False).accuracy_mean
    return out


async def history(page) -> list[list[str]]:
    rows = await page.locator(".accuracy-history tbody tr").all_inner_texts()
    return [row.split("\t") for row in rows]


async def classroom(url: str, sessions: int, greedy: int, limit: int,
                    server_pid: int) -> dict:
    from playwright.async_api import async_playwright

    levels = [4 + i for i in range(sessions)]
    runs = [3 if i < greedy else 1 for i in range(sessions)]
    out: dict = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        finish_order: list[tuple[float, int, int]] = []

        async def watch_runs(page, index: int, count: int) -> None:
            for k in range(1, count + 1):  # the k-th history row: run k finished
                handle = await page.wait_for_function(
                    HISTORY_ROW_SEEN_AT, arg=k, polling=50, timeout=900_000)
                finish_order.append((await handle.json_value(), index, k))

        opened = time.perf_counter()
        contexts = []

        async def open_tab(i: int):
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await context.new_page()
            page.set_default_timeout(900_000)
            await page.goto(url)
            await page.wait_for_function(IDLE)
            for css, value in (("levels", levels[i]), ("accuracy-limit", limit),
                               ("accuracy-trials", 1)):
                box = page.locator(f".{css} input")
                await box.fill(str(value))
                await box.press("Enter")
            await page.wait_for_function(IDLE)
            contexts.append(context)
            return page

        pages = await asyncio.gather(*(open_tab(i) for i in range(sessions)))
        print(f"{sessions} tabs open", file=sys.stderr, flush=True)
        out["all_tabs_idle_s"] = round(time.perf_counter() - opened, 1)
        out["rss_with_idle_sessions_mb"] = round(rss_mb(server_pid), 1)
        watchers = [asyncio.ensure_future(watch_runs(p, i, runs[i]))
                    for i, p in enumerate(pages)]
        clicked = time.perf_counter()
        greedy = [p for i, p in enumerate(pages) if runs[i] > 1]

        async def start_runs(page, count: int) -> None:
            for _ in range(count):
                await page.locator(".accuracy-run button").click()
            # the server has all of them once the page names the last ("Run 3 queued…")
            await page.get_by_text(re.compile(rf"Run {count}\b")).first.wait_for(
                timeout=900_000)

        # the greedy tabs queue all their runs first, then everybody else one each:
        # first come, first served would finish the greedy tabs' runs before the others'
        await asyncio.gather(*(start_runs(p, 3) for p in greedy))
        print("greedy runs queued", file=sys.stderr, flush=True)
        await asyncio.gather(*(start_runs(p, 1) for i, p in enumerate(pages)
                               if runs[i] == 1))
        print("all runs queued", file=sys.stderr, flush=True)
        await asyncio.gather(*watchers)
        out["all_runs_done_s"] = round(time.perf_counter() - clicked, 1)
        histories = await asyncio.gather(*(history(p) for p in pages))
        while any(len(h) < runs[i] for i, h in enumerate(histories)):
            await asyncio.gather(*(p.wait_for_function(IDLE) for p in pages))
            histories = await asyncio.gather(*(history(p) for p in pages))
        out["rss_after_runs_mb"] = round(rss_mb(server_pid), 1)
        for context in contexts:
            await context.close()
        await browser.close()
    out["histories"] = histories
    out["finish_order"] = [(i, k) for _, i, k in sorted(finish_order)]
    out["levels"], out["runs"] = levels, runs
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--greedy", type=int, default=5, help="tabs that start 3 runs")
    parser.add_argument("--limit", type=int, default=100, help="test images per run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--pymalloc", action="store_true",
                        help="serve with Python's own small-object allocator instead of "
                             "the README's PYTHONMALLOC=malloc (it keeps closed sessions' "
                             "memory for later sessions)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"skipped: no {CHROMIUM}")
        return 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONMALLOC")}
    if not args.pymalloc:  # served as the README says
        env["PYTHONMALLOC"] = "malloc"
    result: dict = {"sessions": args.sessions, "greedy": args.greedy, "limit": args.limit,
                    "pythonmalloc": env.get("PYTHONMALLOC", "pymalloc (default)"),
                    "load_average_1min_start": round(load_average(), 2)}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(PROJECT / "apps" / "explorer.py"),
         "--warm", "--address", "127.0.0.1", "--port", str(port),
         "--allow-websocket-origin", f"127.0.0.1:{port}",
         "--check-unused-sessions", "500",
         "--unused-session-lifetime", str(SESSION_LIFETIME_MS)],
        cwd="/tmp", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        from bench_ui import wait_for_line

        lines, _ = wait_for_line(server, "Bokeh app running at", 600)
        result["server_ready_s"] = round(time.perf_counter() - started, 1)
        print("server ready", file=sys.stderr, flush=True)
        result["rss_start_mb"] = round(rss_mb(server.pid), 1)
        run = asyncio.run(classroom(f"http://127.0.0.1:{port}/explorer", args.sessions,
                                    args.greedy, args.limit, server.pid))
        # the closed tabs' sessions are discarded after SESSION_LIFETIME_MS: watch the
        # memory settle (a measurement, bounded)
        samples, deadline = [], time.monotonic() + 20
        while time.monotonic() < deadline:
            samples.append(rss_mb(server.pid))
            time.sleep(0.5)
        result["rss_after_close_mb"] = round(samples[-1], 1)
        result["rss_after_close_min_mb"] = round(min(samples), 1)
    finally:
        server.terminate()
        server.wait(timeout=60)
    result.update({k: v for k, v in run.items() if k not in ("histories", "finish_order")})
    result["growth_after_close_mb"] = round(result["rss_after_close_mb"]
                                            - result["rss_start_mb"], 1)
    reference = reference_accuracies(run["levels"], args.limit)
    wrong, lost_or_duplicated = [], []
    for i, rows in enumerate(run["histories"]):
        numbers = [int(r[0]) for r in rows]
        if numbers != list(range(1, run["runs"][i] + 1)):
            lost_or_duplicated.append((i, numbers))
        expected = f"{reference[run['levels'][i]]:.2%}"
        wrong += [(i, r[1], expected) for r in rows if r[1] != expected]
    order = run["finish_order"]
    unfair = unfair_starts(lines)
    starts = sum(1 for m in map(JOB_LOG.search, lines)
                 if m and m[1] == "started" and EVALUATION_LABEL.match(m[4].strip()))
    result.update({
        "evaluations": len(order),
        "evaluations_expected": sum(run["runs"]),
        "wrong_results": wrong,
        "lost_or_duplicated": lost_or_duplicated,
        "fair": not unfair and starts == sum(run["runs"]),
        "unfair_starts": unfair,
        "jobs_started_in_server_log": starts,
        "finish_order": order,
        "server_tracebacks": sum("Traceback" in line for line in lines),
        "load_average_1min_end": round(load_average(), 2),
    })
    print(f"{args.sessions} tabs ({args.greedy} start 3 runs): all idle after "
          f"{result['all_tabs_idle_s']} s; {result['evaluations']}/"
          f"{result['evaluations_expected']} evaluations done in {result['all_runs_done_s']} s; "
          f"wrong results {len(wrong)}, lost/duplicated {len(lost_or_duplicated)}; fair order "
          f"(server log: no session served twice while another waited): {result['fair']}")
    print(f"server RSS: start {result['rss_start_mb']} MB, {args.sessions} idle sessions "
          f"{result['rss_with_idle_sessions_mb']} MB, after their runs "
          f"{result['rss_after_runs_mb']} MB, 20 s after closing {result['rss_after_close_mb']} "
          f"MB (growth {result['growth_after_close_mb']} MB; target ≤ 50 MB); load average "
          f"{result['load_average_1min_start']} → {result['load_average_1min_end']}")
    if args.json:
        print(json.dumps(result))
    ok = not wrong and not lost_or_duplicated and result["fair"] and \
        result["evaluations"] == result["evaluations_expected"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
