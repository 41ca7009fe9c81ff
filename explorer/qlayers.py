"""Trainable crossbar layers: a Conv2d/Linear with the quantizers of a training method.

:func:`prepare_model` swaps every Conv2d and Linear of a network for a
:class:`QuantLayer` holding the method's quantizers (:mod:`explorer.quant`):

* ``gq`` / ``uq`` – a codebook on the weights;
* ``rq`` – relaxed quantization of the weights, of the inputs (the DAC, ``dac_bits``)
  and of each row chunk's partial sums (the ADC, ``adc_bits``). The row chunks are the
  simulator's own: the partial sums come from :meth:`explorer.tiles.TiledLayer.partial_sums`
  of a tile engine with the same ``tile_rows``, so training sees exactly the sums the
  crossbar will digitise. Ranges start from the simulator's calibration
  (:meth:`explorer.tiles.TiledLayer.calibrate` on a calibration batch, see
  :func:`calibrate_model`) and are then learned;
* ``hwa`` – the weights mapped onto the device's levels with injected noise.

State-dict keys keep the plain network's names (``conv1.weight`` is the latent weight),
quantizer parameters sit below them (``conv1.weight_quant.codebook``).
:func:`to_plain` gives the ordinary network with the effective (quantized) weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.crossbar import CrossbarConfig
from explorer.errors import InputError
from explorer.quant import (
    CodebookQuantizer,
    DeviceNoiseQuantizer,
    RelaxedQuantizer,
    least_squares_uniform_scale,
)
from explorer.swap import swap_modules
from explorer.tiles import TiledConv2d, TiledLayer, TiledLinear, TileSettings

METHODS = ("float", "gq", "uq", "rq", "hwa")
CODEBOOK_METHODS = ("gq", "uq", "rq")
"""Methods whose weights take one of L learned values per layer (deployed with the
``generalized`` mapping and that codebook)."""
TRAINABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
"""The layer types :func:`prepare_model` swaps for a :class:`QuantLayer`."""


class QuantLayer(nn.Module):
    """A Conv2d or Linear computed with optional weight, input (DAC) and ADC quantizers.

    ``weight``/``bias`` are the original layer's parameters (latent weights). With an
    ADC quantizer the product is computed per row chunk (``tile_rows`` word lines) and
    each chunk's partial sums are quantized before the digital accumulation; the bias
    is added digitally, as on the crossbar.
    """

    def __init__(self, layer: nn.Conv2d | nn.Linear, name: str = "",
                 weight_quant: nn.Module | None = None, input_quant: RelaxedQuantizer | None = None,
                 adc_quant: RelaxedQuantizer | None = None,
                 tiles: TileSettings | None = None) -> None:
        super().__init__()
        if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.padding_mode != "zeros"):
            raise InputError(f"{name or 'layer'}: only ungrouped, zero-padded convolutions "
                             "can be trained for a crossbar")
        self.name = name
        self.weight = layer.weight
        self.bias = layer.bias
        self.weight_quant = weight_quant
        self.input_quant = input_quant
        self.adc_quant = adc_quant
        self.tiles = tiles or TileSettings()
        self.signed_input = False
        self.calibrating = False
        self.bypass = False  # True: the plain layer (float warm-up before quantizing)
        ideal = TileSettings(tile_rows=self.tiles.tile_rows, tile_cols=self.tiles.tile_cols)
        engine_type = TiledConv2d if isinstance(layer, nn.Conv2d) else TiledLinear
        # kept out of the module tree: the spec layer and the engine hold geometry only
        self._spec: tuple[nn.Module, TiledLayer] = (
            layer, engine_type.from_layer(layer, ideal, name=name))  # type: ignore[arg-type]
        self._out_hw: dict[tuple[int, ...], tuple[int, int]] = {}

    @property
    def layer(self) -> nn.Conv2d | nn.Linear:
        """The original layer (stride, padding, … ; shares ``weight`` and ``bias``)."""
        return self._spec[0]  # type: ignore[return-value]

    @property
    def is_conv(self) -> bool:
        return isinstance(self.layer, nn.Conv2d)

    def effective_weight(self) -> Tensor:
        """The weight the forward pass uses (quantized / mapped, noisy in training)."""
        return self.weight if self.weight_quant is None else self.weight_quant(self.weight)

    # -- forward -------------------------------------------------------------------------
    def _full(self, x: Tensor, weight: Tensor) -> Tensor:
        layer = self.layer
        if isinstance(layer, nn.Conv2d):
            return F.conv2d(x, weight, self.bias, layer.stride, layer.padding, layer.dilation)
        return F.linear(x, weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.calibrating:
            return self.calibrate(x)
        if self.bypass:
            return self._full(x, self.weight)
        weight = self.effective_weight()
        if self.input_quant is not None:
            x = self.input_quant(x)
        if self.adc_quant is None:
            return self._full(x, weight)
        engine = self._spec[1]
        engine.signed_input = self.signed_input
        sums, coeffs = engine.partial_sums(x, weight)  # [planes, M, chunks, out]
        sums = self.adc_quant(sums)
        # squeeze, not indexing: a view's backward is a view, an index's a zero-filled copy
        chunks = sums.sum(2) if sums.shape[2] > 1 else sums.squeeze(2)
        out = chunks.squeeze(0) if sums.shape[0] == 1 else torch.tensordot(coeffs, chunks, dims=1)
        if self.bias is not None:
            out = out + self.bias
        if not self.is_conv:
            return out
        h, w = self._output_hw(x)
        return out.view(x.shape[0], h, w, -1).permute(0, 3, 1, 2)

    def _output_hw(self, x: Tensor) -> tuple[int, int]:
        key = tuple(x.shape[1:])
        if key not in self._out_hw:
            probe = torch.zeros((1, *x.shape[1:]), device="meta")
            y = F.conv2d(probe, self.weight.to("meta"), None, self.layer.stride,
                         self.layer.padding, self.layer.dilation)
            self._out_hw[key] = (int(y.shape[2]), int(y.shape[3]))
        return self._out_hw[key]

    # -- calibration ---------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, x: Tensor) -> Tensor:
        """Initial DAC/ADC ranges from a calibration batch, as the simulator sets them.

        A tile engine with this layer's converters and the deterministically quantized
        weight calibrates on ``x``: the DAC range is max |x| (as in the simulator); the
        ADC range starts at the least-squares range of the chunks' partial sums. Returns
        the engine's output, so the next layer calibrates on realistic inputs.
        """
        self.signed_input = bool((x < 0).any())
        weight = self.effective_weight()
        if self.input_quant is None and self.adc_quant is None:
            return self._full(x, weight)
        engine_type = type(self._spec[1])
        engine = engine_type.from_layer(self.layer, self.tiles, weight=weight,  # type: ignore
                                        name=self.name)
        out = engine.calibrate(x)
        if self.input_quant is not None:
            bits = int(self.tiles.dac_bits)  # type: ignore[arg-type]
            fresh = RelaxedQuantizer.for_dac(bits, float(engine.dac_range), self.signed_input)
            self.input_quant.set_extra_state(fresh.get_extra_state())
            self.input_quant.set_range(float(engine.dac_range))
        if self.adc_quant is not None:
            # start from the range with the least squared error on these partial sums
            # (the simulator's max calibration wastes most codes of a few-bit ADC)
            sums, _ = engine.partial_sums(x)
            bits = int(self.tiles.adc_bits)  # type: ignore[arg-type]
            codes = 2 if bits == 1 else 2 * ((1 << (bits - 1)) - 1) + 1
            self.adc_quant.set_range(least_squares_uniform_scale(sums, codes))
        return out

    @torch.no_grad()
    def learned_ranges(self) -> dict[str, float | None]:
        """Learned converter ranges in the simulator's terms: ``dac_range`` (full-scale
        input) and ``adc_range`` (R, the ADC's ±full scale); None where not learned."""
        dac = float(self.input_quant.range()) if self.input_quant is not None else None
        adc = None
        if self.adc_quant is not None:
            adc = float(self.adc_quant.range()) * (2 if self.tiles.adc_bits == 1 else 1)
        return {"dac_range": dac, "adc_range": adc}

    def get_extra_state(self) -> dict[str, Any]:
        return {"signed_input": self.signed_input}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.signed_input = bool(state["signed_input"])


def quant_layers(model: nn.Module) -> list[tuple[str, QuantLayer]]:
    """(name, layer) of every :class:`QuantLayer` in ``model``, in order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantLayer)]


def _weight_quantizer(method: str, weight: Tensor, hw: CrossbarConfig) -> nn.Module | None:
    levels = int(hw.device.levels)
    if method == "gq":
        return CodebookQuantizer(weight, levels)
    if method == "uq":
        return CodebookQuantizer(weight, levels, uniform=True)
    if method == "rq":
        return RelaxedQuantizer.for_weights(levels, least_squares_uniform_scale(weight, levels))
    if method == "hwa":
        return DeviceNoiseQuantizer(hw.device, hw.nonidealities(), mapping=hw.mapping,
                                    scheme=hw.scheme, scale=hw.scale)
    return None


def prepare_model(model: nn.Module, method: str, hw: CrossbarConfig) -> nn.Module:
    """Swap every Conv2d/Linear of ``model`` (in place) for a :class:`QuantLayer` of
    ``method``; ``float`` returns the model unchanged. ``hw`` gives the levels (its
    device's), converters and tiles (``rq``), device and noise (``hwa``)."""
    if method not in METHODS:
        raise InputError(f"method: must be one of {list(METHODS)}, got {method!r}")
    if method == "float":
        return model
    hw.validate()
    if method == "rq" and hw.bit_serial:
        raise InputError("bit_serial: relaxed-quantization training models parallel inputs; "
                         "train without bit-serial inputs")
    tiles = hw.tile_settings() if method == "rq" else None

    def quant_layer(name: str, child: nn.Module) -> QuantLayer:
        input_quant = adc_quant = None
        if method == "rq" and hw.dac_bits is not None:
            input_quant = RelaxedQuantizer.for_dac(int(hw.dac_bits), 1.0)
        if method == "rq" and hw.adc_bits is not None:
            adc_quant = RelaxedQuantizer.for_adc(int(hw.adc_bits), 1.0)
        return QuantLayer(child, name,  # type: ignore[arg-type]
                          _weight_quantizer(method, child.weight, hw),  # type: ignore[arg-type]
                          input_quant, adc_quant, tiles)

    swap_modules(model, TRAINABLE_TYPES, quant_layer)
    return model


def set_bypass(model: nn.Module, bypass: bool) -> None:
    """Switch every :class:`QuantLayer` of ``model`` to its plain float computation
    (``bypass=True``, the warm-up before quantizing) or back to its quantizers."""
    for _, layer in quant_layers(model):
        layer.bypass = bool(bypass)


@torch.no_grad()
def initialise_quantizers(model: nn.Module, images: Tensor) -> None:
    """Start every quantizer afresh from the network as it is now: weight codebooks /
    ranges from the current weights (Lloyd-Max, least-squares scale), converter ranges
    from ``images`` (:func:`calibrate_model`). Used when quantization switches on after
    a float warm-up, which changes the weights the first initialisation saw."""
    for _, layer in quant_layers(model):
        quant = layer.weight_quant
        if isinstance(quant, CodebookQuantizer):
            quant.initialise(layer.weight)
        elif isinstance(quant, RelaxedQuantizer):
            levels = quant.kmax - quant.kmin + 1
            quant.set_range(least_squares_uniform_scale(layer.weight, levels))
    calibrate_model(model, images)


@torch.no_grad()
def calibrate_model(model: nn.Module, images: Tensor) -> None:
    """Initial converter ranges of every layer from ``images`` (layers in forward order,
    each on the outputs of the ones before); eval mode during the pass, restored after."""
    layers = [layer for _, layer in quant_layers(model)]
    if not any(layer.input_quant is not None or layer.adc_quant is not None for layer in layers):
        return
    was_training = model.training
    model.eval()
    for layer in layers:
        layer.calibrating = True
    try:
        model(images)
    finally:
        for layer in layers:
            layer.calibrating = False
        model.train(was_training)


@torch.no_grad()
def to_plain(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with ordinary Conv2d/Linear layers holding the effective
    weights (eval mode: the codebook values of gq/uq/rq), ready for ``state_dict()`` and
    :func:`explorer.crossbar.to_crossbar`. hwa layers keep their latent weights: the
    simulator maps them itself (with the trained-for device, to the same values)."""
    was_training = model.training
    model.eval()
    effective = {name: (layer.weight if isinstance(layer.weight_quant, DeviceNoiseQuantizer)
                        else layer.effective_weight()).detach().clone()
                 for name, layer in quant_layers(model)}
    model.train(was_training)
    plain = copy.deepcopy(model)

    def plain_layer(name: str, child: QuantLayer) -> nn.Module:
        layer = copy.deepcopy(child.layer)
        layer.weight = nn.Parameter(effective[name])
        if child.bias is not None:
            layer.bias = nn.Parameter(child.bias.detach().clone())
        return layer

    swap_modules(plain, QuantLayer, plain_layer)  # type: ignore[arg-type]
    return plain.eval()


def codebooks(model: nn.Module) -> dict[str, Tensor]:
    """Each layer's L weight values (ascending) for the codebook methods, by layer name."""
    out = {}
    for name, layer in quant_layers(model):
        quant = layer.weight_quant
        if isinstance(quant, (CodebookQuantizer, RelaxedQuantizer)):
            out[name] = quant.values().detach().cpu().clone()
    return out
