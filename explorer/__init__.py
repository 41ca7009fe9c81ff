"""Crossbar Explorer: what happens to a trained network written into a ReRAM crossbar.

Core modules (no GUI imports): :mod:`explorer.device`, :mod:`explorer.mapping`,
:mod:`explorer.crossbar`, :mod:`explorer.models`, :mod:`explorer.data`,
:mod:`explorer.training`, :mod:`explorer.evaluate`, :mod:`explorer.jobs`.
The Panel dashboard lives in :mod:`explorer.ui`.
"""

__version__ = "0.1.0"
