"""Networks a user brings: ``FILE.py:FUNCTION``, ``FILE.pt2`` and ``--weights FILE``.

* ``FILE.py:FUNCTION`` runs ``FILE.py`` and calls ``FUNCTION()``, which must return an
  ``nn.Module``. This executes the user's code: only the CLI and notebooks load such
  models (``allow_code=True``); the dashboard never does.
* ``FILE.pt2`` is a ``torch.export`` program (``torch.export.save``; export the network
  in eval mode, and with a dynamic batch dimension to score batches of other sizes). Its
  :meth:`~torch.export.ExportedProgram.module` is a graph of aten calls, not of layers:
  :func:`layers_from_graph` rebuilds every ``conv1d``/``conv2d``/``linear`` call whose
  weight is a parameter into an ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear`` submodule (same
  name as the parameter's owner, e.g. ``features.0``), so the crossbar can hold it.
* ``--weights FILE``: a state dict (``torch.load(..., weights_only=True)``; a dict with a
  ``state_dict`` entry is accepted too) loaded into the network; a tensor that does not
  fit is named.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from explorer.errors import CheckpointMismatchError, InputError


def is_code_model(name: str) -> bool:
    """Whether ``name`` is ``FILE.py:FUNCTION``."""
    path, sep, func = name.rpartition(":")
    return bool(sep) and path.endswith(".py") and bool(func)


def is_exported_model(name: str) -> bool:
    """Whether ``name`` is a ``torch.export`` file (``.pt2``)."""
    return name.endswith(".pt2")


def is_user_model(name: str) -> bool:
    """A network the user brings (code or an exported program), not a named checkpoint."""
    return is_code_model(name) or is_exported_model(name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def load_code_model(spec: str, allow_code: bool = False) -> nn.Module:
    """The network ``FUNCTION()`` of ``FILE.py`` returns (``spec`` = ``FILE.py:FUNCTION``),
    in eval mode on the CPU. ``allow_code``: must be True (this runs the file)."""
    file_text, _, func_name = spec.rpartition(":")
    if not allow_code:
        raise InputError(f"model: {spec!r} is Python code; code models load only from the "
                         "command line or a notebook (allow_code=True)")
    path = Path(file_text).expanduser()
    if not path.is_file():
        raise InputError(f"model: the model file {file_text!r} does not exist")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"explorer_user_model_{path.stem}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise InputError(f"model: {file_text!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        raise InputError(f"model: running {path.name} failed ({_first_line(exc)})") from None
    finally:
        # Not importable by name afterwards: pickling the network (Dask workers, other
        # processes) then falls back to cloudpickle, which sends the file's classes by value.
        sys.modules.pop(module_name, None)
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        found = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module_name)
        what = "no function" if func is None else "a non-callable"
        raise InputError(f"model: {path.name} has {what} {func_name!r}; functions there: "
                         f"{', '.join(found) or 'none'}")
    try:
        net = func()
    except Exception as exc:
        raise InputError(f"model: {path.name}:{func_name}() failed ({_first_line(exc)})") \
            from None
    if not isinstance(net, nn.Module):
        raise InputError(f"model: {path.name}:{func_name}() returned a {type(net).__name__}, "
                         "not a torch.nn.Module")
    return net.cpu().eval()


def load_exported_model(file: str) -> nn.Module:
    """The network of a ``torch.export`` file with its conv/linear calls as layers."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise InputError(f"model: the exported program {file!r} does not exist")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise InputError(f"model: {path.name} is not a readable torch.export program "
                         f"({_first_line(exc)})") from None
    _check_batch_dimension(program, path.name)
    graph_module = program.module()
    for name in ("train", "eval"):  # torch refuses mode switches on an exported program;
        graph_module.__dict__.pop(name, None)  # they only set flags on the rebuilt layers
    layers_from_graph(graph_module)
    return graph_module.eval()


def _check_batch_dimension(program: Any, name: str) -> None:
    """InputError if the program's first input has a fixed batch size (torch.export
    specialises unmarked dimensions: such a program runs one batch size only)."""
    inputs = [node for node in program.graph.nodes if node.op == "placeholder"
              and node.name in program.graph_signature.user_inputs]
    if not inputs:
        raise InputError(f"model: {name} takes no tensor input")
    value = inputs[0].meta.get("val")
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) and isinstance(shape[0], int):
        raise InputError(
            f"model: {name} was exported for batches of exactly {shape[0]} image(s); export "
            f"it with a dynamic batch dimension, e.g. dynamic_shapes={{{inputs[0].name!r}: "
            "{0: torch.export.Dim('batch')}}")


_CONV = {
    torch.ops.aten.conv1d.default: 1, torch.ops.aten.conv2d.default: 2,
    torch.ops.aten.conv1d.padding: 1, torch.ops.aten.conv2d.padding: 2,
}
_LINEAR = torch.ops.aten.linear.default
_CONVOLUTION = torch.ops.aten.convolution.default


def _arg(node: torch.fx.Node, index: int, name: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _tuple(value: Any, dims: int) -> tuple[int, ...]:
    """An aten int-list argument (an int, or a list of one or ``dims`` ints) as a tuple."""
    values = [value] if isinstance(value, int) else list(value)
    return tuple(values * dims) if len(values) == 1 else tuple(values)


def _layer_for(node: torch.fx.Node, weight: Tensor, bias: Tensor | None) -> nn.Module | None:
    """The nn layer an aten conv/linear call computes, or None if it is not one."""
    target = node.target
    if target == _LINEAR:
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    elif target in _CONV or target == _CONVOLUTION:
        if target == _CONVOLUTION:
            if _arg(node, 6, "transposed", False):
                return None
            dims = weight.dim() - 2
            groups = _arg(node, 8, "groups", 1)
        else:
            dims = _CONV[target]
            groups = _arg(node, 6, "groups", 1)
        if dims not in (1, 2) or weight.dim() != dims + 2:
            return None
        cls = nn.Conv1d if dims == 1 else nn.Conv2d
        padding = _arg(node, 4, "padding", 0)
        layer = cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                    stride=_tuple(_arg(node, 3, "stride", 1), dims),
                    padding=padding if isinstance(padding, str) else _tuple(padding, dims),
                    dilation=_tuple(_arg(node, 5, "dilation", 1), dims), groups=groups,
                    bias=bias is not None)
    else:
        return None
    return layer


def layers_from_graph(gm: torch.fx.GraphModule) -> list[str]:
    """Turn ``gm``'s aten conv1d/conv2d/linear calls into layer submodules, in place.

    A call becomes a layer when its weight (and bias) are parameters of one submodule
    that holds nothing else and that no other node reads; the submodule is replaced by
    the layer (same name, same parameters) and the call by a call of it. Returns the
    names of the rebuilt layers; other calls stay as they are (digital).
    """
    users: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            users[node.target] = users.get(node.target, 0) + len(node.users)
    rebuilt = []
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or not (node.target in _CONV or node.target in
                                              (_LINEAR, _CONVOLUTION)):
            continue
        w_node, b_node = node.args[1], _arg(node, 2, "bias", None)
        if not isinstance(w_node, torch.fx.Node) or w_node.op != "get_attr":
            continue
        if b_node is not None and (not isinstance(b_node, torch.fx.Node)
                                   or b_node.op != "get_attr"):
            continue
        owner, _, w_name = w_node.target.rpartition(".")
        if not owner or w_name != "weight":
            continue
        if b_node is not None and b_node.target != f"{owner}.bias":
            continue
        holder = gm.get_submodule(owner)
        own = {n for n, _ in holder.named_parameters(recurse=False)} | \
            {n for n, _ in holder.named_buffers(recurse=False)}
        if list(holder.children()) or own != ({"weight"} | ({"bias"} if b_node else set())):
            continue
        if users.get(w_node.target, 0) != 1 or (b_node is not None
                                                 and users.get(b_node.target, 0) != 1):
            continue
        weight = holder.weight
        bias = holder.bias if b_node is not None else None
        layer = _layer_for(node, weight, bias)
        if layer is None:
            continue
        layer.weight = weight
        if bias is not None:
            layer.bias = bias
        parent_name, _, child = owner.rpartition(".")
        parent = gm.get_submodule(parent_name) if parent_name else gm
        setattr(parent, child, layer)
        with gm.graph.inserting_before(node):
            call = gm.graph.call_module(owner, (node.args[0],))
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)
        for attr in (w_node, b_node):
            if attr is not None and not attr.users:
                gm.graph.erase_node(attr)
        rebuilt.append(owner)
    gm.graph.lint()
    gm.recompile()
    return rebuilt


def read_weights_file(file: str) -> dict[str, Any]:
    """The dict in a weights file (``torch.load(..., weights_only=True)``): a state dict,
    or a checkpoint with a ``state_dict`` entry (e.g. written by ``explorer train``)."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise InputError(f"weights: the weights file {file!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"weights: {path.name} is not a readable state dict "
                         f"({_first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise InputError(f"weights: {path.name} holds a {type(obj).__name__}, not a state "
                         "dict of tensors")
    return obj


def read_weights(file: str) -> dict[str, Tensor]:
    """The state dict in ``file`` (see :func:`read_weights_file`)."""
    obj = read_weights_file(file)
    if isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not all(isinstance(v, Tensor) for v in obj.values()):
        raise InputError(f"weights: {Path(file).name} is not a state dict of tensors")
    return obj


def load_weights(model: nn.Module, file: str) -> nn.Module:
    """Load the state dict in ``file`` into ``model``; the first tensor that does not fit
    (shape, missing, unexpected) is named."""
    state = read_weights(file)
    own = model.state_dict()
    name = Path(file).name
    for key, tensor in own.items():
        if key not in state:
            raise CheckpointMismatchError(f"weights: {name} has no tensor {key!r} (the "
                                          f"network's {tuple(tensor.shape)})")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointMismatchError(
                f"weights: tensor {key!r} is {tuple(state[key].shape)} in {name} but "
                f"{tuple(tensor.shape)} in the network")
    extra = [k for k in state if k not in own]
    if extra:
        raise CheckpointMismatchError(f"weights: {name} holds tensor {extra[0]!r}, which the "
                                      "network does not have")
    model.load_state_dict(state)
    return model


__all__ = ["is_code_model", "is_exported_model", "is_user_model", "layers_from_graph",
           "load_code_model", "load_exported_model", "load_weights", "read_weights",
           "read_weights_file"]
