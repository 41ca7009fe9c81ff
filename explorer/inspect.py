"""A look inside every crossbar layer: what goes wrong where, and how much it costs.

:func:`inspect_network` converts a network (:func:`~explorer.crossbar.to_crossbar`, one
Monte-Carlo trial) and reports per analog layer:

* ``mapping`` – the weight error of writing the weights into the device's levels
  (:meth:`~explorer.mapping.MappingResult.stats`, weight units) and ``weight_snr_db``,
  ``10·log10(Σw² / Σ(ŵ − w)²)`` of the *programmed* weights ŵ of this trial;
* ``clip_rate`` – the fraction of row-chunk partial sums beyond the ADC range ±R, and
  ``partial_sums`` – their histogram (partial-sum units, weight × input) with R marked;
* ``snr_db`` – the layer's output SNR ``10·log10(Σy² / Σ(ŷ − y)²)``: ŷ the crossbar
  layer's output, y the float layer's, both on the same inputs (the crossbar network's
  activations), so it holds mapping, programming, read noise, DAC and ADC together;
  split into ``snr_cells_db`` (y_c − y, with y_c the float layer computed with the cells'
  weights of the same read: mapping, programming, read noise) and ``snr_converters_db``
  (ŷ − y_c: DAC and ADC), each against the same signal Σy² (None: no error at all);
* ``sensitivity`` – the network's accuracy with only this layer on a crossbar and every
  other layer in float (its own converters calibrated in that network), with its
  binomial standard error ``sqrt(a(1 − a)/N)`` (one trial: differences below about two
  standard errors are not resolved);
* ``heatmaps`` – the programmed conductances (S) of the first tiles (blocks of
  :mod:`explorer.tile_map`), block-averaged down to at most ``heatmap_size`` cells a side.

Partial sums, SNR and heatmaps use the first ``stats_images`` images; accuracies all.
``worst`` names the layer with the largest accuracy drop and the likely reason
(:func:`why`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.coverage import layer_inventory
from explorer.crossbar import CrossbarConfig, CrossbarModel, to_crossbar
from explorer.errors import InputError
from explorer.evaluate import analog_batch_size
from explorer.tile_map import block_of, tile_blocks

NO_SIGNAL_DB = -999.0
"""The SNR reported for a layer whose float output is zero everywhere."""
CLIP_NOTABLE = 0.01
"""Clipping of more than this fraction of the partial sums is named as a reason."""


@torch.no_grad()
def _accuracy(net: nn.Module, images: Tensor, labels: Tensor, batch: int,
              where: torch.device) -> float:
    correct = 0
    for start in range(0, len(images), batch):
        x = images[start:start + batch].to(where)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        correct += int((net(x).argmax(1).cpu() == labels[start:start + batch]).sum())
    return correct / max(len(images), 1)


@torch.no_grad()
def _layer_inputs(analog: CrossbarModel, images: Tensor, where: torch.device
                  ) -> dict[str, Tensor]:
    """The input of every analog layer when the crossbar network runs ``images``."""
    seen: dict[str, Tensor] = {}
    handles = []
    for name, layer in analog.analog_layers():
        def hook(_: nn.Module, args: tuple[Tensor, ...], name: str = name) -> None:
            seen[name] = args[0].detach()
        handles.append(layer.register_forward_pre_hook(hook))
    try:
        x = images.to(where)
        analog(x.float().div_(255) if x.dtype == torch.uint8 else x.float())
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _snr_db(signal: Tensor, noisy: Tensor) -> float | None:
    """``10·log10(Σ signal² / Σ (noisy − signal)²)`` in dB; None when there is no error
    at all (JSON has no infinity), −999 for a zero signal with an error."""
    power = float(signal.double().pow(2).sum())
    noise = float((noisy.double() - signal.double()).pow(2).sum())
    if noise == 0.0:
        return None
    if power == 0.0:
        return NO_SIGNAL_DB
    return 10.0 * math.log10(power / noise)


def _histogram(sums: Tensor, adc_range: float, bins: int) -> dict[str, Any]:
    flat = sums.reshape(-1).float()
    top = float(flat.abs().max()) if flat.numel() else 0.0
    limit = max(1.25 * adc_range, top) if adc_range > 0 else top
    limit = limit if limit > 0 else 1.0
    counts = torch.histc(flat.cpu(), bins=bins, min=-limit, max=limit)
    edges = torch.linspace(-limit, limit, bins + 1)
    return {"counts": [int(c) for c in counts.tolist()], "edges": edges.tolist(),
            "adc_range": adc_range if adc_range > 0 else None, "max_abs": top}


def _heatmap(values: Tensor, size: int) -> tuple[list[list[float]], bool]:
    rows, cols = values.shape
    if rows <= size and cols <= size:
        return values.float().cpu().tolist(), False
    pooled = F.adaptive_avg_pool2d(values.float().cpu()[None, None],
                                   (min(rows, size), min(cols, size)))[0, 0]
    return pooled.tolist(), True


@torch.no_grad()
def layer_report(name: str, layer: Any, float_layer: nn.Module, x: Tensor, bins: int,
                 heatmap_tiles: int, heatmap_size: int) -> dict[str, Any]:
    """The per-layer numbers of :func:`inspect_network` for one analog layer and its input."""
    m = layer.mapping
    w = m.w.to(layer.weight.device).float()
    programmed = m.to_weight(layer.g_pos, layer.g_neg).float()
    rows = x.reshape(-1, x.shape[-1]) if isinstance(float_layer, nn.Linear) else x
    out: dict[str, Any] = {"name": name, "type": type(float_layer).__name__,
                           "shape": list(m.w.shape), "groups": int(getattr(layer, "groups", 1)),
                           "tiles": layer.counters()["tiles"],
                           "mapping": {**m.stats(), "w_scale": m.w_scale},
                           "weight_snr_db": _snr_db(w, programmed.reshape(w.shape)),
                           "dac_range": float(layer.dac_range), "signed_input":
                           bool(layer.signed_input)}
    bits = layer.settings.adc_bits
    adc_range = float(layer.adc_range) if bits is not None else 0.0
    sums, _ = layer.partial_sums(rows)
    out["adc_range"] = adc_range if bits is not None else None
    out["clip_rate"] = float((sums.abs() > adc_range).float().mean()) \
        if bits is not None and sums.numel() else 0.0
    out["partial_sums"] = _histogram(sums, adc_range, bins)
    del sums
    y = float_layer(x)
    read = layer.forward_weight()  # the programmed weights; per-read noise is drawn inside
    # the tiled pass, so the "converters" share below includes read and output noise
    shape = float_layer.weight.shape
    y_cells = torch.func.functional_call(float_layer, {"weight": read.reshape(shape)}, (x,))
    layer.forward_weight = lambda: read  # the tiled pass reads the same cells
    try:
        y_hat = layer(x)
    finally:
        del layer.forward_weight
    out["snr_db"] = _snr_db(y, y_hat)
    out["snr_cells_db"] = _snr_db(y, y_cells)
    out["snr_converters_db"] = _snr_db(y, y + (y_hat - y_cells))
    heatmaps = []
    for block in tile_blocks(layer)[:heatmap_tiles]:
        g_pos, pooled = _heatmap(block_of(layer.g_pos, block), heatmap_size)
        entry = {"tile": block.key, "group": block.group, "row_chunk": block.row_chunk,
                 "column_tile": block.column_tile, "rows": [block.row_start, block.row_stop],
                 "columns": [block.col_start, block.col_stop], "g_pos": g_pos,
                 "averaged": pooled}
        if not m.neg_is_reference:
            entry["g_neg"] = _heatmap(block_of(layer.g_neg, block), heatmap_size)[0]
        heatmaps.append(entry)
    out["heatmaps"] = heatmaps
    out["tiles_shown"] = len(heatmaps)
    return out


def why(layer: dict[str, Any]) -> str:
    """The likely main reason a layer loses accuracy, from its numbers: ADC clipping when
    more than :data:`CLIP_NOTABLE` of its partial sums clip; else the larger of the two
    measured output errors – the cells' (mapping, programming, read noise) or the
    converters' (DAC/ADC rounding)."""
    if layer["clip_rate"] > CLIP_NOTABLE:
        return (f"ADC clipping: {100 * layer['clip_rate']:.1f} % of its partial sums lie "
                "beyond the ADC range")
    cells, converters = layer["snr_cells_db"], layer["snr_converters_db"]
    if cells is None and converters is None:
        return "no error measured: the layer computes exactly"
    cells = math.inf if cells is None else cells
    converters = math.inf if converters is None else converters
    if cells <= converters:
        return (f"weight error of the cells: output SNR {cells:.1f} dB from the cells "
                f"alone, {converters:.1f} dB from the converters alone (mapping rmse/w_max "
                f"{layer['mapping']['rmse_rel']:.3f})")
    return (f"converter resolution: output SNR {converters:.1f} dB from the DAC/ADC "
            f"rounding alone, {cells:.1f} dB from the cells alone")


def inspect_network(model: nn.Module, images: Tensor, labels: Tensor, cfg: CrossbarConfig,
                    calibration: Tensor, *, trial: int = 0, bins: int = 41,
                    stats_images: int = 256, heatmap_tiles: int = 4, heatmap_size: int = 64,
                    sensitivity: bool = True, batch_size: int = 500,
                    device: str | torch.device = "cpu", analog_builder: Any = None,
                    progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Per-layer report of ``model`` on the crossbar ``cfg`` (see the module docstring).

    ``images``/``labels``: the scored test images (uint8 or float) and labels;
    ``calibration``: float images for the DAC/ADC ranges (the training split);
    ``analog_builder``: as in :func:`explorer.evaluate.evaluate` (the sensitivity runs
    always use :func:`~explorer.crossbar.to_crossbar`).
    """
    for label, value, low in (("bins", bins, 1), ("stats_images", stats_images, 1),
                              ("heatmap_tiles", heatmap_tiles, 0),
                              ("heatmap_size", heatmap_size, 1), ("trial", trial, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{label}: must be an integer >= {low}, got {value!r}")
    start = time.perf_counter()
    where = torch.device(device)
    model = model.to(where).eval()
    calibration = calibration.to(where)

    def tell(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    tell(0.0, "converting")
    build = to_crossbar if analog_builder is None else analog_builder
    analog: CrossbarModel = build(model, cfg, calibration)
    if trial:
        analog.reprogram(trial)
    float_accuracy = _accuracy(model, images, labels, batch_size, where)
    accuracy = _accuracy(analog, images, labels, analog_batch_size(analog, batch_size), where)
    tell(0.2, "layer statistics")
    inputs = _layer_inputs(analog, images[:stats_images], where)
    modules = dict(model.named_modules())
    layers = []
    for name, layer in analog.analog_layers():
        layers.append(layer_report(name, layer, modules[name], inputs.pop(name), bins,
                                   heatmap_tiles, heatmap_size))
    names = [layer["name"] for layer in layers]
    for i, name in enumerate(names if sensitivity else []):
        tell(0.4 + 0.6 * i / len(names), f"sensitivity of {name}")
        alone = to_crossbar(model, cfg, calibration, trial=trial, only={name})
        acc = _accuracy(alone, images, labels, analog_batch_size(alone, batch_size), where)
        layers[i]["sensitivity"] = {"accuracy": acc, "drop": float_accuracy - acc,
                                    "stderr": math.sqrt(acc * (1 - acc) / len(images))}
    worst = None
    if sensitivity and layers:
        top = max(layers, key=lambda layer: layer["sensitivity"]["drop"])
        worst = {"layer": top["name"], "accuracy": top["sensitivity"]["accuracy"],
                 "drop": top["sensitivity"]["drop"], "stderr": top["sensitivity"]["stderr"],
                 "reason": why(top)}
    tell(1.0, "done")
    return {"images": len(images), "stats_images": min(stats_images, len(images)),
            "trial": trial, "seed": analog.seed, "float_accuracy": float_accuracy,
            "accuracy": accuracy, "layers": layers, "worst": worst,
            **layer_inventory(model), "counters": analog.counters()["total"],
            "seconds": time.perf_counter() - start}


__all__ = ["CLIP_NOTABLE", "inspect_network", "layer_report", "why"]
