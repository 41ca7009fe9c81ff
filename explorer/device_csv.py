"""The measured-curve CSV reader (a device's conductance levels from a file).

Format (``parse_device_csv``): UTF-8 text, a header row, one value column named
``conductance`` (Siemens), ``conductance_uS`` (microsiemens) or ``resistance_ohm``
(ohm, converted to 1/R), an optional ``pulse`` column (kept for plotting), other columns
ignored; comma, semicolon or tab separated; at most 1 MB and 100,000 data rows. Row
numbers in messages are line numbers in the file (the header is row 1).

Measured per-level statistics, one of:

* a ``conductance_std`` (S) or ``conductance_std_uS`` column beside the value column:
  each row is one level, its mean and its σ (≥ 0);
* a ``level`` column (integer label): repeated measurements of each level; a level's
  conductance is the mean of its rows and its σ their sample standard deviation
  (at least 2 rows per level).
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
CSV_STD_COLUMNS = {"conductance_std": 1.0, "conductance_std_us": 1e-6}
"""Accepted per-level σ columns (case-insensitive) and their factor to Siemens."""


@dataclass(frozen=True)
class DeviceTable:
    """A parsed device CSV: conductances (Siemens, file order), optional pulse numbers;
    with per-level statistics, ``std`` (Siemens) beside each conductance (one row per
    level; a ``level`` column's groups are reduced to their mean and σ)."""

    conductance: np.ndarray
    pulse: np.ndarray | None
    column: str
    std: np.ndarray | None = None


def _format_column_help() -> str:
    return ("a header row naming one value column: conductance (S), conductance_uS or "
            "resistance_ohm; optionally a pulse column")


def parse_number_cell(text: str, row: int, column: str, positive: bool,
                      what: str = "device CSV") -> float:
    """One CSV cell as a finite number, > 0 (``positive``) or >= 0; InputError naming the
    file kind ``what``, the row and the column otherwise (shared by the device and drift
    CSV readers)."""
    cell = text.strip()
    where = f"{what}: row {row}, column {column!r}"
    if not cell:
        raise InputError(f"{where}: empty cell")
    try:
        value = float(cell)
    except ValueError:
        raise InputError(f"{where}: {cell[:40]!r} is not a number") from None
    if not np.isfinite(value):
        raise InputError(f"{where}: {cell!r} is not finite")
    if positive and value <= 0:
        raise InputError(f"{where}: {cell!r} must be > 0")
    if not positive and value < 0:
        raise InputError(f"{where}: {cell!r} must be >= 0")
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
    std_cols = [i for i, n in enumerate(names) if n in CSV_STD_COLUMNS]
    level_cols = [i for i, n in enumerate(names) if n == "level"]
    if len(std_cols) + len(level_cols) > 1:
        found = [header[i] for i in std_cols + level_cols]
        raise InputError(f"device CSV: per-level statistics come from one column, "
                         f"conductance_std, conductance_std_uS or level; found {found}")
    std_idx = std_cols[0] if std_cols else None
    level_idx = level_cols[0] if level_cols else None
    if (std_idx is not None or level_idx is not None) and names[value_idx] == "resistance_ohm":
        raise InputError("device CSV: per-level statistics need a conductance or "
                         "conductance_uS value column, not resistance_ohm")

    values: list[float] = []
    pulses: list[float] = []
    stds: list[float] = []
    labels: list[tuple[float, int]] = []
    rows: list[int] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        row = reader.line_num
        if len(values) >= MAX_CSV_ROWS:
            raise InputError(f"device CSV: more than {MAX_CSV_ROWS:,} data rows (row {row}); "
                             "at most 100,000 are accepted")
        cell = cells[value_idx] if value_idx < len(cells) else ""
        values.append(parse_number_cell(cell, row, value_name, positive=True))
        rows.append(row)
        if pulse_idx is not None:
            cell = cells[pulse_idx] if pulse_idx < len(cells) else ""
            pulses.append(parse_number_cell(cell, row, header[pulse_idx], positive=False))
        if std_idx is not None:
            cell = cells[std_idx] if std_idx < len(cells) else ""
            stds.append(parse_number_cell(cell, row, header[std_idx], positive=False))
        if level_idx is not None:
            cell = cells[level_idx] if level_idx < len(cells) else ""
            labels.append((parse_number_cell(cell, row, header[level_idx], positive=False), row))
    if not values:
        raise InputError(f"device CSV: no data rows below the header (column {value_name!r})")
    raw = np.asarray(values, dtype=np.float64)
    factor = CSV_VALUE_COLUMNS[names[value_idx]]
    g = 1.0 / raw if factor is None else raw * factor
    std = None
    if std_idx is not None:
        std = np.asarray(stds, dtype=np.float64) * CSV_STD_COLUMNS[names[std_idx]]
        _check_distinct_levels(g, header[value_idx], rows)
    if level_idx is not None:
        g, std = _group_levels(g, labels, header[level_idx])
        pulses = []
    distinct = np.unique(g).size
    if distinct < MIN_LEVELS:
        raise InputError(f"device CSV: column {value_name!r} has {distinct} distinct value(s); "
                         f"at least {MIN_LEVELS} distinct conductance levels are needed")
    pulse_arr = np.asarray(pulses, dtype=np.float64) if pulses else None
    return DeviceTable(conductance=g, pulse=pulse_arr, column=value_name, std=std)


def _check_distinct_levels(g: np.ndarray, column: str, rows: list[int]) -> None:
    """With a σ column every row is one level: two rows with one mean are ambiguous."""
    order = np.argsort(g, kind="stable")
    same = np.flatnonzero(np.diff(g[order]) == 0)
    if same.size:
        first, second = sorted((int(order[same[0]]), int(order[same[0] + 1])))
        raise InputError(f"device CSV: rows {rows[first]} and {rows[second]}, column "
                         f"{column!r}: two levels with the "
                         f"same conductance {g[order[same[0]]]:.4g} S; with a σ column every "
                         "row is one level")


def _group_levels(g: np.ndarray, labels: list[tuple[float, int]],
                  column: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample σ (S) of the repeated measurements of each ``level`` label."""
    groups: dict[float, list[int]] = {}
    for i, (label, row) in enumerate(labels):
        if not float(label).is_integer():
            raise InputError(f"device CSV: row {row}, column {column!r}: {label:g} is not an "
                             "integer level label")
        groups.setdefault(label, []).append(i)
    means, stds = [], []
    for label, members in sorted(groups.items()):
        if len(members) < 2:
            raise InputError(f"device CSV: row {labels[members[0]][1]}, column {column!r}: "
                             f"level {label:g} has 1 measurement; repeated measurements need "
                             "at least 2 per level for a σ")
        values = g[members]
        means.append(float(values.mean()))
        stds.append(float(values.std(ddof=1)))
    return np.asarray(means), np.asarray(stds)


def parse_conductance_csv(data: bytes) -> np.ndarray:
    """Conductances in Siemens (file order, duplicates kept) from a device CSV's bytes."""
    return parse_device_csv(data).conductance


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

