import math

import numpy as np
import ot
import pytest
import torch

from flowtutor import metrics

D = dict(dtype=torch.float64)


def test_w2_exact_on_permutation_and_shift(gen):
    x = torch.randn(50, 2, generator=gen, **D)
    assert metrics.w2(x, x[torch.randperm(50, generator=gen)]).item() < 1e-7
    shift = torch.tensor([3.0, -4.0], **D)
    assert math.isclose(metrics.w2(x, x + shift).item(), 5.0, rel_tol=1e-9)  # translation is optimal


def test_w2_1d_equals_sorted_coupling(gen):
    x, y = torch.randn(200, 1, generator=gen, **D), 2 * torch.randn(200, 1, generator=gen, **D) + 1
    sorted_cost = ((x.sort(0).values - y.sort(0).values) ** 2).mean().sqrt()
    assert math.isclose(metrics.w2(x, y).item(), sorted_cost.item(), rel_tol=1e-9)


def test_sinkhorn_upper_bounds_exact(gen):
    x, y = torch.randn(100, 2, generator=gen, **D), torch.randn(100, 2, generator=gen, **D) + 1
    exact = metrics.w2(x, y).item()
    sink = metrics.w2(x, y, method="sinkhorn", reg=0.01).item()
    assert exact <= sink + 1e-9 and sink < exact * 1.1


def test_grid_divergences_discrete():
    p, q = torch.tensor([0.2, 0.3, 0.5], **D), torch.tensor([0.4, 0.4, 0.2], **D)
    kl = (p * (p / q).log()).sum()
    assert torch.isclose(metrics.kl_grid(p, q, 1.0), kl)
    assert torch.isclose(metrics.tv_grid(p, q, 1.0), torch.tensor(0.3, **D))
    assert torch.isclose(metrics.chi2_grid(p, q, 1.0), ((p - q) ** 2 / q).sum())
    assert torch.isclose(metrics.hellinger_grid(p, q, 1.0), 1 - (p * q).sqrt().sum())
    assert torch.isclose(metrics.renyi_grid(p, q, 1.0, 2.0), torch.log((p**2 / q).sum()))
    assert metrics.kl_grid(p, torch.tensor([0.5, 0.5, 0.0], **D), 1.0).item() == math.inf


def test_generalised_kl_unequal_mass():
    mu, nu = torch.tensor([1.0, 2.0], **D), torch.tensor([0.5, 0.5], **D)
    m, n = mu.sum(), nu.sum()
    rhs = m * metrics.kl_grid(mu / m, nu / n, 1.0) + m * torch.log(m / n) - m + n
    assert torch.isclose(metrics.kl_grid(mu, nu, 1.0), rhs)


def test_mc_estimates(gen):
    p = torch.distributions.Normal(torch.tensor(0.0, **D), torch.tensor(1.0, **D))
    h = metrics.entropy_mc(p, 100_000)
    assert h.within(0.5 * math.log(2 * math.pi * math.e))
    x = p.sample((50_000,))
    q = torch.distributions.Normal(torch.tensor(1.0, **D), torch.tensor(1.0, **D))
    assert metrics.kl_mc(p.log_prob(x), q.log_prob(x)).within(0.5)
    assert metrics.nll(p.log_prob(x)).within(h.value, slack=0.02)


def test_mmd_separates(gen):
    x, y = torch.randn(300, 2, generator=gen, **D), torch.randn(300, 2, generator=gen, **D)
    assert abs(metrics.mmd(x, y).item()) < 0.01
    assert metrics.mmd(x, y + 1.0).item() > 0.05
    assert metrics.mmd(x, y + 1.0, bandwidth=1.0).item() > 0.05


def test_energy_distance_matches_scipy_in_1d(gen):
    import scipy.stats

    x, y = torch.randn(300, 1, generator=gen, **D), 1.5 * torch.randn(200, 1, generator=gen, **D) + 0.3
    # scipy gives the square root of the V-statistic, whose within-sample means include the zero diagonal
    v = scipy.stats.energy_distance(x[:, 0].numpy(), y[:, 0].numpy()) ** 2
    uxx, uyy = torch.cdist(x, x).sum() / (300 * 299), torch.cdist(y, y).sum() / (200 * 199)
    assert math.isclose(metrics.energy_distance(x, y).item(), v - uxx.item() / 300 - uyy.item() / 200, rel_tol=1e-10)
    same = torch.stack([metrics.energy_distance(torch.randn(50, 2, generator=gen, **D),
                                                torch.randn(50, 2, generator=gen, **D)) for _ in range(400)])
    assert metrics.mean_estimate(same).within(0.0)  # unbiased: mean zero under the null


def test_ratio_estimate_delta_method():
    a, b = torch.tensor([2.0, 4.0, 3.0, 5.0], **D), torch.tensor([1.0, 2.0, 2.0, 3.0], **D)
    est = metrics.ratio_estimate(a, b)
    assert math.isclose(est.value, 14 / 8, rel_tol=1e-12)
    resid = a - 1.75 * b  # 0.25, 0.5, -0.5, -0.25: std sqrt(5/24)
    assert math.isclose(est.stderr, math.sqrt(5 / 24) / (2.0 * 2.0), rel_tol=1e-12)
    assert metrics.ratio_estimate(3 * b, b).stderr < 1e-12  # a proportional to b: no spread in the ratio


def test_w2_ratio_null_mean_and_spread():
    """Under the null (exact samples on both sides) the ratio has mean 1 and the reported standard error matches
    its spread over independent replicates (8-Gaussian ring, R = 8 blocks of n = 100, 200 replicates), which an
    error that ignored the covariance of numerator and denominator would not."""
    from flowtutor import data

    ring = data.eight_gaussians(dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    n, blocks, reps = 100, 8, 200
    values, se, naive = [], [], []
    for _ in range(reps):
        g, t, s = (ring.sample((blocks * n,)) for _ in range(3))
        est = metrics.w2_ratio(g, t, s, n=n)
        a, b = metrics.w2_blocks(g, t, n), metrics.w2_blocks(s, t, n)
        values.append(est.value)
        se.append(est.stderr)
        naive.append(((a.var() + est.value**2 * b.var()) / blocks).sqrt().item() / b.mean().item())
    values, se, naive = (torch.tensor(v, **D) for v in (values, se, naive))
    assert metrics.mean_estimate(values).within(1.0, slack=0.01)  # ratio-of-means bias is O(1/R)
    spread = values.std().item() / se.pow(2).mean().sqrt().item()
    spread_naive = values.std().item() / naive.pow(2).mean().sqrt().item()
    assert 0.85 < spread < 1.15, f"spread of the ratio / its standard error = {spread:.2f}"
    assert spread_naive < spread - 0.05, f"the covariance term changes nothing: {spread_naive:.2f}"
    base = torch.randn(blocks * n, 2, generator=torch.Generator().manual_seed(1), **D)  # N(0, I), a wrong law
    shifted = metrics.w2_ratio(base, *(ring.sample((blocks * n,)) for _ in range(2)), n=n)
    assert shifted.value > 1 + 6 * shifted.stderr, shifted  # measured: 8 errors above 1


def test_w2_blocks_are_independent_draws(gen):
    x, y = torch.randn(300, 2, generator=gen, **D), torch.randn(300, 2, generator=gen, **D)
    blocks = metrics.w2_blocks(x, y, n=100)
    assert blocks.shape == (3,)
    assert math.isclose(blocks[1].item(), metrics.w2(x[100:200], y[100:200]).item(), rel_tol=1e-12)
    with pytest.raises(ValueError, match="R >= 2 blocks of n = 100"):
        metrics.w2_blocks(x[:250], y[:250], n=100)
    with pytest.raises(ValueError, match="same number of points"):
        metrics.w2_ratio(x, y, y[:200], n=100)


def test_loglog_slope():
    h = np.array([0.1, 0.05, 0.025])
    assert math.isclose(metrics.loglog_slope(h, 3 * h**2), 2.0, rel_tol=1e-12)


def test_bad_input():
    x = torch.zeros(5, 2, **D)
    with pytest.raises(ValueError, match="x and y must hold points of the same dimension"):
        metrics.w2(x, torch.zeros(5, 3, **D))
    with pytest.raises(ValueError, match="method must be one of"):
        metrics.w2(x, x, method="sliced")
    with pytest.raises(ValueError, match="reg must be > 0"):
        metrics.w2(x, x + 1, method="sinkhorn", reg=-1.0)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        metrics.mmd(x, x, bandwidth=0.0)
    with pytest.raises(ValueError, match="cell must be > 0"):
        metrics.kl_grid(torch.ones(3, **D), torch.ones(3, **D), -0.1)
    with pytest.raises(ValueError, match="non-negative"):
        metrics.tv_grid(torch.tensor([-1.0, 2.0], **D), torch.ones(2, **D), 1.0)
    with pytest.raises(ValueError, match="log_probs contains NaN"):
        metrics.nll(torch.tensor([0.0, -math.inf], **D))
    with pytest.raises(ValueError, match="x contains NaN"):
        metrics.mmd(torch.full((3, 2), math.nan), torch.zeros(3, 2))


@pytest.mark.gpu
def test_metrics_on_cuda():
    dev = torch.device("cuda")
    x = torch.randn(100, 2, device=dev, dtype=torch.float64)
    y = x + torch.tensor([3.0, 4.0], device=dev, dtype=torch.float64)
    w = metrics.w2(x, y)
    assert w.device.type == "cuda" and math.isclose(w.item(), 5.0, rel_tol=1e-9)
    assert metrics.w2(x, y, method="sinkhorn").device.type == "cuda"
    assert metrics.mmd(x, y).device.type == "cuda"
    assert metrics.energy_distance(x, y).device.type == "cuda"
    assert metrics.w2_blocks(x, y, n=50).device.type == "cuda"
    assert metrics.w2_ratio(y, x, x.flip(0), n=50).value > 1
    p = torch.softmax(torch.randn(10, device=dev), 0)
    assert metrics.kl_grid(p, p, 1.0).abs().item() < 1e-6


def test_reverse_pinsker_bound_holds_and_is_tight_for_two_points() -> None:
    gen = torch.Generator().manual_seed(11)
    for _ in range(200):  # random discrete pairs
        nu = torch.rand(6, generator=gen, dtype=torch.float64) + 0.05
        mu = torch.rand(6, generator=gen, dtype=torch.float64) + 0.05
        nu, mu = nu / nu.sum(), mu / mu.sum()
        kl = (mu * (mu / nu).log()).sum().item()
        tv = 0.5 * (mu - nu).abs().sum().item()
        assert kl <= metrics.reverse_pinsker_bound(tv, (mu / nu).max().item()) + 1e-12
    for m in (1.5, 4.0, 50.0):  # mu = delta_0, nu = (1/M, 1 - 1/M): equality
        assert metrics.reverse_pinsker_bound(1 - 1 / m, m) == pytest.approx(math.log(m))
    assert metrics.reverse_pinsker_bound(0.0, 1.0) == 0.0
