"""The JKO scheme and the flows built from it (chapter 5), stated data-to-noise towards ``q = N(0, I)``.

* The JKO step ``p_{n+1} = argmin_rho KL(rho || q) + W2^2(p_n, rho) / (2 gamma)`` (eq. ``ch5-jko``), exactly for
  Gaussians (eq. ``ch5-gauss-jko``), with its objective and its first-order residual (eq. ``ch5-residual``).
* JKO-flow blocks (Xu, Cheng & Xie 2023): block ``n`` of a :class:`~flowtutor.blocks.BlockFlow` minimises
  ``E[|x_{n+1}|^2 / 2 - int div u_n + |x_{n+1} - x_n|^2 / (2 gamma_n)]`` (eq. ``ch5-jko-loss``), the blocks
  trained one after the other (:func:`fit_jko`).
* Local flow matching (Xu, Cheng & Xie 2024): the same blocks, block ``n`` regressed on the straight lines from
  ``x_n`` to one OU step ``e^{-gamma_n} x_n + (1 - e^{-2 gamma_n})^{1/2} z`` (eq. ``ch5-ou-step``), without
  simulation during training (:func:`fit_local_matching`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ._checks import (
    check_callable,
    check_choice,
    check_generator,
    check_int,
    check_points,
    check_positive,
    check_solver,
)
from .blocks import EVAL_SOLVER, TRAIN_SOLVER, BlockFlow, _gammas
from .flow import ODEFlow, reverse_time
from .gaussian import _check_gaussian, _check_pair, brenier_map_gaussians, kl_gaussians, w2_gaussians
from .matching import fit_matching
from .training import fit

__all__ = [
    "gaussian_jko_step",
    "gaussian_jko_iterates",
    "jko_objective_gaussians",
    "jko_residual_gaussians",
    "jko_loss",
    "ou_step",
    "fit_jko",
    "fit_local_matching",
]


# -- the exact JKO step for Gaussians ----------------------------------------------------------------------------
def gaussian_jko_step(m: torch.Tensor, s: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One exact JKO step from ``N(m, S)`` towards ``q = N(0, I)`` with step ``gamma`` (eq. ``ch5-gauss-jko``).

    The mean becomes ``m / (1 + gamma)``; in each eigendirection of ``S`` the standard deviation ``sigma``
    becomes the positive root of ``(1 + gamma) s^2 - sigma s - gamma = 0``. Returns ``(m', S')``.
    """
    _check_gaussian(m, s, "", definite=False)
    gamma = check_positive(gamma, "gamma")
    evals, evecs = torch.linalg.eigh(s)
    sigma = evals.clamp_min(0).sqrt()
    root = (sigma + torch.sqrt(sigma**2 + 4 * gamma * (1 + gamma))) / (2 * (1 + gamma))
    return m / (1 + gamma), (evecs * root**2) @ evecs.T


def gaussian_jko_iterates(m0: torch.Tensor, s0: torch.Tensor, gammas) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact JKO iterates ``N(m_n, S_n)``, ``n = 0, ..., N`` for steps ``gammas`` (eq. ``ch5-gauss-jko``).

    Returns ``(means, covs)`` of shapes ``(N + 1, d)`` and ``(N + 1, d, d)``.
    """
    _check_gaussian(m0, s0, "0")
    means, covs = [m0], [s0]
    for gamma in _gammas(gammas):
        m, s = gaussian_jko_step(means[-1], covs[-1], gamma)
        means.append(m)
        covs.append(s)
    return torch.stack(means), torch.stack(covs)


def jko_objective_gaussians(m0: torch.Tensor, s0: torch.Tensor, m1: torch.Tensor, s1: torch.Tensor,
                            gamma: float) -> torch.Tensor:
    """``KL(N(m1, S1) || N(0, I)) + W2^2(N(m0, S0), N(m1, S1)) / (2 gamma)``: the JKO objective (eq. ``ch5-jko``)
    from ``N(m0, S0)`` at the candidate ``rho = N(m1, S1)`` (``S1`` positive definite), by chapter 2's closed forms."""
    _check_pair(m0, s0, m1, s1)
    gamma = check_positive(gamma, "gamma")
    zero, eye = torch.zeros_like(m1), torch.eye(m1.shape[0], dtype=s1.dtype, device=s1.device)
    return kl_gaussians(m1, s1, zero, eye) + w2_gaussians(m0, s0, m1, s1) ** 2 / (2 * gamma)


def jko_residual_gaussians(m0: torch.Tensor, s0: torch.Tensor, m1: torch.Tensor, s1: torch.Tensor,
                           gamma: float) -> torch.Tensor:
    """The first-order residual ``|| grad log rho + x + (x - T(x)) / gamma ||_{L2(rho)}`` of a candidate step
    ``rho = N(m1, S1)`` from ``N(m0, S0)`` (eq. ``ch5-residual``), ``T`` the optimal map from ``rho`` back to
    ``N(m0, S0)``: zero exactly at the JKO minimiser, the learning error ``epsilon`` of Lemma 4.2 otherwise.

    With ``T(x) = m0 + A (x - m1)`` the residual is ``B (x - m1) + c``, ``B = I - S1^{-1} + (I - A) / gamma``,
    ``c = m1 + (m1 - m0) / gamma``, and its squared norm ``|c|^2 + tr(B S1 B^T)``.
    """
    _check_pair(m0, s0, m1, s1, definite=True)
    gamma = check_positive(gamma, "gamma")
    _, a = brenier_map_gaussians(m1, s1, m0, s0)
    eye = torch.eye(m0.shape[0], dtype=s0.dtype, device=s0.device)
    b = eye - torch.linalg.inv(s1) + (eye - a) / gamma
    c = m1 + (m1 - m0) / gamma
    return ((c**2).sum() + torch.trace(b @ s1 @ b.T)).clamp_min(0).sqrt()


# -- JKO-flow blocks ---------------------------------------------------------------------------------------------
def jko_loss(u: Callable, x: torch.Tensor, gamma: float, *, penalty: str = "kinetic", solver: dict | None = None,
             **divergence_options) -> tuple[torch.Tensor, dict[str, float]]:
    """The JKO-flow block loss of a field ``u(s, x)``, ``s`` in [0, 1], on samples ``x`` of ``p_n`` (eq. ``ch5-jko-loss``):

    ``E[ |x(1)|^2 / 2 - int_0^1 div u(s, x(s)) ds + P / (2 gamma) ]``, which is ``KL(T_# p_n || q) + P / (2 gamma)``
    up to the constant ``(d/2) log 2 pi - H(p_n)``, with ``P`` the ``penalty``: ``"displacement"``
    ``|x(1) - x(0)|^2`` or ``"kinetic"`` ``int_0^1 |u(s, x(s))|^2 ds`` (eq. ``ch5-kinetic``; no smaller, equal on
    straight paths run at constant speed, so both have the same minimum). Returns the loss (differentiable) and,
    as floats, ``kl_change`` (``KL(p_{n+1} || q) - KL(p_n || q)``) and the mean penalty under its name. Solver:
    default fixed-step RK4 with 2 steps; divergence options as in :meth:`ODEFlow.log_prob_trajectory`.
    """
    check_callable(u, "u")
    check_points(x, "x")
    gamma = check_positive(gamma, "gamma")
    check_choice(penalty, "penalty", ("kinetic", "displacement"))
    check_solver(solver)
    start = (x**2).sum(1) / 2
    if penalty == "displacement":
        zeros = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        xs, ls = ODEFlow(u, **(solver or TRAIN_SOLVER)).log_prob_trajectory(x, zeros, [0.0, 1.0], **divergence_options)
        potential, cost = (xs[-1] ** 2).sum(1) / 2, ((xs[-1] - x) ** 2).sum(1)
        energy = potential + ls[-1]  # ls[-1] = -int div u along each path
    else:
        # the same solve, run as the generation field v(t, x) = -u(1 - t, x) pulled back from t = 1 (where x sits)
        q = torch.distributions.MultivariateNormal(torch.zeros(x.shape[1], dtype=x.dtype, device=x.device),
                                                   torch.eye(x.shape[1], dtype=x.dtype, device=x.device))
        log_p, cost, _ = ODEFlow(reverse_time(u), **(solver or TRAIN_SOLVER)).log_prob_regularized(
            x, q, **divergence_options)
        energy = -log_p - x.shape[1] / 2 * math.log(2 * math.pi)
    loss = (energy + cost / (2 * gamma)).mean()
    return loss, {"kl_change": (energy - start).mean().item(), penalty: cost.mean().item()}


def ou_step(x: torch.Tensor, gamma: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """One exact step of the OU process ``dX = -X ds + sqrt(2) dW`` of length ``gamma`` (eq. ``ch5-ou-step``):
    ``e^{-gamma} x + (1 - e^{-2 gamma})^{1/2} z``, ``z ~ N(0, I)``. Also the short initial smoothing of data
    without a density (Corollary 5.3)."""
    check_points(x, "x")
    gamma = check_positive(gamma, "gamma")
    check_generator(generator, device=x.device)
    z = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    return math.exp(-gamma) * x + math.sqrt(-math.expm1(-2 * gamma)) * z


def _check_fit(flow: object, sample: object, n_steps: object, batch: object, pool: object, lr: object,
               start: object, generator: object) -> int:
    if not isinstance(flow, BlockFlow):
        raise TypeError(f"flow must be a BlockFlow, got {type(flow).__name__}")
    check_callable(sample, "sample")
    check_int(n_steps, "n_steps")
    check_int(batch, "batch")
    check_int(pool, "pool")
    check_positive(lr, "lr")
    check_generator(generator)
    start = check_int(start, "start", minimum=0)
    if start >= len(flow):
        raise ValueError(f"start must be a block index below {len(flow)} (the number of blocks), got {start}")
    return start


def _progressive(flow: BlockFlow, sample: Callable, pool: int, start: int, n_report: int,
                 train: Callable[[int, torch.Tensor], list[float]], divergence_options: dict) -> list[dict]:
    """Train blocks ``start, ...`` one after the other on a pool of samples pushed block by block.

    Each block is trained on the pool of its level, then the pool is pushed through it with the evaluation
    solver (the one ``encode`` and ``decode`` use, so the next block learns from what they produce); the report holds,
    per block, its step, loss history, time, and on ``n_report`` pool points the KL change and mean squared displacement.
    """
    with torch.no_grad():
        x = check_points(sample((pool,)), "sample((pool,))", d=flow.d)
        x = flow.encode(x, stop=start) if start else x
    reports = []
    for n in range(start, len(flow)):
        begin = time.perf_counter()
        history = train(n, x)
        seconds = time.perf_counter() - begin
        with torch.no_grad():
            _, parts = jko_loss(flow.blocks[n], x[:n_report], flow.gammas[n], penalty="displacement",
                                solver=EVAL_SOLVER, **divergence_options)
            x = flow.encode(x, start=n, stop=n + 1)
        reports.append({"block": n, "gamma": flow.gammas[n], "history": history, "seconds": seconds, **parts})
    return reports


def _indices(pool: int, batch: int, generator: torch.Generator | None, device) -> torch.Tensor:
    return torch.randint(pool, (batch,), generator=generator).to(device)


def fit_jko(flow: BlockFlow, sample: Callable, n_steps: int, *, batch: int = 256, pool: int = 10_000,
            lr: float = 1e-2, start: int = 0, penalty: str = "kinetic", solver: dict | None = None,
            generator: torch.Generator | None = None, progress: bool = True, n_report: int = 500,
            **divergence_options) -> list[dict]:
    """Train the blocks of ``flow`` one after the other by the JKO-flow loss (eq. ``ch5-jko-loss``, with ``penalty``), ``n_steps``
    Adam steps each (cosine learning-rate decay), on batches of a pool of ``pool`` samples ``sample((pool,))``
    pushed through the blocks already trained (blocks below ``start`` are kept as they are).

    Returns one report per trained block: ``gamma``, loss ``history``, ``seconds``, and, measured after training
    on ``n_report`` pool points with the evaluation solver, ``kl_change`` (``KL(p_{n+1}||q) - KL(p_n||q)``) and
    ``displacement`` (``E|x_{n+1} - x_n|^2``). ``solver`` is the training solver (default RK4, 2 steps).
    """
    start = _check_fit(flow, sample, n_steps, batch, pool, lr, start, generator)
    check_choice(penalty, "penalty", ("kinetic", "displacement"))
    check_solver(solver)
    check_int(n_report, "n_report")

    def train(n: int, x: torch.Tensor) -> list[float]:
        block, gamma = flow.blocks[n], flow.gammas[n]
        optimizer = torch.optim.Adam(block.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)

        def loss(step: int) -> torch.Tensor:
            xb = x[_indices(x.shape[0], batch, generator, x.device)]
            return jko_loss(block, xb, gamma, penalty=penalty, solver=solver, **divergence_options)[0]

        return fit(loss, optimizer, n_steps, scheduler=scheduler, progress=progress)

    return _progressive(flow, sample, pool, start, n_report, train, divergence_options)


def fit_local_matching(flow: BlockFlow, sample: Callable, n_steps: int, *, batch: int = 256, pool: int = 10_000,
                       lr: float = 3e-3, start: int = 0, generator: torch.Generator | None = None,
                       progress: bool = True, n_report: int = 500) -> list[dict]:
    """Local flow matching: block ``n`` of ``flow`` is trained by flow matching (eq. ``ch4-cfm``, straight lines,
    :func:`flowtutor.matching.fit_matching`) on pairs ``(x_n, ou_step(x_n, gamma_n))`` (eq. ``ch5-ou-step``), so that
    it carries ``p_n`` to the law of one OU step; no ODE is solved during training. Pool, pushing and reports
    as in :func:`fit_jko` (the KL change and displacement are measured the same way, with exact divergence).
    """
    start = _check_fit(flow, sample, n_steps, batch, pool, lr, start, generator)
    check_int(n_report, "n_report")

    def train(n: int, x: torch.Tensor) -> list[float]:
        gamma = flow.gammas[n]

        def pairs(shape: tuple[int]) -> tuple[torch.Tensor, torch.Tensor]:
            xb = x[_indices(x.shape[0], shape[0], generator, x.device)]
            return xb, ou_step(xb, gamma, generator=generator)

        return fit_matching(flow.blocks[n], pairs, n_steps, batch=batch, lr=lr, generator=generator,
                            progress=progress)

    return _progressive(flow, sample, pool, start, n_report, train, {})
