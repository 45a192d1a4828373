import math

import pytest
import torch
from torch import nn

from flowtutor.cnf import CNF
from flowtutor.gaussian import linear_flow_gaussian

D = dict(dtype=torch.float64)
A = torch.tensor([[-0.4, -1.0], [0.8, 0.1]], **D)
B = torch.tensor([0.3, -0.2], **D)
TIGHT = {"method": "dopri5", "rtol": 1e-9, "atol": 1e-9}


class Linear(nn.Module):
    """net(t, y) = A y + b, so the CNF's field is v(x) = A x + scale * b."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(A.clone()), nn.Parameter(B.clone())

    def forward(self, t, y):
        return y @ self.a.T + self.b


def linear_cnf(scale=2.0):
    model = CNF(2, scale=scale).double()
    model.net = Linear()
    return model


def test_log_prob_matches_linear_flow_closed_form(gen):
    model = linear_cnf()
    m1, s1 = linear_flow_gaussian(A, 2.0 * B, torch.zeros(2, **D), 4.0 * torch.eye(2, **D), 1.0)
    target = torch.distributions.MultivariateNormal(m1, s1)
    x = target.sample((64,))
    lp = model.log_prob(x, solver=TIGHT)
    assert (lp - target.log_prob(x)).abs().max() < 1e-6
    # Hutchinson with 100 Rademacher probes: error std sqrt(2(||A_s||^2 - sum A_ii^2) / 100) = 0.02
    lp_h = model.log_prob(x, solver=TIGHT, divergence="hutchinson", n_probes=100, generator=gen)
    err = lp_h - target.log_prob(x)
    assert err.abs().max() < 0.1 and err.abs().max() > 1e-4  # random, and as small as predicted
    samples = model.sample(20_000, solver=TIGHT, generator=gen)
    assert (samples.mean(0) - m1).abs().max() < 4 * math.sqrt(s1.diagonal().max() / 20_000)


def test_regularizers_of_a_linear_field():
    model = linear_cnf()
    x = torch.tensor([[0.5, -1.0], [2.0, 0.3]], **D)
    loss, parts = model.loss(x, kinetic=0.1, frobenius=0.01, solver=TIGHT)
    # Frobenius: int_0^1 ||A||_F^2 dt; kinetic: int |v(x_t)|^2 along each path (trapezoid on a fine trajectory)
    assert math.isclose(parts["frobenius"], (A**2).sum().item(), rel_tol=1e-8)
    traj = model.flow(**TIGHT).trajectory(x, torch.linspace(1, 0, 2001, **D))
    speed2 = (model(torch.tensor(0.0), traj.reshape(-1, 2)).reshape(2001, 2, 2) ** 2).sum(-1)
    kinetic = torch.trapezoid(speed2.flip(0), dx=1 / 2000, dim=0).mean().item()
    assert math.isclose(parts["kinetic"], kinetic, rel_tol=1e-6)
    assert math.isclose(loss.item(), parts["nll"] + 0.1 * parts["kinetic"] + 0.01 * parts["frobenius"], rel_tol=1e-12)


def test_loss_trains_and_gradients_flow(gen):
    torch.manual_seed(0)
    model = CNF(2, hidden=16, n_layers=2).double()
    x = torch.randn(32, 2, generator=gen, **D) * 0.5 + 1.0
    loss, _ = model.loss(x, kinetic=0.01)
    loss.backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters())


def test_bad_input():
    with pytest.raises(ValueError, match="d must be >= 1"):
        CNF(0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        CNF(2, scale=-1.0)
    model = CNF(2)
    with pytest.raises(ValueError, match="x must have shape \\(n, 2\\)"):
        model.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="kinetic must be >= 0"):
        model.loss(torch.zeros(4, 2), kinetic=-1.0)
    with pytest.raises(ValueError, match="x contains NaN"):
        model.loss(torch.full((4, 2), math.nan))


@pytest.mark.gpu
def test_cnf_on_cuda():
    model = CNF(2, hidden=16).cuda()
    x = torch.randn(64, 2, device="cuda")
    loss, parts = model.loss(x, kinetic=0.01, frobenius=0.01, divergence="hutchinson")
    loss.backward()
    assert next(model.parameters()).grad.device.type == "cuda"
    assert model.sample(10).device.type == "cuda"
    assert model.log_prob(x[:8]).device.type == "cuda"
