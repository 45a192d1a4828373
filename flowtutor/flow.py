"""ODEFlow: the book's one integrator and one likelihood routine.

A velocity field is any callable ``v(t, x) -> Tensor`` with ``torchdiffeq``'s argument order:
``t`` a scalar tensor, ``x`` of shape ``(n, d)``. Generation runs from ``t = 0`` (base) to
``t = 1`` (data). ``ODEFlow`` solves ``dx/dt = v(t, x)`` (eq. ``ch1-ode``) with ``torchdiffeq.odeint``
(or ``odeint_adjoint``) and computes log-densities by the instantaneous change of variables
(eq. ``ch1-icov``): ``d/dt log rho_t(x_t) = -div v(t, x_t)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ._checks import (
    check_callable,
    check_choice,
    check_int,
    check_points,
    check_positive,
    check_tensor,
)
from .divergence import divergence_exact, divergence_hutchinson, sample_probes

__all__ = ["ODEFlow", "reverse_time", "FIXED_STEP_METHODS", "ADAPTIVE_METHODS"]

FIXED_STEP_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def reverse_time(u: VelocityField) -> VelocityField:
    """Convert a field from the data-to-noise convention to the book's noise-to-data one.

    If ``y(s)`` solves ``dy/ds = u(s, y)`` with ``s = 0`` at the data, then ``x(t) = y(1 - t)``
    solves ``dx/dt = -u(1 - t, x)`` with ``t = 1`` at the data. This is the one helper used to
    convert methods stated data-to-noise in their sources (FFJORD, JKO flows, diffusion, Kac).
    """
    check_callable(u, "u")

    def v(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -u(1 - t, x)

    return v


class _Counted(nn.Module):
    """Wraps ``v`` as a module (so the adjoint finds its parameters) and counts evaluations."""

    def __init__(self, v: VelocityField):
        super().__init__()
        self.v = v
        self.nfe = 0

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        out = self.v(t, x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"v(t, x) must return a tensor of the shape of x {tuple(x.shape)}, got {got}")
        return out


class _LogDensityDynamics(nn.Module):
    """The augmented system ``d/dt [x, l] = [v(t, x), -div v(t, x)]`` (eq. ``ch1-icov``), optionally with
    the regularisers ``d/dt [k, f] = [|v|^2, ||grad v||_F^2]`` appended (chapter 3)."""

    def __init__(self, field: _Counted, divergence: str, probes: torch.Tensor | None, regularize: bool = False):
        super().__init__()
        self.field = field
        self.divergence = divergence
        self.probes = probes
        self.regularize = regularize

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not state.requires_grad:
                state = state.detach().requires_grad_(True)
            x = state[:, : state.shape[1] - (3 if self.regularize else 1)]
            vx = self.field(t, x)
            opts = {"create_graph": create_graph, "frobenius": self.regularize}
            if self.divergence == "exact":
                out = divergence_exact(vx, x, **opts)
            else:
                out = divergence_hutchinson(vx, x, self.probes, **opts)
            div, frob = out if self.regularize else (out, None)
        columns = [vx, -div[:, None]]
        if self.regularize:
            columns += [(vx**2).sum(1, keepdim=True), frob[:, None]]
        derivative = torch.cat(columns, dim=1)
        return derivative if create_graph else derivative.detach()


class ODEFlow:
    """Integrate a velocity field forward (push) and backward (pull), with log-densities.

    Parameters
    ----------
    v : callable ``v(t, x)``; an ``nn.Module`` if gradients are wanted with ``adjoint=True``.
    method : a fixed-step method of torchdiffeq (needs ``n_steps``) or an adaptive one
        (uses ``rtol``/``atol``).
    n_steps : number of steps over the interval of integration (fixed-step methods only).
    rtol, atol : tolerances (adaptive methods only); default 1e-5 each.
    adjoint : use ``odeint_adjoint`` (memory O(1) in the number of steps) for gradients.

    After each call, ``nfe`` holds the number of evaluations of ``v`` it made.
    """

    def __init__(
        self,
        v: VelocityField,
        *,
        method: str = "dopri5",
        n_steps: int | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        adjoint: bool = False,
    ):
        check_callable(v, "v")
        check_choice(method, "method", FIXED_STEP_METHODS + ADAPTIVE_METHODS)
        if method in FIXED_STEP_METHODS:
            if n_steps is None:
                raise ValueError(f"method {method!r} is fixed-step: give n_steps (and no rtol/atol)")
            if rtol is not None or atol is not None:
                raise ValueError(f"method {method!r} is fixed-step: rtol/atol do not apply, give n_steps only")
            check_int(n_steps, "n_steps")
        else:
            if n_steps is not None:
                raise ValueError(f"method {method!r} is adaptive: give rtol/atol, not n_steps")
            rtol = 1e-5 if rtol is None else check_positive(rtol, "rtol")
            atol = 1e-5 if atol is None else check_positive(atol, "atol")
        self.field = _Counted(v)
        self.method, self.n_steps, self.rtol, self.atol = method, n_steps, rtol, atol
        self.adjoint = bool(adjoint)
        self.nfe = 0

    # -- the one call into torchdiffeq -------------------------------------------------------
    def _solve(self, func: nn.Module, y0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        kwargs: dict = {"method": self.method}
        if self.method in FIXED_STEP_METHODS:
            span = (times[-1] - times[0]).abs().item()
            kwargs["options"] = {"step_size": span / self.n_steps}
        else:
            # Land steps on the output times: otherwise dopri5 steps past the last time and interpolates
            # back, evaluating v outside [t0, t1] (undefined for fields that explode at t = 1).
            kwargs.update(rtol=self.rtol, atol=self.atol, options={"step_t": times[1:]})
        self.field.nfe = 0
        if self.adjoint:
            params = tuple(p for p in func.parameters() if p.requires_grad)
            out = odeint_adjoint(func, y0, times, adjoint_params=params, **kwargs)
        else:
            out = odeint(func, y0, times, **kwargs)
        self.nfe = self.field.nfe
        return out

    @staticmethod
    def _times(times: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(times, dtype=like.dtype, device=like.device)
        check_tensor(t, "times", ndim=1)
        if t.numel() < 2:
            raise ValueError(f"times must hold at least 2 time points, got {t.numel()}")
        steps = t[1:] - t[:-1]
        if not (bool((steps > 0).all()) or bool((steps < 0).all())):
            raise ValueError("times must be strictly increasing or strictly decreasing")
        return t

    # -- samples -----------------------------------------------------------------------------
    def trajectory(self, x: torch.Tensor, times: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """Solutions of eq. (1.2) at ``times`` (monotone, ``times[0]`` is where ``x`` sits): shape ``(T, n, d)``."""
        check_points(x, "x")
        return self._solve(self.field, x, self._times(times, x))

    def push(self, x: torch.Tensor, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
        """Move samples ``x`` of ``rho_t0`` to samples of ``rho_t1`` (the flow map ``T_{t0 -> t1}``)."""
        return self.trajectory(x, [t0, t1])[-1]

    def pull(self, x: torch.Tensor, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
        """Inverse of :meth:`push`: integrate backwards from ``t1`` to ``t0``."""
        return self.trajectory(x, [t1, t0])[-1]

    # -- log-densities -----------------------------------------------------------------------
    def _augmented(self, divergence: str, probe: str, n_probes: int, x: torch.Tensor,
                   generator: torch.Generator | None, regularize: bool = False) -> _LogDensityDynamics:
        check_choice(divergence, "divergence", ("exact", "hutchinson"))
        probes = None
        if divergence == "hutchinson":
            check_int(n_probes, "n_probes")
            probes = sample_probes((n_probes, *x.shape), probe, dtype=x.dtype, device=x.device,
                                   generator=generator)
        return _LogDensityDynamics(self.field, divergence, probes, regularize)

    def log_prob_trajectory(
        self,
        x: torch.Tensor,
        log_p: torch.Tensor,
        times: Sequence[float] | torch.Tensor,
        *,
        divergence: str = "exact",
        probe: str = "rademacher",
        n_probes: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Points and log-densities along the flow (eq. ``ch1-icov``), starting from ``(x, log_p)`` at ``times[0]``.

        Returns ``(xs, log_ps)`` of shapes ``(T, n, d)`` and ``(T, n)``. With
        ``divergence="hutchinson"`` the probes (``probe`` = "rademacher" or "gaussian",
        ``n_probes`` per point) are drawn once per solve and held fixed along it.
        """
        check_points(x, "x")
        check_tensor(log_p, "log_p", ndim=1)
        if log_p.shape[0] != x.shape[0]:
            raise ValueError(f"log_p must have shape ({x.shape[0]},), got {tuple(log_p.shape)}")
        func = self._augmented(divergence, probe, n_probes, x, generator)
        out = self._solve(func, torch.cat([x, log_p[:, None]], dim=1), self._times(times, x))
        return out[..., :-1], out[..., -1]

    def log_prob(
        self,
        x: torch.Tensor,
        base: torch.distributions.Distribution | Callable[[torch.Tensor], torch.Tensor],
        t0: float = 0.0,
        t1: float = 1.0,
        **divergence_options,
    ) -> torch.Tensor:
        """``log rho_t1(x)`` where ``rho_t0`` is ``base`` (eq. ``ch1-icov``): pull ``x`` back, add the divergence integral.

        ``base`` is a distribution or a callable returning log-densities. Keyword options are those
        of :meth:`log_prob_trajectory` (``divergence``, ``probe``, ``n_probes``, ``generator``).
        Differentiable (for maximum-likelihood training) when called with grad enabled.
        """
        base_log_prob = base.log_prob if isinstance(base, torch.distributions.Distribution) else base
        check_callable(base_log_prob, "base")
        zeros = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) if isinstance(x, torch.Tensor) else x
        xs, ls = self.log_prob_trajectory(x, zeros, [t1, t0], **divergence_options)
        # Integrating backwards from l(t1) = 0 gives l(t0) = int_{t0}^{t1} div v dt.
        return base_log_prob(xs[-1]) - ls[-1]

    def log_prob_regularized(
        self,
        x: torch.Tensor,
        base: torch.distributions.Distribution,
        t0: float = 0.0,
        t1: float = 1.0,
        *,
        divergence: str = "exact",
        probe: str = "rademacher",
        n_probes: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`log_prob` together with, per sample, the kinetic energy ``int |v|^2 dt`` and the Jacobian
        Frobenius norm ``int ||grad v||_F^2 dt`` along its path (eq. ``ch3-rnode``), from one solve.

        With ``divergence="hutchinson"`` the Frobenius term is the unbiased estimate ``|eps^T J|^2``.
        """
        check_points(x, "x")
        if not isinstance(base, torch.distributions.Distribution):
            raise TypeError(f"base must be a torch.distributions.Distribution, got {type(base).__name__}")
        func = self._augmented(divergence, probe, n_probes, x, generator, regularize=True)
        zeros = torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device)
        out = self._solve(func, torch.cat([x, zeros], dim=1), self._times([t1, t0], x))[-1]
        d = x.shape[1]
        # backwards from t1 to t0: the integrals of |v|^2 and ||J||^2 come out with a minus sign
        return base.log_prob(out[:, :d]) - out[:, d], -out[:, d + 1], -out[:, d + 2]
