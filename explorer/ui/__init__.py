"""Panel components wrapping the core models (the only place Panel/HoloViews are imported).

Each component is a ``pn.viewable.Viewer`` around the core's Param models. They display
in a served app (``panel serve apps/explorer.py``) and in Jupyter after ``pn.extension()``.
The live plots are plain Bokeh figures built once whose data sources are replaced on a
change (HoloViews re-rendered each plot in 80-250 ms; this takes a few ms).
"""

from explorer.ui.accuracy import AccuracyRunner
from explorer.ui.app import Explorer, build_app
from explorer.ui.controls import CrossbarControls, NonIdealityControls
from explorer.ui.device_editor import DeviceEditor
from explorer.ui.mapping_view import MappingView
from explorer.ui.sweep_panel import SweepPanel

__all__ = [
    "AccuracyRunner",
    "CrossbarControls",
    "DeviceEditor",
    "Explorer",
    "MappingView",
    "NonIdealityControls",
    "SweepPanel",
    "build_app",
]
