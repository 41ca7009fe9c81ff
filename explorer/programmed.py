"""Programmed conductances out and back in: ``explorer export`` / ``evaluate --programmed``.

:func:`write_programmed` writes one Monte-Carlo trial of a converted network, per tile
block (:mod:`explorer.tile_map`), into a new folder::

    DIR/manifest.json                     what every file holds (below)
    DIR/tiles/<layer>/<block>.npz         g_pos, g_neg: float32 [rows, columns], Siemens
    DIR/tiles/<layer>/<block>_g_pos.csv   the same, as text (``csv=True``; and _g_neg)

A block's rows are word lines (im2col order of its conv group: channel-major, kernel
positions in raster order), its columns the layer's output channels
``columns[0] … columns[1] − 1``; ``g_neg`` is the reference column (offset scheme: one
conductance, ``reference_conductance``) or the G⁻ cells. The realised weight of a cell
pair is ``w_scale · (g_pos − g_neg)``. The manifest also records each layer's DAC range
(input units, per layer), ADC range (partial-sum units: weight × input), converter bits,
the device, the whole settings (:meth:`~explorer.settings.Settings.to_dict`), the trial
and seed, the accuracy of the run that wrote it, and the project version.

:func:`install_programmed` puts such a folder's conductances and ranges back into a
converted network, after checking that every block is there with the shape the network
needs (a tampered manifest is refused, naming the tile).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer import __version__
from explorer.errors import InputError
from explorer.tile_map import TileBlock, as_matrix, block_of, tile_blocks

SCHEMA = "crossbar-explorer/programmed"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 50_000_000


def _folder_name(layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", layer) or "_"


def _csv(path: Path, values: np.ndarray) -> None:
    np.savetxt(path, values, delimiter=",", fmt="%.9g")


def layer_record(name: str, layer: Any) -> dict[str, Any]:
    """The manifest entry of one analog layer, without its tiles."""
    m = layer.mapping
    s = layer.settings
    record = {
        "name": name, "type": type(layer).__name__, "weight_shape": list(m.w.shape),
        "groups": int(getattr(layer, "groups", 1)), "rows_per_group": layer.plan.rows,
        "columns": layer.out_features, "w_scale": float(m.w_scale), "scheme": m.scheme,
        "mapping": m.method, "neg_is_reference": bool(m.neg_is_reference),
        "dac_bits": s.dac_bits, "adc_bits": s.adc_bits, "dac_range": float(layer.dac_range),
        "adc_range": float(layer.adc_range), "signed_input": bool(layer.signed_input),
        "tile_rows": s.tile_rows, "tile_cols": s.tile_cols,
    }
    if m.neg_is_reference:
        refs = torch.unique(layer.g_neg.detach().float().cpu())
        record["reference_conductance"] = float(refs[0]) if refs.numel() == 1 \
            else [float(v) for v in refs]
    return record


def write_programmed(analog: Any, out: str | Path, info: dict[str, Any],
                     csv: bool = False) -> dict[str, Any]:
    """Write the programmed conductances of ``analog`` (a
    :class:`~explorer.crossbar.CrossbarModel`) into the new folder ``out``; ``info`` goes
    into the manifest as is (settings, trial, accuracy …). Returns the manifest.

    The folder is written beside its place and renamed into it at the end, so a failure
    leaves nothing half-written; an existing non-empty folder is refused.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out: {str(out)!r} exists and is not an empty folder; choose a "
                         "new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        layers = []
        for name, layer in analog.analog_layers():
            record = layer_record(name, layer)
            folder = Path("tiles") / _folder_name(name)
            (tmp / folder).mkdir(parents=True, exist_ok=True)
            tiles = []
            for block in tile_blocks(layer):
                g_pos = block_of(layer.g_pos, block).detach().float().cpu().numpy()
                g_neg = block_of(layer.g_neg, block).detach().float().cpu().numpy()
                file = folder / f"{block.key}.npz"
                np.savez(tmp / file, g_pos=g_pos, g_neg=g_neg)
                entry = {"key": block.key, "file": file.as_posix(), "group": block.group,
                         "row_chunk": block.row_chunk, "column_tile": block.column_tile,
                         "rows": [block.row_start, block.row_stop],
                         "columns": [block.col_start, block.col_stop],
                         "shape": list(block.shape)}
                if csv:
                    entry["csv"] = []
                    for part, values in (("g_pos", g_pos), ("g_neg", g_neg)):
                        path = folder / f"{block.key}_{part}.csv"
                        _csv(tmp / path, values)
                        entry["csv"].append(path.as_posix())
                tiles.append(entry)
            record["tiles"] = tiles
            layers.append(record)
        manifest = {"schema": SCHEMA, "version": SCHEMA_VERSION,
                    "project_version": __version__,
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "units": {"conductance": "S", "dac_range": "layer input units",
                              "adc_range": "partial-sum units (weight x input)"},
                    **info, "layers": layers}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_plain))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an exported folder (checked schema), or an InputError."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"--programmed: {str(folder)!r} holds no {MANIFEST} (a folder "
                         "written by `explorer export`)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InputError(f"--programmed: {MANIFEST} is larger than {MAX_MANIFEST_BYTES:,} "
                         "bytes")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--programmed: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise InputError(f"--programmed: {MANIFEST} is not a manifest of programmed "
                         f"conductances (schema {SCHEMA!r})")
    if manifest.get("version") != SCHEMA_VERSION:
        raise InputError(f"--programmed: manifest version {manifest.get('version')!r}; this "
                         f"version reads {SCHEMA_VERSION}")
    if not isinstance(manifest.get("layers"), list):
        raise InputError("--programmed: the manifest lists no layers")
    return manifest


def _tile_arrays(folder: Path, layer: str, entry: dict[str, Any],
                 block: TileBlock) -> tuple[np.ndarray, np.ndarray]:
    where = f"--programmed: tile {layer} {block.key}"
    if (entry.get("rows"), entry.get("columns")) != \
            ([block.row_start, block.row_stop], [block.col_start, block.col_stop]):
        raise InputError(f"{where}: the manifest places it at rows {entry.get('rows')}, "
                         f"columns {entry.get('columns')}; the network's block is rows "
                         f"[{block.row_start}, {block.row_stop}), columns "
                         f"[{block.col_start}, {block.col_stop})")
    if entry.get("shape") != list(block.shape):
        raise InputError(f"{where}: the manifest says shape {entry.get('shape')}, the "
                         f"network's block is {list(block.shape)}")
    file = folder / str(entry.get("file", ""))
    if not entry.get("file") or not file.is_file():
        raise InputError(f"{where}: its file {entry.get('file')!r} is missing")
    try:
        with np.load(file, allow_pickle=False) as stored:
            g_pos, g_neg = np.asarray(stored["g_pos"]), np.asarray(stored["g_neg"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{where}: {entry['file']} is not a tile file with g_pos and g_neg "
                         f"({exc})") from None
    for part, values in (("g_pos", g_pos), ("g_neg", g_neg)):
        if values.shape != block.shape:
            raise InputError(f"{where}: {part} in {entry['file']} is {list(values.shape)}, "
                             f"the block is {list(block.shape)}")
        if not np.isfinite(values).all() or (values < 0).any():
            raise InputError(f"{where}: {part} holds negative or non-finite conductances")
    return g_pos, g_neg


def install_programmed(analog: Any, folder: str | Path,
                       manifest: dict[str, Any] | None = None) -> None:
    """Install an exported folder's conductances and DAC/ADC ranges into ``analog`` (a
    converted network of the same model and settings). Every layer and tile must be there
    with the shape the network needs; else an InputError naming the layer or tile and
    nothing is changed."""
    folder = Path(folder)
    manifest = read_manifest(folder) if manifest is None else manifest
    records = {}
    for record in manifest["layers"]:
        if not isinstance(record, dict) or not isinstance(record.get("tiles"), list):
            raise InputError("--programmed: a layer entry of the manifest has no tiles")
        records[record.get("name")] = record
    layers = analog.analog_layers()
    names = [name for name, _ in layers]
    for name in names:
        if name not in records:
            raise InputError(f"--programmed: layer {name} is missing from the manifest")
    extra = [name for name in records if name not in names]
    if extra:
        raise InputError(f"--programmed: the manifest holds layer {extra[0]!r}, which the "
                         f"network does not have (layers: {names})")
    staged = []
    for name, layer in layers:
        record = records[name]
        if list(record.get("weight_shape", [])) != list(layer.mapping.w.shape):
            raise InputError(f"--programmed: layer {name} has weights "
                             f"{record.get('weight_shape')} in the manifest, "
                             f"{list(layer.mapping.w.shape)} in the network")
        entries = {}
        for entry in record["tiles"]:
            key = entry.get("key") if isinstance(entry, dict) else None
            if key in entries:
                raise InputError(f"--programmed: tile {name} {key} is listed twice")
            entries[key] = entry
        g_pos = np.zeros(tuple(as_matrix(layer.mapping.w).shape), dtype=np.float32)
        g_neg = np.zeros_like(g_pos)
        blocks = tile_blocks(layer)
        for block in blocks:
            if block.key not in entries:
                raise InputError(f"--programmed: tile {name} {block.key} (rows "
                                 f"[{block.row_start}, {block.row_stop}), columns "
                                 f"[{block.col_start}, {block.col_stop})) is missing from "
                                 "the manifest")
            pos, neg = _tile_arrays(folder, name, entries.pop(block.key), block)
            cols = slice(block.col_start, block.col_stop)
            rows = slice(block.row_start, block.row_stop)
            g_pos[cols, rows], g_neg[cols, rows] = pos.T, neg.T
        if entries:
            raise InputError(f"--programmed: tile {name} {next(iter(entries))} is not a "
                             "block of this layer")
        ranges = []
        for key in ("dac_range", "adc_range"):
            value = record.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value < 0:
                raise InputError(f"--programmed: layer {name}: {key} {value!r} is not a "
                                 "number >= 0")
            ranges.append(float(value))
        staged.append((layer, g_pos, g_neg, ranges, bool(record.get("signed_input"))))
    for layer, g_pos, g_neg, (dac_range, adc_range), signed in staged:
        where = layer.weight.device
        shape = layer.mapping.w.shape
        layer.g_pos = torch.from_numpy(g_pos).reshape(shape).to(where)
        layer.g_neg = torch.from_numpy(g_neg).reshape(shape).to(where)
        layer.dac_range.fill_(dac_range)
        layer.adc_range.fill_(adc_range)
        layer.signed_input = signed
        layer._install(layer.g_pos, layer.g_neg)  # weight, per-column columns, slices
        if layer.read_generator is not None:  # per-read noise of the installed cells
            layer.start_reads(layer.read_generator)


class TrialBuilder:
    """An analog builder (see :func:`explorer.evaluate.evaluate`) that builds with
    ``base`` (default :func:`~explorer.crossbar.to_crossbar`), programs Monte-Carlo
    ``trial`` and, given ``folder``, installs its exported conductances; keeps the network
    built last as ``analog``."""

    def __init__(self, trial: int, base: Any = None, folder: str | Path | None = None,
                 manifest: dict[str, Any] | None = None) -> None:
        self.trial, self.base, self.folder, self.manifest = trial, base, folder, manifest
        self.analog: Any = None

    def __call__(self, model: Any, cfg: Any, calibration: Any) -> Any:
        from explorer.crossbar import to_crossbar

        analog = (self.base or to_crossbar)(model, cfg, calibration)
        if self.trial:
            analog.reprogram(self.trial)
        if self.folder is not None:
            install_programmed(analog, self.folder, self.manifest)
        self.analog = analog
        return analog


__all__ = ["MANIFEST", "SCHEMA", "SCHEMA_VERSION", "TrialBuilder", "install_programmed",
           "layer_record", "read_manifest", "write_programmed"]
