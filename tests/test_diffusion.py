import math

import pytest
import torch

from flowtutor import ODEFlow
from flowtutor.diffusion import VPSDE, dsm_loss, fit_score, probability_flow_velocity, reverse_sde_drift
from flowtutor.nets import VelocityMLP
from flowtutor.sde import euler_maruyama

D = dict(dtype=torch.float64)
M, S0 = torch.tensor([1.5, -0.5], **D), 0.3  # data N(M, S0^2 I)


def true_score(sde):
    def score(s, x):  # p_s = N(a M, (a^2 S0^2 + sigma^2) I)
        a, sig = sde.marginal(torch.as_tensor(s, **D).reshape(-1))
        a, sig = a.reshape(-1, 1), sig.reshape(-1, 1)
        return -(x - a * M) / (a**2 * S0**2 + sig**2)
    return score


def test_marginal_matches_sde_simulation(gen):
    sde = VPSDE()
    x0 = M.expand(20_000, 2).clone()
    beta = lambda s: float(sde.beta(torch.tensor(s, **D)))  # noqa: E731
    paths = euler_maruyama(sde.drift, x0, sigma=lambda s: math.sqrt(beta(s)), t0=0.0, t1=0.5, n_steps=1000, generator=gen)
    a, sig = sde.marginal(torch.tensor([0.5], **D))
    assert torch.allclose(paths[-1].mean(0), a * M, atol=4 * sig.item() / math.sqrt(20_000) + 0.01)
    assert abs(paths[-1].var(0).mean().item() - sig.item() ** 2) < 0.03


def test_dsm_is_minimised_by_the_true_score(gen):
    sde = VPSDE()
    x = M + S0 * torch.randn(50_000, 2, generator=gen, **D)
    score = true_score(sde)
    losses = {}
    for name, f in {"true": score, "scaled": lambda s, y: 1.2 * score(s, y), "zero": lambda s, y: torch.zeros_like(y)}.items():
        losses[name] = dsm_loss(f, x, sde, generator=torch.Generator().manual_seed(1)).item()  # same noise for all
    assert losses["true"] < losses["scaled"] < losses["zero"]


@pytest.mark.parametrize("kind", ["ode", "sde"])
def test_generation_reaches_the_data(gen, kind):
    sde = VPSDE()
    score = true_score(sde)
    a1, s1 = sde.marginal(torch.tensor([1.0], **D))
    n = 20_000
    z = a1 * M + torch.sqrt(a1**2 * S0**2 + s1**2) * torch.randn(n, 2, generator=gen, **D)  # exact p at s = 1
    t_end = 1 - 1e-3
    if kind == "ode":
        x = ODEFlow(probability_flow_velocity(score, sde), rtol=1e-7, atol=1e-7).push(z, 0.0, t_end)
    else:
        beta = lambda t: float(sde.beta(torch.tensor(1 - t, **D)))  # noqa: E731
        x = euler_maruyama(reverse_sde_drift(score, sde), z, sigma=lambda t: math.sqrt(beta(t)), t0=0.0, t1=t_end,
                           n_steps=2000, generator=gen)[-1]
    a, sig = sde.marginal(torch.tensor([1 - t_end], **D))
    std = math.sqrt(a.item() ** 2 * S0**2 + sig.item() ** 2)
    assert torch.allclose(x.mean(0), a * M, atol=4 * std / math.sqrt(n) + (0.0 if kind == "ode" else 0.02))
    assert abs(x.std(0).mean().item() - std) < (0.01 if kind == "ode" else 0.03)


def test_fit_score_approaches_the_true_score(gen):
    torch.manual_seed(0)
    sde, net = VPSDE(), VelocityMLP(2, hidden=32, n_layers=2).double()
    history = fit_score(net, lambda shape: M + S0 * torch.randn(*shape, 2, generator=gen, **D), sde, 300, generator=gen,
                        progress=False)
    s = torch.full((500,), 0.5, **D)
    a, sig = sde.marginal(s[:1])
    x = a * M + torch.sqrt(a**2 * S0**2 + sig**2) * torch.randn(500, 2, generator=gen, **D)
    with torch.no_grad():
        err = (net(s, x) - true_score(sde)(s, x)).norm(dim=1).mean() / true_score(sde)(s, x).norm(dim=1).mean()
    assert sum(history[-30:]) < sum(history[:30]) and err.item() < 0.3


def test_bad_input():
    with pytest.raises(TypeError, match="sample must be callable"):
        fit_score(VelocityMLP(2), None, VPSDE(), 10)
    with pytest.raises(ValueError, match="beta_max must be >= beta_min"):
        VPSDE(1.0, 0.5)
    with pytest.raises(ValueError, match=r"s_min must lie in \(0, 1\)"):
        dsm_loss(lambda s, x: x, torch.zeros(3, 2), VPSDE(), s_min=0.0)
    with pytest.raises(TypeError, match="score must be callable"):
        probability_flow_velocity(None, VPSDE())
