"""Tiles and converters (DESIGN.md §4): word lines per read, DAC and ADC."""

from __future__ import annotations

import param

from explorer.errors import InputError
from explorer.settings.base import Part

ADC_RANGES = ("max", "percentile", "fixed")
ADC_INPUTS = ("differential", "per_column")
MAX_BITS = 16


class ConverterSettings(Part):
    """Tile geometry, input DAC and the ADC of each row chunk's partial sum."""

    section = "converters"

    tile_rows = param.Integer(
        default=128, bounds=(1, 65536), softbounds=(8, 1024), label="Tile rows",
        doc="Word lines read at once per tile (rows per partial sum), 1 … 65536.")
    tile_cols = param.Integer(
        default=128, bounds=(1, 65536), softbounds=(8, 1024), label="Tile columns",
        doc="Bit lines per tile, 1 … 65536 (changes the tile count, not the result).")
    dac_bits = param.Integer(
        default=8, bounds=(1, MAX_BITS), allow_None=True, label="DAC bits",
        doc="Input DAC resolution in bits, 1 … 16; None = ideal (analog inputs).")
    adc_bits = param.Integer(
        default=None, bounds=(1, MAX_BITS), allow_None=True, label="ADC bits",
        doc="ADC resolution of each row chunk's partial sum in bits, 1 … 16; None = ideal.")
    adc_range = param.Selector(
        default="max", objects=list(ADC_RANGES), label="ADC range",
        doc="How each layer's ADC range is set from the calibration batch: max |partial "
            "sum|, a percentile of it, or a fixed fraction of the full-scale sum.")
    adc_percentile = param.Number(
        default=99.99, bounds=(0, 100), inclusive_bounds=(False, True), softbounds=(90, 100),
        label="ADC percentile", doc="Percentile of |partial sums| used as the ADC range "
        "(adc_range='percentile'), in (0, 100].")
    adc_fixed_range = param.Number(
        default=1.0, bounds=(0, 1), inclusive_bounds=(False, True), label="ADC fixed range",
        doc="ADC range as a fraction of the full-scale partial sum (largest chunk's rows × "
            "max |weight| × full input), in (0, 1] (adc_range='fixed').")
    adc_input = param.Selector(
        default="differential", objects=list(ADC_INPUTS), label="ADC input",
        doc="differential: the column current minus the reference (offset) or G− current, "
            "subtracted in analog, one signed conversion per weight; per_column: every "
            "column and the reference/G− column converted on its own (unsigned, range "
            "spans the common mode) and subtracted digitally, as DNN+NeuroSim does.")
    adc_offset_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 2), label="ADC offset σ (LSB)",
        doc="Offset error σ of each converter (one per row chunk and converted column), in "
            "LSB, drawn once per trial; >= 0.")
    adc_gain_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.1), label="ADC gain σ",
        doc="Relative gain error σ of each converter, drawn once per trial; >= 0.")
    adc_inl_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 2), label="ADC INL σ (LSB)",
        doc="Integral nonlinearity σ of each converter in LSB at mid-scale (a bow, zero at "
            "the range ends), drawn once per trial; >= 0.")
    bit_serial = param.Boolean(
        default=False, label="Bit-serial inputs",
        doc="Apply inputs one bit-plane per cycle (needs dac_bits); ADC per plane, shift-add.")

    def check(self) -> None:
        if self.bit_serial and self.dac_bits is None:
            raise InputError("bit_serial: bit-serial inputs need dac_bits (1 … 16), not None")
