"""The measured drift table: drift exponent ν (mean and σ) against conductance.

Format (validated like the device CSV, :mod:`explorer.device_csv`): UTF-8 text, a header
row naming ``conductance`` (S) or ``conductance_uS`` (µS), ``nu_mean`` and ``nu_sigma``
(dimensionless, >= 0), other columns ignored; comma, semicolon or tab separated; at most
1 MB and 100,000 rows; at least 2 rows with distinct conductances (> 0). Row numbers in
messages are line numbers in the file (the header is row 1). No torch here.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.device_csv import MAX_CSV_BYTES, MAX_CSV_ROWS, _delimiter, parse_number_cell
from explorer.errors import InputError

CONDUCTANCE_COLUMNS = {"conductance": 1.0, "conductance_us": 1e-6}
NU_COLUMNS = ("nu_mean", "nu_sigma")
_CACHE: dict[tuple[str, float, int], DriftTable] = {}


@dataclass(frozen=True)
class DriftTable:
    """ν mean and σ at increasing conductances (S); interpolated linearly in between,
    held constant beyond the ends (aihwkit's custom drift model clips G to the table)."""

    conductance: np.ndarray
    nu_mean: np.ndarray
    nu_sigma: np.ndarray


def _number(text: str, row: int, column: str, positive: bool) -> float:
    return parse_number_cell(text, row, column, positive, what="drift CSV")


def parse_drift_csv(data: bytes) -> DriftTable:
    """Parse a drift CSV's bytes; every problem raises InputError naming row and column."""
    data = bytes(data)
    if len(data) > MAX_CSV_BYTES:
        raise InputError(f"drift CSV: the file has {len(data):,} bytes; at most 1 MB is accepted")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"drift CSV: the file is not UTF-8 text (invalid byte at offset "
                         f"{exc.start})") from None
    help_text = ("a header row with conductance (S) or conductance_uS, nu_mean and nu_sigma, "
                 "then one row per conductance")
    if not text.strip():
        raise InputError(f"drift CSV: the file is empty; expected {help_text}")
    first = next(line for line in text.splitlines() if line.strip())
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(first))
    header: list[str] = []
    for cells in reader:
        if any(c.strip() for c in cells):
            header = [c.strip() for c in cells]
            break
    names = [h.lower() for h in header]
    g_cols = [i for i, n in enumerate(names) if n in CONDUCTANCE_COLUMNS]
    if len(g_cols) != 1 or any(n not in names for n in NU_COLUMNS):
        raise InputError(f"drift CSV: expected {help_text}; found columns {header}")
    g_idx = g_cols[0]
    idx = [g_idx, names.index("nu_mean"), names.index("nu_sigma")]
    values: list[tuple[float, float, float]] = []
    rows: list[int] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        row = reader.line_num
        if len(values) >= MAX_CSV_ROWS:
            raise InputError(f"drift CSV: more than {MAX_CSV_ROWS:,} data rows (row {row})")
        got = [_number(cells[i] if i < len(cells) else "", row, header[i], positive=(i == g_idx))
               for i in idx]
        values.append((got[0], got[1], got[2]))
        rows.append(row)
    if len(values) < 2:
        raise InputError(f"drift CSV: {len(values)} data row(s); at least 2 conductances are "
                         "needed to interpolate ν")
    table = np.asarray(values, dtype=np.float64)
    table[:, 0] *= CONDUCTANCE_COLUMNS[names[g_idx]]
    order = np.argsort(table[:, 0], kind="stable")
    g_sorted = table[order, 0]
    same = np.nonzero(np.diff(g_sorted) == 0)[0]
    if same.size:
        first_row, second_row = sorted((rows[order[same[0]]], rows[order[same[0] + 1]]))
        raise InputError(f"drift CSV: rows {first_row} and {second_row} give the same "
                         f"conductance ({header[g_idx]}); one row per conductance")
    return DriftTable(g_sorted, table[order, 1], table[order, 2])


def read_drift_csv(path: str | os.PathLike[str]) -> DriftTable:
    """The drift table in file ``path`` (cached by path, size and modification time)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"drift_csv: file {str(path)!r} does not exist")
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime, stat.st_size)
    if key not in _CACHE:
        _CACHE[key] = parse_drift_csv(file.read_bytes())
    return _CACHE[key]


__all__ = ["DriftTable", "parse_drift_csv", "read_drift_csv"]
