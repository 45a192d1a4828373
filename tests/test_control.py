"""Piecewise-constant ReLU controls (chapter 7): closed forms against particles and quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowtutor import ODEFlow
from flowtutor import control as C

F64 = {"dtype": torch.float64}
BASE = torch.distributions.Normal(torch.tensor(0.0, **F64), torch.tensor(1.0, **F64))


def mixture() -> torch.distributions.Distribution:
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([0.4, 0.6], **F64)),
        torch.distributions.Normal(torch.tensor([-2.0, 1.5], **F64), torch.tensor([0.5, 0.8], **F64)))


def quantiles(dist, levels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    cdf = torch.cumsum(dist.log_prob(grid).exp(), 0) * (grid[1] - grid[0])
    return torch.from_numpy(np.interp(levels.numpy(), cdf.numpy(), grid.numpy()))


def test_control_sequence_matches_particles_of_the_piecewise_field() -> None:
    seq = C.ControlSequence([C.ReLUNeuron(torch.tensor([0.8, -0.6], **F64), torch.tensor([1.0, 0.5], **F64), 0.3),
                             C.ReLUNeuron(torch.tensor([1.0, 0.0], **F64), torch.tensor([0.0, 1.0], **F64), 0.1)],
                            [0.4, 0.5])
    x0 = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), **F64)
    flow = ODEFlow(seq, rtol=1e-10, atol=1e-10)
    x1 = flow.push(flow.push(x0, 0.0, 0.4), 0.4, 0.9)  # integrate piece by piece across the switch
    assert torch.allclose(x1, seq.flow_map(x0), atol=1e-7)
    assert torch.allclose(seq.inverse_map(seq.flow_map(x0)), x0, atol=1e-12)
    gauss = torch.distributions.MultivariateNormal(torch.zeros(2, **F64), torch.eye(2, **F64))
    log_rho = seq.log_density(gauss.log_prob, x1)
    # change of variables: rho_T(T x0) = rho_B(x0) / det(DT(x0)), det DT = exp(sum_k tau_k c_k 1[s_k > 0])
    assert torch.allclose(log_rho, flow.log_prob(x1, lambda y: seq.neurons[0].log_density(gauss.log_prob, y, 0.4),
                                                 0.4, 0.9), atol=1e-6)


def test_tv_control_moves_quantiles_exactly_and_the_l1_error_falls_with_k() -> None:
    grid = torch.linspace(-12, 12, 24001, **F64)
    target = mixture()
    errors = []
    for k in (4, 16, 64):
        levels = 0.001 + 0.998 * torch.arange(k + 1, **F64) / k
        p, q = BASE.icdf(levels), quantiles(target, levels, grid)
        seq = C.tv_control_1d(p, q, duration=2.0)
        assert seq.n_switches == k + 1 and seq.horizon == pytest.approx(2.0)
        assert torch.allclose(seq.flow_map(p[:, None])[:, 0], q, atol=1e-10)
        rho = seq.log_density(lambda y: BASE.log_prob(y[:, 0]), grid[:, None]).exp()
        assert (rho.sum() * (grid[1] - grid[0])).item() == pytest.approx(1.0, abs=1e-3)
        errors.append(((rho - target.log_prob(grid).exp()).abs().sum() * (grid[1] - grid[0])).item())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.05 < errors[0]


def test_tail_control_dilates_only_outside_the_interval() -> None:
    seq = C.tail_control_1d(-3.0, 3.0, 3.0, 2.0)
    x = torch.tensor([[-5.0], [-3.0], [0.0], [2.9], [4.0]], **F64)
    assert torch.allclose(seq.flow_map(x)[:, 0], torch.tensor([-9.0, -3.0, 0.0, 2.9, 5.0], **F64))
    # a standard Gaussian's right tail becomes a Gaussian tail of twice the scale
    y = torch.tensor([[6.0], [9.0]], **F64)
    log_rho = seq.log_density(lambda z: BASE.log_prob(z[:, 0]), y)
    expected = BASE.log_prob((y[:, 0] - 3.0) / 2.0 + 3.0) - math.log(2.0)
    assert torch.allclose(log_rho, expected)


def test_bad_control_inputs() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        C.tv_control_1d(torch.tensor([0.0, 1.0, 0.5], **F64), torch.tensor([0.0, 1.0, 2.0], **F64))
    with pytest.raises(ValueError, match="same length"):
        C.tv_control_1d(torch.tensor([0.0, 1.0], **F64), torch.tensor([0.0, 1.0, 2.0], **F64))
    with pytest.raises(ValueError, match="durations"):
        C.ControlSequence([C.ReLUNeuron(torch.ones(1, **F64), torch.ones(1, **F64), 0.0)], [-1.0])
    with pytest.raises(TypeError, match="neurons"):
        C.ControlSequence([3], [1.0])


def test_xlogx_field_flow_and_density_against_particles_and_quadrature() -> None:
    field = C.XLogXField()
    x0 = torch.tensor([[0.5], [1.0], [2.0], [5.0]], **F64)
    flow = ODEFlow(field, rtol=1e-10, atol=1e-10)
    assert torch.allclose(flow.push(x0, 0.0, 0.8), field.flow_map(x0, 0.8), atol=1e-7)
    assert torch.allclose(field.flow_map(field.flow_map(x0, 0.8), -0.8), x0)
    # a base with e^{-x} tails (p = 1) gets e^{-x^{e^t}} tails, and keeps its mass
    base = torch.distributions.Exponential(torch.tensor(1.0, **F64))
    grid = torch.linspace(1e-6, 12.0, 200_001, **F64)[:, None]
    rho = field.log_density(lambda y: base.log_prob(y[:, 0]), grid, 0.8).exp()
    assert (rho.sum() * (grid[1, 0] - grid[0, 0])).item() == pytest.approx(1.0, abs=1e-4)
    y = torch.tensor([[3.0], [6.0]], **F64)
    expected = 0.8 + base.log_prob(y[:, 0] ** math.exp(0.8)) + (math.exp(0.8) - 1) * torch.log(y[:, 0])
    assert torch.allclose(field.log_density(lambda z: base.log_prob(z[:, 0]), y, 0.8), expected)


def test_tv_control_to_eps_reaches_eps_on_two_targets() -> None:
    x = torch.linspace(-12, 12, 24001, **F64)
    gamma_points = torch.linspace(1e-6, 20, 20001, **F64)
    for points, density in ((x, mixture().log_prob(x).exp()),
                            (gamma_points, torch.distributions.Gamma(3.0, 2.0).log_prob(gamma_points).exp())):
        for eps in (0.1, 0.03):
            seq, k, err = C.tv_control_to_eps(BASE, density, points, eps)
            assert err < eps and seq.n_switches == k + 1
            rho = seq.log_density(lambda y: BASE.log_prob(y[:, 0]), points[:, None]).exp()
            inside = torch.trapezoid((rho - density / torch.trapezoid(density, points)).abs(), points).item()
            assert inside <= err + 1e-9
    with pytest.raises(ValueError, match="max_blocks"):
        C.tv_control_to_eps(BASE, mixture().log_prob(x).exp(), x, 1e-4, max_blocks=8)


@pytest.mark.gpu
def test_controls_stay_on_the_gpu() -> None:
    neuron = C.ReLUNeuron(torch.tensor([0.5, 0.0], device="cuda"), torch.tensor([0.0, 1.0], device="cuda"), 0.1)
    seq = C.ControlSequence([neuron, neuron], [0.2, 0.3])
    x = torch.randn(16, 2, device="cuda")
    assert seq.neurons[0].flow_map(x, 0.3).device.type == "cuda"
    y = torch.randn(8, 1, device="cuda", dtype=torch.float64)
    assert C.tail_control_1d(-1.0, 1.0, 2.0, 2.0, device="cuda").flow_map(y).device.type == "cuda"
    assert seq.log_density(lambda z: -(z**2).sum(1), x).device.type == "cuda"


def test_long_sequences_do_not_recurse() -> None:
    neurons = [C.ReLUNeuron(torch.ones(1, **F64), torch.ones(1, **F64), 0.0)] * 3000
    seq = C.ControlSequence(neurons, [1e-4] * 3000)  # dilation of x > 0 by e^{0.3} in total
    x = torch.tensor([[1.0], [-1.0]], **F64)
    log_rho = seq.log_density(lambda y: BASE.log_prob(y[:, 0]), x)
    assert torch.allclose(log_rho, torch.stack([BASE.log_prob(torch.tensor(math.exp(-0.3), **F64)) - 0.3,
                                                BASE.log_prob(torch.tensor(-1.0, **F64))]))


def test_quantiles_from_density_invert_a_known_cdf() -> None:
    x = torch.linspace(-10, 10, 40001, **F64)
    levels = torch.tensor([0.001, 0.1, 0.5, 0.9, 0.999], **F64)
    q = C.quantiles_from_density(3.0 * BASE.log_prob(x).exp(), x, levels)  # unnormalised on purpose
    assert torch.allclose(q, BASE.icdf(levels), atol=1e-6)
