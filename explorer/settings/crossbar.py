"""The crossbar hardware as one Param object composed of the settings parts.

:class:`CrossbarConfig` inherits every knob from its parts (:data:`CROSSBAR_PARTS`), so
each is declared once, in its part's module, and appears flat on the configuration
(``cfg.adc_bits``, ``cfg.prog_sigma``) as the public API has it. A new part is one
module in this package and one more base of :class:`CrossbarConfig`.
"""

from __future__ import annotations

from typing import Any

import param

from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.settings.base import Part
from explorer.settings.converters import ConverterSettings
from explorer.settings.cost import CostSettings
from explorer.settings.drift import DriftSettings
from explorer.settings.mapping import MappingSettings
from explorer.settings.noise import NoiseSettings
from explorer.settings.wires import WireSettings


class CrossbarConfig(MappingSettings, ConverterSettings, NoiseSettings, WireSettings,
                     DriftSettings, CostSettings):
    """The crossbar hardware a network is written into (all knobs of DESIGN.md §2–4, 7–9)."""

    device = param.ClassSelector(
        class_=DeviceModel, default=DeviceModel(), instantiate=True, label="Device",
        doc="The ReRAM cell: conductance levels (Siemens) and curve.")

    def tile_settings(self) -> Any:
        """The tile geometry and converters as a :class:`explorer.tiles.TileSettings`
        (raises InputError for inconsistent values)."""
        from explorer.tiles import TileSettings

        return TileSettings(
            tile_rows=self.tile_rows, tile_cols=self.tile_cols, dac_bits=self.dac_bits,
            adc_bits=self.adc_bits, adc_range=self.adc_range,
            adc_percentile=float(self.adc_percentile),
            adc_fixed_range=float(self.adc_fixed_range), bit_serial=self.bit_serial,
            cells_per_weight=1 if self.scheme == "offset" else 2, adc_input=self.adc_input,
            weight_slices=self.weight_slices)

    def nonidealities(self) -> Any:
        """The variation, read noise and faults as a :class:`explorer.device.NonIdealities`."""
        from explorer.device import NonIdealities

        return NonIdealities(**{name: getattr(self, name) for name in NoiseSettings.knobs()
                                if name in NonIdealities.param})

    def validate(self) -> None:
        """Raise InputError if the combination of values is impossible."""
        for part in CROSSBAR_PARTS:
            part.check(self)
        if self.weight_slices > 1:
            if self.scheme == "offset":
                raise InputError("weight_slices: bit slicing is modelled for differential "
                                 "pairs; use scheme='differential' (the offset scheme's "
                                 "reference column per slice is not modelled)")
            if self.mapping not in ("linear", "min_error"):
                raise InputError(f"weight_slices: sliced digits are written to levels; use "
                                 f"mapping 'linear' or 'min_error', not {self.mapping!r}")
            if self.adc_input == "per_column":
                raise InputError("weight_slices: bit slicing with adc_input='per_column' is "
                                 "not modelled; use adc_input='differential'")
            if self.device.levels < (1 << self.bits_per_cell):
                raise InputError(f"bits_per_cell: {self.bits_per_cell} bits need "
                                 f"{1 << self.bits_per_cell} levels per cell; the device has "
                                 f"{self.device.levels}")
        if self.prog_model == "measured" and self.device.level_std is None:
            raise InputError("prog_model: 'measured' needs a device with measured per-level σ "
                             "(a CSV with a conductance_std column or repeated measurements "
                             "per level)")
        self.tile_settings()

    def summary(self) -> dict[str, Any]:
        """Plain-data description (JSON-ready) of the configuration and its device."""
        out = {name: getattr(self, name) for name in self.param if name not in ("name", "device")}
        dev = self.device
        out["device"] = {"preset": dev.preset, "source": dev.source, "g_min": dev.g_min,
                         "g_max": dev.g_max, "levels": dev.levels,
                         "nonlinearity": dev.nonlinearity}
        return out


CROSSBAR_PARTS: tuple[type[Part], ...] = CrossbarConfig.__bases__
"""The parts of :class:`CrossbarConfig` (its bases), in the order of the settings file's
sections."""


def crossbar_knobs() -> list[str]:
    """Every CrossbarConfig knob (device excluded), part by part."""
    return [name for part in CROSSBAR_PARTS for name in part.knobs()]
