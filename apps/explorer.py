"""Serve the Crossbar Explorer dashboard: ``panel serve apps/explorer.py --warm``.

``--warm`` builds everything the sessions share (imports, the network's weights, the job
workers with the default workload loaded) before the server listens; without it the
first visitor waits for the imports."""

import sys
from pathlib import Path

_APPS_DIR = Path(__file__).resolve().parent
_PROJECT_DIR = _APPS_DIR.parent

# `panel serve` puts this folder first on sys.path, where this very file would stand in
# for the `explorer` package ("'explorer' is not a package"): look elsewhere for it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _APPS_DIR]
if not hasattr(sys.modules.get("explorer"), "__path__"):
    sys.modules.pop("explorer", None)
if (_PROJECT_DIR / "explorer" / "__init__.py").is_file() and str(_PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(_PROJECT_DIR))  # a source checkout that is not pip-installed

try:
    from explorer.ui.app import build_app
    from explorer.ui.bokeh_speedups import skip_unsent_defaults
    from explorer.ui.page_head import send_head_first
    from explorer.ui.page_sessions import keep_page_sessions
    from explorer.ui.startup import freeze_startup_objects

    freeze_startup_objects()  # the imports are permanent: full collections skip them
    skip_unsent_defaults()  # each page's JSON: 78 -> 15 ms of the server's thread
    send_head_first()  # a page's scripts evaluated while its session is built
    keep_page_sessions()  # a page's session waits for its websocket, not built twice
except Exception as exc:  # a broken install: say so on the page instead of a blank one
    import traceback

    import panel as pn

    pn.extension()
    pn.Column(
        pn.pane.Alert(f"**Crossbar Explorer could not be imported:** {exc!r}", alert_type="danger"),
        pn.pane.Markdown(f"```\n{traceback.format_exc()}\n```"),
    ).servable(title="Crossbar Explorer")
else:
    build_app().servable(title="Crossbar Explorer")
    from explorer.ui.startup import default_workload, is_warm_run, warm_up

    # `panel serve apps/explorer.py --warm`: this first run, before the server listens,
    # also starts the job workers and has them load the default workload
    warm_up(wait=is_warm_run(), workload=default_workload())
