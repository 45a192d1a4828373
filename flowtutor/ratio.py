"""Density-ratio estimation by classification, in one step or telescoped along a path of distributions.

A classifier ``phi`` trained with the logistic loss (eq. ``ch9-logistic``) between samples of ``f0`` (label 0) and
``f1`` (label 1) estimates ``log f1/f0`` (``lem-logistic``). Between distributions that barely overlap its
logits are not determined where both densities are tiny; telescoping (eq. ``ch9-telescope``) sums the log ratios of
neighbouring distributions ``p_0, ..., p_N`` instead (Rhodes et al. 2020; Choi et al. 2022), which a flow from ``p_0``
to ``p_N`` supplies (Xu, Cheng & Xie 2025; Xie & Cheng 2025).
:class:`LogRatio` holds the ``N`` classifiers of a telescope as one batched network: they are independent (separate
weights, separate losses) but evaluated in one matrix product per layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import (
    check_device,
    check_dtype,
    check_generator,
    check_int,
    check_nonnegative,
    check_points,
    check_positive,
    check_tensor,
)
from .training import fit

__all__ = ["logistic_loss", "LogRatio", "fit_log_ratio"]


def logistic_loss(logits_0: torch.Tensor, logits_1: torch.Tensor) -> torch.Tensor:
    """``mean log(1 + e^phi(x)) over x ~ f0  +  mean log(1 + e^-phi(x)) over x ~ f1`` (eq. ``ch9-logistic``).

    ``logits_0 = phi(x)`` on samples of ``f0`` and ``logits_1`` on samples of ``f1``, each of shape ``(n,)`` (or
    ``(..., n)``: one loss per leading index). Its minimiser over all functions is ``phi = log f1/f0``.
    """
    check_tensor(logits_0, "logits_0")
    check_tensor(logits_1, "logits_1")
    if min(logits_0.ndim, logits_1.ndim) < 1 or logits_0.shape[:-1] != logits_1.shape[:-1]:
        raise ValueError(f"logits_0 and logits_1 must be (..., n) with the same leading shape, got "
                         f"{tuple(logits_0.shape)} and {tuple(logits_1.shape)}")
    if logits_0.device != logits_1.device:
        raise ValueError(f"logits_0 and logits_1 must be on one device, got {logits_0.device} and {logits_1.device}")
    return _logistic(logits_0, logits_1)


def _logistic(logits_0: torch.Tensor, logits_1: torch.Tensor) -> torch.Tensor:
    return F.softplus(logits_0).mean(-1) + F.softplus(-logits_1).mean(-1)


class LogRatio(nn.Module):
    """``n_terms`` independent classifiers ``phi_k : R^d -> R`` (MLPs, SiLU) and their sum.

    ``n_layers`` hidden layers of width ``hidden``; ``n_layers = 0`` makes each ``phi_k`` affine (logistic
    regression), exact for Gaussians of equal covariance.

    The weights are drawn (as ``nn.Linear`` draws them) from ``generator`` on ``device`` in ``dtype``.
    ``forward(x)`` returns ``sum_k phi_k(x)`` of shape ``(n,)``: with ``phi_k`` trained on ``(p_k, p_{k+1})`` it
    estimates ``log p_N/p_0`` by the telescoping sum (eq. ``ch9-telescope``); ``terms(x)`` returns every ``phi_k(x)``,
    shape ``(n_terms, n)``. ``n_terms = 1`` is the single classifier.
    """

    def __init__(self, d: int, n_terms: int = 1, hidden: int = 64, n_layers: int = 2,
                 generator: torch.Generator | None = None, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.d, self.n_terms = check_int(d, "d"), check_int(n_terms, "n_terms")
        check_int(hidden, "hidden")
        check_int(n_layers, "n_layers", minimum=0)
        dtype, device = check_dtype(dtype), check_device(device)
        check_generator(generator, device=device)
        widths = [d] + [hidden] * n_layers + [1]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for w_in, w_out in zip(widths[:-1], widths[1:]):  # nn.Linear's initialisation, one block per term
            bound = 1 / math.sqrt(w_in)
            for shape, params in (((n_terms, w_in, w_out), self.weights), ((n_terms, 1, w_out), self.biases)):
                u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
                params.append(nn.Parameter((2 * u - 1) * bound))

    def _batched(self, x: torch.Tensor) -> torch.Tensor:  # x: (n_terms, n, d) -> (n_terms, n)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = F.silu(x)
        return x.squeeze(-1)

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        check_points(x, "x", d=self.d)
        w = self.weights[0]
        if x.device != w.device or x.dtype != w.dtype:
            raise ValueError(f"x must be on the classifier's device and dtype ({w.device}, {w.dtype}), got "
                             f"{x.device}, {x.dtype} (move the module with .to())")
        return x

    def terms(self, x: torch.Tensor) -> torch.Tensor:
        """Every ``phi_k(x)``, shape ``(n_terms, n)``; their partial sums estimate ``log p_k/p_0``."""
        x = self._check_x(x)
        return self._batched(x.expand(self.n_terms, *x.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The estimate ``sum_k phi_k(x)`` of ``log p_N(x)/p_0(x)``, shape ``(n,)``."""
        return self.terms(x).sum(0)


def fit_log_ratio(samples: torch.Tensor, n_steps: int, *, batch: int = 512, lr: float = 3e-3,
                  weight_decay: float = 0.0, hidden: int = 64, n_layers: int = 2,
                  generator: torch.Generator | None = None, progress: bool = True) -> LogRatio:
    """Train a :class:`LogRatio` on ``samples`` of shape ``(N + 1, n, d)``: term ``k`` minimises
    :func:`logistic_loss` between ``samples[k]`` (label 0) and ``samples[k + 1]`` (label 1).

    With ``N = 1`` (``samples = torch.stack([x0, x1])``) it is one classifier estimating ``log f1/f0``. Each step
    draws ``batch`` rows of every sample set with replacement (from ``generator``, which also draws the initial
    weights: equal generators give equal fits); AdamW (``weight_decay``) with a cosine
    learning-rate decay, through :func:`flowtutor.training.fit` (NaN guard, progress). The loss history is kept
    as the returned module's ``history``.
    """
    check_tensor(samples, "samples", ndim=3)
    if samples.shape[0] < 2 or samples.shape[1] < 1:
        raise ValueError(f"samples must be (N + 1, n, d) with N >= 1 and n >= 1, got shape {tuple(samples.shape)}")
    check_int(n_steps, "n_steps")
    check_int(batch, "batch")
    check_positive(lr, "lr")
    check_nonnegative(weight_decay, "weight_decay")
    check_generator(generator, device=samples.device)
    n_sets, n, d = samples.shape
    model = LogRatio(d, n_sets - 1, hidden, n_layers, generator, dtype=samples.dtype, device=samples.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
    rows = torch.arange(n_sets, device=samples.device)[:, None]

    def loss(step: int) -> torch.Tensor:
        x = samples[rows, torch.randint(n, (n_sets, batch), generator=generator, device=samples.device)]
        # unchecked: a non-finite loss stops in fit with its step; the terms' losses are separate, so their sum
        return _logistic(model._batched(x[:-1]), model._batched(x[1:])).sum()  # trains each term on its own pair

    model.history = fit(loss, optimizer, n_steps, scheduler=scheduler, progress=progress)
    return model

