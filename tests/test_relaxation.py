"""The relaxed-quantization kernels (explorer.relaxation): formulas, gradients, noise,
and the compiled kernels against the plain ones."""

from __future__ import annotations

import logging

import pytest
import torch

from explorer import fused as kernels
from explorer import relaxation
from explorer.relaxation import RelaxedSample, SoftRoundSample, counter_uniform

GRIDS = [(0, 15, 0.0), (-7, 7, 0.0), (0, 3, -1.5), (0, 1, -0.5)]  # DAC, ADC, weights, 1-bit


def _sample(x, key, step, s, temperature, grid, fused=False, kind=RelaxedSample):
    kmin, kmax, origin = grid
    return kind.apply(x, key, step, s, temperature, origin, kmin, kmax, fused)


@pytest.mark.parametrize("kind", [RelaxedSample, SoftRoundSample])
@pytest.mark.parametrize("grid", GRIDS)
def test_backward_matches_finite_differences(grid, kind):
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(60, generator=gen, dtype=torch.float64) * 5).requires_grad_()
    step = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    inv_sigma = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    key = torch.tensor(99)

    def sample(x, step, inv_sigma):
        return _sample(x, key, step, inv_sigma, 0.7, grid, kind=kind)

    assert torch.autograd.gradcheck(sample, (x, step, inv_sigma), eps=1e-6, atol=1e-5)


def test_sample_equals_the_cell_probability_formula():
    """z = Sig((log p1 − log p0 + L)/T) with the cells' probabilities from the logistic
    CDF (open end cells) and L = logit of the uniform noise."""
    x = torch.linspace(-3, 14, 2000, dtype=torch.float64)
    step, s = torch.tensor(1.0, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64)
    p = torch.rand(len(x), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    settings = torch.tensor([1 / 0.7, 0.0, 0, 10], dtype=torch.float64)
    value, _ = relaxation.relaxed_forward(x, p, step, s, settings)
    f = x.floor().clamp(0, 9)
    sig = torch.sigmoid
    lower = torch.where(f <= 0, 0.0, sig((f - 0.5 - x) * s))
    middle = sig((f + 0.5 - x) * s)
    upper = torch.where(f >= 9, 1.0, sig((f + 1.5 - x) * s))
    log_odds = torch.log(upper - middle) - torch.log(middle - lower)
    noise = torch.log(p / (1 - p))
    torch.testing.assert_close(value, f + sig((log_odds + noise) / 0.7), rtol=0, atol=1e-9)


def test_the_key_fixes_the_sample_and_another_key_changes_it():
    x = torch.linspace(-8, 8, 1001)
    args = (torch.tensor(0.5), torch.tensor(3.0), 1.0, (-7, 7, 0.0))
    for fused in (False, True):
        first = _sample(x, torch.tensor(11), *args, fused=fused)
        assert torch.equal(first, _sample(x, torch.tensor(11), *args, fused=fused))
        assert not torch.equal(first, _sample(x, torch.tensor(12), *args, fused=fused))


def test_far_outside_the_grid_the_sample_saturates_without_nan():
    x = torch.tensor([-1e6, -50.0, 50.0, 1e6], requires_grad=True)
    step, s = torch.tensor(1.0, requires_grad=True), torch.tensor(40.0, requires_grad=True)
    value = _sample(x, torch.tensor(5), step, s, 0.1, (-7, 7, 0.0))
    value.sum().backward()
    torch.testing.assert_close(value.detach(), torch.tensor([-7.0, -7.0, 7.0, 7.0]))
    assert all(torch.isfinite(t.grad).all() for t in (x, step, s))


def test_counter_uniform_is_uniform_independent_and_reproducible():
    u = counter_uniform(torch.tensor(7), 200_000)
    assert float(u.min()) > 0 and float(u.max()) < 1
    counts = torch.histc(u, bins=20, min=0, max=1)
    expected = len(u) / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.8  # χ² with 19 degrees of freedom, p = 0.001
    lagged = torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1]
    other = torch.corrcoef(torch.stack([u, counter_uniform(torch.tensor(8), len(u))]))[0, 1]
    assert abs(float(lagged)) < 0.01 and abs(float(other)) < 0.01
    assert torch.equal(u[:1000], counter_uniform(torch.tensor(7), 1000))


def _kernel_inputs(grid, seed):
    """A flat input, an output gradient, step, s and settings for the kernel functions."""
    kmin, kmax, origin = grid
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(50_000, generator=gen) * 4
    grad = torch.randn(50_000, generator=gen)
    return x, grad, torch.tensor(0.45), torch.tensor(3.0), torch.tensor([1 / 0.3, origin,
                                                                          kmin, kmax])


@pytest.mark.parametrize("grid", GRIDS)
def test_compiled_kernels_agree_with_the_plain_ones(grid):
    """Same inputs, same outputs, for both relaxations: the compiled forward (noise from
    the key, inside the kernel) against the plain one given the key's counter-based
    numbers, and the compiled backward against the plain one."""
    if not relaxation.fused_active():
        pytest.skip("torch.compile is not available here (EXPLORER_COMPILE=0 or it failed)")
    x, grad, step, s, settings = _kernel_inputs(grid, 1)
    key = torch.tensor(4242)
    noise = counter_uniform(key, len(x))
    run = relaxation._run
    gumbel = run("forward", relaxation.relaxed_forward, True, x, key, step, s, settings)
    expected = relaxation.relaxed_forward(x, noise, step, s, settings)
    z = expected[1]
    pairs = [*zip(gumbel, expected, strict=True),
             *zip(run("backward", relaxation.relaxed_backward, True, grad, x, z, step, s,
                      settings),
                  relaxation.relaxed_backward(grad, x, z, step, s, settings), strict=True),
             (run("soft_forward", relaxation.soft_round_forward, True, x, key, step, s,
                  settings),
              relaxation.soft_round_forward(x, noise, step, s, settings)),
             *zip(run("soft_backward", relaxation.soft_round_backward, True, grad, x, key,
                      step, s, settings),
                  relaxation.soft_round_backward(grad, x, noise, step, s, settings),
                  strict=True)]
    assert relaxation.fused_active(), "the compiled kernels failed and fell back"
    for got, want in pairs:
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("temperature", [1.0, 0.3, 0.1])
def test_soft_round_gradient_is_unbiased_and_the_gumbel_one_is_not(temperature):
    """Across values spread over many cells the pathwise gradient of the soft rounding
    averages the slope 1 (the sample is continuous); the two-point Gumbel-softmax's
    misses the jumps at the grid points and averages about half of it."""
    x = (torch.rand(100_000, generator=torch.Generator().manual_seed(4)) * 200 + 20)
    means = {}
    for kind in (SoftRoundSample, RelaxedSample):
        value = x.clone().requires_grad_()
        _sample(value, torch.tensor(3), torch.tensor(1.0), torch.tensor(3.0), temperature,
                (0, 255, 0.0), kind=kind).sum().backward()
        means[kind] = float(value.grad.mean())
    assert means[SoftRoundSample] == pytest.approx(1.0, abs=0.01)
    assert 0.3 < means[RelaxedSample] < 0.7


def test_uniform_noise_never_reaches_0_or_1_in_float32():
    top = counter_uniform(torch.tensor(0), 1).new_tensor([(2**23 - 0.5) / 2**23])
    assert float(1 - top) > 0
    assert bool(torch.isfinite(torch.log(top / (1 - top))))
    drawn = relaxation._uniform(torch.tensor([0.0, 1.0, 0.5]), torch.zeros(3))
    assert bool(torch.isfinite(torch.log(drawn / (1 - drawn))).all())


def test_a_failing_compiler_falls_back_to_the_plain_kernels(monkeypatch, caplog):
    def broken(function, **_):
        def run(*args):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(kernels, "_compiled", {})
    monkeypatch.setattr(kernels, "_failed", set())
    monkeypatch.setattr(torch, "compile", broken)
    x = torch.linspace(-5, 5, 101)
    args = (torch.tensor(3), torch.tensor(0.5), torch.tensor(3.0), 0.5, (-7, 7, 0.0))
    with caplog.at_level(logging.WARNING, logger="explorer.fused"):
        value = _sample(x, *args, fused=True)
    assert "torch.compile failed" in caplog.text and not relaxation.fused_active()
    torch.testing.assert_close(value, _sample(x, *args, fused=False), rtol=0, atol=0)
    assert torch.isfinite(value).all() and value.min() >= -3.5 and value.max() <= 3.5


def test_compiling_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("EXPLORER_COMPILE", "0")
    assert not relaxation.compile_enabled() and not relaxation.fused_active()
    monkeypatch.setenv("EXPLORER_COMPILE", "auto")
    assert relaxation.compile_enabled()
