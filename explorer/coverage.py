"""Which layers of a network go onto crossbars, and which stay digital (and why).

Analog: ``nn.Conv1d`` and ``nn.Conv2d`` (any stride, padding, dilation and groups; zero
padding) and ``nn.Linear`` – when the layer is called as a layer, i.e. its class keeps
torch's ``forward`` and its parent does not read its weight directly (``nn.MultiheadAttention``
calls ``F.multi_head_attention_forward`` with ``out_proj.weight``; the transformer layers'
fused inference path reads ``linear1``/``linear2`` weights the same way). Every other
module that holds parameters stays digital and is listed with a reason.
"""

from __future__ import annotations

from typing import Any

from torch import nn

ANALOG_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)
_READS_CHILD_WEIGHTS = (nn.MultiheadAttention, nn.TransformerEncoderLayer,
                        nn.TransformerDecoderLayer)

_REASONS: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
    ((nn.MultiheadAttention,), "attention: its input projections (in_proj) are read by "
                               "F.multi_head_attention_forward, not called as layers"),
    ((nn.RNNBase,), "recurrent layer (LSTM/GRU/RNN): not mapped to crossbars here"),
    ((nn.Embedding, nn.EmbeddingBag), "lookup table, not a matrix-vector product"),
    ((nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm),
     "normalisation (per-channel scale and shift), computed digitally"),
    ((nn.modules.conv._ConvTransposeNd,), "transposed convolution: not mapped to crossbars "
                                          "here"),
    ((nn.Conv3d,), "3-D convolution: not mapped to crossbars here"),
    ((nn.PReLU,), "activation parameter, computed digitally"),
)


def digital_reason(module: nn.Module, parent: nn.Module | None = None) -> str | None:
    """Why ``module`` (a child of ``parent``) stays digital, or None if it goes onto a
    crossbar."""
    if isinstance(module, ANALOG_TYPES):
        base = next(t for t in ANALOG_TYPES if isinstance(module, t))
        if isinstance(parent, _READS_CHILD_WEIGHTS):
            return (f"{type(parent).__name__} reads this layer's weight directly (not called "
                    "as a layer)")
        if type(module).forward is not base.forward:
            return f"{type(module).__name__} overrides {base.__name__}.forward"
        if getattr(module, "weight", None) is None:
            return "no weight"
        if base is not nn.Linear and module.padding_mode != "zeros":
            return f"padding_mode {module.padding_mode!r} (only zero padding is mapped)"
        return None
    for types, reason in _REASONS:
        if isinstance(module, types):
            return reason
    return "no crossbar mapping for this layer type"


def analog_children(model: nn.Module) -> list[tuple[str, nn.Module, str, nn.Module]]:
    """``(name, parent, child_name, child)`` of every layer that goes onto a crossbar, in
    module order."""
    found = []
    for parent_name, parent in model.named_modules():
        for child_name, child in parent.named_children():
            if isinstance(child, ANALOG_TYPES) and digital_reason(child, parent) is None:
                name = f"{parent_name}.{child_name}" if parent_name else child_name
                found.append((name, parent, child_name, child))
    return found


def layer_inventory(model: nn.Module) -> dict[str, Any]:
    """What goes onto crossbars: ``analog_layers`` (name, type, weights, bias, shape),
    ``digital_layers`` (name, type, parameters, reason) for every other module holding
    parameters, and ``analog_weight_fraction`` (weights held in crossbar cells ÷ all
    parameters; the analog layers' biases are added digitally and count as digital)."""
    from explorer.crossbar import CrossbarModel
    from explorer.tiles import TiledLayer

    if isinstance(model, CrossbarModel):
        model = model.network
    analog_names = {name for name, *_ in analog_children(model)}
    parents = {}
    for parent_name, parent in model.named_modules():
        for child_name, _child in parent.named_children():
            parents[f"{parent_name}.{child_name}" if parent_name else child_name] = parent
    analog, digital = [], []
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, TiledLayer):  # an already converted network
            weights = int(module.weight.numel())
            bias = 0 if module.bias is None else int(module.bias.numel())
            analog.append({"name": name, "type": type(module).__name__, "weights": weights,
                           "bias": bias, "shape": list(module.weight.shape)})
            total += weights + bias
            continue
        own = sum(p.numel() for p in module.parameters(recurse=False))
        total += own
        if name in analog_names:
            bias = 0 if module.bias is None else int(module.bias.numel())
            analog.append({"name": name, "type": type(module).__name__,
                           "weights": int(module.weight.numel()), "bias": bias,
                           "shape": list(module.weight.shape)})
        elif own:
            digital.append({"name": name or "(model)", "type": type(module).__name__,
                            "parameters": int(own),
                            "reason": digital_reason(module, parents.get(name))})
    analog_weights = sum(a["weights"] for a in analog)
    return {"analog_layers": analog, "digital_layers": digital,
            "analog_weight_fraction": analog_weights / total if total else 0.0}


def digital_warning(inventory: dict[str, Any]) -> str | None:
    """One warning line about the layers that stay digital (None when there are none)."""
    digital = inventory["digital_layers"]
    if not digital:
        return None
    kinds: dict[str, int] = {}
    for layer in digital:
        kinds[layer["type"]] = kinds.get(layer["type"], 0) + 1
    listed = ", ".join(f"{kind} ×{count}" if count > 1 else kind for kind, count in kinds.items())
    params = sum(layer["parameters"] for layer in digital)
    return (f"warning: {len(digital)} layer(s) with {params:,} parameters stay digital "
            f"({listed}); {100 * inventory['analog_weight_fraction']:.2f} % of the parameters "
            "are on crossbars (--json lists them with reasons)")


__all__ = ["ANALOG_TYPES", "analog_children", "digital_reason", "digital_warning",
           "layer_inventory"]
