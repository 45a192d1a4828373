import math

import pytest
import torch

import flowtutor as ft
from flowtutor import ODEFlow
from flowtutor.gaussian import linear_flow_gaussian
from flowtutor.nets import VelocityMLP

A = torch.tensor([[-0.5, -1.0], [1.0, -0.2]], dtype=torch.float64)
B = torch.tensor([0.3, -0.1], dtype=torch.float64)
M0 = torch.tensor([0.5, 0.0], dtype=torch.float64)
S0 = torch.tensor([[0.6, 0.1], [0.1, 0.4]], dtype=torch.float64)


def v_lin(t, x):
    return x @ A.T + B


def base():
    return torch.distributions.MultivariateNormal(M0, S0)


def test_push_pull_roundtrip_and_nfe(gen):
    flow = ODEFlow(v_lin, rtol=1e-9, atol=1e-9)
    x = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    y = flow.push(x)
    assert flow.nfe > 0
    assert torch.allclose(flow.pull(y), x, atol=1e-7)
    # the flow map of a linear field is affine: y = e^A x + shift
    m1, _ = linear_flow_gaussian(A, B, torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), 1.0)
    assert torch.allclose(y, x @ torch.linalg.matrix_exp(A).T + m1, atol=1e-7)


def test_fixed_step_order():
    x = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    exact = x @ torch.linalg.matrix_exp(A).T + linear_flow_gaussian(A, B, torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), 1.0)[0]
    errs = [(ODEFlow(v_lin, method="euler", n_steps=n).push(x) - exact).norm().item() for n in (50, 100, 200)]
    assert 0.9 < math.log(errs[0] / errs[2]) / math.log(4) < 1.1
    assert ODEFlow(v_lin, method="rk4", n_steps=20).push(x).sub(exact).norm() < 1e-6


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_log_prob_matches_closed_form(gen, divergence):
    m1, s1 = linear_flow_gaussian(A, B, M0, S0, 1.0)
    x1 = torch.distributions.MultivariateNormal(m1, s1).sample((32,))
    flow = ODEFlow(v_lin, rtol=1e-9, atol=1e-9)
    lp = flow.log_prob(x1, base(), divergence=divergence, n_probes=2, generator=gen)
    # Hutchinson is exact here only in expectation; for this A its variance is 2(||A_s||^2 - sum A_ii^2) = 0
    assert torch.allclose(lp, torch.distributions.MultivariateNormal(m1, s1).log_prob(x1), atol=1e-6)


def test_log_prob_trajectory_forward_equals_backward(gen):
    flow = ODEFlow(v_lin, rtol=1e-9, atol=1e-9)
    x0 = base().sample((16,))
    xs, lps = flow.log_prob_trajectory(x0, base().log_prob(x0), [0.0, 0.5, 1.0])
    assert xs.shape == (3, 16, 2) and lps.shape == (3, 16)
    assert torch.allclose(flow.log_prob(xs[-1], base()), lps[-1], atol=1e-6)


def test_log_prob_gradients_adjoint_vs_direct(gen):
    torch.manual_seed(0)
    net = VelocityMLP(2, hidden=16, n_layers=2).double()
    x = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    base_n = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    grads = []
    for adjoint in (False, True):
        net.zero_grad()
        ODEFlow(net, rtol=1e-9, atol=1e-9, adjoint=adjoint).log_prob(x, base_n).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_reverse_time():
    u = lambda s, x: x * s  # noqa: E731
    v = ft.reverse_time(u)
    x = torch.ones(2, 2)
    assert torch.allclose(v(torch.tensor(0.25), x), -0.75 * x)


def test_keeps_dtype():
    x = torch.randn(4, 2, dtype=torch.float32)
    y = ODEFlow(lambda t, x: -x, method="rk4", n_steps=4).push(x)
    assert y.dtype == torch.float32 and y.device == x.device


def test_bad_input():
    with pytest.raises(ValueError, match="give n_steps"):
        ODEFlow(v_lin, method="euler")
    with pytest.raises(ValueError, match="not n_steps"):
        ODEFlow(v_lin, method="dopri5", n_steps=4)
    with pytest.raises(ValueError, match="rtol must be > 0"):
        ODEFlow(v_lin, rtol=-1.0)
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        ODEFlow(v_lin, method="rk4", n_steps=0)
    with pytest.raises(ValueError, match="method must be one of"):
        ODEFlow(v_lin, method="leapfrog")
    with pytest.raises(TypeError, match="v must be callable"):
        ODEFlow(3)
    flow = ODEFlow(v_lin)
    with pytest.raises(ValueError, match="x contains NaN"):
        flow.push(torch.tensor([[math.nan, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="x must have shape"):
        flow.push(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="times must be strictly"):
        flow.trajectory(torch.zeros(1, 2, dtype=torch.float64), [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="v\\(t, x\\) must return"):
        ODEFlow(lambda t, x: x[:, :1]).push(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="divergence must be one of"):
        flow.log_prob(torch.zeros(2, 2, dtype=torch.float64), base(), divergence="approx")
    with pytest.raises(ValueError, match="log_p must have shape"):
        flow.log_prob_trajectory(torch.zeros(2, 2), torch.zeros(3), [0.0, 1.0])


@pytest.mark.gpu
def test_odeflow_on_cuda():
    dev = torch.device("cuda")
    a, b = A.to(dev), B.to(dev)
    flow = ODEFlow(lambda t, x: x @ a.T + b, rtol=1e-9, atol=1e-9)
    m1, s1 = linear_flow_gaussian(a, b, M0.to(dev), S0.to(dev), 1.0)
    x1 = torch.distributions.MultivariateNormal(m1, s1).sample((64,))
    y = flow.push(x1)
    assert y.device.type == "cuda"
    base_cuda = torch.distributions.MultivariateNormal(M0.to(dev), S0.to(dev))
    gen = torch.Generator(device=dev).manual_seed(0)
    lp = flow.log_prob(x1, base_cuda, divergence="hutchinson", generator=gen)
    assert lp.device.type == "cuda"
    assert torch.allclose(lp, torch.distributions.MultivariateNormal(m1, s1).log_prob(x1), atol=1e-6)
