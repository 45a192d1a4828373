"""Continuous normalizing flows trained by maximum likelihood (Chen et al. 2018; FFJORD, Grathwohl et al. 2019).

The model is a velocity field ``v_theta(t, x)``; the base ``N(0, scale^2 I)`` sits at ``t = 0`` and the
data at ``t = 1`` (the book's convention; FFJORD integrates data-to-noise, which is the same model
read backwards). Its log-likelihood is ``ODEFlow.log_prob`` (eq. ``ch1-icov``): the book has one
likelihood routine, and this module only adds the network, the base, the loss and its regularisers.
"""

from __future__ import annotations

import torch
from torch import nn

from collections.abc import Callable

from ._checks import (
    check_callable,
    check_generator,
    check_int,
    check_nonnegative,
    check_points,
    check_positive,
    check_solver,
)
from .flow import ODEFlow
from .nets import VelocityMLP
from .training import fit

__all__ = ["CNF", "fit_cnf"]

TRAIN_SOLVER = {"method": "rk4", "n_steps": 8}
EVAL_SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}


class CNF(nn.Module):
    """A CNF in ``R^d``: ``v(t, x) = scale * net(t, x / scale)`` with base ``N(0, scale^2 I)``.

    ``scale`` puts the network's inputs and outputs at unit size when the data have spread ``scale``.
    Solver options (``method`` with ``n_steps``, or ``rtol``/``atol``) are passed per call; the
    defaults are fixed-step RK4 for training and adaptive dopri5 (tolerance 1e-5) for evaluation.
    """

    def __init__(self, d: int, *, hidden: int = 64, n_layers: int = 3, n_freq: int = 2, scale: float = 1.0,
                 activation: str = "tanh"):
        super().__init__()
        self.d = check_int(d, "d")
        self.scale = check_positive(scale, "scale")
        self.net = VelocityMLP(d, hidden=hidden, n_layers=n_layers, n_freq=n_freq, activation=activation)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The velocity field ``v_theta(t, x)``."""
        return self.net(t, x / self.scale) * self.scale

    @property
    def base(self) -> torch.distributions.MultivariateNormal:
        p = next(self.parameters())
        eye = torch.eye(self.d, dtype=p.dtype, device=p.device)
        return torch.distributions.MultivariateNormal(torch.zeros(self.d, dtype=p.dtype, device=p.device),
                                                      self.scale**2 * eye)

    def flow(self, **solver) -> ODEFlow:
        """An :class:`ODEFlow` of this field (``solver`` as in ODEFlow; default: evaluation solver)."""
        return ODEFlow(self, **(solver or EVAL_SOLVER))

    def log_prob(self, x: torch.Tensor, *, solver: dict | None = None, **divergence_options) -> torch.Tensor:
        """``log p_theta(x)`` by the instantaneous change of variables (eq. ``ch1-icov``)."""
        check_points(x, "x", d=self.d)
        check_solver(solver)
        return self.flow(**(solver or EVAL_SOLVER)).log_prob(x, self.base, **divergence_options)

    def sample(self, n: int, *, solver: dict | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples: base samples pushed from ``t = 0`` to ``t = 1``."""
        check_int(n, "n")
        check_solver(solver)
        check_generator(generator)
        p = next(self.parameters())
        z = torch.randn(n, self.d, dtype=p.dtype, device=p.device, generator=generator) * self.scale
        return self.flow(**(solver or EVAL_SOLVER)).push(z)

    def loss(self, x: torch.Tensor, *, kinetic: float = 0.0, frobenius: float = 0.0, solver: dict | None = None,
             **divergence_options) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss ``NLL + kinetic * E int |v|^2 + frobenius * E int ||grad v||_F^2`` (eq. ``ch3-rnode``).

        Returns the loss (differentiable) and its parts as floats (``nll``, ``kinetic``, ``frobenius``).
        """
        check_points(x, "x", d=self.d)
        lam_k = check_nonnegative(kinetic, "kinetic")
        lam_f = check_nonnegative(frobenius, "frobenius")
        check_solver(solver)
        flow = self.flow(**(solver or TRAIN_SOLVER))
        if lam_k == 0 and lam_f == 0:
            nll = -flow.log_prob(x, self.base, **divergence_options).mean()
            return nll, {"nll": nll.item(), "kinetic": float("nan"), "frobenius": float("nan")}
        logp, kin, frob = flow.log_prob_regularized(x, self.base, **divergence_options)
        nll, kin, frob = -logp.mean(), kin.mean(), frob.mean()
        return nll + lam_k * kin + lam_f * frob, {"nll": nll.item(), "kinetic": kin.item(), "frobenius": frob.item()}


def fit_cnf(model: CNF, sample: Callable[[tuple[int]], torch.Tensor], n_steps: int, *, batch: int = 256, lr: float = 3e-3,
            progress: bool = True, **loss_options) -> list[float]:
    """Maximum-likelihood training: Adam with a cosine learning-rate decay, fresh batches from ``sample((batch,))``
    (a sampler with the ``torch.distributions`` signature, such as ``target.sample``).

    ``loss_options`` go to :meth:`CNF.loss` (regularisation weights, solver, divergence options).
    Returns the history of the training loss (through :func:`flowtutor.training.fit`: NaN guard, progress).
    """
    if not isinstance(model, CNF):
        raise TypeError(f"model must be a CNF, got {type(model).__name__}")
    check_callable(sample, "sample")
    check_int(batch, "batch")
    check_positive(lr, "lr")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, check_int(n_steps, "n_steps"))
    return fit(lambda step: model.loss(sample((batch,)), **loss_options)[0], optimizer, n_steps,
               scheduler=scheduler, progress=progress)
