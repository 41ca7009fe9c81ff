"""Serve the Crossbar Explorer dashboard: ``panel serve apps/explorer.py``."""

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
