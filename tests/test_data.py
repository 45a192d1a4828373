import math

import pytest
import torch

from flowtutor import data
from flowtutor.pde import Grid2D

D = dict(dtype=torch.float64)


def _mass(dist, lo=-8.0, hi=8.0, n=400):
    g = Grid2D.square(lo, hi, n)
    return (dist.log_prob(g.points).exp().sum() * g.cell).item()


@pytest.mark.parametrize("make", [
    lambda g: data.eight_gaussians(**D, generator=g),
    lambda g: data.small_mode_mixture(**D, generator=g),
    lambda g: data.Rings(**D, generator=g),
    lambda g: data.TwoMoons(**D, generator=g),
    lambda g: data.Checkerboard(**D, generator=g),
])
def test_densities_integrate_to_one_and_match_samples(make):
    dist = make(torch.Generator().manual_seed(0))
    assert abs(_mass(dist) - 1) < 3e-3
    # probability of a box: samples vs quadrature of the density
    x = dist.sample((40_000,))
    assert x.shape == (40_000, 2) and x.dtype == torch.float64
    inside = ((x[:, 0] > 0) & (x[:, 0] < 2) & (x[:, 1] > -1) & (x[:, 1] < 3)).double()
    g = Grid2D.square(0.0, 2.0, 200)
    g = Grid2D(g.x, type(g.y)(-1.0, 3.0, 400, **D))
    quad = (dist.log_prob(g.points).exp().sum() * g.cell).item()
    assert abs(inside.mean().item() - quad) < 4 * math.sqrt(quad * (1 - quad) / 40_000) + 2e-3


def test_generator_makes_sampling_reproducible():
    a = data.TwoSpirals(generator=torch.Generator().manual_seed(5)).sample((10,))
    b = data.TwoSpirals(generator=torch.Generator().manual_seed(5)).sample((10,))
    assert torch.equal(a, b)
    a = data.eight_gaussians(generator=torch.Generator().manual_seed(5)).sample((10,))
    b = data.eight_gaussians(generator=torch.Generator().manual_seed(5)).sample((10,))
    assert torch.equal(a, b)


def test_samplers_without_density():
    for dist in (data.Pinwheel(), data.TwoSpirals()):
        assert dist.sample((7,)).shape == (7, 2)
        assert dist.sample().shape == (2,)
        with pytest.raises(NotImplementedError, match="no closed-form density"):
            dist.log_prob(torch.zeros(1, 2))


def test_checkerboard_support():
    cb = data.Checkerboard(**D)
    assert cb.log_prob(torch.tensor([[-3.0, -3.0]], **D)).item() == -math.log(32.0)
    assert cb.log_prob(torch.tensor([[-1.0, -3.0]], **D)).item() == -math.inf
    assert cb.log_prob(torch.tensor([[9.0, 0.0]], **D)).item() == -math.inf


def test_small_mode_weight():
    x = data.small_mode_mixture(0.05, generator=torch.Generator().manual_seed(1)).sample((100_000,))
    frac = (x[:, 1] > 1.5).float().mean().item()
    assert abs(frac - 0.05) < 0.005


def test_bad_input():
    with pytest.raises(ValueError, match="std must be > 0"):
        data.eight_gaussians(std=-1.0)
    with pytest.raises(ValueError, match="noise must be > 0"):
        data.TwoMoons(noise=0.0)
    with pytest.raises(ValueError, match=r"small_weight must lie in \(0, 1\)"):
        data.small_mode_mixture(1.5)
    with pytest.raises(ValueError, match="covariances must have shape"):
        data.GaussianMixture(torch.zeros(2, 2), torch.ones(3, 2, 2))
    with pytest.raises(ValueError, match="x must have last dimension 2"):
        data.Rings().log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="sample_shape"):
        data.Checkerboard().sample((2, 3))
