"""Panel components wrapping the core models (the only place Panel/HoloViews are imported).

Each component is a ``pn.viewable.Viewer`` around the core's Param models. They display
in a served app (``panel serve apps/explorer.py``) and in Jupyter after ``pn.extension()``.
The live plots are plain Bokeh figures built once whose data sources are replaced on a
change (HoloViews re-rendered each plot in 80-250 ms; this takes a few ms).
"""

# Registers HoloViews' Bokeh backend for explorer.ui.sweep_plots (its .opts() use Bokeh
# option names such as text_color); our own plots are plain Bokeh.
import holoviews.plotting.bokeh  # noqa: F401

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
