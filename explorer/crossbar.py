"""A trained network written into ReRAM crossbars (DESIGN.md §3–4).

:class:`CrossbarConfig` (declared in :mod:`explorer.settings`, re-exported here) holds
the hardware: device, mapping, tiles, converters and non-idealities. :func:`to_crossbar`
deep-copies a model and replaces every Conv1d, Conv2d and Linear called as a layer
(:mod:`explorer.coverage`; the rest stays digital) by an analog layer:

1. the weights are mapped to conductances (:func:`explorer.mapping.map_weights`);
2. the DAC and ADC ranges are calibrated per layer on a calibration batch, with the
   noise-free mapped weights (design-time calibration: Monte-Carlo trials share them);
3. the cells are programmed with :class:`explorer.device.NonIdealities` (programming
   error, device-to-device spread, stuck-at faults) from a seeded generator, and the
   converters' offset, gain and INL are drawn; :meth:`CrossbarModel.reprogram` redraws
   this for a new trial without mapping again;
4. every forward pass runs the tiled crossbar product of :mod:`explorer.tiles` (row
   chunks, DAC, ADC, digital accumulation, digital bias) with a fresh read-noise draw
   for every read (:mod:`explorer.readnoise`).

The offset scheme's reference column is written exactly (no programming error: one
column per tile, trimmed once) but read with read noise like every other column.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from explorer.converters import AdcErrors, Columns
from explorer.coverage import analog_children
from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.mapping import MappingResult, map_weights
from explorer.nonideal import NonIdealities
from explorer.readnoise import read_noise_for
from explorer.settings.crossbar import CrossbarConfig
from explorer.slicing import SlicedMapping, Slices, slice_weights, sliced_read_noise
from explorer.swap import swap_modules
from explorer.tiles import TiledConv1d, TiledConv2d, TiledLayer, TiledLinear
from explorer.timewires import TimeWires


def trial_seed(seed: int, trial: int, stream: int = 0) -> int:
    """Seed of Monte-Carlo ``trial`` (0, 1, …) of a configuration ``seed``, per stream
    (0 programming, 1 read noise, 2 converter errors): independent streams, reproducible."""
    return int(np.random.SeedSequence([int(seed), int(trial), int(stream)]).generate_state(1)[0])


class _Programmed:
    """Conductances of one analog layer: mapping target, programmed state, reads.

    ``g_pos`` / ``g_neg`` (S) are this trial's programmed cells, registered
    buffers: ``.to(device)`` moves them and ``state_dict()`` holds them beside the
    effective ``weight`` derived from them (so a loaded state reads the cells it was
    saved with). They are always copies, never views of the noise-free ``mapping``.
    """

    mapping: MappingResult
    nonideal: NonIdealities
    device: DeviceModel
    model: CrossbarModel | None
    g_pos: Tensor
    g_neg: Tensor

    def _attach(self, mapping: MappingResult, nonideal: NonIdealities,
                device: DeviceModel) -> None:
        self.mapping = mapping
        self.nonideal = nonideal
        self.device = device
        for name, target in (("g_pos", mapping.g_pos), ("g_neg", mapping.g_neg)):
            self.register_buffer(name, _copy(target))  # type: ignore[attr-defined]
        self.read_generator: torch.Generator | None = None
        self.physics: TimeWires | None = None  # drift and IR drop (explorer.timewires)
        self.program_pulses = 0

    def program(self, generator: torch.Generator | None) -> None:
        """Draw this trial's programmed conductances (programming error, spread, faults)
        and install them; the pulses it took are counted in ``program_pulses``."""
        m = self.mapping
        where = self.weight.device  # type: ignore[attr-defined]
        target_pos, target_neg = m.g_pos.to(where), m.g_neg.to(where)
        self.program_pulses = 0
        if generator is None:
            self.g_pos, self.g_neg = _copy(target_pos), _copy(target_neg)
        else:
            self.g_pos = self._program_cells(target_pos, m.indices, generator)
            self.g_neg = _copy(target_neg) if m.neg_is_reference else \
                self._program_cells(target_neg, m.indices_neg, generator)
        if self.physics is not None:  # drift to time_s, wires, compensation
            self.g_pos, self.g_neg = self.physics.program(self, self.g_pos, self.g_neg)
        self._install(self.g_pos, self.g_neg)

    def _to_weight(self, g_pos: Tensor, g_neg: Tensor) -> Tensor:
        """Effective weight of conductances (through the wires, when modelled)."""
        if self.physics is not None:
            return self.physics.weight(self.mapping, g_pos, g_neg)
        return self.mapping.to_weight(g_pos, g_neg)

    def _program_cells(self, target: Tensor, indices: Tensor | None,
                       generator: torch.Generator) -> Tensor:
        """Programmed copy of ``target`` (S); pulses from the level index when the
        mapping chose levels, else found on the device curve."""
        pulses = None if indices is None else indices.to(target.device, torch.float32)
        g, counts = self.nonideal.program_cells(_copy(target), self.device, generator, pulses)
        self.program_pulses += 0 if counts is None else int(counts.sum())
        return g.float()

    def _install(self, g_pos: Tensor, g_neg: Tensor) -> None:
        """Install conductances (S) as the layer's weight and, for per-column ADCs, its
        physical columns (weight units)."""
        m = self.mapping
        self.set_weight(self._to_weight(g_pos, g_neg))  # type: ignore[attr-defined]
        shape = self.weight.shape  # type: ignore[attr-defined]  # Conv1d: [out, in, 1, k]
        if isinstance(m, SlicedMapping):
            shifts = tuple(float(v) for v in m.shifts(g_pos).reshape(-1).tolist())
            values = m.slice_values(g_pos, g_neg).reshape(len(shifts), *shape)
            self.slices = Slices(values, shifts)
        if self.settings.adc_input == "per_column":  # type: ignore[attr-defined]
            scale = float(m.w_scale)
            if m.neg_is_reference:
                self.columns = Columns(scale * g_pos.reshape(shape), None,
                                       scale * float(g_neg.reshape(-1)[0]))
            else:
                self.columns = Columns(scale * g_pos.reshape(shape),
                                       scale * g_neg.reshape(shape), None)

    def install_nominal(self) -> None:
        """Install the noise-free mapped conductances (for calibration)."""
        where = self.weight.device  # type: ignore[attr-defined]
        self._install(_copy(self.mapping.g_pos.to(where)), _copy(self.mapping.g_neg.to(where)))

    def start_reads(self, generator: torch.Generator) -> None:
        """Per-read noise of this trial's cells (:mod:`explorer.readnoise`), drawn from
        ``generator`` (one per trial, on the weights' device)."""
        m, ni = self.mapping, self.nonideal
        self.read_generator = generator
        shape = self.weight.shape  # type: ignore[attr-defined]  # Conv1d: [out, in, 1, k]
        if isinstance(m, SlicedMapping):
            k = m.slices
            self.read_noise = sliced_read_noise(  # type: ignore[attr-defined]
                m, ni.read_sigma, ni.out_noise, self.g_pos.reshape(k, *shape),
                self.g_neg.reshape(k, *shape), generator)
            return
        g_pos, g_neg = self.g_pos.reshape(shape), self.g_neg.reshape(shape)
        reference = float(g_neg.reshape(-1)[0]) if m.neg_is_reference else None
        if m.neg_is_reference and getattr(self, "groups", 1) > 1:
            # grouped convolution: the reference read is drawn per column, not shared
            # per column tile (docs/physics.md §3)
            g_neg, reference = torch.full_like(g_pos, reference), None
        self.read_noise = read_noise_for(  # type: ignore[attr-defined]
            ni.read_sigma, ni.out_noise, float(m.w_scale), g_pos,
            None if reference is not None else g_neg, reference, generator)

    def draw_converters(self, generator: torch.Generator, cfg: CrossbarConfig) -> None:
        """This trial's ADC offset, gain and INL per converter (none when all σ are 0)."""
        self.adc_errors = None  # type: ignore[attr-defined]
        sigmas = (cfg.adc_offset_sigma, cfg.adc_gain_sigma, cfg.adc_inl_sigma)
        if cfg.adc_bits is None or not any(sigmas):
            return
        out = self.out_features  # type: ignore[attr-defined]
        converted = out * cfg.weight_slices
        if cfg.adc_input == "per_column":
            converted += out if not self.mapping.neg_is_reference else \
                -(-out // cfg.tile_cols)
        self.adc_errors = AdcErrors.draw(  # type: ignore[attr-defined]
            self.plan.count, converted, *sigmas, generator,  # type: ignore[attr-defined]
            self.weight.device)  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        """The tiles and converters (:meth:`TiledLayer.extra_repr`), then the mapping:
        ``mapping=method/scheme`` (``/optimal`` for the optimal scale) and the levels."""
        parts = [super().extra_repr()]  # type: ignore[misc]
        m = getattr(self, "mapping", None)
        if m is not None:
            parts.append(f"mapping={m.method}/{m.scheme}" +
                         ("" if m.scale == "max" else f"/{m.scale}"))
            if m.method != "exact":
                parts.append(f"levels={self.device.levels}")
        return ", ".join(parts)


def _copy(t: Tensor) -> Tensor:
    """A float32 copy of ``t`` (``.float()`` alone returns ``t`` itself when it is one)."""
    return t.to(dtype=torch.float32, copy=True)


class AnalogConv2d(_Programmed, TiledConv2d):
    """A Conv2d whose weights live in programmed ReRAM cells on tiles."""


class AnalogConv1d(_Programmed, TiledConv1d):
    """A Conv1d whose weights live in programmed ReRAM cells on tiles."""


class AnalogLinear(_Programmed, TiledLinear):
    """A Linear whose weights live in programmed ReRAM cells on tiles."""


AnalogLayer = AnalogConv1d | AnalogConv2d | AnalogLinear

_ANALOG_KINDS: dict[type[nn.Module], type[AnalogLayer]] = {
    nn.Conv1d: AnalogConv1d, nn.Conv2d: AnalogConv2d, nn.Linear: AnalogLinear}
"""The layer types :func:`to_crossbar` puts on crossbars and the analog layer each becomes
(the first type a layer is an instance of), when :mod:`explorer.coverage` finds it called
as a layer; every other module stays digital."""


class CrossbarModel(nn.Module):
    """A network with its Conv1d/Conv2d/Linear layers on crossbars; ``forward`` as the original.

    ``network`` is the converted deep copy; :meth:`reprogram` starts a new Monte-Carlo
    trial; :meth:`counters` gives the hardware counts per layer.
    """

    def __init__(self, network: nn.Module, config: CrossbarConfig,
                 layers: dict[str, AnalogLayer]) -> None:
        super().__init__()
        self.network = network
        self.config = config
        self._layer_names = list(layers)
        self.trial = 0
        self.seed = config.seed

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)

    def analog_layers(self) -> list[tuple[str, AnalogLayer]]:
        """(name, layer) of every analog layer (names as in the original), in the order
        :func:`~explorer.swap.swap_modules` converted them, which is also the order
        :meth:`reprogram` draws them in."""
        modules = dict(self.network.named_modules())
        return [(name, modules[name]) for name in self._layer_names]  # type: ignore[misc]

    @property
    def mappings(self) -> dict[str, MappingResult]:
        """The noise-free mapping of every layer, by name."""
        return {name: layer.mapping for name, layer in self.analog_layers()}

    def reprogram(self, trial: int = 0, seed: int | None = None) -> None:
        """Program the cells for Monte-Carlo ``trial`` (new variation/fault draw, no re-mapping).

        Seeds come from :func:`trial_seed` (``seed`` defaults to the config's): the same
        (seed, trial) gives the same conductances and the same read-noise sequence.
        """
        if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
            raise InputError(f"trial: must be an integer >= 0, got {trial!r}")
        seed = self.config.seed if seed is None else seed
        where = self._where()
        nonideal = self.config.nonidealities()
        prog = torch.Generator(device=where).manual_seed(trial_seed(seed, trial, 0)) \
            if nonideal.draws_programming(self.config.device) else None
        read = torch.Generator(device=where).manual_seed(trial_seed(seed, trial, 1))
        drift = torch.Generator(device=where).manual_seed(trial_seed(seed, trial, 2))
        adc = torch.Generator(device=where).manual_seed(trial_seed(seed, trial, 3))
        for _, layer in self.analog_layers():
            if layer.physics is not None:
                layer.physics.generator = drift
            layer.program(prog)
            layer.start_reads(read)
            layer.draw_converters(adc, self.config)
        self.trial, self.seed = trial, seed

    def set_time(self, time_s: float) -> None:
        """Evolve this trial's programmed cells to ``time_s`` seconds after programming
        (same programming and drift draws; no re-mapping, no new draw)."""
        from explorer.drift import check_time

        time_s = check_time(time_s)
        for _, layer in self.analog_layers():
            if layer.physics is not None:
                layer.g_pos, layer.g_neg = layer.physics.evolve(layer, time_s)
                layer._install(layer.g_pos, layer.g_neg)
                if layer.read_generator is not None:  # read noise of the drifted cells
                    layer.start_reads(layer.read_generator)

    @property
    def input_planes(self) -> int:
        """Largest number of input planes of a layer (bit-planes × signed passes): one
        forward pass of B images holds up to B × input_planes rows of activations."""
        return max((layer.planes for _, layer in self.analog_layers()), default=1)

    def _where(self) -> torch.device:
        for _, layer in self.analog_layers():
            return layer.weight.device
        return torch.device("cpu")

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> CrossbarModel:
        """Moving the model (``.to(device)``) moves the conductances (buffers) and
        re-seeds the trial on the new device: the same (seed, trial) as before the move."""
        before = self._where()
        super()._apply(fn, *args, **kwargs)
        if self._where() != before:
            self.reprogram(self.trial, self.seed)
        return self

    def extra_repr(self) -> str:
        return f"trial={self.trial}, seed={self.seed}"

    def counters(self) -> dict[str, Any]:
        """Hardware counts per layer and their totals (tiles, cells, ADC conversions and DAC
        cycles per image); per-image counts come from the calibration batch's shape."""
        layers = {name: layer.counters() for name, layer in self.analog_layers()}
        for name, layer in self.analog_layers():
            layers[name]["program_pulses"] = layer.program_pulses
        keys = ("tiles", "cells", "adc_conversions", "dac_cycles", "row_activations",
                "shift_adds", "program_pulses")
        total = {key: int(sum(c[key] for c in layers.values())) for key in keys}
        return {"layers": layers, "total": total}


def to_crossbar(model: nn.Module, cfg: CrossbarConfig, calibration: Tensor | None = None,
                trial: int = 0, codebooks: dict[str, Tensor] | None = None,
                only: Collection[str] | None = None) -> CrossbarModel:
    """The crossbar counterpart of ``model`` (which is left unchanged), in eval mode.

    ``calibration``: float images [N, C, H, W] (a few hundred) for the DAC/ADC ranges;
    needed unless both converters are ideal (``dac_bits`` and ``adc_bits`` None).
    ``trial``: the Monte-Carlo trial programmed first (see :meth:`CrossbarModel.reprogram`).
    ``codebooks``: per layer name, the weight values a ``generalized`` mapping writes
    instead of its own Lloyd-Max codebook (e.g. learned by ``gq``; used only when
    ``cfg.mapping`` is ``generalized``). ``only``: the names of the layers put on crossbars
    (default: every layer :func:`explorer.coverage.analog_children` finds); the others
    stay digital (float), e.g. for one layer's sensitivity.
    """
    if not isinstance(cfg, CrossbarConfig):
        raise InputError(f"cfg: expected a CrossbarConfig, got {type(cfg).__name__}")
    if not isinstance(model, nn.Module):
        raise InputError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    cfg.validate()
    settings = cfg.tile_settings()
    nonideal = cfg.nonidealities()
    needs_ranges = cfg.dac_bits is not None or cfg.adc_bits is not None
    if needs_ranges and calibration is None:
        raise InputError("calibration: images are needed to set the DAC/ADC ranges "
                         "(dac_bits/adc_bits are not None); pass calibration=images")
    if cfg.out_noise and calibration is None:
        raise InputError("calibration: out_noise is a fraction of the full-scale partial sum, "
                         "which needs the input range; pass calibration=images")
    books = codebooks if codebooks is not None and cfg.mapping == "generalized" else {}
    network = copy.deepcopy(model).eval()

    candidates = analog_children(network)  # called as layers (not read by their parent)
    selected = {id(child) for *_, child in candidates}

    def analog_layer(name: str, child: nn.Module) -> AnalogLayer | None:
        if only is not None and name not in only:
            return None
        codebook = books.get(name)
        weight: Tensor = child.weight  # type: ignore[assignment]
        if getattr(child, "groups", 1) > 1 and (cfg.weight_slices > 1 or
                                                cfg.adc_input == "per_column"):
            raise InputError(f"{name}: a grouped convolution (groups={child.groups}) with "
                             "adc_input='per_column' or weight_slices > 1 is not modelled; "
                             "use adc_input='differential' and weight_slices=1")
        if cfg.weight_slices > 1:
            mapped: MappingResult = slice_weights(
                weight, cfg.device, cfg.weight_slices, cfg.bits_per_cell, cfg.weight_bits,
                method=cfg.mapping, scheme=cfg.scheme)
        else:
            mapped = map_weights(weight.detach(), cfg.device, method=cfg.mapping,
                                 scheme=cfg.scheme, scale=cfg.scale,
                                 codebook=None if codebook is None else
                                 codebook.to(weight.device),
                                 snap=cfg.snap_codebook and cfg.mapping == "generalized")
        kind = next(kind for base, kind in _ANALOG_KINDS.items() if isinstance(child, base))
        layer = kind.from_layer(child, settings, weight=mapped.w_hat, name=name)  # type: ignore[arg-type]
        layer._attach(mapped, nonideal, cfg.device)
        if TimeWires.needed(cfg):
            layer.physics = TimeWires(cfg, layer)
        return layer

    layers: dict[str, AnalogLayer] = swap_modules(
        network, lambda module: id(module) in selected, analog_layer)
    if only is not None and set(only) - set(layers):
        unknown = sorted(set(only) - set(layers))
        raise InputError(f"only: {unknown} are not crossbar layers of this network; "
                         f"layers: {[name for name, *_ in candidates]}")
    analog = CrossbarModel(network, cfg, layers).eval()
    if calibration is not None:
        calibrate(analog, calibration)
    analog.reprogram(trial)
    return analog


@torch.no_grad()
def calibrate(analog: CrossbarModel, images: Tensor) -> None:
    """Set every layer's DAC and ADC ranges from ``images`` with the noise-free mapped weights.

    Layers calibrate in forward order on the outputs of the already calibrated ones.
    """
    if not isinstance(images, Tensor) or images.dim() < 2 or not images.is_floating_point():
        raise InputError("calibration: expected a float tensor of images [N, C, H, W]")
    if images.shape[0] < 1:
        raise InputError("calibration: needs at least one image")
    layers = [layer for _, layer in analog.analog_layers()]
    for layer in layers:
        layer.install_nominal()
        layer.calibrating = True
    try:
        analog(images.to(analog._where()))
    finally:
        for layer in layers:
            layer.calibrating = False
    missing = [layer.name for layer in layers if not layer.calibrated]
    if missing:
        raise InputError(f"calibration: layers {missing} were not reached by the forward pass")
    analog.reprogram(analog.trial, analog.seed)


__all__ = ["AnalogConv1d", "AnalogConv2d", "AnalogLinear", "CrossbarConfig", "CrossbarModel",
           "TiledLayer", "calibrate", "to_crossbar", "trial_seed"]
