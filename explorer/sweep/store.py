"""A sweep's output folder (:class:`SweepStore`), atomic writes and the tidy table
(:func:`results_frame`)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer.errors import InputError

if TYPE_CHECKING:
    from explorer.sweep.points import GridPoint

COUNTER_COLUMNS = ("tiles", "cells", "adc_conversions", "dac_cycles")
COST_COLUMNS = ("energy_pj_per_image", "latency_ns_per_image", "area_mm2")
"""Per image, from :mod:`explorer.cost` (pJ, ns, mm²)."""
RESULT_COLUMNS = ("point", "trial", "seed")
MEASURED_COLUMNS = ("accuracy", "float_accuracy", *COUNTER_COLUMNS, *COST_COLUMNS, "seconds",
                    "worker")
WORKLOAD_COLUMNS = ("model", "data", "images", "trials")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file in the same folder and a rename: readers see
    the old file or the whole new one, never half of it (also after a crash)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class SweepStore:
    """A sweep's output folder: ``points/<key>.json`` per finished grid point,
    ``results.csv`` and ``results.parquet`` (the tidy table), ``sweep.json`` (the spec)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"--out: {str(self.folder)!r} exists and is not a folder")
        self.points_dir = self.folder / "points"

    def create(self) -> None:
        """Create the folder (nothing is written before the sweep is validated)."""
        self.points_dir.mkdir(parents=True, exist_ok=True)

    def finished(self, points: Sequence[GridPoint]) -> dict[str, list[dict[str, Any]]]:
        """Rows of the grid points already done, by key (unreadable files count as not done)."""
        done = {}
        for point in points:
            path = self.points_dir / f"{point.key}.json"
            if path.is_file():
                try:
                    rows = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(rows, list) and rows and all(r.get("point") == point.key
                                                          for r in rows):
                    done[point.key] = rows
        return done

    def write_point(self, key: str, rows: list[dict[str, Any]]) -> None:
        atomic_write(self.points_dir / f"{key}.json",
                     lambda p: p.write_text(json.dumps(rows), encoding="utf-8"))

    def write_table(self, table: Any) -> None:
        atomic_write(self.folder / "results.csv", lambda p: table.to_csv(p, index=False))
        atomic_write(self.folder / "results.parquet",
                     lambda p: table.to_parquet(p, index=False, engine="pyarrow"))

    def write_spec(self, spec: dict[str, Any]) -> None:
        atomic_write(self.folder / "sweep.json",
                     lambda p: p.write_text(json.dumps(spec, indent=2, default=str),
                                            encoding="utf-8"))


def results_frame(rows: Iterable[dict[str, Any]], swept: Sequence[str]) -> Any:
    """The tidy table (pandas DataFrame): rows sorted by grid point and trial, the key and
    swept columns first; converter bits as nullable integers (empty = ideal)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, *swept, *MEASURED_COLUMNS])
    first = [*RESULT_COLUMNS, *swept, *MEASURED_COLUMNS, *WORKLOAD_COLUMNS]
    order = [c for c in first if c in frame] + [c for c in frame if c not in first]
    frame = frame[order]
    for name in ("dac_bits", "adc_bits"):
        if name in frame:
            frame[name] = frame[name].astype("Int64")
    return frame


