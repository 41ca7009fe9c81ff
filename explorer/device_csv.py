"""The measured-curve CSV reader (a device's conductance levels from a file).

Format (``parse_device_csv``): UTF-8 text, a header row, one value column named
``conductance`` (Siemens), ``conductance_uS`` (microsiemens) or ``resistance_ohm``
(ohm, converted to 1/R), an optional ``pulse`` column (kept for plotting), other columns
ignored; comma, semicolon or tab separated; at most 1 MB and 100,000 data rows. Row
numbers in messages are line numbers in the file (the header is row 1).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from explorer.errors import InputError

MIN_LEVELS = 2
MAX_CSV_BYTES = 1_000_000
MAX_CSV_ROWS = 100_000
CSV_VALUE_COLUMNS = {"conductance": 1.0, "conductance_us": 1e-6, "resistance_ohm": None}
"""Accepted value columns (case-insensitive) and their factor to Siemens (None: 1/value)."""


@dataclass(frozen=True)
class DeviceTable:
    """A parsed device CSV: conductances (Siemens, file order), optional pulse numbers."""

    conductance: np.ndarray
    pulse: np.ndarray | None
    column: str


def _format_column_help() -> str:
    return ("a header row naming one value column: conductance (S), conductance_uS or "
            "resistance_ohm; optionally a pulse column")


def _parse_cell(text: str, row: int, column: str, positive: bool) -> float:
    cell = text.strip()
    if not cell:
        raise InputError(f"device CSV: row {row}, column {column!r}: empty cell")
    try:
        value = float(cell)
    except ValueError:
        raise InputError(
            f"device CSV: row {row}, column {column!r}: {cell[:40]!r} is not a number"
        ) from None
    if not np.isfinite(value):
        raise InputError(f"device CSV: row {row}, column {column!r}: {cell!r} is not finite")
    if positive and value <= 0:
        raise InputError(
            f"device CSV: row {row}, column {column!r}: {cell!r} must be > 0"
        )
    if not positive and value < 0:
        raise InputError(f"device CSV: row {row}, column {column!r}: {cell!r} must be >= 0")
    return value


def _delimiter(first_line: str) -> str:
    for delim in (",", ";", "\t"):
        if delim in first_line:
            return delim
    return ","


def parse_device_csv(data: bytes) -> DeviceTable:
    """Parse a device CSV file's bytes; every problem raises :class:`InputError`.

    Messages name the row (line number, header = 1) and column of a bad cell: non-numeric,
    NaN/inf, non-positive (pulse: negative), empty. The whole file is rejected when it is
    empty, larger than 1 MB, not UTF-8, has more than 100,000 data rows, lacks a
    recognised header, or holds fewer than 2 distinct conductances.
    """
    if isinstance(data, str):
        raise InputError("device CSV: expected the file's bytes, got text; pass data.encode()")
    data = bytes(data)
    if len(data) > MAX_CSV_BYTES:
        raise InputError(f"device CSV: the file has {len(data):,} bytes; at most 1 MB "
                         f"({MAX_CSV_BYTES:,} bytes) is accepted")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"device CSV: the file is not UTF-8 text (invalid byte at offset "
                         f"{exc.start}); save it as UTF-8 CSV") from None
    if not text.strip():
        raise InputError(f"device CSV: the file is empty; expected {_format_column_help()}, "
                         "then one value per row")
    first_line = next(line for line in text.splitlines() if line.strip())
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(first_line))
    header: list[str] | None = None
    header_row = 0
    for cells in reader:
        if any(c.strip() for c in cells):
            header, header_row = [c.strip() for c in cells], reader.line_num
            break
    if header is None:  # unreachable: text has a non-blank line
        raise InputError(f"device CSV: no header row; expected {_format_column_help()}")
    names = [h.lower() for h in header]
    if all(_is_number(h) for h in header if h):
        raise InputError(f"device CSV: row {header_row} holds numbers, not a header; expected "
                         f"{_format_column_help()}")
    value_cols = [i for i, n in enumerate(names) if n in CSV_VALUE_COLUMNS]
    if len(value_cols) != 1:
        found = [header[i] for i in value_cols] or header
        raise InputError(f"device CSV: expected exactly one value column (conductance, "
                         f"conductance_uS or resistance_ohm); found {found}")
    value_idx = value_cols[0]
    value_name = header[value_idx]
    pulse_cols = [i for i, n in enumerate(names) if n == "pulse"]
    if len(pulse_cols) > 1:
        raise InputError("device CSV: more than one 'pulse' column")
    pulse_idx = pulse_cols[0] if pulse_cols else None

    values: list[float] = []
    pulses: list[float] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        row = reader.line_num
        if len(values) >= MAX_CSV_ROWS:
            raise InputError(f"device CSV: more than {MAX_CSV_ROWS:,} data rows (row {row}); "
                             "at most 100,000 are accepted")
        cell = cells[value_idx] if value_idx < len(cells) else ""
        values.append(_parse_cell(cell, row, value_name, positive=True))
        if pulse_idx is not None:
            cell = cells[pulse_idx] if pulse_idx < len(cells) else ""
            pulses.append(_parse_cell(cell, row, header[pulse_idx], positive=False))
    if not values:
        raise InputError(f"device CSV: no data rows below the header (column {value_name!r})")
    raw = np.asarray(values, dtype=np.float64)
    factor = CSV_VALUE_COLUMNS[names[value_idx]]
    g = 1.0 / raw if factor is None else raw * factor
    distinct = np.unique(g).size
    if distinct < MIN_LEVELS:
        raise InputError(f"device CSV: column {value_name!r} has {distinct} distinct value(s); "
                         f"at least {MIN_LEVELS} distinct conductance levels are needed")
    pulse_arr = np.asarray(pulses, dtype=np.float64) if pulse_idx is not None else None
    return DeviceTable(conductance=g, pulse=pulse_arr, column=value_name)


def parse_conductance_csv(data: bytes) -> np.ndarray:
    """Conductances in Siemens (file order, duplicates kept) from a device CSV's bytes."""
    return parse_device_csv(data).conductance


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

