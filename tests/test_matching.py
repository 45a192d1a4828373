import itertools
import math

import ot
import pytest
import torch

from flowtutor import ODEFlow
import warnings

from flowtutor import gaussian as G
from flowtutor.matching import (CondOTPath, LinearPath, VPPath, cfm_loss, couple, fit_matching, reflow_pairs,
                                resample_pairs, straightness)
from flowtutor.nets import VelocityMLP

D = dict(dtype=torch.float64)
PATHS = [LinearPath(), CondOTPath(0.01), VPPath()]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: type(p).__name__)
def test_time_derivative_matches_finite_differences(path, gen):
    x0, x1 = torch.randn(50, 2, generator=gen, **D), torch.randn(50, 2, generator=gen, **D)
    t = torch.rand(50, generator=gen, **D) * 0.9 + 0.05
    h = 1e-6
    _, dx = path.sample(x0, x1, t)
    fd = (path.sample(x0, x1, t + h)[0] - path.sample(x0, x1, t - h)[0]) / (2 * h)
    assert torch.allclose(dx, fd, atol=1e-6)


def test_endpoints(gen):
    x0, x1 = torch.randn(10, 2, generator=gen, **D), torch.randn(10, 2, generator=gen, **D)
    zero, one = torch.zeros(10, **D), torch.ones(10, **D)
    assert torch.allclose(LinearPath().sample(x0, x1, zero)[0], x0)
    assert torch.allclose(LinearPath().sample(x0, x1, one)[0], x1)
    assert torch.allclose(CondOTPath(0.1).sample(x0, x1, one)[0], x1 + 0.1 * x0)
    vp = VPPath()
    assert torch.allclose(vp.sample(x0, x1, one)[0], x1)
    assert torch.allclose(vp.alpha(zero), torch.tensor(math.exp(-0.5 * (0.1 + 0.5 * 19.9)), **D).expand(10))
    t = torch.rand(10, generator=gen, **D)
    assert torch.allclose(vp.alpha(t) ** 2 + vp.sigma(t) ** 2, one)


def test_consistency_lemma_gaussian_to_gaussian(gen):
    """CFM loss and the marginal FM loss differ by a constant, whatever the candidate field."""
    m, L = torch.tensor([2.0, -1.0], **D), torch.tensor([[0.7, 0.0], [0.3, 0.4]], **D)
    S = L @ L.T
    eye = torch.eye(2, **D)

    def v_star(t, x):  # E[x1 - x0 | x_t = x] for x0 ~ N(0, I), x1 ~ N(m, S), x_t = t x1 + (1 - t) x0
        out = torch.empty_like(x)
        for i in range(x.shape[0]):
            cov = t[i] ** 2 * S + (1 - t[i]) ** 2 * eye
            cross = t[i] * S - (1 - t[i]) * eye
            out[i] = m + cross @ torch.linalg.solve(cov, x[i] - t[i] * m)
        return out

    n = 20_000
    x0 = torch.randn(n, 2, generator=gen, **D)
    x1 = m + torch.randn(n, 2, generator=gen, **D) @ L.T
    t = torch.rand(n, generator=gen, **D)
    xt, dx = LinearPath().sample(x0, x1, t)
    vs = v_star(t, xt)
    diffs = []
    for cand in (lambda t, x: torch.zeros_like(x), lambda t, x: x, v_star, lambda t, x: 2 * v_star(t, x) + 1):
        vx = cand(t, xt)
        cfm = cfm_loss(cand, x0, x1, LinearPath(), t=t)
        assert torch.isclose(cfm, ((vx - dx) ** 2).sum(1).mean())
        diffs.append((cfm - ((vx - vs) ** 2).sum(1).mean()).item())
    constant = ((dx - vs) ** 2).sum(1).mean().item()  # E|dx - v*|^2: the conditional variance
    assert max(abs(d - constant) for d in diffs) < 0.05 * constant


def test_ot_coupling_is_optimal(gen):
    x0, x1 = torch.randn(6, 2, generator=gen, **D), torch.randn(6, 2, generator=gen, **D)
    _, paired = couple(x0, x1, "ot")
    cost = ((x0 - paired) ** 2).sum()
    brute = min(((x0 - x1[list(p)]) ** 2).sum() for p in itertools.permutations(range(6)))
    assert torch.isclose(cost, brute)
    w = torch.full((6,), 1 / 6, **D)
    assert torch.isclose(cost / 6, ot.emd2(w, w, ot.dist(x0, x1)))
    assert torch.equal(couple(x0, x1, "independent")[1], x1)
    x0b, x1b = torch.randn(200, 2, generator=gen, **D), torch.randn(200, 2, generator=gen, **D) + 2
    exact = ((x0b - couple(x0b, x1b, "ot")[1]) ** 2).sum(1).mean()
    sink = ((x0b - couple(x0b, x1b, "sinkhorn", reg=0.01, generator=gen)[1]) ** 2).sum(1).mean()
    indep = ((x0b - x1b) ** 2).sum(1).mean()
    # Sinkhorn pairs are drawn with replacement (not a permutation): close to, not above, the optimum
    assert sink < indep and abs(sink - exact) < 0.1 * exact


def test_reflow_and_straightness(gen):
    x0 = torch.randn(20, 2, generator=gen, **D)
    c = torch.tensor([1.0, -2.0], **D)
    _, x1 = reflow_pairs(lambda t, x: c.expand_as(x), x0)
    assert torch.allclose(x1, x0 + c)
    times = torch.linspace(0, 1, 41, **D)
    straight = ODEFlow(lambda t, x: c.expand_as(x), method="rk4", n_steps=40).trajectory(x0, times)
    assert straightness(straight, times).item() < 1e-20
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], **D)
    curved = ODEFlow(lambda t, x: x @ rot.T, method="rk4", n_steps=40).trajectory(x0, times)
    assert straightness(curved, times).item() > 0.1


def test_sinkhorn_converges_in_float32_without_warnings(gen):
    x0, x1 = torch.randn(256, 2, generator=gen), 4 * torch.randn(256, 2, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # POT warns when Sinkhorn stops before its threshold
        _, paired = couple(x0, x1, "sinkhorn", generator=gen)
    independent = ((x0 - x1) ** 2).sum(1).mean()
    assert ((x0 - paired) ** 2).sum(1).mean() < 0.8 * independent


def test_fit_matching_learns_the_marginal_velocity(gen):
    """A short run on Gaussian -> Gaussian approaches the closed-form u of eq. ch4-gauss-u."""
    torch.manual_seed(0)
    m = torch.tensor([2.0, 0.0], **D)
    v = VelocityMLP(2, hidden=32, n_layers=2).double()
    sample = lambda shape: (torch.randn(*shape, 2, generator=gen, **D), m + 0.5 * torch.randn(*shape, 2, generator=gen, **D))  # noqa: E731
    history = fit_matching(v, sample, 400, coupling="ot", generator=gen, progress=False)
    assert sum(history[-40:]) < 0.5 * sum(history[:40])
    pairs = resample_pairs(*sample((50,)), generator=gen)
    x0, x1 = pairs((8,))
    assert x0.shape == x1.shape == (8, 2)
    z = torch.randn(2000, 2, generator=gen, **D)
    with torch.no_grad():
        x = ODEFlow(v, method="rk4", n_steps=20).push(z)
    assert (x.mean(0) - m).norm() < 0.2 and abs(x.std(0).mean().item() - 0.5) < 0.15


def test_bad_input(gen):
    x = torch.randn(4, 2, **D)
    with pytest.raises(ValueError, match="t must lie in"):
        LinearPath().sample(x, x, torch.full((4,), 1.5, **D))
    with pytest.raises(ValueError, match="t must have shape"):
        LinearPath().sample(x, x, torch.zeros(3, **D))
    with pytest.raises(ValueError, match="same number of points"):
        LinearPath().sample(x, x[:3], torch.zeros(4, **D))
    with pytest.raises(ValueError, match="sigma_min must be < 1"):
        CondOTPath(1.5)
    with pytest.raises(ValueError, match="method must be one of"):
        couple(x, x, "greedy")
    with pytest.raises(ValueError, match="equal batch sizes"):
        couple(x, x[:3], "ot")
    with pytest.raises(ValueError, match="t_max must be > 0"):
        cfm_loss(lambda t, y: y, x, x, LinearPath(), t_max=-1.0)
    with pytest.raises(ValueError, match="coupling must be one of"):
        fit_matching(VelocityMLP(2), lambda n: (x, x), 10, coupling="greedy")
    with pytest.raises(TypeError, match="sample_pairs must be callable"):
        fit_matching(VelocityMLP(2), None, 10)
    with pytest.raises(ValueError, match="same number of pairs"):
        resample_pairs(x, x[:3])


@pytest.mark.gpu
def test_matching_on_cuda():
    x0, x1 = torch.randn(64, 2, device="cuda"), torch.randn(64, 2, device="cuda")
    _, paired = couple(x0, x1, "ot")
    assert paired.device.type == "cuda"
    assert cfm_loss(lambda t, x: x, x0, paired, VPPath(), t_max=0.99).device.type == "cuda"
    v = VelocityMLP(2).cuda()
    history = fit_matching(v, lambda n: (torch.randn(*n, 2, device="cuda"), 3 + torch.randn(*n, 2, device="cuda")), 20,
                           coupling="sinkhorn", progress=False)
    assert len(history) == 20 and next(v.parameters()).device.type == "cuda"
    _, x1 = reflow_pairs(v, x0)
    assert x1.device.type == "cuda"
    gen = torch.Generator("cuda").manual_seed(0)  # the reflow data set draws with the data's generator
    assert all(p.device.type == "cuda" for p in resample_pairs(x0, x1, gen)((8,)))
    with pytest.raises(ValueError, match="a generator must live on the device it draws on"):
        resample_pairs(x0, x1, torch.Generator())
    gp = G.GaussianPath(LinearPath(), torch.zeros(2, device="cuda"), torch.eye(2, device="cuda"))
    assert gp.velocity(torch.tensor(0.5, device="cuda"), x0).device.type == "cuda"
