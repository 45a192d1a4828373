"""Scalar energies and their samplers: KL as a Lyapunov function (chapter 6; Wang, Xue & Dixon 2026).

An energy is any callable ``U(x) -> (n,)`` on points ``x`` of shape ``(n, d)``; its Gibbs law is
``rho*(x) = exp(-U(x)) / Z``. Two autonomous samplers move particles by its gradient:

* Langevin (unadjusted, Euler-Maruyama): ``x <- x - h grad U(x) + sqrt(2 h) xi``, the particle form of the Fokker-Planck
  equation ``d_t rho = div(rho grad U) + Laplace rho``, whose stationary law is ``rho*``;
* the deterministic gradient flow ``x <- x - h grad U(x)``, whose law collapses onto the minima of ``U``.

Along the deterministic flow ``dKL(rho_t || rho*)/dt = E[Laplace U] - E[|grad U|^2]``, and the ratio
``R_t = E[Laplace U] / E[|grad U|^2]`` crossing 1 marks the KL minimum. Energies compose by adding: conjunction
``U_A + U_B``, disjunction ``-log(e^{-U_A} + e^{-U_B})``, negation ``U_B - w U_A``; a sum of gradients is a gradient, so the
composed drift has no curl. The samplers are the book's integrators (``sde.euler_maruyama``; ``ODEFlow`` with Euler
steps) applied to the drift ``-grad U``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from ._checks import (
    check_bool,
    check_callable,
    check_choice,
    check_generator,
    check_int,
    check_points,
    check_positive,
    check_real,
    check_tensor,
)
from .divergence import divergence_exact, jacobian
from .flow import ODEFlow
from .metrics import Estimate, mean_estimate
from .nets import MLP
from .pde import Grid2D
from .sde import euler_maruyama
from .training import fit

__all__ = [
    "EnergyMLP",
    "energy_grad",
    "energy_laplacian",
    "sample_energy",
    "gibbs_grid",
    "GradientFlowTrace",
    "trace_gradient_flow",
    "lyapunov_terms",
    "stopping_step",
    "langevin_time",
    "conjunction",
    "disjunction",
    "negation",
    "jacobian_asymmetry",
    "dsm_energy_loss",
    "ism_energy_loss",
    "fit_energy",
    "ood_scores",
]

Energy = Callable[[torch.Tensor], torch.Tensor]


class EnergyMLP(nn.Module):
    """A scalar energy ``U(x) = net(x / scale)`` in ``R^d`` (smooth activation, so that its Laplacian exists), returning ``(n,)``."""

    def __init__(self, d: int, hidden: int = 64, n_layers: int = 3, activation: str = "softplus", scale: float = 1.0):
        super().__init__()
        self.d = check_int(d, "d")
        self.scale = check_positive(scale, "scale")
        self.net = MLP(d, 1, hidden, n_layers, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_points(x, "x", d=self.d, finite=False)  # no value check: this runs at every sampler step
        return self.net(x / self.scale)[:, 0]


def _energy_values(energy: Energy, x: torch.Tensor) -> torch.Tensor:
    u = energy(x)
    if not isinstance(u, torch.Tensor) or tuple(u.shape) != (x.shape[0],):
        got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"energy(x) must return a tensor of shape ({x.shape[0]},), got {got}")
    return u


def energy_grad(energy: Energy, x: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
    """``grad U(x)`` by automatic differentiation, shape ``(n, d)`` (differentiable with ``create_graph=True``)."""
    check_callable(energy, "energy")
    check_points(x, "x")
    check_bool(create_graph, "create_graph")
    return _grad(energy, x, create_graph)


def _grad(energy: Energy, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    with torch.enable_grad():
        y = x if x.requires_grad else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_energy_values(energy, y).sum(), y, create_graph=create_graph)
    return g


def energy_laplacian(energy: Energy, x: torch.Tensor, *, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Laplace U(x), grad U(x))``: the exact Laplacian as the divergence of the gradient (d backward passes)."""
    check_callable(energy, "energy")
    check_points(x, "x")
    check_bool(create_graph, "create_graph")
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_energy_values(energy, y).sum(), y, create_graph=True)
        lap = divergence_exact(g, y, create_graph=create_graph)
    return lap, (g if create_graph else g.detach())


def sample_energy(energy: Energy, x0: torch.Tensor, step: float, n_steps: int, *, langevin: bool = True,
                  record_every: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Run ``n_steps`` steps of size ``step`` of Langevin (``langevin=True``: Euler-Maruyama for
    ``dX = -grad U dt + sqrt(2) dW``, eq. ``ch6-fp``, :func:`flowtutor.sde.euler_maruyama`) or of the deterministic gradient flow
    (Euler for ``dx/dt = -grad U``, :class:`flowtutor.ODEFlow`) from ``x0``. Returns the final points ``(n, d)``, or
    with ``record_every = k`` the points at steps ``0, k, 2k, ..., n_steps`` stacked as ``(n_steps // k + 1, n, d)``.
    Raises ``ValueError`` naming the step when the particles become non-finite (the step is too large)."""
    check_callable(energy, "energy")
    check_points(x0, "x0")
    h = check_positive(step, "step")
    check_int(n_steps, "n_steps")
    check_bool(langevin, "langevin")
    every = n_steps if record_every is None else check_int(record_every, "record_every")
    if n_steps % every:
        raise ValueError(f"record_every must divide n_steps = {n_steps}, got {record_every}")
    check_generator(generator, device=x0.device)

    def drift(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -_grad(energy, x)

    too_large = f"the particles became NaN or infinite; lower step (now {h})"
    if langevin:
        path = euler_maruyama(drift, x0, sigma=math.sqrt(2), t0=0.0, t1=n_steps * h, n_steps=n_steps,
                              generator=generator)[::every]
        if not bool(torch.isfinite(path[-1]).all()):
            raise ValueError(too_large)
    else:
        times = torch.arange(0, n_steps + 1, every, dtype=x0.dtype, device=x0.device) * h
        try:
            path = ODEFlow(drift, method="euler", n_steps=n_steps).trajectory(x0, times)
        except ValueError as err:
            raise ValueError(too_large) from err
    return path if record_every is not None else path[-1]


def gibbs_grid(energy: Energy, grid: Grid2D) -> tuple[torch.Tensor, float]:
    """``(rho*, log Z)`` on a 2-D grid (built on the energy's device and dtype): the Gibbs density ``exp(-U) / Z`` at
    the cell centres, shape ``(nx, ny)``, with ``Z`` by the midpoint rule (eq. ``ch6-gibbs``; the mass outside the grid
    is neglected)."""
    check_callable(energy, "energy")
    if not isinstance(grid, Grid2D):
        raise TypeError(f"grid must be a flowtutor.pde.Grid2D, got {type(grid).__name__}")
    with torch.no_grad():
        u = _energy_values(energy, grid.points)
    if not bool(torch.isfinite(u).all()):
        raise ValueError("energy returned NaN or infinite values on the grid")
    log_z = (torch.logsumexp(-u, 0) + math.log(grid.cell)).item()
    return (-u - log_z).exp().reshape(grid.x.n, grid.y.n), log_z


class GradientFlowTrace(NamedTuple):
    """What :func:`trace_gradient_flow` records at every step ``k = 0..K`` (``points`` every ``record_every``)."""

    points: torch.Tensor  # (K // record_every + 1, n, d)
    kl: list[Estimate]  # KL(rho_k || rho*) with its Monte Carlo error
    laplacian: torch.Tensor  # E[Laplace U], (K + 1,)
    grad_sq: torch.Tensor  # E[|grad U|^2], (K + 1,)

    @property
    def ratio(self) -> torch.Tensor:
        """``R_k = E[Laplace U] / E[|grad U|^2]`` (eq. ``ch6-ratio``)."""
        return self.laplacian / self.grad_sq


def trace_gradient_flow(energy: Energy, x0: torch.Tensor, log_rho0: torch.Tensor, log_z: float, step: float,
                        n_steps: int, *, record_every: int | None = None) -> GradientFlowTrace:
    """Euler steps ``x <- x - h grad U(x)`` of the deterministic flow with the exact log-density of the particles' law.

    The Euler map ``T(x) = x - h grad U(x)`` has Jacobian ``I - h Hess U``, so along each particle
    ``log rho_{k+1}(T x) = log rho_k(x) - log |det(I - h Hess U(x))|`` (eq. ``ch6-discrete-cov``, the discrete form of
    ``d log rho / dt = Laplace U``), and ``KL(rho_k || rho*) = E_{rho_k}[log rho_k + U + log Z]`` is a plain average.
    ``x0`` are samples of ``rho_0`` and ``log_rho0`` their log-densities; ``log_z`` the energy's log-normaliser.
    Written by hand: chapter 6 teaches this tracking. Raises ``ValueError`` if the map stops being one-to-one
    (``h lambda_max(Hess U) >= 1`` at some particle)."""
    check_callable(energy, "energy")
    check_points(x0, "x0")
    check_tensor(log_rho0, "log_rho0", ndim=1)
    if log_rho0.shape[0] != x0.shape[0]:
        raise ValueError(f"log_rho0 must hold one value per point of x0 ({x0.shape[0]}), got {log_rho0.shape[0]}")
    log_z = check_real(log_z, "log_z")
    h = check_positive(step, "step")
    check_int(n_steps, "n_steps")
    every = n_steps if record_every is None else check_int(record_every, "record_every")
    if n_steps % every:
        raise ValueError(f"record_every must divide n_steps = {n_steps}, got {record_every}")
    eye = torch.eye(x0.shape[1], dtype=x0.dtype, device=x0.device)
    x, log_rho = x0.detach(), log_rho0.detach().to(x0)
    kls, laps, grads, points = [], [], [], []
    for k in range(n_steps + 1):
        with torch.enable_grad():
            y = x.requires_grad_(True)
            u = _energy_values(energy, y)
            (g,) = torch.autograd.grad(u.sum(), y, create_graph=True)
            hess = jacobian(g, y)
        u, g, x = u.detach(), g.detach(), x.detach()
        if not bool(torch.isfinite(g).all()):
            raise ValueError(f"grad U became NaN or infinite at step {k}; lower step (now {h})")
        kls.append(mean_estimate(log_rho + u + log_z))
        laps.append(hess.diagonal(dim1=1, dim2=2).sum(1).mean())
        grads.append((g**2).sum(1).mean())
        if k % every == 0:
            points.append(x)
        if k == n_steps:
            break
        hess = (hess + hess.transpose(1, 2)) / 2  # a Hessian, symmetric up to round-off
        if bool((torch.linalg.eigvalsh(h * hess)[:, -1] >= 1).any()):
            raise ValueError(f"the Euler map folds at step {k} (h lambda_max(Hess U) >= 1); lower step (now {h})")
        log_rho, x = log_rho - torch.linalg.slogdet(eye - h * hess)[1], x - h * g
    return GradientFlowTrace(torch.stack(points), kls, torch.stack(laps), torch.stack(grads))


def lyapunov_terms(energy: Energy, x: torch.Tensor) -> tuple[float, float]:
    """``(E[Laplace U], E[|grad U|^2])`` over the points ``x``: along the deterministic flow ``dKL/dt`` is their difference
    (eq. ``ch6-det-dkl``) and ``R_t`` their ratio (eq. ``ch6-ratio``)."""
    lap, g = energy_laplacian(energy, x)
    return lap.mean().item(), (g**2).sum(1).mean().item()


def stopping_step(ratios: Sequence[float] | torch.Tensor) -> int:
    """The first index ``k`` with ``R_k >= 1`` (the deterministic flow's stopping rule, eq. ``ch6-stop``); the last
    index if ``R`` never reaches 1."""
    if isinstance(ratios, torch.Tensor):
        r = ratios.double()
    else:
        try:
            r = torch.as_tensor(ratios, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"ratios must be a 1-D sequence of numbers, got {type(ratios).__name__}") from err
    check_tensor(r, "ratios", ndim=1)
    if r.numel() == 0:
        raise ValueError("ratios must hold at least one value")
    hits = torch.nonzero(r >= 1)
    return int(hits[0]) if hits.numel() else r.numel() - 1


def langevin_time(kl0: float, eps: float, c_ls: float) -> float:
    """``tau = log(KL_0 / eps) / (2 C)`` (eq. ``ch6-tau-lang``): the Langevin time after which ``KL <= eps`` under a log-Sobolev inequality with
    constant ``C``; 0 when ``KL_0 <= eps``."""
    kl0, eps, c = check_positive(kl0, "kl0"), check_positive(eps, "eps"), check_positive(c_ls, "c_ls")
    return max(0.0, math.log(kl0 / eps) / (2 * c))


class _Composed(nn.Module):
    def __init__(self, energies: Sequence[Energy], combine: Callable[[list[torch.Tensor]], torch.Tensor], name: str):
        super().__init__()
        for i, u in enumerate(energies):
            check_callable(u, f"energies[{i}]")
        self.energies = list(energies)
        self.modules_ = nn.ModuleList([u for u in energies if isinstance(u, nn.Module)])
        self.combine, self.name = combine, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine([_energy_values(u, x) for u in self.energies])


def _at_least_two(energies: tuple) -> None:
    if len(energies) < 2:
        raise ValueError(f"energies must hold at least two energies to compose, got {len(energies)}")


def conjunction(*energies: Energy) -> nn.Module:
    """``U = sum_i U_i`` (eq. ``ch6-composition``): the Gibbs law is proportional to the product of the experts' laws."""
    _at_least_two(energies)
    return _Composed(energies, lambda us: torch.stack(us).sum(0), "conjunction")


def disjunction(*energies: Energy) -> nn.Module:
    """``U = -log sum_i exp(-U_i)``: the Gibbs law is a mixture, each expert weighted by its own
    normalising constant."""
    _at_least_two(energies)
    return _Composed(energies, lambda us: -torch.logsumexp(-torch.stack(us), 0), "disjunction")


def negation(keep: Energy, remove: Energy, weight: float = 0.35) -> nn.Module:
    """``U = U_keep - weight * U_remove``: the law of ``keep`` with the mass of ``remove`` pushed away
    (``weight`` below 1 so that the composed energy still grows at infinity when both grow alike)."""
    check_callable(keep, "keep")
    check_callable(remove, "remove")
    w = check_real(weight, "weight")
    return _Composed([keep, remove], lambda us: us[0] - w * us[1], "negation")


def jacobian_asymmetry(field: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``max_ij |J_ij - J_ji|`` per point for a field ``f(x) -> (n, d)`` (its curl in 2-D, up to sign): zero for gradients."""
    check_callable(field, "field")
    check_points(x, "x")
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        fx = field(y)
        if not isinstance(fx, torch.Tensor) or fx.shape != y.shape:
            raise ValueError(f"field(x) must return a tensor of the shape of x {tuple(y.shape)}")
        jac = jacobian(fx, y)
    return (jac - jac.transpose(1, 2)).abs().amax(dim=(1, 2))


def dsm_energy_loss(energy: Energy, x: torch.Tensor, sigma: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching for an energy (eq. ``ch6-dsm``): ``E |sigma grad U(x + sigma eps) - eps|^2`` with
    ``eps ~ N(0, I)``; its minimiser's Gibbs law is the data smoothed by ``N(0, sigma^2 I)`` (Vincent 2011)."""
    check_callable(energy, "energy")
    check_points(x, "x")
    s = check_positive(sigma, "sigma")
    check_generator(generator, device=x.device)
    eps = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    g = _grad(energy, (x + s * eps).requires_grad_(True), create_graph=True)
    return ((s * g - eps) ** 2).sum(1).mean()


def ism_energy_loss(energy: Energy, x: torch.Tensor) -> torch.Tensor:
    """Implicit score matching (Hyvarinen 2005, eq. ``ch6-ism``) for the score ``-grad U``:
    ``E[|grad U|^2 / 2 - Laplace U]``, equal to half the Fisher divergence to the data up to a constant."""
    lap, g = energy_laplacian(energy, x, create_graph=True)
    return ((g**2).sum(1) / 2 - lap).mean()


def fit_energy(energy: nn.Module, sample: Callable, n_steps: int, *, method: str = "dsm", sigma: float = 0.1,
               batch: int = 256, lr: float = 3e-3, generator: torch.Generator | None = None,
               progress: bool = True) -> list[float]:
    """Train ``energy`` by ``method`` = ``"dsm"`` (:func:`dsm_energy_loss`, noise ``sigma``) or ``"ism"``
    (:func:`ism_energy_loss`) on fresh batches ``sample((batch,))``, with Adam and a cosine decay (through
    :func:`flowtutor.training.fit`: NaN guard, progress). Returns the loss history."""
    if not isinstance(energy, nn.Module):
        raise TypeError(f"energy must be a torch.nn.Module (its parameters are trained), got {type(energy).__name__}")
    check_callable(sample, "sample")
    check_choice(method, "method", ("dsm", "ism"))
    check_positive(sigma, "sigma")
    check_int(batch, "batch")
    check_positive(lr, "lr")
    check_generator(generator)
    optimizer = torch.optim.Adam(energy.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, check_int(n_steps, "n_steps"))

    def loss(step: int) -> torch.Tensor:
        x = sample((batch,))
        if method == "dsm":
            return dsm_energy_loss(energy, x, sigma, generator=generator)
        return ism_energy_loss(energy, x)

    return fit(loss, optimizer, n_steps, scheduler=scheduler, progress=progress)


def ood_scores(energy: Energy, x: torch.Tensor, step: float, n_steps: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """The three scores of a point (eq. ``ch6-ood``): ``S1 = U(x)``, ``S2 = |grad U(x)|`` and ``S3 = |x - Phi(x)|``, the
    displacement under ``n_steps`` Euler steps of size ``step`` of the deterministic flow; each ``(n,)``."""
    check_callable(energy, "energy")
    check_points(x, "x")
    with torch.no_grad():
        s1 = _energy_values(energy, x)
    s2 = _grad(energy, x).norm(dim=1)
    s3 = (x - sample_energy(energy, x, step, n_steps, langevin=False)).norm(dim=1)
    return s1, s2, s3
