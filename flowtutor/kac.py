"""Kac processes, the telegrapher's equation and Kac flows (Kac 1974; Duong, Chemseddine, Friz & Steidl 2025).

A particle moves at speed ``c`` and reverses its direction at the jumps of a Poisson process of rate ``a``,
starting in either direction with probability 1/2: ``K(t) = B c int_0^t (-1)^{N(s)} ds``. Its law from 0 is two
atoms of mass ``e^{-at}/2`` at ``+-ct`` and a continuous part on ``|x| < ct`` that solves the telegrapher's
(damped wave) equation ``u_tt + 2a u_t = c^2 u_xx`` (eq. ``ch8-telegraph``). A ``d``-dimensional Kac process has
independent components.

Stated in the source's own convention: Kac time ``t`` runs from the data (``t = 0``) to noise (``t = 1`` in the
generative model). The generative field in the book's time is obtained with :func:`flowtutor.reverse_time`;
:func:`kac_matching_loss` trains a network directly in the book's time. Bessel functions are the exponentially
scaled ``torch.special.i0e``/``i1e``, so that ``(a, c) = (1600, 10)`` stays finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from ._checks import (
    check_bool,
    check_callable,
    check_generator,
    check_int,
    check_nonnegative,
    check_points,
    check_positive,
    check_same_device,
    check_tensor,
)
from .training import fit

__all__ = ["KacSample", "kac_density", "kac_edge_mass", "kac_velocity", "sample_kac", "kac_walk",
           "kac_marginal_velocity", "kac_matching_loss", "fit_kac"]


class KacSample(NamedTuple):
    """Draws of ``K(t)``: ``position``, ``velocity`` ``K'(t) = +-c`` and the number of ``reversals`` up to ``t``
    (``reversals = 0``: the particle sits on an edge ``+-ct``)."""

    position: torch.Tensor
    velocity: torch.Tensor
    reversals: torch.Tensor


def _rates(a: object, c: object) -> tuple[float, float]:
    return check_positive(a, "a"), check_positive(c, "c")


def _time(t: object, like: torch.Tensor, name: str = "t") -> torch.Tensor:
    """Kac times ``t >= 0`` as a tensor on ``like``'s device and dtype, broadcastable against it."""
    if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a number or a tensor of times, got {type(t).__name__}")
    if isinstance(t, torch.Tensor):
        check_tensor(t, name, finite=False)
        check_same_device(**{name: t, "x": like})
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if not bool(((t >= 0) & torch.isfinite(t)).all()):
        raise ValueError(f"{name} must be finite Kac times >= 0, got {t.flatten()[:4].tolist()}")
    try:
        torch.broadcast_shapes(t.shape, like.shape)
    except RuntimeError as err:
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast against x of shape "
                         f"{tuple(like.shape)}") from err
    return t


def _i1e_over_z(z: torch.Tensor) -> torch.Tensor:
    """``e^{-z} I1(z) / z``, continued by ``(1 - z) / 2`` near ``z = 0``."""
    small = z < 1e-4
    return torch.where(small, 0.5 * (1 - z), torch.special.i1e(z) / torch.where(small, 1.0, z))


def _z(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``z = (a/c) r``, ``r = sqrt(c^2 t^2 - x^2)``, and ``z - at = -(a/c) x^2 / (ct + r)`` on the open interval
    ``|x| < ct`` (0 elsewhere), and that interval. Both without cancellation: ``r^2 = (ct - |x|)(ct + |x|)``."""
    inside = x.abs() < c * t
    ct = c * t
    r = torch.sqrt(torch.where(inside, (ct - x.abs()) * (ct + x.abs()), 0.0))
    excess = torch.where(inside, -(a / c) * x**2 / torch.where(inside, ct + r, 1.0), 0.0)
    return (a / c) * r, excess, inside


def _log_density(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """Log of eq. ``ch8-density`` (``-inf`` off ``|x| < ct``): ``log(a/2c) + z - at + log(i0e(z) + at i1e(z)/z)``."""
    z, excess, inside = _z(t, x, a, c)
    value = torch.log(torch.as_tensor(a / (2 * c), dtype=x.dtype, device=x.device)) + excess + torch.log(
        torch.special.i0e(z) + a * t * _i1e_over_z(z))
    return torch.where(inside, value, -torch.inf)


def kac_density(t: object, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """The continuous part of the law of ``K(t)`` from 0 (eq. ``ch8-density``):
    ``(a e^{-at} / 2c) [I0(z) + ct I1(z) / r]`` on ``|x| < ct``, ``r = sqrt(c^2 t^2 - x^2)``, ``z = a r / c``,
    and 0 elsewhere; the atoms ``e^{-at}/2`` at ``+-ct`` are :func:`kac_edge_mass`. Computed as
    ``(a / 2c) e^{z - at} [i0e(z) + at i1e(z)/z]`` with ``z - at <= 0``: no overflow for any ``a, c, t``.
    ``x`` has any shape; ``t >= 0`` is a number or a tensor that broadcasts against ``x``."""
    a, c = _rates(a, c)
    check_tensor(x, "x")
    return _log_density(_time(t, x), x, a, c).exp()


def kac_edge_mass(t: object, a: float) -> torch.Tensor | float:
    """The mass ``e^{-at}/2`` of each atom of the law of ``K(t)`` at ``+-ct`` (no reversal up to ``t``)."""
    a = check_positive(a, "a")
    if isinstance(t, torch.Tensor):
        return 0.5 * torch.exp(-a * _time(t, t))
    return 0.5 * math.exp(-a * check_nonnegative(t, "t"))


def kac_velocity(t: object, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """The velocity of the Kac law from 0, ``v(t, x) = E[K'(t) | K(t) = x]`` (eq. ``ch8-velocity``):
    ``x / (t + r I0(z) / (c I1(z)))`` on ``|x| < ct`` and ``c sign(x)`` on the edges ``|x| = ct`` (and beyond,
    where any value would do). Computed as ``x / (t + h(z)/a)`` with ``h(z) = z i0e(z)/i1e(z)`` (``h(0) = 2``):
    the exponential scalings cancel, so no argument overflows. Applied elementwise: for a ``d``-dimensional Kac
    process started at ``x0`` the conditional field is ``kac_velocity(t, x - x0, a, c)`` (eq. ``ch8-product``)."""
    a, c = _rates(a, c)
    check_tensor(x, "x")
    return _velocity(_time(t, x), x, a, c)


def _velocity(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    z, _, inside = _z(t, x, a, c)
    h = torch.where(z < 1e-4, 2 + z**2 / 4, z * torch.special.i0e(z) / torch.special.i1e(z.clamp_min(1e-4)))
    return torch.where(inside, x / (t + h / a), c * torch.sign(x))


def sample_kac(t: object, shape: tuple[int, ...], a: float, c: float, *, method: str = "beta",
               dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> KacSample:
    """Exact draws of ``K(t)`` from 0 (eq. ``ch8-exact``), ``shape`` independent components, ``t`` a number or a
    tensor broadcastable to ``shape`` (e.g. ``(n, 1)`` for one time per row).

    The number of reversals is ``N ~ Poisson(at)``. ``method="jumps"`` places them as the order statistics of ``N``
    uniform times and adds the signed pieces ``(-1)^k (j_{k+1} - j_k)`` (cost grows with ``at``). ``"beta"`` uses that
    the ``N + 1`` pieces are ``t`` times a flat Dirichlet vector, so the time spent in the initial direction is
    ``t Beta(floor(N/2) + 1, ceil(N/2))`` (one draw per component, any ``at``); torch's Beta sampler takes no
    generator, so with ``generator`` it runs under a forked global generator seeded from it.
    """
    a, c = _rates(a, c)
    if not isinstance(shape, tuple) or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                                               for k in shape):
        raise TypeError(f"shape must be a tuple of positive ints, got {shape!r}")
    if method not in ("beta", "jumps"):
        raise ValueError(f"method must be 'beta' or 'jumps', got {method!r}")
    like = torch.empty(shape, dtype=dtype, device=device)
    check_generator(generator, device=like.device)
    t = _time(t, like).expand(shape)
    sign = torch.where(torch.rand(shape, dtype=dtype, device=like.device, generator=generator) < 0.5, -1.0, 1.0)
    n = torch.poisson((a * t).to(torch.float64), generator=generator)
    if method == "jumps":
        m = int(n.max())
        u = torch.rand((*shape, max(m, 1)), dtype=torch.float64, device=like.device, generator=generator)
        slots = torch.arange(max(m, 1), device=like.device)
        jumps = torch.where(slots < n[..., None], u, 1.0).sort(-1).values * t[..., None].double()
        edges = torch.cat([torch.zeros_like(jumps[..., :1]), jumps, t[..., None].double()], -1)
        pieces = (edges[..., 1:] - edges[..., :-1]) * (1 - 2 * (torch.arange(m + 1 if m else 2, device=like.device)
                                                                % 2))
        travelled = pieces.sum(-1).to(dtype)
    else:
        forward = (torch.div(n, 2, rounding_mode="floor") + 1).to(dtype)
        backward = (n - torch.div(n, 2, rounding_mode="floor")).to(dtype)
        beta = torch.distributions.Beta(forward, backward.clamp_min(1.0))
        if generator is None:
            share = beta.sample()
        else:
            seed = int(torch.randint(2**62, (1,), device=like.device, generator=generator))
            cuda = like.device.type == "cuda"
            with torch.random.fork_rng(devices=[like.device] if cuda else []):  # restores what it reseeds:
                if cuda:  # the draws' own device only
                    torch.cuda.default_generators[like.device.index or 0].manual_seed(seed)
                else:
                    torch.default_generator.manual_seed(seed)
                share = beta.sample()
        share = torch.where(n == 0, 1.0, share)
        travelled = t * (2 * share - 1)
    velocity = c * sign * (1 - 2 * (n % 2)).to(dtype)
    return KacSample(c * sign * travelled, velocity, n.to(torch.int64))


def kac_walk(t_end: float, n_steps: int, n_paths: int, a: float, c: float, *, d: int = 1,
             dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Kac's discrete walk: steps of length ``c dt`` (``dt = t_end / n_steps``), each reversing the direction with
    probability ``a dt`` (eq. ``ch8-walk``), the first direction ``+-1`` with probability 1/2; ``d`` independent
    components. Returns positions ``(n_steps + 1, n_paths, d)`` from 0. Needs ``a dt <= 1``."""
    t_end = check_positive(t_end, "t_end")
    check_int(n_steps, "n_steps")
    check_int(n_paths, "n_paths")
    check_int(d, "d")
    a, c = _rates(a, c)
    dt = t_end / n_steps
    if a * dt > 1:
        raise ValueError(f"n_steps must make the reversal probability a*dt <= 1, got a*dt = {a * dt:.3g}; "
                         f"take n_steps >= {int(a * t_end) + 1}")
    like = torch.empty(0, dtype=dtype, device=device)
    check_generator(generator, device=like.device)
    first = torch.where(torch.rand(1, n_paths, d, dtype=dtype, device=like.device, generator=generator) < 0.5,
                        -1.0, 1.0)
    flips = torch.rand(n_steps - 1, n_paths, d, dtype=dtype, device=like.device, generator=generator) < a * dt
    signs = torch.cat([first, first * torch.cumprod(1 - 2 * flips.to(dtype), 0)], 0)
    return torch.cat([torch.zeros_like(first), torch.cumsum(c * dt * signs, 0)], 0)


def kac_marginal_velocity(t: float, x: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor, a: float,
                          c: float) -> torch.Tensor:
    """The field of ``X_t = X_0 + K(t)`` for data ``X_0 ~ sum_k w_k delta_{x_k}`` (eq. ``ch8-marginal``):
    ``v_t(x) = sum_k w_k u_t(x | x_k) v_t(x | x_k) / sum_k w_k u_t(x | x_k)``, with ``u_t(. | x_k)`` the product
    of the continuous parts :func:`kac_density` and ``v_t(. | x_k)`` the componentwise :func:`kac_velocity`.
    Off the edges of the squares ``|x - x_k|_inf <= ct`` this is the formula. On an edge (up to rounding) the law
    has a lower-dimensional part (a component without reversal carries the atom ``e^{-at}/2``), which carries
    positive mass where the parts of higher dimension carry none: the parts of the lowest dimension through ``x``
    are averaged, with the atom masses in place of the densities. Points outside every square raise. ``x`` is
    ``(n, d)``,
    ``centres`` ``(K, d)``, ``weights`` ``(K,)``; ``t >= 0`` is one Kac time or one per point ``(n,)``."""
    a, c = _rates(a, c)
    check_points(x, "x")
    check_points(centres, "centres", d=x.shape[1])
    check_tensor(weights, "weights", ndim=1)
    check_same_device(x=x, centres=centres, weights=weights)
    if weights.shape[0] != centres.shape[0] or bool((weights < 0).any()) or float(weights.sum()) <= 0:
        raise ValueError(f"weights must be {centres.shape[0]} non-negative numbers with a positive sum")
    if isinstance(t, torch.Tensor) and t.numel() != 1 and tuple(t.shape) != (x.shape[0],):
        raise ValueError(f"t must be one Kac time or one per point, shape ({x.shape[0]},), got {tuple(t.shape)}")
    tt = _time(t.reshape(-1, 1) if isinstance(t, torch.Tensor) and t.numel() > 1 else t, x)
    tt = tt.reshape(-1, 1, 1) if tt.numel() > 1 else tt
    diff = x[:, None, :] - centres[None]  # (n, K, d)
    # on an edge up to rounding: x_k + K(t) lands on x_k +- ct only to the last bits of |x|, |x_k| and ct
    edge_at = c * tt
    tol = 16 * torch.finfo(x.dtype).eps * (x.abs()[:, None, :] + centres.abs()[None] + edge_at)
    on_edge = (diff.abs() - edge_at).abs() <= tol
    possible = (diff.abs() <= edge_at + tol).all(-1)  # x in the closed square of x_k
    if not bool(possible.any(1).all()):
        raise ValueError("x holds points outside the support of X_t (outside every square |x - x_k| <= ct)")
    n_edges = torch.where(possible, on_edge.sum(-1), -1)
    log_atom = math.log(0.5) - a * tt
    log_w = torch.log(weights / weights.sum()) + torch.where(on_edge, log_atom, _log_density(tt, diff, a, c)).sum(-1)
    most = n_edges.max(1, keepdim=True).values  # the part of the lowest dimension through x carries its mass
    post = torch.softmax(torch.where(possible & (n_edges == most), log_w, -torch.inf), dim=1)
    field = torch.where(on_edge, c * torch.sign(diff), _velocity(tt, diff, a, c))
    return (post[..., None] * field).sum(1)


def kac_matching_loss(v: Callable, x0: torch.Tensor, a: float, c: float, *, mean_reverting: bool = False,
                      time_power: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Kac flow matching in the book's time (eq. ``ch8-kfm``): Kac time ``t = u^time_power``, ``u ~ U[0, 1]``
    (``time_power > 1`` puts more of the batch near the data), book time ``tau = 1 - t``,
    ``X_t = x0 + K(t)`` (``(1 - t) x0 + K(t)`` when ``mean_reverting``), and the loss
    ``E |v(tau, X_t) + u_t(X_t | x0)|^2 / c^2`` with ``u_t(. | x0)`` the conditional Kac field (``K'(t) = +-c`` on
    the edges, the Rao-Blackwellised ``kac_velocity(t, K(t))`` inside; minus ``x0`` when mean-reverting): its
    minimiser is the marginal field in the book's time, ``-u_{1 - tau}``, as with :func:`flowtutor.reverse_time`.
    Divided by ``c^2`` so that its scale does not depend on the speed."""
    check_callable(v, "v")
    check_points(x0, "x0")
    a, c = _rates(a, c)
    check_bool(mean_reverting, "mean_reverting")
    check_positive(time_power, "time_power")
    check_generator(generator, device=x0.device)
    return _kfm(v, x0, a, c, mean_reverting, time_power, generator)


def _kfm(v: Callable, x0: torch.Tensor, a: float, c: float, mean_reverting: bool, time_power: float,
         generator: torch.Generator | None) -> torch.Tensor:
    n, d = x0.shape
    t = torch.rand(n, 1, dtype=x0.dtype, device=x0.device, generator=generator) ** time_power
    tau = 1 - t[:, 0]
    k = sample_kac(t, (n, d), a, c, dtype=x0.dtype, device=x0.device, generator=generator)
    u = torch.where(k.reversals == 0, k.velocity, _velocity(t, k.position, a, c))
    if mean_reverting:
        xt, u = (1 - t) * x0 + k.position, u - x0
    else:
        xt = x0 + k.position
    return ((v(tau, xt) + u) ** 2).sum(1).mean() / c**2


def fit_kac(v: torch.nn.Module, sample: Callable, n_steps: int, a: float, c: float, *, batch: int = 256,
            lr: float = 3e-3, mean_reverting: bool = False, time_power: float = 1.0,
            generator: torch.Generator | None = None, progress: bool = True) -> list[float]:
    """Kac flow matching (:func:`kac_matching_loss`) on fresh batches ``sample((batch,))``, with Adam and a cosine
    learning-rate decay (through :func:`flowtutor.training.fit`), with Adam's fused kernel where the parameters
    allow. Returns the loss history. Samples come from the
    latent ``K(1)`` (``sample_kac(1.0, ...)``) pushed by ``ODEFlow(v)`` from book time 0 to 1."""
    if not isinstance(v, torch.nn.Module):
        raise TypeError(f"v must be a torch.nn.Module (its parameters are trained), got {type(v).__name__}")
    check_callable(sample, "sample")
    check_int(n_steps, "n_steps")
    check_int(batch, "batch")
    check_positive(lr, "lr")
    a, c = _rates(a, c)
    check_bool(mean_reverting, "mean_reverting")
    check_positive(time_power, "time_power")
    check_generator(generator)
    params = list(v.parameters())
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    optimizer = torch.optim.Adam(params, lr=lr, fused=fused or None)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
    return fit(lambda step: _kfm(v, sample((batch,)), a, c, mean_reverting, time_power, generator), optimizer,
               n_steps, scheduler=scheduler, progress=progress)
