import math

import pytest
import torch

from flowtutor import metrics, pde
from flowtutor.gaussian import linear_flow_gaussian, ou_marginal


def _gauss(x, m, v):
    return torch.exp(-0.5 * (x - m) ** 2 / v) / math.sqrt(2 * math.pi * v)


def _linear_errors(scheme, sizes=(50, 100, 200)):
    errs = []
    for n in sizes:
        g = pde.Grid1D(-6.0, 6.0, n)
        out = pde.continuity_1d(_gauss(g.centers, 0.0, 1.0), g, lambda t, x: -0.3 * x + 0.5, [0.0, 1.0], scheme=scheme)
        m, s = linear_flow_gaussian(torch.tensor([[-0.3]], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
                                    torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64), 1.0)
        errs.append(((out[-1] - _gauss(g.centers, m.item(), s.item())).abs().sum() * g.dx).item())
    return [12.0 / n for n in sizes], errs


@pytest.mark.parametrize("scheme,order", [("upwind", 1.0), ("muscl", 2.0)])
def test_observed_order(scheme, order):
    h, e = _linear_errors(scheme)
    assert abs(metrics.loglog_slope(h, e) - order) < 0.15


def test_mass_conservation_and_positivity_2d():
    g = pde.Grid2D.square(-4.0, 4.0, 40)
    rho0 = torch.exp(-0.5 * (g.points**2).sum(1) / 0.5).reshape(40, 40) / (2 * math.pi * 0.5)
    rot = lambda t, x: x @ torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64).T  # noqa: E731
    out = pde.continuity_2d(rho0, g, rot, [0.0, 0.5, 1.0])
    assert out.shape == (3, 40, 40)
    masses = out.sum((1, 2)) * g.cell
    assert torch.allclose(masses, masses[0], atol=1e-9)  # nothing reaches the boundary
    assert bool((out >= -1e-12).all())
    # a rotation leaves the isotropic Gaussian unchanged (up to the scheme's error)
    assert (out[-1] - rho0).abs().sum().item() * g.cell < 0.02


def test_fokker_planck_ou():
    g = pde.Grid1D(-7.0, 7.0, 300)
    rho = pde.fokker_planck_1d(_gauss(g.centers, 2.0, 0.3), g, lambda x: x, 1.0, [0.0, 0.5])[-1]
    m, s = ou_marginal(torch.tensor([2.0], dtype=torch.float64), torch.tensor([[0.3]], dtype=torch.float64), 0.5)
    assert (rho - _gauss(g.centers, m.item(), s.item())).abs().sum().item() * g.dx < 2e-3
    assert abs(rho.sum().item() * g.dx - 1) < 1e-12


def test_bad_input():
    g = pde.Grid1D(0.0, 1.0, 10)
    with pytest.raises(ValueError, match="rho0 must have shape \\(10,\\)"):
        pde.continuity_1d(torch.zeros(5, dtype=torch.float64), g, lambda t, x: x, [0.0, 1.0])
    with pytest.raises(ValueError, match="cfl must be > 0"):
        pde.continuity_1d(torch.zeros(10, dtype=torch.float64), g, lambda t, x: x, [0.0, 1.0], cfl=-0.1)
    with pytest.raises(ValueError, match="times must be strictly increasing"):
        pde.continuity_1d(torch.zeros(10, dtype=torch.float64), g, lambda t, x: x, [1.0, 0.0])
    with pytest.raises(ValueError, match="diffusion must be >= 0"):
        pde.fokker_planck_1d(torch.zeros(10, dtype=torch.float64), g, lambda x: x, -1.0, [0.0, 1.0])
    with pytest.raises(ValueError, match="b must be > a"):
        pde.Grid1D(1.0, 0.0, 10)
    with pytest.raises(ValueError, match="scheme must be one of"):
        pde.continuity_1d(torch.zeros(10, dtype=torch.float64), g, lambda t, x: x, [0.0, 1.0], scheme="weno")
