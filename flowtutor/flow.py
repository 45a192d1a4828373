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
    check_bool,
    check_callable,
    check_choice,
    check_distribution,
    check_generator,
    check_int,
    check_points,
    check_positive,
    check_real,
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


def _field_name(v: object) -> str:
    return getattr(v, "__qualname__", None) or type(v).__name__


class _Counted(nn.Module):
    """Wraps ``v`` as a module (so the adjoint finds its parameters) and counts evaluations.

    With ``strict`` set, raises at the first evaluation whose value is not finite, naming the time
    (used only to locate the failure after a solve went wrong, see ``ODEFlow._solve``).
    """

    def __init__(self, v: VelocityField):
        super().__init__()
        self.v = v
        self.nfe = 0
        self.strict = False

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        out = self.v(t, x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"v(t, x) must return a tensor of the shape of x {tuple(x.shape)}, got {got}")
        if self.strict and not bool(torch.isfinite(out).all()):
            where = "the state x was already non-finite" if not bool(torch.isfinite(x).all()) else "x was finite"
            raise ValueError(f"the velocity field v ({_field_name(self.v)}) returned NaN or infinite values at "
                             f"t = {float(t):.6g} ({where}); the flow is undefined from there")
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
        if self.field.strict and not bool(torch.isfinite(div).all()):
            raise ValueError(f"the divergence of the velocity field v ({_field_name(self.field.v)}) is NaN or "
                             f"infinite at t = {float(t):.6g}; the log-density is undefined from there")
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
        self.adjoint = check_bool(adjoint, "adjoint")
        self.nfe = 0

    # -- the one call into torchdiffeq -------------------------------------------------------
    def _solve(self, func: nn.Module, y0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Solve, then check the solution is finite (one device sync per solve). If it is not, or the solver
        failed (adaptive solvers stop with an assertion when the field returns NaN), solve again evaluating
        ``v`` strictly, to raise a ``ValueError`` naming the field and the first time it returned NaN/inf."""
        try:
            out = self._odeint(func, y0, times)
            if bool(torch.isfinite(out).all()):
                return out
            failure: Exception | None = None
        except Exception as err:  # noqa: BLE001 - re-raised below unless a non-finite field explains it
            failure = err
        nfe = self.nfe
        self.field.strict = True
        try:
            with torch.no_grad():
                odeint(func, y0.detach(), times, **self._options(times))
        finally:
            self.field.strict = False
            self.nfe = nfe
        if failure is not None:
            raise failure
        raise ValueError(f"the solution of dx/dt = v(t, x) with v = {_field_name(self.field.v)} overflowed to "
                         f"NaN or infinity between t = {times[0].item():.6g} and t = {times[-1].item():.6g} "
                         "(v stayed finite at every evaluation; try smaller steps or tighter tolerances)")

    def _options(self, times: torch.Tensor) -> dict:
        kwargs: dict = {"method": self.method}
        if self.method in FIXED_STEP_METHODS:
            span = (times[-1] - times[0]).abs().item()
            kwargs["options"] = {"step_size": span / self.n_steps}
        else:
            # Land steps on the output times: otherwise dopri5 steps past the last time and interpolates
            # back, evaluating v outside [t0, t1] (undefined for fields that explode at t = 1).
            kwargs.update(rtol=self.rtol, atol=self.atol, options={"step_t": times[1:]})
        return kwargs

    def _odeint(self, func: nn.Module, y0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        kwargs = self._options(times)
        self.field.nfe = 0
        try:
            if self.adjoint:
                params = tuple(p for p in func.parameters() if p.requires_grad)
                return odeint_adjoint(func, y0, times, adjoint_params=params, **kwargs)
            return odeint(func, y0, times, **kwargs)
        finally:
            self.nfe = self.field.nfe

    @staticmethod
    def _times(times: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if isinstance(times, torch.Tensor):
            check_tensor(times, "times", ndim=1, floating=False)
        try:
            t = torch.as_tensor(times, dtype=like.dtype, device=like.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"times must be a 1-D sequence or tensor of numbers, got {type(times).__name__}") from err
        check_tensor(t, "times", ndim=1)
        if t.numel() < 2:
            raise ValueError(f"times must hold at least 2 time points, got {t.numel()}")
        steps = t[1:] - t[:-1]
        if not (bool((steps > 0).all()) or bool((steps < 0).all())):
            raise ValueError("times must be strictly increasing or strictly decreasing")
        return t

    @staticmethod
    def _endpoints(t0: float, t1: float) -> list[float]:
        t0, t1 = check_real(t0, "t0"), check_real(t1, "t1")
        if t0 == t1:
            raise ValueError(f"t0 and t1 must differ, got t0 = t1 = {t0}")
        return [t0, t1]

    @staticmethod
    def _check_base(base: torch.distributions.Distribution, x: torch.Tensor) -> None:
        if tuple(base.event_shape) not in ((), (x.shape[1],)):
            raise ValueError(f"x must hold points of the base's event shape {tuple(base.event_shape)}, "
                             f"got shape {tuple(x.shape)}")

    # -- samples -----------------------------------------------------------------------------
    def trajectory(self, x: torch.Tensor, times: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """Solutions of eq. ``ch1-ode`` at ``times`` (monotone, ``times[0]`` is where ``x`` sits): shape ``(T, n, d)``."""
        check_points(x, "x")
        return self._solve(self.field, x, self._times(times, x))

    def push(self, x: torch.Tensor, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
        """Move samples ``x`` of ``rho_t0`` to samples of ``rho_t1`` (the flow map ``T_{t0 -> t1}``)."""
        return self.trajectory(x, self._endpoints(t0, t1))[-1]

    def pull(self, x: torch.Tensor, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
        """Inverse of :meth:`push`: integrate backwards from ``t1`` to ``t0``."""
        return self.trajectory(x, self._endpoints(t0, t1)[::-1])[-1]

    # -- log-densities -----------------------------------------------------------------------
    def _augmented(self, divergence: str, probe: str, n_probes: int, x: torch.Tensor,
                   generator: torch.Generator | None, regularize: bool = False) -> _LogDensityDynamics:
        check_choice(divergence, "divergence", ("exact", "hutchinson"))
        probes = None
        if divergence == "hutchinson":
            check_choice(probe, "probe", ("rademacher", "gaussian"))
            check_int(n_probes, "n_probes")
            check_generator(generator, device=x.device)
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
        check_points(x, "x")
        base_log_prob = base.log_prob if isinstance(base, torch.distributions.Distribution) else base
        check_callable(base_log_prob, "base")
        if isinstance(base, torch.distributions.Distribution):
            self._check_base(base, x)
        zeros = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        xs, ls = self.log_prob_trajectory(x, zeros, self._endpoints(t0, t1)[::-1], **divergence_options)
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
        self._check_base(check_distribution(base, "base"), x)
        times = self._times(self._endpoints(t0, t1)[::-1], x)
        func = self._augmented(divergence, probe, n_probes, x, generator, regularize=True)
        zeros = torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device)
        out = self._solve(func, torch.cat([x, zeros], dim=1), times)[-1]
        d = x.shape[1]
        # backwards from t1 to t0: the integrals of |v|^2 and ||J||^2 come out with a minus sign
        return base.log_prob(out[:, :d]) - out[:, d], -out[:, d + 1], -out[:, d + 2]
