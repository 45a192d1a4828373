"""Controls of the continuity equation built from ReLU neurons.

The one-neuron field ``v(x) = w (<a, x> + b)_+`` (eq. ``ch1-relu``) moves only the half-space
``{s > 0}``, ``s = <a, x> + b``, and there its flow is affine, so the continuity equation has a
closed-form solution: with ``c = <w, a>``,

``rho_t(x) = rho_B(x)``                         where ``s <= 0``,
``rho_t(x) = e^{-t c} rho_B(A_t x)``            where ``s > 0``,
``A_t x = e^{-t w a^T} x - b (1 - e^{-t c}) w / c = x - w s (1 - e^{-t c}) / c``,

and for ``c = 0`` (``w`` parallel to the hyperplane) the flow is the shear ``x + t w s_+(x)``, with Jacobian
determinant 1: the limit of the formulas as ``c -> 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from collections.abc import Callable, Sequence

from ._checks import (
    check_callable,
    check_device,
    check_dtype,
    check_int,
    check_interval,
    check_points,
    check_positive,
    check_real,
    check_same_device,
    check_tensor,
)

__all__ = ["ReLUNeuron", "ControlSequence", "tv_control_1d", "quantiles_from_density", "tv_control_to_eps", "tail_control_1d", "XLogXField"]


class ReLUNeuron:
    """The autonomous field ``v(t, x) = w (<a, x> + b)_+`` and its closed-form flow and density."""

    def __init__(self, w: torch.Tensor, a: torch.Tensor, b: float):
        check_tensor(w, "w", ndim=1)
        check_tensor(a, "a", ndim=1)
        if w.shape != a.shape:
            raise ValueError(f"w and a must have the same shape, got {tuple(w.shape)} and {tuple(a.shape)}")
        check_same_device(w=w, a=a)
        self.w, self.a, self.b = w, a, check_real(b, "b")
        self.c = float(w @ a)  # <w, a> = 0 is allowed: the flow is then the shear x + t w s_+(x)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """``s(x) = <a, x> + b`` for points ``(n, d)``."""
        return self._s(check_points(x, "x", d=self.a.shape[0]))

    def _s(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.a + self.b

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._s(x).clamp_min(0)[:, None] * self.w

    def divergence(self, x: torch.Tensor) -> torch.Tensor:
        """``div v = <w, a> 1[s > 0]`` (almost everywhere)."""
        return self.c * (self.activation(x) > 0).to(x.dtype)

    def _shift(self, t: float) -> float:
        """``(e^{t c} - 1) / c``, continued by ``t`` at ``c = 0`` (the shear)."""
        z = t * self.c
        return t * (math.expm1(z) / z if abs(z) > 1e-8 else 1.0 + z / 2)

    def flow_map(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Where the characteristic from ``x`` is at time ``t``: ``x + w s (e^{t c} - 1) / c`` if ``s > 0``
        (``x + t w s`` when ``c = <w, a> = 0``)."""
        t = check_real(t, "t")
        s = self.activation(x).clamp_min(0)
        return x + (s * self._shift(t))[:, None] * self.w

    def inverse_map(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """``A_t x`` on ``{s > 0}`` and ``x`` elsewhere: where the point ``x`` at time ``t`` started."""
        t = check_real(t, "t")
        s = self.activation(x).clamp_min(0)
        return x + (s * self._shift(-t))[:, None] * self.w

    def log_density(self, base_log_prob, x: torch.Tensor, t: float) -> torch.Tensor:
        """``log rho_t(x)`` for initial density ``rho_B`` given by ``base_log_prob`` (closed form above)."""
        check_callable(base_log_prob, "base_log_prob")
        inside = (self.activation(x) > 0).to(x.dtype)
        return base_log_prob(self.inverse_map(x, t)) - t * self.c * inside


class ControlSequence:
    """Piecewise-constant controls: neuron ``k`` acts for ``durations[k]``, one after the other (``T = sum`` of them).

    The flow map is the composition of the neurons' closed-form maps, and the density at ``T`` follows by applying
    :meth:`ReLUNeuron.log_density` neuron by neuron, starting from the base density.
    """

    def __init__(self, neurons: Sequence[ReLUNeuron], durations: Sequence[float]):
        for name, value in (("neurons", neurons), ("durations", durations)):
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"{name} must be a list or tuple, got {type(value).__name__}")
        self.neurons = list(neurons)
        for i, n in enumerate(self.neurons):
            if not isinstance(n, ReLUNeuron):
                raise TypeError(f"neurons[{i}] must be a ReLUNeuron, got {type(n).__name__}")
        self.durations = [check_positive(t, f"durations[{i}]") for i, t in enumerate(durations)]
        if len(self.durations) != len(self.neurons) or not self.neurons:
            raise ValueError(f"neurons and durations must be non-empty and of equal length, got {len(self.neurons)} "
                             f"and {len(self.durations)}")

    @property
    def n_switches(self) -> int:
        """The number of constant pieces of ``theta``."""
        return len(self.neurons)

    @property
    def horizon(self) -> float:
        return sum(self.durations)

    def __add__(self, other: "ControlSequence") -> "ControlSequence":
        return ControlSequence(self.neurons + other.neurons, self.durations + other.durations)

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The field ``v(t, x)`` of the piece active at time ``t`` (right-continuous)."""
        elapsed = 0.0
        for neuron, tau in zip(self.neurons, self.durations):
            elapsed += tau
            if float(t.detach() if isinstance(t, torch.Tensor) else t) < elapsed:
                return neuron(t, x)
        return self.neurons[-1](t, x)

    def flow_map(self, x: torch.Tensor) -> torch.Tensor:
        """Where the points ``x`` at time 0 are at time ``T``."""
        for neuron, tau in zip(self.neurons, self.durations):
            x = neuron.flow_map(x, tau)
        return x

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        """Where the points ``x`` at time ``T`` started."""
        for neuron, tau in zip(reversed(self.neurons), reversed(self.durations)):
            x = neuron.inverse_map(x, tau)
        return x

    def log_density(self, base_log_prob: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``log rho_T(x)`` for the base density ``rho_B`` given by ``base_log_prob`` (closed form, neuron by neuron)."""
        check_callable(base_log_prob, "base_log_prob")
        check_points(x, "x", d=self.neurons[0].a.shape[0])
        log_jac = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for neuron, tau in zip(reversed(self.neurons), reversed(self.durations)):  # back from T to 0
            log_jac = log_jac - tau * neuron.c * (neuron.activation(x) > 0).to(x.dtype)
            x = neuron.inverse_map(x, tau)
        return base_log_prob(x) + log_jac


def _neuron_1d(w: float, a: float, b: float, like: torch.Tensor) -> ReLUNeuron:
    kw = {"dtype": like.dtype, "device": like.device}
    return ReLUNeuron(torch.tensor([w], **kw), torch.tensor([a], **kw), b)


def tv_control_1d(base_quantiles: torch.Tensor, target_quantiles: torch.Tensor, duration: float = 1.0) -> ControlSequence:
    """Step 1 of the construction (eq. ``ch7-pl-map``): controls that move the base quantiles ``p_0 < ... < p_K`` onto the
    target quantiles ``q_0 < ... < q_K`` at the same levels, each block ``[p_{i-1}, p_i]`` affinely onto ``[q_{i-1}, q_i]``.

    A translation (``a = 0``) takes ``p_0`` to ``q_0``; then, for ``i = 1..K``, the neuron ``w (x - q_{i-1})_+`` dilates or
    compresses the half-line right of ``q_{i-1}`` about ``q_{i-1}`` by the factor ``m_i / m_{i-1}`` (``m_i`` the slope of
    block ``i``, ``m_0 = 1``), leaving the blocks already placed, on its left, untouched: ``K + 1`` switches, each of
    duration ``duration / (K + 1)``. Mass left of ``p_0`` is only translated; mass right of ``p_K`` follows the last block.
    """
    p = check_tensor(base_quantiles, "base_quantiles", ndim=1)
    q = check_tensor(target_quantiles, "target_quantiles", ndim=1)
    if p.shape != q.shape or p.numel() < 2:
        raise ValueError(f"base_quantiles and target_quantiles must have the same length >= 2, got {p.numel()} and "
                         f"{q.numel()}")
    check_same_device(base_quantiles=p, target_quantiles=q)
    for name, v in (("base_quantiles", p), ("target_quantiles", q)):
        if not bool((v[1:] > v[:-1]).all()):
            raise ValueError(f"{name} must be strictly increasing")
    total = check_positive(duration, "duration")
    k = p.numel() - 1
    tau = total / (k + 1)
    slopes = ((q[1:] - q[:-1]) / (p[1:] - p[:-1])).tolist()
    neurons = [_neuron_1d((q[0] - p[0]).item() / tau, 0.0, 1.0, p)]  # a = 0: the constant field, a translation
    previous = 1.0
    for i in range(k):
        neurons.append(_neuron_1d(math.log(slopes[i] / previous) / tau, 1.0, -q[i].item(), p))
        previous = slopes[i]
    return ControlSequence(neurons, [tau] * (k + 1))


def _density_on_points(density: torch.Tensor, points: torch.Tensor, name: str, *, minimum: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(points, density)`` if the points are a strictly increasing 1-D grid of at least ``minimum`` and the
    density holds one non-negative value per point (the error names ``name``)."""
    x = check_tensor(points, "points", ndim=1)
    rho = check_tensor(density, name, ndim=1)
    if rho.shape != x.shape or x.numel() < minimum:
        raise ValueError(f"{name} must hold one value per point (at least {minimum}), got {rho.numel()} and "
                         f"{x.numel()}")
    if not bool((x[1:] > x[:-1]).all()):
        raise ValueError("points must be strictly increasing")
    if bool((rho < 0).any()):
        raise ValueError(f"{name} must be non-negative")
    return x, rho


def quantiles_from_density(density: torch.Tensor, points: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Quantiles at ``levels`` of the law with the given density values on increasing ``points``: the cumulative
    distribution by the trapezoid rule (normalised to 1), inverted by linear interpolation."""
    x, rho = _density_on_points(density, points, "density", minimum=2)
    u = check_tensor(levels, "levels", ndim=1)
    if not float(rho.sum()) > 0:
        raise ValueError("density must be non-negative and not identically zero")
    if bool((u < 0).any()) or bool((u > 1).any()):
        raise ValueError("levels must lie in [0, 1]")
    cdf = torch.cumulative_trapezoid(rho, x)
    cdf = torch.cat([torch.zeros(1, dtype=cdf.dtype, device=cdf.device), cdf / cdf[-1]])
    out = np.interp(u.detach().cpu().numpy(), cdf.cpu().numpy(), x.detach().cpu().numpy())
    return torch.from_numpy(out).to(x)


def tv_control_to_eps(base: torch.distributions.Distribution, target_density: torch.Tensor, points: torch.Tensor,
                      eps: float, *, tail_mass: float | None = None, duration: float = 1.0,
                      max_blocks: int = 4096) -> tuple[ControlSequence, int, float]:
    """Step 1 as an algorithm: double the number of equal-mass blocks ``K`` until the controls of :func:`tv_control_1d`
    bring ``base`` (a 1-D distribution with ``icdf``) within ``eps`` of the target in ``L^1``.

    The target is given by its density values on the increasing, equally spaced ``points``; quantiles come from its
    cumulative (trapezoid) distribution, and the ``L^1`` error is measured by quadrature of the pushed density on the same
    points. The blocks cover the levels ``[alpha/2, 1 - alpha/2]``, ``alpha = tail_mass`` (default ``eps / 10``).
    Returns ``(controls, K, L1 error)``; raises ``ValueError`` if ``max_blocks`` blocks do not suffice."""
    if not isinstance(base, torch.distributions.Distribution):
        raise TypeError(f"base must be a torch.distributions.Distribution, got {type(base).__name__}")
    x, rho = _density_on_points(target_density, points, "target_density", minimum=3)
    e = check_interval(eps, "eps", 0.0, 2.0, open_low=True)
    alpha = e / 10 if tail_mass is None else check_interval(tail_mass, "tail_mass", 0.0, 1.0, open_low=True,
                                                              open_high=True)
    check_int(max_blocks, "max_blocks", minimum=2)
    rho_n = rho / torch.trapezoid(rho, x)
    k = 2
    while True:
        levels = alpha / 2 + (1 - alpha) * torch.arange(k + 1, dtype=x.dtype, device=x.device) / k
        seq = tv_control_1d(base.icdf(levels), quantiles_from_density(rho, x, levels), duration)
        pushed = seq.log_density(lambda y: base.log_prob(y[:, 0]), x[:, None]).exp()
        # the mass pushed off the points counts too (the target has none there)
        err = (torch.trapezoid((pushed - rho_n).abs(), x) + (1 - torch.trapezoid(pushed, x)).clamp_min(0)).item()
        if err < e:
            return seq, k, err
        if 2 * k > max_blocks:
            raise ValueError(f"{k} blocks give an L1 error of {err:.3g} > eps = {e}; raise max_blocks or eps")
        k *= 2


def tail_control_1d(left: float, right: float, left_factor: float, right_factor: float, duration: float = 1.0, *,
                    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> ControlSequence:
    """Step 2 in one dimension (eq. ``ch7-tail``): dilate the half-line ``x > right`` about ``right`` by ``right_factor``
    and ``x < left`` about ``left`` by ``left_factor`` (one switch per face of ``[left, right]``, each of half the
    duration), leaving ``[left, right]`` untouched. A Gaussian tail of scale ``s`` beyond a face becomes one of scale
    ``factor * s`` (a factor below 1 compresses)."""
    lo, hi = check_real(left, "left"), check_real(right, "right")
    if not lo < hi:
        raise ValueError(f"left must be smaller than right, got {lo} and {hi}")
    f_lo, f_hi = check_positive(left_factor, "left_factor"), check_positive(right_factor, "right_factor")
    total = check_positive(duration, "duration")
    like = torch.zeros(1, dtype=check_dtype(dtype), device=check_device(device))
    right_neuron = _neuron_1d(2 * math.log(f_hi) / total, 1.0, -hi, like)  # w (x - right)_+
    left_neuron = _neuron_1d(-2 * math.log(f_lo) / total, -1.0, lo, like)  # -w (left - x)_+: moves x < left outwards
    return ControlSequence([right_neuron, left_neuron], [total / 2, total / 2])


class XLogXField:
    """The field ``v(x) = -x log x`` for ``x > 1``, 0 elsewhere, in one dimension: locally but not globally Lipschitz.

    Its flow is ``Phi_t(x) = x^{e^{-t}}`` for ``x > 1`` (eq. ``ch7-xlogx``), and the density is
    ``rho_t(y) = e^t rho_B(y^{e^t}) y^{e^t - 1}`` for ``y > 1``, ``rho_B(y)`` elsewhere: tails of ``e^{-|x|^p}`` become
    tails of ``e^{-|x|^{p e^t}}``. Points are ``(n, 1)``.
    """

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 1, -x * torch.log(x.clamp_min(1.0)), torch.zeros_like(x))

    def flow_map(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """``x^{e^{-t}}`` for ``x > 1``, ``x`` elsewhere (``t`` may be negative: the inverse map)."""
        check_points(x, "x", d=1)
        t = check_real(t, "t")
        return torch.where(x > 1, x.clamp_min(1.0) ** math.exp(-t), x)

    def log_density(self, base_log_prob: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, t: float) -> torch.Tensor:
        """``log rho_t(x)`` for the base density given by ``base_log_prob`` on points ``(n, 1)``."""
        check_callable(base_log_prob, "base_log_prob")
        check_points(x, "x", d=1)
        t = check_real(t, "t")
        y = x[:, 0]
        outside = y > 1
        back = self.flow_map(x, -t)
        log_jac = torch.where(outside, t + (math.exp(t) - 1) * torch.log(y.clamp_min(1.0)), torch.zeros_like(y))
        return base_log_prob(back) + log_jac
