"""Flow matching: probability paths, the conditional flow-matching loss, couplings, reflow.

Path, coupling and solver are separate pieces. A path interpolates endpoints ``x0`` (base, ``t = 0``)
and ``x1`` (data, ``t = 1``) as ``x_t = alpha_t x1 + sigma_t x0`` and returns ``(x_t, dx_t/dt)``; a
coupling pairs a batch of ``x0`` with a batch of ``x1`` (independently, or by optimal transport through
POT); :class:`~flowtutor.flow.ODEFlow` integrates the learned field (Lipman et al. 2023; Liu et al.
2023; Albergo & Vanden-Eijnden 2023; Tong et al. 2024).
"""

from __future__ import annotations

from collections.abc import Callable

import ot
import torch

from ._checks import (
    check_callable,
    check_choice,
    check_generator,
    check_int,
    check_nonnegative,
    check_pairs,
    check_points,
    check_positive,
    check_same_device,
    check_tensor,
)
from .flow import ODEFlow
from .training import fit

__all__ = ["AffinePath", "LinearPath", "CondOTPath", "VPPath", "cfm_loss", "couple", "reflow_pairs", "straightness", "resample_pairs", "fit_matching"]


class AffinePath:
    """``x_t = alpha(t) x1 + sigma(t) x0`` with ``alpha(0) = 0``, ``alpha(1) = 1`` (up to ``sigma_min``).

    Subclasses define ``alpha``, ``sigma`` and their time derivatives for ``t`` a tensor of shape ``(n,)``.
    """

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> None:
        """Validate endpoints ``(n, d)`` and times ``(n,)`` in [0, 1] (raises ``ValueError``/``TypeError``)."""
        check_pairs(x0, x1)
        check_tensor(t, "t", finite=False)
        check_same_device(x0=x0, x1=x1, t=t)
        if t.shape != (x0.shape[0],):
            raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        if not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError("t must lie in [0, 1] (and not be NaN)")

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_t, dx_t/dt)`` for endpoints ``(n, d)`` and times ``(n,)`` in [0, 1]."""
        self.check(x0, x1, t)
        return self._interpolate(x0, x1, t)

    def _interpolate(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = self.alpha(t)[:, None], self.sigma(t)[:, None]
        da, ds = self.d_alpha(t)[:, None], self.d_sigma(t)[:, None]
        return a * x1 + s * x0, da * x1 + ds * x0


class LinearPath(AffinePath):
    """Rectified flow's straight line ``x_t = t x1 + (1 - t) x0`` (Liu et al. 2023)."""

    def alpha(self, t):
        return t

    def sigma(self, t):
        return 1 - t

    def d_alpha(self, t):
        return torch.ones_like(t)

    def d_sigma(self, t):
        return -torch.ones_like(t)


class CondOTPath(AffinePath):
    """Lipman et al.'s conditional OT path: ``x_t = t x1 + (1 - (1 - sigma_min) t) x0``, a Gaussian of
    width ``sigma_min`` around ``x1`` at ``t = 1`` (``sigma_min = 0`` is :class:`LinearPath`)."""

    def __init__(self, sigma_min: float = 1e-4):
        self.sigma_min = check_nonnegative(sigma_min, "sigma_min")
        if self.sigma_min >= 1:
            raise ValueError(f"sigma_min must be < 1, got {sigma_min}")

    def alpha(self, t):
        return t

    def sigma(self, t):
        return 1 - (1 - self.sigma_min) * t

    def d_alpha(self, t):
        return torch.ones_like(t)

    def d_sigma(self, t):
        return -(1 - self.sigma_min) * torch.ones_like(t)


class VPPath(AffinePath):
    """The variance-preserving (diffusion) path ``x_t = a(1-t) x1 + sqrt(1 - a(1-t)^2) x0`` with
    ``a(s) = exp(-1/2 int_0^s beta)``, ``beta`` linear from ``beta_min`` to ``beta_max`` (Song et al. 2021),
    written in the book's time (noise at ``t = 0``). ``sigma`` at ``t = 1`` is 0: its velocity explodes there."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min = check_positive(beta_min, "beta_min")
        self.beta_max = check_positive(beta_max, "beta_max")
        if self.beta_max < self.beta_min:
            raise ValueError("beta_max must be >= beta_min")

    def _log_a(self, s):  # log a(s) = -1/2 (beta_min s + (beta_max - beta_min) s^2 / 2)
        return -0.5 * (self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2)

    def beta(self, s: torch.Tensor) -> torch.Tensor:
        """The noise rate beta(s) in diffusion time s = 1 - t."""
        return self.beta_min + (self.beta_max - self.beta_min) * s

    def alpha(self, t):
        return torch.exp(self._log_a(1 - t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(2 * self._log_a(1 - t)))

    def d_alpha(self, t):  # d/dt a(1 - t) = beta(1 - t)/2 * a(1 - t)
        return 0.5 * self.beta(1 - t) * self.alpha(t)

    def d_sigma(self, t):  # sigma^2 = 1 - alpha^2  =>  d sigma = -alpha d_alpha / sigma
        return -self.alpha(t) * self.d_alpha(t) / self.sigma(t)


def _check_t_max(t_max: float) -> float:
    t_max = check_positive(t_max, "t_max")
    if t_max > 1:
        raise ValueError(f"t_max must be <= 1 (times lie in [0, 1]), got {t_max}")
    return t_max


def _check_path(path: object) -> None:
    if not isinstance(path, AffinePath):
        raise TypeError(f"path must be an AffinePath (LinearPath, CondOTPath, VPPath), got {type(path).__name__}")


def cfm_loss(v: Callable, x0: torch.Tensor, x1: torch.Tensor, path: AffinePath, *, t: torch.Tensor | None = None,
             t_max: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Conditional flow-matching loss ``E |v(t, x_t) - dx_t/dt|^2`` with ``t ~ U[0, t_max]`` (eq. ``ch4-cfm``).

    ``v`` is called with a time tensor of shape ``(n,)`` (one time per sample). ``t_max < 1`` truncates
    the time interval near the data, where some paths' velocities explode.
    """
    check_callable(v, "v")
    check_pairs(x0, x1)
    _check_path(path)
    t_max = _check_t_max(t_max)
    check_generator(generator, device=x0.device)
    if t is None:
        t = torch.rand(x0.shape[0], dtype=x0.dtype, device=x0.device, generator=generator) * t_max
    path.check(x0, x1, t)
    return _cfm(v, x0, x1, path, t)


def _cfm(v: Callable, x0: torch.Tensor, x1: torch.Tensor, path: AffinePath, t: torch.Tensor) -> torch.Tensor:
    xt, dxt = path._interpolate(x0, x1, t)
    return ((v(t, xt) - dxt) ** 2).sum(1).mean()


def couple(x0: torch.Tensor, x1: torch.Tensor, method: str = "ot", *, reg: float = 0.05, tol: float = 1e-7,
           cost_scale: str = "mean", generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair a batch of base points with a batch of data points (eq. ``ch4-coupling``).

    ``"independent"``: as given. ``"ot"``: the exact optimal assignment for the squared distance
    (``ot.emd``; equal batch sizes give a permutation). ``"sinkhorn"``: pairs drawn from the entropic
    plan (``ot.sinkhorn`` in float64, regularisation ``reg`` times the mean cost, or times the largest cost with
    ``cost_scale="max"``, iterated until the L1 error of its marginals is below ``tol``), one partner per ``x0`` drawn
    with replacement (so the data marginal is kept in expectation only). ``tol=1e-4`` gives nearly the same plan in
    about two thirds of the time; ``cost_scale="max"`` is torchcfm's normalisation, a blurrier plan that converges
    faster.
    Returns ``(x0, x1_paired)``.
    """
    check_pairs(x0, x1, same_n=False)
    check_choice(method, "method", ("independent", "ot", "sinkhorn"))
    if method != "independent" and x0.shape[0] != x1.shape[0]:
        raise ValueError(f"OT couplings need equal batch sizes of x0 and x1, got {x0.shape[0]} and {x1.shape[0]}")
    check_generator(generator, device=x0.device)
    if method == "sinkhorn":
        check_positive(reg, "reg")
        check_positive(tol, "tol")
        check_choice(cost_scale, "cost_scale", ("mean", "max"))
    return _couple(x0, x1, method, reg, tol, generator, cost_scale)


def _couple(x0: torch.Tensor, x1: torch.Tensor, method: str, reg: float, tol: float,
            generator: torch.Generator | None, cost_scale: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    if method == "independent":
        return x0, x1
    n = x0.shape[0]
    # In float64: the kernel exp(-cost / (reg * mean cost)) underflows in float32 for far-apart pairs. The plan only
    # picks indices, so the outputs keep their dtype. On the CPU, POT's NumPy backend is called directly (half the
    # time of its torch backend at batch 256); on a GPU the torch backend keeps the Sinkhorn plan on the device.
    cost = ot.dist(x0.detach(), x1.detach()).double()
    on_cpu = cost.device.type == "cpu"
    if on_cpu:
        cost = cost.numpy()
    w = ot.unif(n, type_as=cost)
    if method == "ot":
        plan = ot.emd(w, w, cost, numItermax=10_000_000)
        index = torch.as_tensor(plan.argmax(1), device=x0.device)
        return x0, x1[index]
    plan = ot.sinkhorn(w, w, cost / (cost.mean() if cost_scale == "mean" else cost.max()), reg, numItermax=10_000,
                       stopThr=tol)
    rows = torch.as_tensor(plan) / torch.as_tensor(plan.sum(1))[:, None]
    index = torch.multinomial(rows, 1, generator=generator).squeeze(1)
    return x0, x1[index.to(x0.device)]


def reflow_pairs(v: Callable, x0: torch.Tensor, **solver) -> tuple[torch.Tensor, torch.Tensor]:
    """Rectified flow's reflow: the coupling ``(x0, T(x0))`` of a learned field's flow map ``T`` (eq. ``ch4-reflow``)."""
    check_callable(v, "v")
    check_points(x0, "x0")
    with torch.no_grad():
        return x0, ODEFlow(v, **(solver or {"method": "rk4", "n_steps": 32})).push(x0)


def straightness(trajectory: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Liu et al.'s straightness ``E int_0^1 |x'_t - (x_1 - x_0)|^2 dt`` of a trajectory ``(T, n, d)`` on ``times``
    (finite differences); zero exactly for straight lines traversed at constant speed."""
    check_tensor(trajectory, "trajectory", ndim=3)
    check_tensor(times, "times", ndim=1)
    if trajectory.shape[0] != times.shape[0] or times.shape[0] < 2:
        raise ValueError(f"trajectory must be (T, n, d) with T = len(times) >= 2, got {tuple(trajectory.shape)} "
                         f"and times of shape {tuple(times.shape)}")
    if not bool((times[1:] > times[:-1]).all()):
        raise ValueError("times must be strictly increasing")
    dt = (times[1:] - times[:-1])[:, None, None]
    speed = (trajectory[1:] - trajectory[:-1]) / dt
    chord = (trajectory[-1] - trajectory[0]) / (times[-1] - times[0])
    return (((speed - chord) ** 2).sum(-1) * dt[..., 0]).sum(0).mean() / (times[-1] - times[0])



def resample_pairs(x0: torch.Tensor, x1: torch.Tensor, generator: torch.Generator | None = None) -> Callable:
    """A sampler of fixed pairs: ``sample((batch,))`` draws ``batch`` rows of ``(x0, x1)`` with replacement
    (the reflow data set of :func:`reflow_pairs`, for :func:`fit_matching`)."""
    check_pairs(x0, x1, same_n=False)
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(f"x0 and x1 must hold the same number of pairs, got {x0.shape[0]} and {x1.shape[0]}")
    check_generator(generator, device=x0.device)

    def sample(shape: tuple[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(x0.shape[0], tuple(shape), generator=generator, device=x0.device)
        return x0[idx], x1[idx]

    return sample


def fit_matching(v: torch.nn.Module, sample_pairs: Callable, n_steps: int, *, path: AffinePath | None = None,
                 coupling: str = "independent", batch: int = 256, lr: float = 3e-3, t_max: float = 1.0,
                 generator: torch.Generator | None = None, progress: bool = True,
                 coupling_options: dict | None = None) -> list[float]:
    """Flow matching: minimise :func:`cfm_loss` over fresh batches ``(x0, x1) = sample_pairs((batch,))`` re-paired
    by :func:`couple` (with ``coupling_options``, e.g. ``{"tol": 1e-4}`` for a faster Sinkhorn), with Adam (its
    fused kernel where the parameters allow) and a cosine learning-rate decay (through
    :func:`flowtutor.training.fit`: NaN guard, progress). ``path`` defaults to :class:`LinearPath`. Returns the
    loss history.

    ``sample_pairs`` returns two batches, e.g. ``lambda n: (base.sample(n), target.sample(n))``, or the fixed
    pairs of :func:`resample_pairs` (reflow, with ``coupling="independent"`` so that they stay paired).
    """
    if not isinstance(v, torch.nn.Module):
        raise TypeError(f"v must be a torch.nn.Module (its parameters are trained), got {type(v).__name__}")
    check_callable(sample_pairs, "sample_pairs")
    check_int(batch, "batch")
    check_positive(lr, "lr")
    check_choice(coupling, "coupling", ("independent", "ot", "sinkhorn"))
    if path is not None:
        _check_path(path)
    t_max = _check_t_max(t_max)
    check_generator(generator)
    if coupling_options is not None and not isinstance(coupling_options, dict):
        raise TypeError(f"coupling_options must be a dict of couple()'s options (reg, tol, cost_scale) or None, "
                        f"got {type(coupling_options).__name__}")
    unknown = set(coupling_options or {}) - {"reg", "tol", "cost_scale"}
    if unknown:
        raise ValueError(f"coupling_options may set reg, tol and cost_scale, got {sorted(unknown)}")
    options = {"reg": 0.05, "tol": 1e-7, "cost_scale": "mean", **(coupling_options or {})}
    check_positive(options["reg"], "coupling_options['reg']")
    check_positive(options["tol"], "coupling_options['tol']")
    check_choice(options["cost_scale"], "coupling_options['cost_scale']", ("mean", "max"))
    path = LinearPath() if path is None else path
    params = list(v.parameters())
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    optimizer = torch.optim.Adam(params, lr=lr, fused=fused or None)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, check_int(n_steps, "n_steps"))

    def loss(step: int) -> torch.Tensor:
        x0, x1 = sample_pairs((batch,))
        t = torch.rand(x0.shape[0], dtype=x0.dtype, device=x0.device, generator=generator) * t_max
        if step == 0:  # validate the first batch; later ones skip the checks (each costs a GPU sync), and a
            x0, x1 = couple(x0, x1, coupling, generator=generator, **options)  # non-finite batch still stops
            path.check(x0, x1, t)  # training through fit's NaN guard
        else:
            x0, x1 = _couple(x0, x1, coupling, options["reg"], options["tol"], generator, options["cost_scale"])
        return _cfm(v, x0, x1, path, t)

    return fit(loss, optimizer, n_steps, scheduler=scheduler, progress=progress)
