"""Non-idealities drawn on programmed conductances: variation, read noise, stuck-at faults.

The knobs are declared once in :class:`explorer.settings.noise.NoiseSettings`;
:class:`NonIdealities` adds the seeded torch draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from explorer.device import DeviceModel, _SelfValidating
from explorer.errors import InputError
from explorer.settings.noise import NoiseSettings


class NonIdealities(NoiseSettings, _SelfValidating):
    """Programming variation, read noise and stuck-at faults, drawn from seeded generators.

    :meth:`program` draws, per cell and per call, one standard normal (variation) and
    one uniform (faults) from the given generator, in that order, whatever the settings,
    so the same seed gives the same variation pattern with and without faults. An
    impossible change (SA0 + SA1 > 1) is undone and raises.
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._validate()
        self.param.watch(self._revert_if_invalid, ["stuck_at_gmin", "stuck_at_gmax"])

    def _validate(self) -> None:
        self.check()

    @property
    def is_ideal(self) -> bool:
        """True when no variation, read noise or fault is set."""
        return not (self.prog_sigma or self.read_sigma or self.stuck_at_gmin
                    or self.stuck_at_gmax)

    def program(self, g: torch.Tensor, device: DeviceModel,
                generator: torch.Generator) -> torch.Tensor:
        """Programmed conductances (S): target ``g`` with variation and stuck-at faults.

        Clipped at ≥ 0 S. ``generator`` must live on ``g``'s device; the same seed gives
        the same result.
        """
        if not isinstance(generator, torch.Generator):
            raise InputError("generator: program() needs a seeded torch.Generator "
                             "(torch.Generator(device).manual_seed(seed))")
        noise = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        u = torch.rand(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        if self.prog_sigma_mode == "relative":
            out = g * (1.0 + self.prog_sigma * noise)
        else:
            out = g + (self.prog_sigma * (device.g_max - device.g_min)) * noise
        sa0, sa1 = self.stuck_at_gmin, self.stuck_at_gmax
        if sa0 or sa1:
            out = torch.where(u < sa0, torch.full_like(out, device.g_min), out)
            out = torch.where((u >= sa0) & (u < sa0 + sa1), torch.full_like(out, device.g_max),
                              out)
        return out.clamp_min(0.0)

    def read(self, g: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conductances seen by one read (S): multiplicative read noise, clipped at ≥ 0 S.

        Returns ``g`` itself when ``read_sigma`` is 0. ``generator=None`` draws from
        torch's default generator (never seeded here).
        """
        if not self.read_sigma:
            return g
        noise = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        return (g * (1.0 + self.read_sigma * noise)).clamp_min(0.0)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (int ≥ 0)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: must be an integer >= 0, got {seed!r}")
    return torch.Generator(device=device).manual_seed(int(seed))

