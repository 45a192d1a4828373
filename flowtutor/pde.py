"""Grid solvers for the continuity and Fokker-Planck equations (for teaching and for checks).

Written by hand on purpose: chapter 1 teaches the finite-volume method. Cells hold averages
``rho_i``; the update is conservative, ``d rho_i/dt = -(F_{i+1/2} - F_{i-1/2}) / dx`` (eq. ``ch1-fv``),
so mass changes only by what crosses the boundary. Fluxes are upwind in the face velocity
``a``: ``F = a^+ rho_L + a^- rho_R``, with ``rho_L``, ``rho_R`` the cell values (first order,
``scheme="upwind"``) or van Leer-limited linear reconstructions (second order for smooth
solutions, ``scheme="muscl"``). Time stepping is Heun's SSP-RK2 with a CFL-limited step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ._checks import (
    check_callable,
    check_choice,
    check_device,
    check_dtype,
    check_int,
    check_nonnegative,
    check_positive,
    check_real,
    check_tensor,
)

__all__ = ["Grid1D", "Grid2D", "continuity_1d", "continuity_2d", "fokker_planck_1d", "fokker_planck_2d", "damped_wave_1d"]


@dataclass(frozen=True)
class Grid1D:
    """``n`` equal cells on ``[a, b]``."""

    a: float
    b: float
    n: int
    dtype: torch.dtype = torch.float64
    device: torch.device | str = "cpu"

    def __post_init__(self):
        check_real(self.a, "a")
        check_real(self.b, "b")
        check_int(self.n, "n", minimum=4)
        check_dtype(self.dtype)
        check_device(self.device)
        if not self.b > self.a:
            raise ValueError(f"b must be > a, got a={self.a}, b={self.b}")

    @property
    def dx(self) -> float:
        return (self.b - self.a) / self.n

    @property
    def edges(self) -> torch.Tensor:
        return torch.linspace(self.a, self.b, self.n + 1, dtype=self.dtype, device=self.device)

    @property
    def centers(self) -> torch.Tensor:
        e = self.edges
        return (e[1:] + e[:-1]) / 2


@dataclass(frozen=True)
class Grid2D:
    """The product of two 1-D grids; arrays are indexed ``[i, j]`` = ``(x_i, y_j)``."""

    x: Grid1D
    y: Grid1D

    def __post_init__(self):
        for name in ("x", "y"):
            if not isinstance(getattr(self, name), Grid1D):
                raise TypeError(f"{name} must be a Grid1D, got {type(getattr(self, name)).__name__}")

    @classmethod
    def square(cls, a: float, b: float, n: int, dtype=torch.float64, device="cpu") -> "Grid2D":
        g = Grid1D(a, b, n, dtype, device)
        return cls(g, g)

    @property
    def cell(self) -> float:
        return self.x.dx * self.y.dx

    @property
    def points(self) -> torch.Tensor:
        """Cell centres as an ``(nx * ny, 2)`` batch (reshape values to ``(nx, ny)``)."""
        gx, gy = torch.meshgrid(self.x.centers, self.y.centers, indexing="ij")
        return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return (self.x.a, self.x.b, self.y.a, self.y.b)


def _limited_slope(u: torch.Tensor, dim: int) -> torch.Tensor:
    """Van Leer's harmonic-mean slope of the padded array ``u`` along ``dim`` (interior cells)."""
    n = u.shape[dim]
    dm = u.narrow(dim, 1, n - 2) - u.narrow(dim, 0, n - 2)
    dp = u.narrow(dim, 2, n - 2) - u.narrow(dim, 1, n - 2)
    prod = dm * dp
    denom = torch.where(prod > 0, dm + dp, torch.ones_like(dm))
    return torch.where(prod > 0, 2 * prod / denom, torch.zeros_like(dm))


def _faces_flux(rho: torch.Tensor, a: torch.Tensor, dim: int, scheme: str) -> torch.Tensor:
    """Upwind fluxes at the ``n + 1`` faces along ``dim``, zero density outside the domain."""
    pad = [0, 0] * rho.ndim
    pad[2 * (rho.ndim - 1 - dim)] = pad[2 * (rho.ndim - 1 - dim) + 1] = 2
    u = torch.nn.functional.pad(rho, pad)  # two ghost cells each side
    n = rho.shape[dim]
    if scheme == "muscl":
        s = _limited_slope(u, dim)  # slopes of cells -1 .. n
        cells = u.narrow(dim, 1, n + 2)
        left = (cells + s / 2).narrow(dim, 0, n + 1)  # value just left of face k (cell k-1)
        right = (cells - s / 2).narrow(dim, 1, n + 1)  # value just right of face k (cell k)
    else:
        left, right = u.narrow(dim, 1, n + 1), u.narrow(dim, 2, n + 1)
    return a.clamp_min(0) * left + a.clamp_max(0) * right


def _march(rhs: Callable[[float, torch.Tensor], torch.Tensor], rho0: torch.Tensor, times: torch.Tensor,
           dt_max: Callable[[float], float]) -> torch.Tensor:
    """Heun (SSP-RK2) from ``times[0]``, recording the state at each of ``times``."""
    out = [rho0]
    rho, t = rho0, float(times[0])
    for t_next in times[1:].tolist():
        while t < t_next - 1e-14:
            dt = min(dt_max(t), t_next - t)
            stage = rho + dt * rhs(t, rho)
            rho = 0.5 * (rho + stage + dt * rhs(t + dt, stage))
            t += dt
        out.append(rho)
    return torch.stack(out)


def _check_times(times) -> torch.Tensor:
    try:
        t = torch.as_tensor(times, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"times must be a 1-D sequence of numbers, got {type(times).__name__}") from err
    check_tensor(t, "times", ndim=1)
    if t.numel() < 2 or not bool((t[1:] > t[:-1]).all()):
        raise ValueError("times must be strictly increasing with at least 2 entries")
    return t


def _check_density(rho0: torch.Tensor, grid: Grid1D | Grid2D, kind: type) -> None:
    """``grid`` of the given kind and ``rho0`` of its shape, finite and non-negative."""
    if not isinstance(grid, kind):
        raise TypeError(f"grid must be a {kind.__name__}, got {type(grid).__name__}")
    shape = (grid.n,) if kind is Grid1D else (grid.x.n, grid.y.n)
    check_tensor(rho0, "rho0", ndim=len(shape))
    if tuple(rho0.shape) != shape:
        raise ValueError(f"rho0 must have shape {shape} (the grid's cells), got {tuple(rho0.shape)}")
    if bool((rho0 < 0).any()):
        raise ValueError(f"rho0 must be a density (values >= 0), got min {float(rho0.min()):.3g}")


def _face_points(grid: Grid2D, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of the faces normal to x, ``((nx + 1) * ny, 2)``, and normal to y, ``(nx * (ny + 1), 2)``."""
    ex, cx = grid.x.edges.to(like), grid.x.centers.to(like)
    ey, cy = grid.y.edges.to(like), grid.y.centers.to(like)
    xf = torch.stack(torch.meshgrid(ex, cy, indexing="ij"), -1).reshape(-1, 2)
    yf = torch.stack(torch.meshgrid(cx, ey, indexing="ij"), -1).reshape(-1, 2)
    return xf, yf


def continuity_1d(rho0: torch.Tensor, grid: Grid1D, v: Callable, times: Sequence[float],
                  *, scheme: str = "muscl", cfl: float = 0.4) -> torch.Tensor:
    """Finite-volume solution of ``d_t rho + d_x(rho v) = 0`` (eq. ``ch1-ce``) on ``grid``.

    ``v(t, x)`` takes a scalar tensor and points ``(m, 1)`` and returns ``(m, 1)``. Density leaving
    the domain is lost (zero inflow). Returns the cell averages at ``times``, shape ``(T, n)``.
    """
    _check_density(rho0, grid, Grid1D)
    check_callable(v, "v")
    check_choice(scheme, "scheme", ("upwind", "muscl"))
    check_positive(cfl, "cfl")
    edges = grid.edges.to(rho0)[:, None]

    def face_velocity(t: float) -> torch.Tensor:
        return v(torch.tensor(t, dtype=rho0.dtype, device=rho0.device), edges)[:, 0]

    def rhs(t: float, rho: torch.Tensor) -> torch.Tensor:
        f = _faces_flux(rho, face_velocity(t), 0, scheme)
        return -(f[1:] - f[:-1]) / grid.dx

    def dt_max(t: float) -> float:
        return cfl * grid.dx / max(face_velocity(t).abs().max().item(), 1e-12)

    return _march(rhs, rho0, _check_times(times), dt_max)


def continuity_2d(rho0: torch.Tensor, grid: Grid2D, v: Callable, times: Sequence[float],
                  *, scheme: str = "muscl", cfl: float = 0.4) -> torch.Tensor:
    """Finite-volume solution of ``d_t rho + div(rho v) = 0`` (eq. ``ch1-ce``) in 2-D, unsplit.

    ``v(t, x)`` maps points ``(m, 2)`` to ``(m, 2)``; ``rho0`` is ``(nx, ny)``. Returns ``(T, nx, ny)``.
    """
    _check_density(rho0, grid, Grid2D)
    check_callable(v, "v")
    check_choice(scheme, "scheme", ("upwind", "muscl"))
    check_positive(cfl, "cfl")
    xf, yf = _face_points(grid, rho0)

    def face_velocities(t: float) -> tuple[torch.Tensor, torch.Tensor]:
        tt = torch.tensor(t, dtype=rho0.dtype, device=rho0.device)
        ax = v(tt, xf)[:, 0].reshape(grid.x.n + 1, grid.y.n)
        ay = v(tt, yf)[:, 1].reshape(grid.x.n, grid.y.n + 1)
        return ax, ay

    def rhs(t: float, rho: torch.Tensor) -> torch.Tensor:
        ax, ay = face_velocities(t)
        fx, fy = _faces_flux(rho, ax, 0, scheme), _faces_flux(rho, ay, 1, scheme)
        return -(fx[1:] - fx[:-1]) / grid.x.dx - (fy[:, 1:] - fy[:, :-1]) / grid.y.dx

    def dt_max(t: float) -> float:
        ax, ay = face_velocities(t)
        rate = ax.abs().max().item() / grid.x.dx + ay.abs().max().item() / grid.y.dx
        return cfl / max(rate, 1e-12)

    return _march(rhs, rho0, _check_times(times), dt_max)


def fokker_planck_1d(rho0: torch.Tensor, grid: Grid1D, grad_potential: Callable[[torch.Tensor], torch.Tensor],
                     diffusion: float, times: Sequence[float], *, cfl: float = 0.4) -> torch.Tensor:
    """Finite-volume solution of ``d_t rho = d_x(rho V') + D d_xx rho`` (eq. ``ch1-fp``).

    The flux is ``F = -V' rho - D d_x rho``: the drift part upwind (MUSCL), the diffusion part
    centred. The boundary is closed (zero flux), so mass is conserved to round-off.
    ``grad_potential(x)`` maps a 1-D tensor of positions to ``V'``. Returns ``(T, n)``.
    """
    _check_density(rho0, grid, Grid1D)
    check_callable(grad_potential, "grad_potential")
    d = check_nonnegative(diffusion, "diffusion")
    check_positive(cfl, "cfl")
    a = -grad_potential(grid.edges.to(rho0))
    a[0] = a[-1] = 0.0  # closed boundary
    dx = grid.dx

    def rhs(t: float, rho: torch.Tensor) -> torch.Tensor:
        f = _faces_flux(rho, a, 0, "muscl")
        grad = torch.zeros_like(f)
        grad[1:-1] = (rho[1:] - rho[:-1]) / dx
        f = f - d * grad
        return -(f[1:] - f[:-1]) / dx

    dt = cfl * min(dx / max(a.abs().max().item(), 1e-12), dx**2 / (2 * d) if d > 0 else float("inf"))
    return _march(rhs, rho0, _check_times(times), lambda t: dt)


def fokker_planck_2d(rho0: torch.Tensor, grid: Grid2D, grad_potential: Callable[[torch.Tensor], torch.Tensor],
                     diffusion: float, times: Sequence[float], *, cfl: float = 0.4) -> torch.Tensor:
    """Finite-volume solution of ``d_t rho = div(rho grad V) + D Laplace rho`` (eq. ``ch1-fp``) in 2-D.

    As :func:`fokker_planck_1d`, face by face: the drift flux upwind (MUSCL), the diffusive flux centred, zero flux
    through the boundary (mass conserved to round-off). ``grad_potential`` maps points ``(m, 2)`` to ``grad V``
    ``(m, 2)`` (a time-independent potential, evaluated once at the faces); ``rho0`` is ``(nx, ny)``. Returns
    ``(T, nx, ny)``. The scheme is not well-balanced: its stationary state is close to, not exactly, the grid Gibbs
    density ``exp(-V / D)``.
    """
    _check_density(rho0, grid, Grid2D)
    check_callable(grad_potential, "grad_potential")
    d = check_nonnegative(diffusion, "diffusion")
    check_positive(cfl, "cfl")
    xf, yf = _face_points(grid, rho0)
    with torch.no_grad():
        gx, gy = grad_potential(xf), grad_potential(yf)
    for faces, values in ((xf, gx), (yf, gy)):
        if not isinstance(values, torch.Tensor) or values.shape != faces.shape:
            got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(f"grad_potential must map points (m, 2) to (m, 2), got {got} for m = {faces.shape[0]}")
    ax = -gx[:, 0].reshape(grid.x.n + 1, grid.y.n)
    ay = -gy[:, 1].reshape(grid.x.n, grid.y.n + 1)
    if not (bool(torch.isfinite(ax).all()) and bool(torch.isfinite(ay).all())):
        raise ValueError("grad_potential returned NaN or infinite values on the grid faces")
    ax[0], ax[-1], ay[:, 0], ay[:, -1] = 0.0, 0.0, 0.0, 0.0  # closed boundary
    dx, dy = grid.x.dx, grid.y.dx

    def rhs(t: float, rho: torch.Tensor) -> torch.Tensor:
        fx, fy = _faces_flux(rho, ax, 0, "muscl"), _faces_flux(rho, ay, 1, "muscl")
        fx[1:-1] -= d * (rho[1:] - rho[:-1]) / dx
        fy[:, 1:-1] -= d * (rho[:, 1:] - rho[:, :-1]) / dy
        return -(fx[1:] - fx[:-1]) / dx - (fy[:, 1:] - fy[:, :-1]) / dy

    rate = ax.abs().max().item() / dx + ay.abs().max().item() / dy
    dt = cfl / max(rate + 2 * d * (1 / dx**2 + 1 / dy**2), 1e-12)
    return _march(rhs, rho0, _check_times(times), lambda t: dt)


def damped_wave_1d(rho0: torch.Tensor, grid: Grid1D, a: float, c: float, t_end: float, *,
                   cfl: float = 0.9) -> torch.Tensor:
    """Finite-difference solution of the telegrapher's equation ``u_tt + 2a u_t = c^2 u_xx`` (eq.
    ``ch8-telegraph``) with ``u(0) = rho0`` and ``u_t(0) = 0``, at time ``t_end``, on the cell centres of ``grid``.

    Centred differences in time and space (second order), ``u^{n+1} = [2u^n - (1 - a dt) u^{n-1} + l^2 D u^n] /
    (1 + a dt)`` with ``l = c dt / dx <= cfl <= 1`` (the CFL condition of the wave equation) and ``D`` the
    three-point second difference; the first step is the Taylor step ``u^1 = u^0 + l^2 D u^0 / 2``. ``u = 0``
    outside the grid (take the grid wider than the support plus ``c t_end``).
    """
    _check_density(rho0, grid, Grid1D)
    a, c, t_end = check_positive(a, "a"), check_positive(c, "c"), check_positive(t_end, "t_end")
    cfl = check_positive(cfl, "cfl")
    if cfl > 1:
        raise ValueError(f"cfl must be <= 1 (the explicit scheme is unstable beyond), got {cfl}")
    n_steps = max(2, int(torch.ceil(torch.tensor(t_end * c / (cfl * grid.dx))).item()))
    dt = t_end / n_steps
    lam2 = (c * dt / grid.dx) ** 2

    def second_difference(u: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(u, (1, 1))
        return padded[2:] - 2 * u + padded[:-2]

    previous, current = rho0, rho0 + 0.5 * lam2 * second_difference(rho0)
    for _ in range(n_steps - 1):
        previous, current = current, (2 * current - (1 - a * dt) * previous + lam2 * second_difference(current)) / (
            1 + a * dt)
    return current

