import math

import pytest
import torch

from flowtutor import gaussian as G

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
    with pytest.raises(ValueError, match="S1 must be"):
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
