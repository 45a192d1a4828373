"""Scalar energies and their samplers (chapter 6): closed forms on Gaussian energies."""

from __future__ import annotations

import math

import pytest
import torch

import flowtutor as ft
from flowtutor import energy as E

F64 = torch.float64


def quadratic(m: torch.Tensor, var: float):
    """U(x) = |x - m|^2 / (2 var): the Gibbs law is N(m, var I)."""
    return lambda x: ((x - m) ** 2).sum(1) / (2 * var)


def test_grad_and_laplacian_of_a_quadratic() -> None:
    m, var = torch.tensor([1.0, -2.0, 0.5], dtype=F64), 0.7
    x = torch.randn(20, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    lap, g = E.energy_laplacian(quadratic(m, var), x)
    assert torch.allclose(g, (x - m) / var) and torch.allclose(E.energy_grad(quadratic(m, var), x), g)
    assert torch.allclose(lap, torch.full((20,), 3 / var, dtype=F64))


def test_langevin_has_the_ula_stationary_variance_of_a_gaussian_energy() -> None:
    # x <- x - h (x - m)/v + sqrt(2h) xi has stationary variance v / (1 - h / (2 v)) exactly
    m, var, h = torch.tensor([2.0, -1.0], dtype=F64), 0.5, 0.1
    x0 = torch.zeros(20_000, 2, dtype=F64)
    x = E.sample_energy(quadratic(m, var), x0, h, 300, generator=torch.Generator().manual_seed(1))
    predicted = var / (1 - h / (2 * var))
    assert ((x.mean(0) - m).abs() < 4 * math.sqrt(predicted / 20_000)).all()
    assert abs(x.var(0).mean().item() / predicted - 1) < 0.02


def test_the_deterministic_flow_contracts_onto_the_minimum() -> None:
    m, var, h = torch.tensor([2.0, -1.0], dtype=F64), 0.5, 0.1
    x0 = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    path = E.sample_energy(quadratic(m, var), x0, h, 40, langevin=False, record_every=10)
    assert path.shape == (5, 50, 2)
    for j in range(5):
        assert torch.allclose(path[j] - m, (1 - h / var) ** (10 * j) * (x0 - m))


def test_kl_rate_and_ratio_on_a_gaussian_energy_along_the_deterministic_flow() -> None:
    # U = |x|^2 / 2, rho_0 = N(mu, s^2 I): rho_t = N(e^-t mu, e^-2t s^2 I), KL(rho_t || N(0, I)) in closed form
    d, mu, s2 = 2, torch.tensor([1.5, -0.5], dtype=F64), 2.0

    def kl(t):
        mt, vt = math.exp(-t) * mu, math.exp(-2 * t) * s2
        return 0.5 * (d * vt + (mt**2).sum().item() - d - d * math.log(vt))

    t, dt = 0.4, 1e-5
    x = (math.exp(-t) * (mu + math.sqrt(s2) * torch.randn(400_000, d, dtype=F64,
                                                          generator=torch.Generator().manual_seed(3))))
    lap, grad2 = E.lyapunov_terms(lambda y: (y**2).sum(1) / 2, x)
    rate = (kl(t + dt) - kl(t - dt)) / (2 * dt)
    expected_grad2 = math.exp(-2 * t) * ((mu**2).sum().item() + d * s2)
    assert lap == pytest.approx(d) and grad2 == pytest.approx(expected_grad2, rel=0.01)
    assert lap - grad2 == pytest.approx(rate, abs=0.03)
    # R_t = d / E|x_t|^2 crosses 1 where the KL is smallest
    ts = torch.linspace(0, 3, 3001, dtype=F64)
    ratios = [d / (math.exp(-2 * u) * ((mu**2).sum().item() + d * s2)) for u in ts.tolist()]
    k = E.stopping_step(ratios)
    kls = [kl(u) for u in ts.tolist()]
    assert abs(k - min(range(len(kls)), key=kls.__getitem__)) <= 1


def test_langevin_time() -> None:
    assert E.langevin_time(2.0, 0.01, 0.5) == pytest.approx(math.log(200))
    assert E.langevin_time(0.001, 0.01, 1.0) == 0.0


def test_compositions_and_their_curl() -> None:
    ua = quadratic(torch.tensor([1.0, 0.0], dtype=F64), 1.0)
    ub = quadratic(torch.tensor([-1.0, 2.0], dtype=F64), 0.5)
    x = torch.randn(30, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(E.conjunction(ua, ub)(x), ua(x) + ub(x))
    assert torch.allclose(E.disjunction(ua, ub)(x), -torch.log(torch.exp(-ua(x)) + torch.exp(-ub(x))))
    assert torch.allclose(E.negation(ub, ua, 0.35)(x), ub(x) - 0.35 * ua(x))
    for composed in (E.conjunction(ua, ub), E.disjunction(ua, ub), E.negation(ub, ua)):
        assert E.jacobian_asymmetry(lambda y, c=composed: -E.energy_grad(c, y, create_graph=True), x).max() < 1e-12
    rotation = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    assert torch.allclose(E.jacobian_asymmetry(lambda y: y @ rotation.T, x), torch.full((30,), 2.0, dtype=F64))


def test_ism_loss_of_a_known_energy_and_dsm_training() -> None:
    x = torch.randn(200_000, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    # U = |x|^2/2 on N(0, I): E[|x|^2 / 2 - 2] = -1
    assert E.ism_energy_loss(lambda y: (y**2).sum(1) / 2, x).item() == pytest.approx(-1.0, abs=0.01)
    ft.seed_everything(0)
    m = torch.tensor([1.0, -1.0])
    target = torch.distributions.MultivariateNormal(m, 0.25 * torch.eye(2))
    u = E.EnergyMLP(2, hidden=32, n_layers=2)
    probe = m[None] + torch.tensor([[0.3, 0.0]])
    before = E.energy_grad(u, probe)
    E.fit_energy(u, target.sample, 300, sigma=0.1, progress=False)
    # the smoothed law N(m, (0.25 + 0.01) I) has grad U = (x - m) / 0.26 = (1.15, 0) at the probe
    expected = torch.tensor([[0.3 / 0.26, 0.0]])
    assert (E.energy_grad(u, probe) - expected).norm() < 0.35 < (before - expected).norm()


def test_bad_inputs_are_rejected() -> None:
    u = quadratic(torch.zeros(2, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="step"):
        E.sample_energy(u, torch.zeros(3, 2, dtype=F64), -0.1, 5)
    with pytest.raises(ValueError, match="record_every"):
        E.sample_energy(u, torch.zeros(3, 2, dtype=F64), 0.1, 5, record_every=2)
    with pytest.raises(ValueError, match="energy"):
        E.energy_grad(lambda y: y, torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="step"):  # a step far too large for the energy
        E.sample_energy(lambda y: 1e3 * (y**2).sum(1), torch.ones(3, 2, dtype=F64), 10.0, 100, langevin=False)
    with pytest.raises(ValueError, match="energies"):
        E.conjunction(u)


@pytest.mark.gpu
def test_energy_sampling_stays_on_the_gpu() -> None:
    u = E.EnergyMLP(2, hidden=16, n_layers=2).cuda()
    x = E.sample_energy(u, torch.randn(64, 2, device="cuda"), 0.01, 5)
    trace = E.trace_gradient_flow(u, x, torch.zeros(64, device="cuda"), 0.0, 0.01, 2)
    assert trace.points.device.type == trace.laplacian.device.type == "cuda"
    assert all(s.device.type == "cuda" for s in E.ood_scores(u, x, 0.01, 2))
    lap, g = E.energy_laplacian(u, x)
    assert x.device.type == lap.device.type == g.device.type == "cuda"
    assert E.fit_energy(u, lambda s: torch.randn(*s, 2, device="cuda"), 3, batch=16, progress=False)


def test_traced_gradient_flow_has_the_exact_gaussian_kl_and_ratio() -> None:
    # U = |x|^2 / (2 s2), rho_0 = N(0, v0 I): the Euler steps keep the law N(0, v0 (1 - h/s2)^(2k) I)
    s2, v0, h, k = 0.5, 2.0, 0.05, 20
    law0 = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), v0 * torch.eye(2, dtype=F64))
    x0 = law0.sample((20_000,))
    trace = E.trace_gradient_flow(quadratic(torch.zeros(2, dtype=F64), s2), x0, law0.log_prob(x0),
                                  math.log(2 * math.pi * s2), h, k, record_every=5)
    assert trace.points.shape == (5, 20_000, 2)
    for j, est in enumerate(trace.kl):
        v = v0 * (1 - h / s2) ** (2 * j)
        assert est.within(v / s2 - 1 - math.log(v / s2), 4)
        assert trace.ratio[j].item() == pytest.approx(s2 / v, rel=0.03)
    with pytest.raises(ValueError, match="step"):  # I - h Hess U singular: the map folds
        E.trace_gradient_flow(quadratic(torch.zeros(2, dtype=F64), s2), x0, law0.log_prob(x0), 0.0, s2, 1)


def test_gibbs_grid_of_a_gaussian_energy() -> None:
    grid = ft.pde.Grid2D.square(-6.0, 6.0, 120)
    rho, log_z = E.gibbs_grid(quadratic(torch.tensor([0.5, -0.5], dtype=F64), 0.7), grid)
    assert log_z == pytest.approx(math.log(2 * math.pi * 0.7), abs=1e-6)
    assert (rho.sum() * grid.cell).item() == pytest.approx(1.0)


def test_fokker_planck_2d_decays_a_shifted_gaussian_at_the_exact_rate() -> None:
    # d_t rho = div(rho x / s2) + Laplace rho from N(m, s2 I): KL(rho_t || N(0, s2 I)) = |m|^2 e^{-2t/s2} / (2 s2)
    grid = ft.pde.Grid2D.square(-6.0, 6.0, 96)
    s2, m = 0.5, torch.tensor([1.5, 0.0], dtype=F64)
    target = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), s2 * torch.eye(2, dtype=F64))
    start = torch.distributions.MultivariateNormal(m, s2 * torch.eye(2, dtype=F64))
    q = target.log_prob(grid.points).exp().reshape(96, 96)
    rho = ft.pde.fokker_planck_2d(start.log_prob(grid.points).exp().reshape(96, 96), grid, lambda x: x / s2, 1.0,
                                  [0.0, 0.25, 0.5])
    assert (rho[-1].sum() * grid.cell).item() == pytest.approx((rho[0].sum() * grid.cell).item(), rel=1e-12)
    for t, r in zip((0.0, 0.25, 0.5), rho):
        kl = ft.metrics.kl_grid(r, q, grid.cell).item()
        assert kl == pytest.approx((m**2).sum().item() * math.exp(-2 * t / s2) / (2 * s2), rel=0.03)
    # the log-Sobolev inequality with C = 1/s2 holds with equality along this solution
    fisher = ft.metrics.relative_fisher_grid(rho[1], q, grid.x.dx, grid.y.dx).item()
    assert 2 / s2 * ft.metrics.kl_grid(rho[1], q, grid.cell).item() / fisher == pytest.approx(1.0, abs=0.02)


def test_auroc_against_pairwise_counting() -> None:
    gen = torch.Generator().manual_seed(6)
    a, b = torch.randn(300, generator=gen), torch.randn(200, generator=gen) + 0.5
    brute = (b[None, :] > a[:, None]).double().mean().item()
    assert ft.metrics.auroc(a, b) == pytest.approx(brute)
    assert ft.metrics.auroc(torch.zeros(4), torch.zeros(3)) == pytest.approx(0.5)  # ties count one half


def test_ood_scores_of_a_quadratic_energy() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, -2.0]], dtype=F64)
    s1, s2, s3 = E.ood_scores(quadratic(torch.zeros(2, dtype=F64), 1.0), x, 0.1, 3)
    assert torch.allclose(s1, torch.tensor([0.0, 0.5, 2.0], dtype=F64))
    assert torch.allclose(s2, torch.tensor([0.0, 1.0, 2.0], dtype=F64))
    assert torch.allclose(s3, (1 - 0.9**3) * x.norm(dim=1))


def test_traced_gradient_flow_on_an_anisotropic_rotated_quadratic() -> None:
    # U = x^T A x / 2 with a full A: the Euler map x -> M x, M = I - h A, keeps the law N(0, M S M^T)
    a = torch.tensor([[3.0, 1.2], [1.2, 1.0]], dtype=F64)
    s0, h, k = torch.tensor([[2.0, -0.5], [-0.5, 1.0]], dtype=F64), 0.1, 6
    law0 = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), s0)
    x0 = law0.sample((40_000,))
    log_z = math.log(2 * math.pi) - 0.5 * torch.logdet(a).item()
    trace = E.trace_gradient_flow(lambda x: 0.5 * ((x @ a) * x).sum(1), x0, law0.log_prob(x0), log_z, h, k)
    target = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), torch.linalg.inv(a))
    m, s = torch.eye(2, dtype=F64) - h * a, s0
    for j in range(k + 1):
        exact = torch.distributions.kl_divergence(torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), s),
                                                  target).item()
        assert trace.kl[j].within(exact, 4)
        assert trace.laplacian[j].item() == pytest.approx(torch.trace(a).item())
        s = m @ s @ m.T
