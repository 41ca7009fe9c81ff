"""Panel/HoloViews components wrapping the core models (the only place Panel is imported).

Each component is a ``pn.viewable.Viewer`` around the core's Param models. They display
in a served app (``panel serve apps/explorer.py``) and in Jupyter after ``pn.extension()``.
"""

import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend: .opts() needs one)

from explorer.ui.accuracy import AccuracyRunner
from explorer.ui.app import Explorer, build_app
from explorer.ui.controls import CrossbarControls, NonIdealityControls
from explorer.ui.device_editor import DeviceEditor
from explorer.ui.mapping_view import MappingView

__all__ = [
    "AccuracyRunner",
    "CrossbarControls",
    "DeviceEditor",
    "Explorer",
    "MappingView",
    "NonIdealityControls",
    "build_app",
]
