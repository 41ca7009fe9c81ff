"""Every knob of an experiment, declared once (issue 13).

Parts (one module each, Param declarations with bounds, labels and docs with units):
:class:`MappingSettings`, :class:`ConverterSettings`, :class:`NoiseSettings` compose
:class:`CrossbarConfig` (with the :class:`~explorer.device.DeviceModel`), and
:class:`WorkloadSettings`. :class:`Settings` holds the whole experiment and its one
versioned file form. The CLI options (:mod:`explorer.settings.options`), the dashboard's
URL and export, checkpoint records and sweep names are generated from these
declarations. No torch and no Panel are imported here.
"""

from explorer.settings.base import Part
from explorer.settings.converters import ADC_RANGES, MAX_BITS, ConverterSettings
from explorer.settings.crossbar import CROSSBAR_PARTS, CrossbarConfig, crossbar_knobs
from explorer.settings.document import (
    SCHEMA,
    SCHEMA_VERSION,
    Settings,
    device_from_dict,
    device_to_dict,
    flat_names,
    migrate,
    parts,
)
from explorer.settings.mapping import METHODS, SCALES, SCHEMES, MappingSettings
from explorer.settings.noise import NoiseSettings
from explorer.settings.workload import WorkloadSettings

__all__ = ["ADC_RANGES", "CROSSBAR_PARTS", "MAX_BITS", "METHODS", "SCALES", "SCHEMA",
           "SCHEMA_VERSION", "SCHEMES", "ConverterSettings", "CrossbarConfig",
           "MappingSettings", "NoiseSettings", "Part", "Settings", "WorkloadSettings",
           "crossbar_knobs", "device_from_dict", "device_to_dict", "flat_names", "migrate",
           "parts"]
