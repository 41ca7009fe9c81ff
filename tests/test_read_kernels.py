"""The per-read noise kernels: counter-based normals and the fused noise + ADC pass.

References are written here: the hash in numpy uint32 arithmetic, the normal
distribution from scipy, and the ADC as round-and-clip in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from explorer import fused, read_kernels
from explorer.fused import counter_normal, hash32_wrapping


def _numpy_hash(h: np.ndarray) -> np.ndarray:
    """The same two-round xor-shift-multiply hash on uint32 (wrapping products)."""
    h = h.astype(np.uint32)
    with np.errstate(over="ignore"):
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x21F0AAAD)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x735A2D97)
        h ^= h >> np.uint32(15)
    return h


def test_int32_hash_equals_the_uint32_hash_bit_for_bit():
    values = np.random.default_rng(0).integers(0, 2**32, 200_000, dtype=np.uint64)
    values[:4] = [0, 1, 2**31 - 1, 2**32 - 1]
    as_int32 = torch.from_numpy(values.astype(np.uint32).view(np.int32))
    got = hash32_wrapping(as_int32).numpy().view(np.uint32)
    np.testing.assert_array_equal(got, _numpy_hash(values))


def _normals(key: int, n: int) -> np.ndarray:
    index = torch.arange(n, dtype=torch.int32)
    return counter_normal(torch.tensor(key, dtype=torch.int32), index).double().numpy()


def test_counter_normals_are_standard_normal_and_independent():
    n = 1_000_000
    z = _normals(11, n)
    other = _normals(12, n)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    for k in (3.0, 4.0):  # tails within 5 binomial standard errors
        p = 2 * scipy.stats.norm.sf(k)
        assert abs((np.abs(z) > k).mean() - p) < 5 * np.sqrt(p / n)
    limit = 5 / np.sqrt(n)  # neighbours, their squares, and another key: uncorrelated
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < limit
    assert abs(np.corrcoef(z[:-1] ** 2, z[1:] ** 2)[0, 1]) < limit
    assert abs(np.corrcoef(z, other)[0, 1]) < limit
    assert np.abs(z).max() < 5.78  # 23-bit uniforms: |N| ≤ √(−2 ln 2⁻²⁴)


def _reference_codes(sums, variance, out_variance, normals, low, high):
    return np.clip(np.round(sums + np.sqrt(variance + out_variance) * normals), low, high)


@pytest.mark.parametrize("compiled", [True, False])
def test_noise_and_conversion_in_one_pass_equal_round_and_clip(compiled, monkeypatch):
    """The fused pass gives what numpy gives from the same normals: ``clip(round(s +
    √(v + v_out)·N))``; compiled, the normals are the counter numbers of the key drawn
    from the generator, uncompiled they are torch's own draws."""
    if not compiled:
        monkeypatch.setenv("EXPLORER_COMPILE", "0")
    elif not fused.compile_enabled():
        pytest.skip("compiling is switched off")
    gen = torch.Generator().manual_seed(3)
    sums = torch.randn(3, 5, 7, generator=gen) * 20
    variance = torch.rand(3, 5, 7, generator=gen) * 4
    state = torch.Generator().manual_seed(5)
    got = read_kernels.add_read_noise(sums, variance, 0.25, state, codes=(-15.0, 15.0))
    replay = torch.Generator().manual_seed(5)
    key = fused.new_key(replay, "cpu")
    if compiled:
        assert read_kernels.fused_active(), "the compiled kernel failed and fell back"
        normals = counter_normal(key, torch.arange(sums.numel(), dtype=torch.int32))
    else:
        normals = torch.randn(sums.numel(), generator=replay)
    want = _reference_codes(sums.numpy().ravel(), variance.numpy().ravel(), 0.25,
                            normals.numpy(), -15, 15)
    assert got.shape == sums.shape
    # a value within float rounding of a code edge may land on either side
    assert np.abs(got.numpy().ravel() - want).max() <= 1
    assert (got.numpy().ravel() != want).mean() < 0.01
    assert got.abs().max() <= 15 and bool((got == got.round()).all())


def test_each_call_draws_new_noise_with_the_requested_spread():
    gen = torch.Generator().manual_seed(0)
    sums = torch.zeros(200_000)
    variance = torch.full((200_000,), 3.0)
    first = read_kernels.add_read_noise(sums, variance, 1.0, gen)
    second = read_kernels.add_read_noise(sums, variance, 1.0, gen)
    assert not torch.equal(first, second)
    for draw in (first, second):
        assert float(draw.var()) == pytest.approx(4.0, rel=0.02)  # 3 + 1
    only_output = read_kernels.add_read_noise(sums, None, 0.5, gen)
    assert float(only_output.var()) == pytest.approx(0.5, rel=0.02)


def test_a_miscompiled_kernel_is_dropped_and_plain_torch_draws(monkeypatch, caplog):
    """A compiled kernel that disagrees with plain torch on the check input is never
    used: the noise comes from torch's generator, with the requested spread."""
    import logging

    monkeypatch.setattr(fused, "_failed", set())
    monkeypatch.setattr(read_kernels, "_checked", set())
    monkeypatch.setattr(fused, "compiled_kernel",
                        lambda name, function: lambda sums, *_: sums)  # forgets the noise
    gen = torch.Generator().manual_seed(1)
    with caplog.at_level(logging.WARNING, logger="explorer.fused"):
        noisy = read_kernels.add_read_noise(torch.zeros(100_000), torch.full((100_000,), 2.0),
                                            0.0, gen)
    assert "torch.compile failed" in caplog.text and "differs from plain torch" in caplog.text
    assert not read_kernels.fused_active()
    assert float(noisy.var()) == pytest.approx(2.0, rel=0.03)
