"""Diffusion models: the VP (Ornstein-Uhlenbeck) forward SDE, denoising score matching, and the
reverse SDE and probability-flow ODE (Song et al. 2021).

Stated in the source's own convention, data-to-noise: diffusion time ``s`` runs from the data
(``s = 0``) to noise (``s = 1``), ``dX = -1/2 beta(s) X ds + sqrt(beta(s)) dW``. The generative fields
are converted to the book's time (``t = 1 - s``, noise at ``t = 0``) by :func:`flowtutor.reverse_time`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._checks import check_callable, check_generator, check_int, check_interval, check_points, check_positive
from .flow import reverse_time
from .matching import VPPath
from .training import fit

__all__ = ["VPSDE", "dsm_loss", "fit_score", "probability_flow_velocity", "reverse_sde_drift"]

ScoreField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class VPSDE:
    """``dX = -1/2 beta(s) X ds + sqrt(beta(s)) dW``, ``beta`` linear from ``beta_min`` to ``beta_max`` on [0, 1].

    Its marginals from a point ``x`` are ``N(a(s) x, (1 - a(s)^2) I)``, ``a(s) = exp(-1/2 int_0^s beta)``:
    the same ``alpha``/``sigma`` as :class:`flowtutor.matching.VPPath` read at ``t = 1 - s``.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.path = VPPath(beta_min, beta_max)

    def beta(self, s: torch.Tensor) -> torch.Tensor:
        return self.path.beta(s)

    def marginal(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a(s), sigma(s))`` of the transition ``X_s | X_0 = x ~ N(a x, sigma^2 I)``."""
        return self.path.alpha(1 - s), self.path.sigma(1 - s)

    def drift(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * _col(self.beta(s), x) * x


def _check_sde(sde: object) -> VPSDE:
    if not isinstance(sde, VPSDE):
        raise TypeError(f"sde must be a VPSDE, got {type(sde).__name__}")
    return sde


def _col(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return value.reshape(-1, 1) if value.ndim else value


def dsm_loss(score: ScoreField, x: torch.Tensor, sde: VPSDE, *, s_min: float = 1e-3, time_power: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching with weight ``sigma(s)^2`` (eq. ``ch4-dsm``):
    ``E |sigma(s) score(s, a x + sigma z) + z|^2``, ``s = s_min + (1 - s_min) u^time_power``, ``u ~ U[0, 1]``,
    ``z ~ N(0, I)`` (``time_power > 1`` puts more of the batch near the data).

    Its minimiser is the score ``grad log p_s`` of the noised data (Vincent 2011), whatever the law of ``s``.
    """
    check_callable(score, "score")
    check_points(x, "x")
    _check_sde(sde)
    check_interval(s_min, "s_min", 0.0, 1.0, open_low=True, open_high=True)
    check_positive(time_power, "time_power")
    check_generator(generator, device=x.device)
    u = torch.rand(x.shape[0], dtype=x.dtype, device=x.device, generator=generator)
    s = s_min + (1 - s_min) * u**time_power
    z = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    a, sigma = sde.marginal(s)
    xs = a[:, None] * x + sigma[:, None] * z
    return ((sigma[:, None] * score(s, xs) + z) ** 2).sum(1).mean()


def fit_score(score: torch.nn.Module, sample: Callable, sde: VPSDE, n_steps: int, *, batch: int = 256,
              lr: float = 3e-3, s_min: float = 1e-3, time_power: float = 1.0,
              generator: torch.Generator | None = None, progress: bool = True) -> list[float]:
    """Denoising score matching (:func:`dsm_loss`) on fresh batches ``sample((batch,))``, with Adam and a cosine
    learning-rate decay (through :func:`flowtutor.training.fit`). Returns the loss history."""
    if not isinstance(score, torch.nn.Module):
        raise TypeError(f"score must be a torch.nn.Module (its parameters are trained), got {type(score).__name__}")
    check_callable(sample, "sample")
    _check_sde(sde)
    check_int(batch, "batch")
    check_positive(lr, "lr")
    check_interval(s_min, "s_min", 0.0, 1.0, open_low=True, open_high=True)
    check_positive(time_power, "time_power")
    optimizer = torch.optim.Adam(score.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, check_int(n_steps, "n_steps"))
    return fit(lambda step: dsm_loss(score, sample((batch,)), sde, s_min=s_min, time_power=time_power,
                                               generator=generator), optimizer,
               n_steps, scheduler=scheduler, progress=progress)


def probability_flow_velocity(score: ScoreField, sde: VPSDE) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The probability-flow ODE in the book's time (eq. ``ch4-pfode``): in diffusion time its field is
    ``u(s, x) = f(s, x) - 1/2 beta(s) score(s, x) = -1/2 beta(s) (x + score(s, x))`` — chapter 1's
    ``v = -grad V - grad log rho`` with ``V = |x|^2/2``, scaled by ``beta/2``; returned as ``reverse_time(u)``."""
    check_callable(score, "score")
    _check_sde(sde)

    def u(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * _col(sde.beta(s), x) * (x + score(s, x))

    return reverse_time(u)


def reverse_sde_drift(score: ScoreField, sde: VPSDE) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Drift of the reverse-time SDE in the book's time (Anderson 1982): with ``s = 1 - t``,
    ``dX = 1/2 beta(s) (X + 2 score(s, X)) dt + sqrt(beta(s)) dW``."""
    check_callable(score, "score")
    _check_sde(sde)

    def drift(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s = 1 - t
        return 0.5 * _col(sde.beta(s), x) * (x + 2 * score(s, x))

    return drift
