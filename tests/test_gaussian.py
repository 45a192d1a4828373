import math

import pytest
import torch

from flowtutor import gaussian as G
from flowtutor.matching import CondOTPath, LinearPath, VPPath

D = dict(dtype=torch.float64)


def _pair(gen):
    l0, l1 = torch.randn(3, 3, generator=gen, **D), torch.randn(3, 3, generator=gen, **D)
    return (torch.randn(3, generator=gen, **D), l0 @ l0.T + 0.5 * torch.eye(3, **D),
            torch.randn(3, generator=gen, **D), l1 @ l1.T + 0.5 * torch.eye(3, **D))


def test_w2_commuting_case(gen):
    # diagonal covariances: W2^2 = |dm|^2 + sum (sqrt a - sqrt b)^2
    m0, m1 = torch.zeros(2, **D), torch.tensor([1.0, 2.0], **D)
    s0, s1 = torch.diag(torch.tensor([1.0, 4.0], **D)), torch.diag(torch.tensor([9.0, 1.0], **D))
    assert math.isclose(G.w2_gaussians(m0, s0, m1, s1).item() ** 2, 5 + 4 + 1, rel_tol=1e-12)


def test_brenier_map_pushes_forward_and_is_symmetric(gen):
    m0, s0, m1, s1 = _pair(gen)
    t, a = G.brenier_map_gaussians(m0, s0, m1, s1)
    assert torch.allclose(a, a.T) and bool((torch.linalg.eigvalsh(a) > 0).all())
    assert torch.allclose(a @ s0 @ a, s1, atol=1e-9)
    assert torch.allclose(t(m0[None]), m1[None])
    # cost of the map equals W2^2
    cost = torch.trace((a - torch.eye(3, **D)) @ s0 @ (a - torch.eye(3, **D)).T) + ((m1 - m0) ** 2).sum()
    assert math.isclose(cost.item(), G.w2_gaussians(m0, s0, m1, s1).item() ** 2, rel_tol=1e-9)


def test_displacement_interpolation_is_geodesic(gen):
    m0, s0, m1, s1 = _pair(gen)
    w = G.w2_gaussians(m0, s0, m1, s1).item()
    ma, sa = G.displacement_interpolation_gaussians(0.2, m0, s0, m1, s1)
    mb, sb = G.displacement_interpolation_gaussians(0.7, m0, s0, m1, s1)
    assert math.isclose(G.w2_gaussians(ma, sa, mb, sb).item(), 0.5 * w, rel_tol=1e-7)


def test_kl_and_renyi_against_monte_carlo(gen):
    m0, s0, m1, s1 = _pair(gen)
    p, q = torch.distributions.MultivariateNormal(m0, s0), torch.distributions.MultivariateNormal(m1, s1)
    x = p.sample((200_000,))
    r = p.log_prob(x) - q.log_prob(x)
    assert abs(r.mean() - G.kl_gaussians(m0, s0, m1, s1)) < 5 * r.std() / math.sqrt(len(r))
    alpha = 0.5  # D_a = log E_p[(p/q)^(a-1)] / (a-1)
    mc = torch.log(torch.exp((alpha - 1) * r).mean()) / (alpha - 1)
    assert abs(mc - G.renyi_gaussians(alpha, m0, s0, m1, s1)) < 0.02
    assert abs(G.renyi_gaussians(1 + 1e-5, m0, s0, m1, s1) - G.kl_gaussians(m0, s0, m1, s1)) < 1e-3


def test_linear_flow_and_ou_limits():
    a = torch.tensor([[-1.0]], **D)
    m, s = G.linear_flow_gaussian(a, torch.tensor([2.0], **D), torch.tensor([0.0], **D), torch.tensor([[1.0]], **D), 1.0)
    assert math.isclose(m.item(), 2 * (1 - math.exp(-1)), rel_tol=1e-12)
    assert math.isclose(s.item(), math.exp(-2), rel_tol=1e-12)
    m, s = G.ou_marginal(torch.tensor([3.0, 1.0], **D), 0.1 * torch.eye(2, **D), 50.0)
    assert torch.allclose(m, torch.zeros(2, **D), atol=1e-12) and torch.allclose(s, torch.eye(2, **D))


def test_bad_input():
    e = torch.eye(2, **D)
    with pytest.raises(ValueError, match="s1 must have shape"):
        G.w2_gaussians(torch.zeros(2, **D), e, torch.zeros(2, **D), torch.eye(3, **D))
    with pytest.raises(ValueError, match="alpha must be > 0"):
        G.renyi_gaussians(-1.0, torch.zeros(2, **D), e, torch.zeros(2, **D), e)
    with pytest.raises(ValueError, match="alpha must differ from 1"):
        G.renyi_gaussians(1.0, torch.zeros(2, **D), e, torch.zeros(2, **D), e)
    with pytest.raises(ValueError, match="not positive definite"):
        G.chi2_gaussians(torch.zeros(2, **D), e, torch.zeros(2, **D), 0.2 * e)


def test_ou_velocity_carries_the_ou_marginals(gen):
    from flowtutor import ODEFlow

    m0, s0 = torch.tensor([2.0, -1.0], **D), torch.tensor([[0.3, 0.1], [0.1, 0.2]], **D)
    # the tangent flow of Gaussian marginals is affine: push the mean and two sigma points exactly
    l0 = torch.linalg.cholesky(s0)
    pts = torch.stack([m0, m0 + l0[:, 0], m0 + l0[:, 1]])
    out = ODEFlow(G.ou_velocity(m0, s0), rtol=1e-10, atol=1e-10).push(pts, 0.0, 0.8)
    m, s = G.ou_marginal(m0, s0, 0.8)
    lt = (out[1:] - out[0]).T  # the image of the Cholesky factor
    assert torch.allclose(out[0], m, atol=1e-7) and torch.allclose(lt @ lt.T, s, atol=1e-7)


def test_displacement_velocity_moves_points_to_brenier_image(gen):
    from flowtutor import ODEFlow

    m0, s0, m1, s1 = _pair(gen)
    t, _ = G.brenier_map_gaussians(m0, s0, m1, s1)
    x = torch.distributions.MultivariateNormal(m0, s0).sample((50,))
    y = ODEFlow(G.displacement_velocity_gaussians(m0, s0, m1, s1), rtol=1e-10, atol=1e-10).push(x)
    assert torch.allclose(y, t(x), atol=1e-6)


def _brute_force_u(path, m, S, C, t, x):
    """E[D | x_t = x] from the joint covariance of (x0, x1), one point at a time."""
    d = m.shape[0]
    joint = torch.cat([torch.cat([torch.eye(d, **D), C.T], 1), torch.cat([C, S], 1)])  # Cov of (x0, x1)
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        ti = t[i : i + 1]
        P = torch.cat([path.sigma(ti) * torch.eye(d, **D), path.alpha(ti) * torch.eye(d, **D)], 1)  # x_t = P (x0, x1)
        Q = torch.cat([path.d_sigma(ti) * torch.eye(d, **D), path.d_alpha(ti) * torch.eye(d, **D)], 1)  # D = Q (x0, x1)
        mean = torch.cat([torch.zeros(d, **D), m])
        out[i] = Q @ mean + Q @ joint @ P.T @ torch.linalg.solve(P @ joint @ P.T, x[i] - P @ mean)
    return out


@pytest.mark.parametrize("path", [LinearPath(), CondOTPath(0.05), VPPath()], ids=lambda p: type(p).__name__)
def test_gaussian_path_against_brute_force(path, gen):
    m, L = torch.tensor([1.0, -2.0], **D), torch.tensor([[0.8, 0.0], [0.2, 0.5]], **D)
    S, C = L @ L.T, 0.5 * L
    gp = G.GaussianPath(path, m, S, C)
    x, t = torch.randn(6, 2, generator=gen, **D), torch.rand(6, generator=gen, **D) * 0.98 + 0.01
    assert torch.allclose(gp.velocity(t, x), _brute_force_u(path, m, S, C, t, x), atol=1e-10)
    x0, x1 = gp.sample(200_000, generator=gen)  # the coupled sampler has Cov(x1, x0) = C
    cross = ((x1 - x1.mean(0)).T @ x0) / x0.shape[0]
    assert torch.allclose(cross, C, atol=0.01)
    s = torch.full((x0.shape[0],), 0.4, **D)  # residual = E|D - u_t(x_t)|^2 at one time
    xt, dxt = path.sample(x0, x1, s)
    mc = ((dxt - gp.velocity(s, xt)) ** 2).sum(1)
    assert abs(mc.mean() - gp.residual(torch.tensor(0.4, **D))).item() < 5 * mc.std().item() / math.sqrt(mc.numel())
    score_fd = torch.autograd.functional.jacobian(  # score = grad log N(mean_t, Sigma_t)
        lambda y: torch.distributions.MultivariateNormal(*[a[0] for a in gp.mean_cov(t[:1])]).log_prob(y), x[0])
    assert torch.allclose(gp.score(t[:1], x[:1])[0], score_fd, atol=1e-10)


def test_gaussian_path_with_the_brenier_coupling_is_mccann(gen):
    m, S = torch.tensor([1.0, 0.5], **D), torch.tensor([[2.0, 0.3], [0.3, 0.5]], **D)
    zero, eye = torch.zeros(2, **D), torch.eye(2, **D)
    _, A = G.brenier_map_gaussians(zero, eye, m, S)
    gp = G.GaussianPath(LinearPath(), m, S, A)
    v = G.displacement_velocity_gaussians(zero, eye, m, S)
    x = torch.randn(10, 2, generator=gen, **D)
    for s in (0.0, 0.5, 0.9):
        assert torch.allclose(gp.velocity(torch.tensor(s, **D), x), v(torch.tensor(s, **D), x), atol=1e-10)
        assert gp.residual(torch.tensor(s, **D)).abs().item() < 1e-10


def test_gaussian_path_bad_input():
    S = torch.eye(2, **D)
    with pytest.raises(ValueError, match="cross is too large"):
        G.GaussianPath(LinearPath(), torch.zeros(2, **D), S, 2 * S)
    with pytest.raises(ValueError, match="cross"):
        G.GaussianPath(LinearPath(), torch.zeros(2, **D), S, torch.eye(3, **D))
