"""Kac processes: the closed-form law and velocity against independent routes (quadrature, Monte Carlo, the
telegrapher's equation by finite differences, scipy's Bessel functions), the exact samplers, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import torch

from flowtutor import data, kac, metrics, pde
from flowtutor.nets import VelocityMLP

D64 = {"dtype": torch.float64}


def variance(t: float, a: float, c: float) -> float:
    """From E[K'(s) K'(u)] = c^2 exp(-2a|s - u|), not from the density."""
    return c**2 / a * t - c**2 / (2 * a**2) * (1 - math.exp(-2 * a * t))


@pytest.mark.parametrize("a, c, t", [(1.0, 1.0, 1.0), (2.0, 1.5, 1.3), (25.0, 5.0, 0.5), (1600.0, 10.0, 1.0)])
def test_density_and_edge_masses_integrate_to_one_with_the_right_variance(a, c, t) -> None:
    x = torch.linspace(-c * t, c * t, 200_001, **D64)
    rho = kac.kac_density(t, x, a, c)
    atoms = 2 * kac.kac_edge_mass(t, a)
    assert torch.isfinite(rho).all()
    assert abs(torch.trapezoid(rho, x).item() + atoms - 1) < 1e-5
    second = torch.trapezoid(rho * x**2, x).item() + atoms * (c * t) ** 2
    assert abs(second / variance(t, a, c) - 1) < 1e-4


def test_density_and_velocity_match_scipy_bessel_functions() -> None:
    a, c, t = 3.0, 2.0, 0.9
    x = np.linspace(-0.999 * c * t, 0.999 * c * t, 41)
    r = np.sqrt((c * t) ** 2 - x**2)
    z = a / c * r
    rho = a * np.exp(-a * t) / (2 * c) * (scipy.special.i0(z) + c * t * scipy.special.i1(z) / r)
    v = x / (t + r * scipy.special.i0(z) / (c * scipy.special.i1(z)))
    assert np.allclose(kac.kac_density(t, torch.tensor(x), a, c).numpy(), rho, rtol=1e-12)
    assert np.allclose(kac.kac_velocity(t, torch.tensor(x), a, c).numpy(), v, rtol=1e-12)
    assert kac.kac_density(t, torch.tensor([c * t, 1.1 * c * t]), a, c).abs().max() == 0
    assert torch.equal(kac.kac_velocity(t, torch.tensor([c * t, -c * t, 5.0]), a, c), torch.tensor([c, -c, c]))


def test_density_solves_the_telegraph_equation_and_the_continuity_equation() -> None:
    a, c, h = 2.0, 1.5, 1e-3
    t = torch.tensor(1.2, **D64)
    x = torch.linspace(-1.6, 1.6, 17, **D64)
    u = lambda s, y: kac.kac_density(s, y, a, c)
    u_t = (u(t + h, x) - u(t - h, x)) / (2 * h)
    u_tt = (u(t + h, x) - 2 * u(t, x) + u(t - h, x)) / h**2
    u_xx = (u(t, x + h) - 2 * u(t, x) + u(t, x - h)) / h**2
    assert (u_tt + 2 * a * u_t - c**2 * u_xx).abs().max() < 1e-5 * (c**2 * u_xx).abs().max()
    flux = lambda s, y: u(s, y) * kac.kac_velocity(s, y, a, c)
    div = (flux(t, x + h) - flux(t, x - h)) / (2 * h)
    assert (u_t + div).abs().max() < 1e-6


def test_velocity_is_the_conditional_mean_velocity() -> None:
    a, c, t, n = 2.0, 1.0, 1.0, 400_000
    draw = kac.sample_kac(t, (n,), a, c, generator=torch.Generator().manual_seed(0), **D64)
    inside = draw.reversals > 0
    pos, vel = draw.position[inside], draw.velocity[inside]
    bins = torch.bucketize(pos, torch.linspace(-c * t, c * t, 21, **D64)[1:-1])
    for b in range(20):
        sel = bins == b
        if sel.sum() < 500:
            continue
        se = vel[sel].std() / sel.sum().sqrt()
        assert abs(vel[sel].mean() - kac.kac_velocity(t, pos[sel], a, c).mean()) < 4.5 * se
    assert torch.equal(draw.velocity[~inside], torch.sign(draw.position[~inside]) * c)


def test_large_arguments_stay_finite_in_float32() -> None:
    x = torch.linspace(-10.0, 10.0, 2001)
    for t in (0.01, 1.0, 5.0):
        rho = kac.kac_density(t, x * t, 1600.0, 10.0)
        v = kac.kac_velocity(t, x * t, 1600.0, 10.0)
        assert torch.isfinite(rho).all() and torch.isfinite(v).all()
        assert v.abs().max() <= 10.0 and rho.dtype == torch.float32
    x64 = torch.linspace(-9.99, 9.99, 2001, **D64)  # float32 against float64: no cancellation in r or z - at
    rho64 = kac.kac_density(1.0, x64, 1600.0, 10.0)
    keep = rho64 > 1e-30
    assert ((kac.kac_density(1.0, x64.float(), 1600.0, 10.0).double() - rho64)[keep] / rho64[keep]).abs().max() < 1e-4
    centre = torch.tensor([[0.3, 0.1]])  # an edge point in float32 is on the edge only to rounding
    v = kac.kac_marginal_velocity(0.01, centre + torch.tensor([[0.15, 0.0]]), centre, torch.ones(1), 25.0, 15.0)
    assert torch.equal(v, torch.tensor([[15.0, 0.0]]))
    z = torch.tensor(160.0)  # what the unscaled functions do at these arguments
    assert torch.isinf(torch.special.i0(z)) and torch.isfinite(torch.special.i0e(z))


@pytest.mark.parametrize("method", ["beta", "jumps"])
def test_exact_samplers_follow_the_law(method) -> None:
    a, c, t, n = 2.0, 1.0, 1.0, 50_000
    draw = kac.sample_kac(t, (n,), a, c, method=method, generator=torch.Generator().manual_seed(1), **D64)
    edge = (draw.reversals == 0).double().mean().item()
    assert abs(edge - math.exp(-a * t)) < 4 * math.sqrt(math.exp(-a * t) / n)
    x = np.linspace(-c * t, c * t, 20_001)
    inner = scipy.integrate.cumulative_trapezoid(kac.kac_density(t, torch.tensor(x), a, c).numpy(), x, initial=0)
    cdf = lambda y: np.interp(y, x, inner / inner[-1])
    assert scipy.stats.kstest(draw.position[draw.reversals > 0].numpy(), cdf).pvalue > 1e-3
    assert draw.position.abs().max() <= c * t * (1 + 1e-12)
    again = kac.sample_kac(t, (n,), a, c, method=method, generator=torch.Generator().manual_seed(1), **D64)
    assert torch.equal(draw.position, again.position)  # the generator fixes every draw


def test_per_row_times_broadcast() -> None:
    t = torch.tensor([[0.1], [1.0], [3.0]], **D64)
    draw = kac.sample_kac(t, (3, 4), 1.0, 2.0, generator=torch.Generator().manual_seed(2), **D64)
    assert draw.position.shape == (3, 4)
    assert (draw.position.abs() <= 2.0 * t + 1e-12).all()


def test_kac_walk_keeps_speed_and_edge_mass() -> None:
    a, c, t, n_steps = 1.0, 2.0, 1.0, 256
    paths = kac.kac_walk(t, n_steps, 20_000, a, c, d=2, generator=torch.Generator().manual_seed(3), **D64)
    assert paths.shape == (n_steps + 1, 20_000, 2)
    edge = (paths[-1].abs() > c * t * (1 - 1e-9)).double().mean().item()
    exact = (1 - a * t / n_steps) ** (n_steps - 1)
    assert abs(edge - exact) < 4 * math.sqrt(exact / 40_000)


def test_marginal_velocity_against_monte_carlo_and_one_centre() -> None:
    centres = torch.tensor([[0.0, 0.0], [0.8, 0.3], [-0.4, 0.7]], **D64)
    w = torch.tensor([0.5, 0.3, 0.2], **D64)
    a, c, t, n = 4.0, 2.0, 0.4, 400_000
    g = torch.Generator().manual_seed(4)
    k = kac.sample_kac(t, (n, 2), a, c, generator=g, **D64)
    x = centres[torch.multinomial(w, n, replacement=True, generator=g)] + k.position
    keep = (k.reversals > 0).all(1) & (x[:, 0] > 0.2) & (x[:, 0] < 0.6) & (x[:, 1] > 0.1) & (x[:, 1] < 0.5)
    field = kac.kac_marginal_velocity(t, x[keep], centres, w, a, c)
    se = k.velocity[keep].std(0) / math.sqrt(int(keep.sum()))
    assert ((k.velocity[keep].mean(0) - field.mean(0)).abs() < 4.5 * se).all()
    one = kac.kac_marginal_velocity(t, x[keep][:50], centres[:1], w[:1], a, c)
    assert torch.allclose(one, kac.kac_velocity(t, x[keep][:50] - centres[0], a, c))


def test_kac_matching_loss_is_smallest_at_the_marginal_field() -> None:
    centres = torch.tensor([[0.5, 0.0], [-0.5, 0.2]], **D64)
    w = torch.tensor([0.7, 0.3], **D64)
    a, c = 4.0, 2.0
    g = torch.Generator().manual_seed(5)
    x0 = centres[torch.multinomial(w, 20_000, replacement=True, generator=g)]

    def exact(tau, x):  # the minimiser in the book's time: minus the marginal Kac field at t = 1 - tau
        return -kac.kac_marginal_velocity(1 - tau, x, centres, w, a, c)

    def loss(v):
        return kac.kac_matching_loss(v, x0, a, c, generator=torch.Generator().manual_seed(6)).item()

    base = loss(exact)
    worse = [loss(lambda tau, x, s=s: s * exact(tau, x)) for s in (0.9, 1.1)]
    assert min(worse) > base and loss(lambda tau, x: torch.zeros_like(x)) > base


def test_damped_wave_solver_converges_to_the_kac_convolution() -> None:
    a, c, t = 2.0, 1.0, 1.0
    f0 = torch.distributions.Normal(0.3, 0.15)
    nodes, weights = np.polynomial.legendre.leggauss(200)
    y, wy = torch.tensor(nodes * c * t, **D64), torch.tensor(weights * c * t, **D64)
    errors = []
    for n in (400, 800):
        grid = pde.Grid1D(-3.0, 3.0, n)
        x = grid.centers
        exact = kac.kac_edge_mass(t, a) * (f0.log_prob(x - c * t).exp() + f0.log_prob(x + c * t).exp()) + (
            wy * kac.kac_density(t, y, a, c) * f0.log_prob(x[:, None] - y).exp()).sum(1)
        errors.append((pde.damped_wave_1d(f0.log_prob(x).exp(), grid, a, c, t) - exact).abs().max().item())
    assert errors[1] < 1e-4 and 3.5 < errors[0] / errors[1] < 4.5  # second order
    with pytest.raises(ValueError, match="cfl"):
        pde.damped_wave_1d(torch.ones(16, **D64), pde.Grid1D(-1.0, 1.0, 16), a, c, t, cfl=1.5)


def test_mode_recovery_of_the_data_and_of_nothing() -> None:
    target = data.narrow_mode_mixture(std=0.03, generator=torch.Generator().manual_seed(7))
    centres, w = target.component_distribution.loc, target.mixture_distribution.probs
    good = metrics.mode_recovery(target.sample((20_000,)), centres, w, 0.12)
    assert good.weight_error < 0.02 and good.in_mode > 0.999 and abs(good.spread / 0.03 - 1) < 0.05
    bad = metrics.mode_recovery(torch.full((100, 2), 5.0), centres, w, 0.12)
    assert bad.weight_error == 1.0 and bad.in_mode == 0.0 and math.isnan(bad.spread)


@pytest.mark.parametrize("bad", [{"a": 0.0}, {"a": -1.0}, {"c": 0.0}, {"c": -2.0}])
def test_nonpositive_rates_and_speeds_are_rejected(bad) -> None:
    args = {"a": 1.0, "c": 1.0, **bad}
    name = next(iter(bad))
    for call in (lambda: kac.kac_density(0.5, torch.zeros(3), **args),
                 lambda: kac.kac_velocity(0.5, torch.zeros(3), **args),
                 lambda: kac.sample_kac(0.5, (3,), **args)):
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            call()


def test_negative_times_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\bt\b"):
        kac.kac_density(-0.1, torch.zeros(3), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"\bt\b"):
        kac.sample_kac(torch.tensor([0.5, -0.5]), (2,), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"\bt\b"):
        kac.kac_edge_mass(-1.0, 1.0)


def test_fit_kac_lowers_the_loss_on_held_out_draws() -> None:
    torch.manual_seed(0)
    net = VelocityMLP(2, hidden=32, n_layers=2)
    target = data.narrow_mode_mixture(std=0.1, generator=torch.Generator().manual_seed(8))
    x0 = target.sample((20_000,))

    def held_out() -> float:
        with torch.no_grad():
            return kac.kac_matching_loss(net, x0, 4.0, 2.0, generator=torch.Generator().manual_seed(9)).item()

    before = held_out()
    kac.fit_kac(net, target.sample, 400, 4.0, 2.0, progress=False)
    assert held_out() < 0.8 * before


@pytest.mark.gpu
def test_kac_stays_on_the_gpu() -> None:
    device = torch.device("cuda")
    x = torch.linspace(-1, 1, 11, device=device, **D64)
    assert kac.kac_density(0.8, x, 2.0, 1.5).device.type == "cuda"
    assert kac.kac_velocity(torch.tensor(0.8, device=device), x, 2.0, 1.5).device.type == "cuda"
    g = torch.Generator(device=device).manual_seed(0)
    for method in ("beta", "jumps"):
        draw = kac.sample_kac(1.0, (64, 2), 4.0, 2.0, method=method, device=device, generator=g)
        assert draw.position.device.type == "cuda" and draw.position.dtype == torch.float32
    paths = kac.kac_walk(1.0, 8, 4, 2.0, 1.0, d=2, device=device, generator=g)
    assert paths.device.type == "cuda"
    centres = torch.zeros(2, 2, device=device, **D64)
    v = kac.kac_marginal_velocity(0.5, x[:4].reshape(2, 2) * 0.1, centres, torch.ones(2, device=device, **D64),
                                  2.0, 1.0)
    assert v.device.type == "cuda"
    net = VelocityMLP(2, hidden=8, n_layers=1).to(device)
    loss = kac.kac_matching_loss(net, torch.zeros(16, 2, device=device), 4.0, 2.0)
    assert loss.device.type == "cuda"
