"""``generalized`` with its codebook snapped to the device's reachable levels (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.mapping import map_weights


def _reachable(levels: int, nl: float, scheme: str) -> np.ndarray:
    """Realisable unit weights written out from DESIGN.md §1–2 (numpy, NeuroSim formula)."""
    from explorer.device import a_of_nl

    p = np.arange(levels) / (levels - 1)
    a = float(a_of_nl(nl))
    d = (1 - np.exp(-p / a)) / (1 - np.exp(-1 / a))
    return 2 * d - 1 if scheme == "offset" else np.concatenate([-d, d])


@pytest.mark.parametrize("scheme", ["offset", "differential"])
def test_snapped_codebook_uses_only_reachable_values(scheme):
    w = torch.randn(64, 50, generator=torch.Generator().manual_seed(0))
    dev = DeviceModel(levels=8, nonlinearity=3.0)
    free = map_weights(w, dev, method="generalized", scheme=scheme)
    snapped = map_weights(w, dev, method="generalized", scheme=scheme, snap=True)
    reachable = _reachable(8, 3.0, scheme) * snapped.w_max
    got = np.unique(snapped.w_hat.numpy())
    assert np.abs(got[:, None] - reachable[None, :]).min(1).max() < 1e-5 * snapped.w_max
    assert snapped.indices is not None and snapped.codebook.numel() <= 8
    # the free codebook ignores the curve; snapping to a strongly nonlinear one costs error
    assert snapped.stats()["rmse"] > 1.1 * free.stats()["rmse"]
    # conductances are the device's levels
    levels = dev.conductances()
    g = snapped.g_pos.double().numpy().ravel()
    assert np.abs(g[:, None] - levels[None, :]).min(1).max() < 1e-6 * levels[-1]


def test_snap_is_for_generalized_only():
    with pytest.raises(InputError, match="snap: only used by method='generalized'"):
        map_weights(torch.ones(3), DeviceModel(), method="min_error", snap=True)
