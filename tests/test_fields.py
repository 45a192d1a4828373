import math

import pytest
import torch

from flowtutor import ODEFlow
from flowtutor.control import ReLUNeuron
from flowtutor.nets import VelocityMLP
from flowtutor.sde import euler_maruyama

D = dict(dtype=torch.float64)


def test_relu_neuron_closed_form_matches_odeflow(gen):
    neuron = ReLUNeuron(torch.tensor([0.8, -0.6], **D), torch.tensor([1.0, 0.5], **D), 0.3)
    x0 = torch.randn(200, 2, generator=gen, **D)
    assert torch.allclose(ODEFlow(neuron, rtol=1e-9, atol=1e-9).push(x0, 0.0, 0.7), neuron.flow_map(x0, 0.7), atol=1e-6)
    assert torch.allclose(neuron.inverse_map(neuron.flow_map(x0, 0.7), 0.7), x0, atol=1e-12)
    base = torch.distributions.MultivariateNormal(torch.zeros(2, **D), torch.eye(2, **D))
    y = neuron.flow_map(x0, 0.7)
    assert torch.allclose(ODEFlow(neuron, rtol=1e-9, atol=1e-9).log_prob(y, base, 0.0, 0.7),
                          neuron.log_density(base.log_prob, y, 0.7), atol=1e-6)
    # <w, a> = 0: the shear x + t w s_+(x), volume-preserving, and the limit of <w, a> -> 0
    shear = ReLUNeuron(torch.tensor([1.0, 0.0], **D), torch.tensor([0.0, 1.0], **D), 0.2)
    s = (x0[:, 1] + 0.2).clamp_min(0)
    assert torch.allclose(shear.flow_map(x0, 0.7), x0 + 0.7 * s[:, None] * torch.tensor([1.0, 0.0], **D))
    assert torch.allclose(ODEFlow(shear, rtol=1e-9, atol=1e-9).push(x0, 0.0, 0.7), shear.flow_map(x0, 0.7), atol=1e-6)
    assert torch.allclose(shear.log_density(base.log_prob, x0, 0.7), base.log_prob(shear.inverse_map(x0, 0.7)))
    near = ReLUNeuron(torch.tensor([1.0, 1e-7], **D), torch.tensor([0.0, 1.0], **D), 0.2)
    assert torch.allclose(near.flow_map(x0, 0.7), shear.flow_map(x0, 0.7), atol=1e-6)


def test_velocity_mlp_shapes_and_dtype():
    net = VelocityMLP(3, hidden=8, n_layers=2).double()
    out = net(torch.tensor(0.3, **D), torch.zeros(5, 3, **D))
    assert out.shape == (5, 3) and out.dtype == torch.float64
    assert net(torch.rand(5, **D), torch.zeros(5, 3, **D)).shape == (5, 3)
    with pytest.raises(ValueError, match="x must have shape \\(n, 3\\)"):
        net(torch.tensor(0.0), torch.zeros(5, 2, **D))
    with pytest.raises(ValueError, match="activation must be one of"):
        VelocityMLP(2, activation="gelu2")


def test_velocity_mlp_fourier_features():
    torch.manual_seed(0)
    plain_first = VelocityMLP(2, hidden=8).net[0].weight.clone()
    torch.manual_seed(0)
    assert torch.equal(VelocityMLP(2, hidden=8, fourier=0).net[0].weight, plain_first), "fourier=0 must draw nothing"
    a = VelocityMLP(2, hidden=8, fourier=5, fourier_scale=2.0, generator=torch.Generator().manual_seed(1)).double()
    b = VelocityMLP(2, hidden=8, fourier=5, fourier_scale=2.0, generator=torch.Generator().manual_seed(1))
    assert a.fourier_b.shape == (5, 2) and torch.allclose(a.fourier_b, b.fourier_b.double())
    assert a.net[0].in_features == 2 + 10 + a.embed.dim
    x = torch.randn(7, 2, **D)
    out = a(torch.tensor(0.4, **D), x)
    assert out.shape == (7, 2) and out.dtype == torch.float64
    assert "fourier_b" in a.state_dict()


def test_euler_maruyama_ou_variance(gen):
    x0 = torch.zeros(20_000, 1, **D)
    paths = euler_maruyama(lambda t, x: -x, x0, sigma=math.sqrt(2), t0=0.0, t1=1.0, n_steps=200, generator=gen)
    assert paths.shape == (201, 20_000, 1)
    # Var X_1 = 1 - e^{-2} (plus an O(h) bias of the scheme)
    assert abs(paths[-1].var().item() - (1 - math.exp(-2))) < 0.03
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        euler_maruyama(lambda t, x: -x, x0, sigma=-1.0, t0=0.0, t1=1.0, n_steps=10)
    with pytest.raises(ValueError, match="t1 must be > t0"):
        euler_maruyama(lambda t, x: -x, x0, sigma=1.0, t0=1.0, t1=0.0, n_steps=10)
