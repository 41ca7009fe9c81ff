"""Swap submodules of a network: the one walk behind every layer conversion.

:func:`swap_modules` is to :func:`explorer.crossbar.to_crossbar` and
:func:`explorer.qlayers.prepare_model` / :func:`~explorer.qlayers.to_plain` what
``torch.ao.quantization.convert`` / ``swap_module`` are to quantization: the caller
decides *which* modules are converted (types or a predicate, a parameter, so new layer
types need no new walk) and *how* (``build``); the walk, the qualified names and the
order are decided here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

M = TypeVar("M", bound=nn.Module)

Which = type[nn.Module] | tuple[type[nn.Module], ...] | Callable[[nn.Module], bool]
"""The modules to convert: a module type, a tuple of types (``isinstance``), or a
predicate ``module -> bool``."""


def swap_modules(model: nn.Module, which: Which,
                 build: Callable[[str, nn.Module], M | None]) -> dict[str, M]:
    """Replace (in place) every submodule of ``model`` that ``which`` selects by
    ``build(name, module)`` (None: keep ``module``); returns the replacements by
    qualified name (``"layers.0.conv1"``).

    Order, the order ``build`` is called in and of the returned dict: parents as
    ``model.named_modules()`` lists them, and below each parent its direct children in
    definition order, so a parent's own children come before those of its child
    containers (a ResNet's ``conv1, fc, layers.0.conv1, …``). Callers that draw random
    numbers per layer in this order rely on it staying so.

    ``model`` itself is never replaced. A replacement is not walked into, and neither is
    the module it replaced; a selected module for which ``build`` returns None stays and
    is walked into like any other. A container reachable along several paths is walked
    once, under its first name (as ``named_modules()`` does); a selected module held by
    several parents is replaced at each of them, by separate ``build`` calls.
    """
    selected = _selector(which)
    swapped: dict[str, M] = {}
    seen: set[int] = set()

    def walk(parent: nn.Module, prefix: str) -> None:
        if id(parent) in seen:
            return
        seen.add(id(parent))
        keep = []
        for child_name, child in list(parent.named_children()):
            name = f"{prefix}{child_name}"
            new = build(name, child) if selected(child) else None
            if new is None:
                keep.append((name, child))
                continue
            setattr(parent, child_name, new)
            swapped[name] = new
        for name, child in keep:
            walk(child, f"{name}.")

    walk(model, "")
    return swapped


def _selector(which: Which) -> Callable[[nn.Module], bool]:
    if isinstance(which, type) or (isinstance(which, tuple) and
                                   all(isinstance(t, type) for t in which)):
        return lambda module: isinstance(module, which)
    if callable(which):
        return which
    raise TypeError(f"which: expected a module type, a tuple of types or a predicate, "
                    f"got {which!r}")


__all__ = ["Which", "swap_modules"]
