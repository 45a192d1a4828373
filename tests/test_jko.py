"""The JKO scheme and block flows (chapter 5): closed forms against direct minimisation and hand computations."""

from __future__ import annotations

import math

import pytest
import torch

import flowtutor as ft
from flowtutor import data, gaussian, jko
from flowtutor.blocks import BlockFlow
from flowtutor.compare import METHODS, compare_flows

F64 = torch.float64
TIGHT = {"method": "dopri5", "rtol": 1e-9, "atol": 1e-9}


def spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, dtype=F64, generator=torch.Generator().manual_seed(seed))
    return a @ a.T + 0.3 * torch.eye(d, dtype=F64)


@pytest.mark.parametrize("gamma", [0.2, 1.0, 3.5])
def test_gaussian_jko_step_minimises_the_jko_objective_over_gaussians(gamma) -> None:
    d = 3
    m = torch.tensor([1.5, -2.0, 0.5], dtype=F64)
    s = spd(d, 0)  # not diagonal: the step must act in its eigenbasis
    m1, s1 = jko.gaussian_jko_step(m, s, gamma)
    # minimise over (m', L) with S' = L L^T, starting at the current law (L-BFGS, float64)
    mean = m.clone().requires_grad_(True)
    chol = torch.linalg.cholesky(s).contiguous().requires_grad_(True)
    opt = torch.optim.LBFGS([mean, chol], lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        lower = torch.tril(chol)
        value = jko.jko_objective_gaussians(m, s, mean, lower @ lower.T, gamma)
        value.backward()
        return value

    for _ in range(5):
        opt.step(closure)
    lower = torch.tril(chol).detach()
    assert torch.allclose(mean.detach(), m1, atol=1e-6)
    assert torch.allclose(lower @ lower.T, s1, atol=1e-6)
    best = jko.jko_objective_gaussians(m, s, m1, s1, gamma)
    assert best <= jko.jko_objective_gaussians(m, s, mean.detach(), lower @ lower.T, gamma) + 1e-10


def test_the_residual_vanishes_at_the_jko_step_only() -> None:
    m, s, gamma = torch.tensor([2.0, -1.0], dtype=F64), spd(2, 3), 0.7
    m1, s1 = jko.gaussian_jko_step(m, s, gamma)
    assert jko.jko_residual_gaussians(m, s, m1, s1, gamma) < 1e-10
    m_ou, s_ou = gaussian.ou_marginal(m, s, gamma)  # the exact flow for time gamma is not the JKO step
    assert jko.jko_residual_gaussians(m, s, m_ou, s_ou, gamma) > 1e-2


def test_gaussian_iterates_in_one_dimension_solve_the_quadratic() -> None:
    means, covs = jko.gaussian_jko_iterates(torch.tensor([3.0], dtype=F64), torch.tensor([[4.0]], dtype=F64),
                                            [0.5, 2.0])
    assert torch.allclose(means[:, 0], torch.tensor([3.0, 2.0, 2.0 / 3.0], dtype=F64))
    for k, gamma in enumerate([0.5, 2.0]):
        sigma, s_next = covs[k, 0, 0].sqrt(), covs[k + 1, 0, 0].sqrt()
        assert abs((1 + gamma) * s_next**2 - sigma * s_next - gamma) < 1e-12


class Linear(torch.nn.Module):
    """The field u(s, x) = A x, whose flow map over [0, 1] is x -> e^A x."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = torch.nn.Parameter(a)
        self.d = a.shape[0]

    def forward(self, s, x):
        return x @ self.a.T


def test_jko_loss_of_a_linear_field_against_a_hand_computation() -> None:
    a = torch.tensor([[-0.4, 0.3], [-0.1, -0.2]], dtype=F64)
    u, gamma = Linear(a), 0.8
    x = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    e = torch.linalg.matrix_exp(a)
    x1 = x @ e.T
    # int_0^1 |A e^{sA} x|^2 ds by Simpson's rule on 2001 points
    s = torch.linspace(0, 1, 2001, dtype=F64)
    speed = torch.stack([((x @ torch.linalg.matrix_exp(si * a).T @ a.T) ** 2).sum(1) for si in s])
    weights = torch.ones_like(s)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    kinetic = (weights[:, None] * speed).sum(0) / (3 * (len(s) - 1))
    energy = (x1**2).sum(1) / 2 - torch.trace(a)  # int div u = tr A along every path
    expected = {
        "displacement": (energy + ((x1 - x) ** 2).sum(1) / (2 * gamma)).mean(),
        "kinetic": (energy + kinetic / (2 * gamma)).mean(),
    }
    for penalty, value in expected.items():
        loss, parts = jko.jko_loss(u, x, gamma, penalty=penalty, solver=TIGHT)
        assert abs(loss.item() - value.item()) < 1e-7, penalty
        assert abs(parts["kl_change"] - (energy - (x**2).sum(1) / 2).mean().item()) < 1e-7
    _, parts_k = jko.jko_loss(u, x, gamma, penalty="kinetic", solver=TIGHT)
    _, parts_d = jko.jko_loss(u, x, gamma, penalty="displacement", solver=TIGHT)
    assert parts_k["kinetic"] >= parts_d["displacement"]  # Jensen: the path is not a straight line at constant speed


def test_kinetic_and_displacement_agree_on_straight_constant_speed_paths() -> None:
    c = torch.tensor([0.7, -1.1], dtype=F64)
    x = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    _, k = jko.jko_loss(lambda s, y: c + 0 * y, x, 1.0, penalty="kinetic", solver=TIGHT)
    _, dsp = jko.jko_loss(lambda s, y: c + 0 * y, x, 1.0, penalty="displacement", solver=TIGHT)
    assert abs(k["kinetic"] - dsp["displacement"]) < 1e-10 and abs(dsp["displacement"] - (c**2).sum().item()) < 1e-10


def linear_flow() -> tuple[BlockFlow, torch.Tensor]:
    mats = [torch.tensor([[-0.5, 0.2], [0.1, -0.3]], dtype=F64), torch.tensor([[-0.2, -0.4], [0.3, -0.1]], dtype=F64),
            torch.tensor([[0.1, 0.0], [0.5, -0.6]], dtype=F64)]
    total = torch.eye(2, dtype=F64)
    for a in mats:
        total = torch.linalg.matrix_exp(a) @ total
    return BlockFlow(2, [0.5, 1.0, 2.0], blocks=[Linear(a) for a in mats]), total


def test_blocks_chain_invert_and_give_the_change_of_variables_density() -> None:
    flow, total = linear_flow()
    x = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z = flow.encode(x, solver=TIGHT)
        path = flow.encode(x, solver=TIGHT, trajectory=True)
        assert len(path) == 4 and torch.allclose(path[-1], z)
        assert torch.allclose(z, x @ total.T, atol=1e-8)
        assert torch.allclose(flow.encode(flow.encode(x, stop=1, solver=TIGHT), start=1, solver=TIGHT), z, atol=1e-10)
        assert torch.allclose(flow.decode(z, solver=TIGHT), x, atol=1e-8)
        # generated density q_0(x) = q(M x) |det M| (eq. ch5-gen-density), M the product of the block maps
        q = flow.base
        expected = q.log_prob(x @ total.T) + torch.linalg.slogdet(total)[1]
        assert torch.allclose(flow.log_prob(x, solver=TIGHT), expected, atol=1e-7)
        assert flow.nfe > 0
        # forward density: p_N(z) = p_0(M^-1 z) / |det M| (eq. ch5-forward-density)
        p0 = torch.distributions.MultivariateNormal(torch.ones(2, dtype=F64), spd(2, 4))
        inv = torch.linalg.inv(total)
        expected_fwd = p0.log_prob(z @ inv.T) - torch.linalg.slogdet(total)[1]
        assert torch.allclose(flow.log_prob_forward(z, p0.log_prob, solver=TIGHT), expected_fwd, atol=1e-7)


def test_ou_step_has_the_ou_marginal() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.full((200_000, 2), 2.0, dtype=F64)
    y = jko.ou_step(x, 0.3, generator=gen)
    m, s = gaussian.ou_marginal(torch.full((2,), 2.0, dtype=F64), torch.zeros(2, 2, dtype=F64), 0.3)
    se = (s.diagonal() / x.shape[0]).sqrt()
    assert ((y.mean(0) - m).abs() < 4 * se).all()
    assert torch.allclose(torch.cov(y.T), s, atol=0.01)


def test_fit_jko_lowers_the_kl_and_moves_gaussian_data_towards_the_jko_iterate() -> None:
    ft.seed_everything(0)
    m0, s0 = torch.tensor([2.0, -1.0]), torch.tensor([[1.5, 0.3], [0.3, 0.6]])
    target = torch.distributions.MultivariateNormal(m0, s0)
    flow = BlockFlow(2, [0.5], hidden=16, n_layers=2)
    reports = jko.fit_jko(flow, target.sample, 150, batch=256, pool=4000, progress=False, n_report=2000)
    assert len(reports) == 1 and reports[0]["kl_change"] < -0.5
    with torch.no_grad():
        pushed = flow.encode(target.sample((4000,)))
    m1, _ = jko.gaussian_jko_step(m0, s0, 0.5)
    assert (pushed.mean(0) - m1).norm() < 0.25 < (m0 - m1).norm()


def test_fit_local_matching_trains_each_block_and_chains() -> None:
    ft.seed_everything(0)
    target = data.eight_gaussians()
    flow = BlockFlow(2, [0.5, 1.0], hidden=16, n_layers=2, scale=2.0)
    reports = jko.fit_local_matching(flow, target.sample, 30, batch=64, pool=500, progress=False, n_report=200)
    assert [r["block"] for r in reports] == [0, 1]
    assert all(math.isfinite(r["kl_change"]) and r["history"] for r in reports)
    more = jko.fit_local_matching(flow, target.sample, 5, batch=64, pool=500, start=1, progress=False, n_report=100)
    assert [r["block"] for r in more] == [1]


def test_bad_steps_and_mismatched_blocks_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"gammas\[1\]"):
        BlockFlow(2, [1.0, 0.0])
    with pytest.raises(ValueError, match="gamma"):
        jko.gaussian_jko_step(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), -1.0)
    with pytest.raises(ValueError, match="one field per step"):
        BlockFlow(2, [1.0, 1.0], blocks=[Linear(torch.eye(2, dtype=F64))])
    with pytest.raises(ValueError, match=r"blocks\[0\] acts in dimension 3"):
        BlockFlow(2, [1.0], blocks=[Linear(torch.eye(3, dtype=F64))])
    flow, _ = linear_flow()
    with pytest.raises(ValueError, match="start"):
        flow.encode(torch.zeros(3, 2, dtype=F64), start=2, stop=1)
    with pytest.raises(ValueError, match="start"):
        jko.fit_jko(flow, lambda s: torch.zeros(*s, 2, dtype=F64), 1, start=3, progress=False)


def test_compare_flows_returns_one_measured_row_per_method() -> None:
    rows = compare_flows(data.eight_gaussians(), 4, hidden=8, n_layers=1, n_test=50, n_w2=20, progress=False)
    assert [r["method"] for r in rows] == ["CNF", "JKO flow", "local FM", "global FM"]
    for r in rows:
        assert r["seconds"] > 0 and r["nfe"] > 0 and math.isfinite(r["gap"].value) and r["w2_ratio"].value > 0 and r["w2_ratio"].stderr > 0
    with pytest.raises(ValueError, match="methods"):
        compare_flows(data.eight_gaussians(), 4, methods=["VAE"])


@pytest.mark.gpu
def test_block_flow_and_jko_loss_stay_on_the_gpu() -> None:
    device = torch.device("cuda")
    flow = BlockFlow(2, [0.5, 1.0], hidden=16, n_layers=2).to(device)
    x = torch.randn(128, 2, device=device)
    loss, _ = jko.jko_loss(flow.blocks[0], x, 0.5)
    loss.backward()
    assert loss.device.type == "cuda"
    with torch.no_grad():
        z = flow.encode(x)
        back = flow.decode(z)
        lp = flow.log_prob(x[:16])
    assert z.device.type == back.device.type == lp.device.type == "cuda"
    assert (back - x).abs().max() < 1e-3
    m, s = jko.gaussian_jko_step(torch.ones(2, device=device), torch.eye(2, device=device), 0.5)
    assert m.device.type == s.device.type == "cuda"
    reports = jko.fit_jko(flow, lambda shape: torch.randn(*shape, 2, device=device) + 1, 3, batch=32, pool=256,
                          progress=False, n_report=64)
    assert len(reports) == 2


@pytest.mark.gpu
def test_compare_flows_trains_on_the_targets_device() -> None:
    device = torch.device("cuda")
    target = data.eight_gaussians(device=device, generator=torch.Generator(device).manual_seed(0))
    rows = compare_flows(target, 4, hidden=8, n_layers=1, n_test=50, n_w2=20, device=device, progress=False)
    assert [r["method"] for r in rows] == list(METHODS)
    assert all(math.isfinite(r["gap"].value) and r["w2_ratio"].value > 0 for r in rows)
