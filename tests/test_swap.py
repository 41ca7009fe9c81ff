"""swap_modules: the one walk that converts layers (names, order, what is walked)."""

from __future__ import annotations

import pytest
from torch import nn

from explorer.swap import swap_modules


class _Net(nn.Module):
    """Root with a container before a direct Linear child: ``a = [Linear, ReLU, [Linear]]``,
    ``b = Linear``."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Sequential(nn.Linear(2, 2)))
        self.b = nn.Linear(2, 2)


def _marker(name: str, module: nn.Module) -> nn.Module:
    out = nn.Identity()
    out.origin = (name, module)  # type: ignore[assignment]
    return out


def test_names_and_order_parents_first_then_their_children():
    net = _Net()
    originals = {"b": net.b, "a.0": net.a[0], "a.2.0": net.a[2][0]}
    swapped = swap_modules(net, nn.Linear, _marker)
    # a parent's own children come before those of its child containers
    assert list(swapped) == ["b", "a.0", "a.2.0"]
    modules = dict(net.named_modules())
    for name, new in swapped.items():
        assert modules[name] is new
        assert new.origin == (name, originals[name])
    assert not any(isinstance(m, nn.Linear) for m in net.modules())


def test_types_tuple_and_predicate_select_the_same_way():
    by_types = swap_modules(_Net(), (nn.Linear, nn.ReLU), _marker)
    by_predicate = swap_modules(_Net(), lambda m: isinstance(m, (nn.Linear, nn.ReLU)), _marker)
    assert list(by_types) == list(by_predicate) == ["b", "a.0", "a.1", "a.2.0"]


def test_build_returning_none_keeps_the_module_and_walks_into_it():
    net = _Net()
    inner = net.a[2]

    def build(name: str, module: nn.Module) -> nn.Module | None:
        return None if isinstance(module, nn.Sequential) else _marker(name, module)

    swapped = swap_modules(net, lambda m: isinstance(m, (nn.Sequential, nn.Linear)), build)
    assert list(swapped) == ["b", "a.0", "a.2.0"]
    assert net.a[2] is inner and isinstance(inner[0], nn.Identity)


def test_a_replacement_is_not_walked_into_and_the_root_is_never_replaced():
    calls = []

    def wrap(name: str, module: nn.Module) -> nn.Module:
        calls.append(name)
        return nn.Sequential(nn.Linear(2, 2))  # holds a Linear again

    net = _Net()
    swapped = swap_modules(net, nn.Linear, wrap)
    assert calls == list(swapped) == ["b", "a.0", "a.2.0"]
    assert isinstance(net.b[0], nn.Linear)
    lone = nn.Linear(2, 2)
    assert swap_modules(lone, nn.Linear, wrap) == {}


def test_a_shared_container_is_walked_once_under_its_first_name():
    shared = nn.Sequential(nn.Linear(2, 2))
    net = nn.Module()
    net.first, net.second = shared, shared
    swapped = swap_modules(net, nn.Linear, _marker)
    assert list(swapped) == ["first.0"]
    assert net.second[0] is swapped["first.0"]


def test_which_must_be_types_or_a_predicate():
    with pytest.raises(TypeError, match="which"):
        swap_modules(_Net(), "Linear", _marker)  # type: ignore[arg-type]
