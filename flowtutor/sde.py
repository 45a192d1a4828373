"""Euler-Maruyama for ``dX = b(t, X) dt + sigma dW`` (chapter 1, section 5), the stochastic counterpart of ODEFlow.

Written by hand because the scheme is what chapter 1 teaches (and is one line); it returns whole
paths so that chapter 1 can show an SDE path beside an ODE path with the same marginals.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._checks import check_callable, check_generator, check_int, check_nonnegative, check_points, check_real

__all__ = ["euler_maruyama"]


def euler_maruyama(drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor, *,
                   sigma: float | Callable[[float], float], t0: float, t1: float, n_steps: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Paths ``X_{k+1} = X_k + b(t_k, X_k) h + sigma(t_k) sqrt(h) xi_k`` on ``n_steps`` equal steps.

    ``sigma`` is a number or a function of time (returning a number >= 0). Returns shape
    ``(n_steps + 1, n, d)``; ``drift(t, x)`` follows the velocity-field convention.
    """
    check_callable(drift, "drift")
    check_points(x0, "x0")
    sigma_of = sigma if callable(sigma) else (lambda t, c=check_nonnegative(sigma, "sigma"): c)
    check_int(n_steps, "n_steps")
    t0, t1 = check_real(t0, "t0"), check_real(t1, "t1")
    check_generator(generator, device=x0.device)
    if not t1 > t0:
        raise ValueError(f"t1 must be > t0, got t0={t0}, t1={t1}")
    h = (t1 - t0) / n_steps
    x, path = x0, [x0]
    for k in range(n_steps):
        t = torch.tensor(t0 + k * h, dtype=x0.dtype, device=x0.device)
        noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        x = x + drift(t, x) * h + check_nonnegative(sigma_of(t0 + k * h), "sigma") * math.sqrt(h) * noise
        path.append(x)
    return torch.stack(path)
