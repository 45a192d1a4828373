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

import torch

from ._checks import check_callable, check_points, check_real, check_same_device, check_tensor

__all__ = ["ReLUNeuron"]


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
