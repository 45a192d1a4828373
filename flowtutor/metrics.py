"""Metrics between distributions, each defined precisely.

* Monte Carlo estimates return an :class:`Estimate` (value and standard error).
* Grid divergences take density values ``p``, ``q`` (any shape, same grid) and the cell volume;
  with ``cell=1`` they apply to probability vectors. They use the *generalised* forms valid for
  measures of unequal mass (eq. ``ch2-kl-mass``), which reduce to the usual ones for probabilities.
* ``w2`` is computed by POT from ``n`` and ``m`` samples with uniform weights: exact (``ot.emd2``)
  or entropic (``ot.sinkhorn2``). One such value between two 1000-point samples of the book's 8-Gaussian ring varies
  by about 20 % between draws, so sample quality is judged by ``w2_ratio``: W2 averaged over independent blocks, against
  the same average between exact samples, with its standard error (appendix, eq. ``app-w2-ratio``).
* ``energy_distance`` is the unbiased U-statistic of ``2 E|X - Y| - E|X - X'| - E|Y - Y'|``.
* ``mmd`` uses the Gaussian kernel ``exp(-|x-y|^2 / (2 h^2))``, bandwidth ``h`` given or the
  median of the pooled pairwise distances, and the unbiased U-statistic for ``MMD^2``.
* ``nll`` is the model's negative log-likelihood of *test data*; it is never the log-likelihood
  of generated samples under the true density.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import ot
import scipy.stats
import torch

from ._checks import (
    check_callable,
    check_choice,
    check_distribution,
    check_int,
    check_nonnegative,
    check_points,
    check_positive,
    check_real,
    check_same_device,
    check_tensor,
)

__all__ = [
    "Estimate",
    "mean_estimate",
    "kl_mc",
    "entropy_mc",
    "nll",
    "bits_per_dim",
    "f_divergence_grid",
    "kl_grid",
    "tv_grid",
    "hellinger_grid",
    "chi2_grid",
    "renyi_grid",
    "relative_fisher_grid",
    "reverse_pinsker_bound",
    "auroc",
    "ModeRecovery",
    "mode_recovery",
    "w2",
    "w2_blocks",
    "ratio_estimate",
    "w2_ratio",
    "mmd",
    "energy_distance",
    "loglog_slope",
]


class Estimate(NamedTuple):
    """A Monte Carlo estimate and its standard error (one standard deviation of the mean)."""

    value: float
    stderr: float

    def within(self, target: float, n_sigma: float = 4.0, slack: float = 0.0) -> bool:
        """True when ``|value - target| <= n_sigma * stderr + slack``."""
        target = check_real(target, "target")
        n_sigma, slack = check_nonnegative(n_sigma, "n_sigma"), check_nonnegative(slack, "slack")
        return abs(self.value - target) <= n_sigma * self.stderr + slack

    def __str__(self) -> str:
        return f"{self.value:.4f} ± {self.stderr:.4f}"

    def __format__(self, spec: str) -> str:
        """``f"{est:.2f}"`` formats both numbers: ``"0.97 ± 0.08"``; an empty spec gives :meth:`__str__`."""
        return f"{self.value:{spec}} ± {self.stderr:{spec}}" if spec else str(self)


def mean_estimate(values: torch.Tensor) -> Estimate:
    """Mean of i.i.d. values with its standard error ``std / sqrt(n)``."""
    return _mean(values, "values")


def _mean(values: torch.Tensor, name: str) -> Estimate:
    check_tensor(values, name, ndim=1)
    if values.numel() < 2:
        raise ValueError(f"{name} must hold at least 2 samples for a standard error, got {values.numel()}")
    return Estimate(values.mean().item(), (values.std() / math.sqrt(values.numel())).item())


def kl_mc(log_p: torch.Tensor, log_q: torch.Tensor) -> Estimate:
    """``KL(p || q) = E_p[log p - log q]`` from ``log p`` and ``log q`` at the same samples of ``p``
    (``log q = -inf`` is allowed and gives ``KL = inf``; NaN is not)."""
    check_tensor(log_p, "log_p", ndim=1)
    check_tensor(log_q, "log_q", ndim=1, finite="no-nan")
    if log_p.shape != log_q.shape:
        raise ValueError(f"log_p and log_q must have the same shape, got {tuple(log_p.shape)} and {tuple(log_q.shape)}")
    check_same_device(log_p=log_p, log_q=log_q)
    return _mean(log_p - log_q, "log_p")


def entropy_mc(dist: torch.distributions.Distribution, n: int) -> Estimate:
    """Differential entropy ``H(p) = -E_p[log p]`` from ``n`` samples of ``dist`` (the floor of any model's NLL)."""
    check_distribution(dist, "dist")
    check_int(n, "n", minimum=2)
    with torch.no_grad():
        return mean_estimate(-dist.log_prob(dist.sample((n,))))


def nll(log_probs: torch.Tensor) -> Estimate:
    """Negative log-likelihood ``-mean log q(x_i)`` of a model ``q`` on test data ``x_i``, in nats."""
    check_tensor(log_probs, "log_probs", ndim=1, finite=False)
    if not bool(torch.isfinite(log_probs).all()):
        raise ValueError("log_probs contains NaN or infinite values: the model gives some test point zero density")
    return _mean(-log_probs, "log_probs")


def bits_per_dim(log_probs: torch.Tensor, d: int, n_levels: int) -> Estimate:
    """Bits per dimension (eq. ``ch10-bpd``) of discrete data with ``n_levels`` values per entry, from the log-densities
    ``log q(y_i)`` of their dequantised versions ``y_i = (x_i + u_i) / n_levels`` in ``[0, 1)^d``
    (:func:`flowtutor.data.dequantize`): ``(d log n_levels - log q(y_i)) / (d log 2)``, averaged, an upper bound on
    the discrete model's code length. The uniform density on ``[0, 1)^d`` gives exactly ``log2 n_levels``.
    """
    check_tensor(log_probs, "log_probs", ndim=1, finite=False)
    d = check_int(d, "d")
    n_levels = check_int(n_levels, "n_levels", minimum=2)
    if not bool(torch.isfinite(log_probs).all()):
        raise ValueError("log_probs contains NaN or infinite values: the model gives some test point zero density")
    return _mean((d * math.log(n_levels) - log_probs) / (d * math.log(2)), "log_probs")


def _check_grid(p: torch.Tensor, q: torch.Tensor, cell: float) -> float:
    check_tensor(p, "p")
    check_tensor(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    check_same_device(p=p, q=q)
    for name, values in (("p", p), ("q", q)):
        if bool((values < 0).any()):
            raise ValueError(f"{name} must hold non-negative density values, got min {float(values.min()):.3g}")
    return check_positive(cell, "cell")


def f_divergence_grid(p: torch.Tensor, q: torch.Tensor, cell: float, f: Callable[[torch.Tensor], torch.Tensor]
                      ) -> torch.Tensor:
    """``D_f(p || q) = int q f(p / q)`` on a grid (eq. ``ch2-fdiv``), for ``q > 0`` on the grid."""
    cell = _check_grid(p, q, cell)
    check_callable(f, "f")
    if bool((q == 0).any()):
        raise ValueError("q must be > 0 on the grid for the generic f-divergence; use kl_grid/tv_grid")
    return (q * f(p / q)).sum() * cell


def kl_grid(p: torch.Tensor, q: torch.Tensor, cell: float) -> torch.Tensor:
    """Generalised ``KL(p || q) = int p log(p/q) - p + q`` (eq. ``ch2-kl-mass``); ``inf`` if ``p > 0 = q`` somewhere."""
    cell = _check_grid(p, q, cell)
    if bool(((p > 0) & (q == 0)).any()):
        return torch.tensor(math.inf, dtype=p.dtype, device=p.device)
    return (torch.xlogy(p, p) - torch.xlogy(p, q) - p + q).sum() * cell


def tv_grid(p: torch.Tensor, q: torch.Tensor, cell: float) -> torch.Tensor:
    """``TV(p, q) = 1/2 int |p - q|`` (equal to ``sup_A |P(A) - Q(A)|`` for probability densities)."""
    cell = _check_grid(p, q, cell)
    return 0.5 * (p - q).abs().sum() * cell


def hellinger_grid(p: torch.Tensor, q: torch.Tensor, cell: float) -> torch.Tensor:
    """Squared Hellinger distance ``H^2 = 1/2 int (sqrt p - sqrt q)^2``."""
    cell = _check_grid(p, q, cell)
    return 0.5 * ((p.sqrt() - q.sqrt()) ** 2).sum() * cell


def chi2_grid(p: torch.Tensor, q: torch.Tensor, cell: float) -> torch.Tensor:
    """``chi^2(p || q) = int (p - q)^2 / q`` (``q > 0`` on the grid)."""
    return f_divergence_grid(p, q, cell, lambda r: (r - 1) ** 2)


def renyi_grid(p: torch.Tensor, q: torch.Tensor, cell: float, alpha: float) -> torch.Tensor:
    """Rényi divergence ``D_alpha(p || q) = log(int p^alpha q^(1-alpha)) / (alpha - 1)``, ``alpha > 0``, ``!= 1``."""
    cell = _check_grid(p, q, cell)
    check_positive(alpha, "alpha")
    if alpha == 1:
        raise ValueError("alpha must differ from 1; the order-1 Rényi divergence is kl_grid")
    mask = (p > 0) & (q > 0)
    if alpha > 1 and bool(((p > 0) & (q == 0)).any()):
        return torch.tensor(math.inf, dtype=p.dtype, device=p.device)
    integrand = torch.where(mask, p.clamp_min(1e-300) ** alpha * q.clamp_min(1e-300) ** (1 - alpha), torch.zeros_like(p))
    return torch.log(integrand.sum() * cell) / (alpha - 1)


def relative_fisher_grid(p: torch.Tensor, q: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """``I(p || q) = int p |grad log(p / q)|^2`` (eq. ``ch6-fisher``) on a 2-D grid ``(nx, ny)`` of spacings ``dx, dy``,
    by centred differences of ``log(p / q)`` (one-sided at the edges); ``p, q > 0`` on the grid."""
    _check_grid(p, q, check_positive(dx, "dx") * check_positive(dy, "dy"))
    check_tensor(p, "p", ndim=2)
    if bool((p <= 0).any()) or bool((q <= 0).any()):
        raise ValueError("p and q must be > 0 on the grid for the relative Fisher information")
    gx, gy = torch.gradient((p / q).log(), spacing=(dx, dy))
    return (p * (gx**2 + gy**2)).sum() * dx * dy


def reverse_pinsker_bound(tv: float, ratio_max: float) -> float:
    """The reverse Pinsker inequality: ``KL(mu || nu) <= log M / (1 - 1/M) * TV(mu, nu)`` for ``M = sup dmu/dnu``
    and ``TV = (1/2) ||mu - nu||_1`` (eq. ``ch7-reverse-pinsker``; the factor is ``M log M / (M - 1)``, 1 at ``M = 1``)."""
    tv = check_nonnegative(tv, "tv")
    m = check_real(ratio_max, "ratio_max")
    if not (m >= 1.0 and math.isfinite(m)):
        raise ValueError(f"ratio_max must be a finite sup of dmu/dnu, which is >= 1, got {ratio_max}")
    if tv > 1.0:
        raise ValueError(f"tv must be a total variation distance in [0, 1], got {tv}")
    factor = 1.0 if m - 1.0 < 1e-12 else m * math.log(m) / (m - 1.0)
    return factor * tv


def auroc(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """Area under the ROC curve of a score that should be larger out of distribution:
    ``P(S_out > S_in) + P(S_out = S_in) / 2`` over independent pairs (the Mann-Whitney statistic, by ranks)."""
    check_tensor(scores_in, "scores_in", ndim=1)
    check_tensor(scores_out, "scores_out", ndim=1)
    check_same_device(scores_in=scores_in, scores_out=scores_out)
    n_in, n_out = scores_in.numel(), scores_out.numel()
    if n_in == 0 or n_out == 0:
        raise ValueError(f"scores_in and scores_out must be non-empty, got {n_in} and {n_out} values")
    both = torch.cat([scores_in, scores_out]).double()
    ranks = torch.from_numpy(scipy.stats.rankdata(both.cpu().numpy()))  # average ranks for ties
    return ((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out)).item()


class ModeRecovery(NamedTuple):
    """What :func:`mode_recovery` measures: the share of samples in each mode, the share in any mode, the
    weight error and the per-coordinate spread of the in-mode samples around their centres."""

    weights: torch.Tensor
    in_mode: float
    weight_error: float
    spread: float


def mode_recovery(x: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor, radius: float) -> ModeRecovery:
    """How a sample ``x`` ``(n, d)`` recovers a mixture of well-separated modes at ``centres`` ``(K, d)`` with
    ``weights`` ``(K,)``: a point belongs to its nearest centre if it lies within ``radius`` of it, else to no
    mode. Returns the observed ``weights`` ``w_hat_k``, the share ``in_mode = sum_k w_hat_k``, the weight error
    ``1/2 (sum_k |w_hat_k - w_k| + (1 - in_mode))`` (the total variation between the two laws of the labels
    "mode k" and "no mode"; 0 for a perfect sampler up to sampling noise, 1 for one that misses every mode) and the
    ``spread`` ``sqrt(mean |x - centre|^2 / d)`` over the in-mode points (the standard deviation of an isotropic
    mode, as measured)."""
    check_points(x, "x")
    check_points(centres, "centres", d=x.shape[1])
    check_tensor(weights, "weights", ndim=1)
    check_same_device(x=x, centres=centres, weights=weights)
    if weights.shape[0] != centres.shape[0] or bool((weights < 0).any()):
        raise ValueError(f"weights must be {centres.shape[0]} non-negative numbers")
    radius = check_positive(radius, "radius")
    dist, nearest = torch.cdist(x, centres.to(x.dtype)).min(1)
    inside = dist < radius
    share = torch.bincount(nearest[inside], minlength=centres.shape[0]).to(x.dtype) / x.shape[0]
    in_mode = float(inside.double().mean())
    w = weights.to(x.dtype) / weights.sum()
    error = 0.5 * (float((share - w).abs().sum()) + 1 - in_mode)
    spread = float((dist[inside] ** 2).mean().div(x.shape[1]).sqrt()) if bool(inside.any()) else math.nan
    return ModeRecovery(share, in_mode, error, spread)


def _check_samples(x: torch.Tensor, y: torch.Tensor) -> None:
    check_points(x, "x")
    check_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must hold points of the same dimension, got {x.shape[1]} and {y.shape[1]}")
    check_same_device(x=x, y=y)


def w2(x: torch.Tensor, y: torch.Tensor, *, method: str = "exact", reg: float = 0.05,
       num_iter_max: int = 10_000_000) -> torch.Tensor:
    """2-Wasserstein distance between the empirical measures of ``x`` (n, d) and ``y`` (m, d), by POT.

    ``method="exact"``: ``sqrt(ot.emd2)`` (network simplex; cost O(n^3), use n <= ~5000).
    ``method="sinkhorn"``: ``sqrt`` of the entropic transport cost ``ot.sinkhorn2`` with
    regularisation ``reg`` times the mean squared cost (biased upwards by the regularisation), computed in
    float64 because the Gibbs kernel underflows in float32.
    The result is a 0-dim tensor on the inputs' device (POT's exact solver runs on the CPU in float64).
    """
    _check_samples(x, y)
    check_choice(method, "method", ("exact", "sinkhorn"))
    check_int(num_iter_max, "num_iter_max")
    a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=x.dtype, device=x.device)
    b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=y.dtype, device=y.device)
    cost = ot.dist(x, y)  # squared Euclidean
    if method == "exact":
        value = ot.emd2(a, b, cost, numItermax=num_iter_max)
    else:
        check_positive(reg, "reg")
        cost64 = cost.double()  # float64: the Gibbs kernel underflows in float32 for distant pairs
        value = ot.sinkhorn2(a.double(), b.double(), cost64 / cost64.mean(), reg, numItermax=10_000, stopThr=1e-7) * cost64.mean()
    return torch.as_tensor(value, dtype=x.dtype, device=x.device).clamp_min(0).sqrt()


def w2_blocks(x: torch.Tensor, y: torch.Tensor, n: int = 1000) -> torch.Tensor:
    """``W2(X_r, Y_r)`` (:func:`w2`, exact) for the consecutive ``n``-point blocks ``X_r``, ``Y_r`` of ``x`` and ``y``,
    which hold ``R * n`` points each, ``R >= 2``: the ``R`` independent draws that :func:`w2_ratio` averages, provided
    ``x`` and ``y`` are i.i.d. samples in random order (not sorted or grouped, say by label). Returns shape ``(R,)``,
    on the inputs' device."""
    _check_samples(x, y)
    n = check_int(n, "n", minimum=2)
    if x.shape[0] != y.shape[0] or x.shape[0] % n or x.shape[0] < 2 * n:
        raise ValueError(f"x and y must each hold R * n points with R >= 2 blocks of n = {n}, "
                         f"got {x.shape[0]} and {y.shape[0]}")
    return torch.stack([w2(a, b) for a, b in zip(x.split(n), y.split(n))])


def ratio_estimate(a: torch.Tensor, b: torch.Tensor) -> Estimate:
    """``rho = mean(a) / mean(b)`` for paired draws ``(a_r, b_r)``, ``r = 1..R``, with the delta method's standard
    error ``std(a - rho b) / (mean(b) sqrt(R))`` (eq. ``app-ratio-se``), which counts their covariance."""
    check_tensor(a, "a", ndim=1)
    check_tensor(b, "b", ndim=1)
    check_same_device(a=a, b=b)
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"a and b must be paired draws of the same length >= 2, got {a.numel()} and {b.numel()}")
    if not bool(b.mean() > 0):
        raise ValueError(f"b must have a positive mean, got {b.mean().item():.3g}")
    a, b = a.double(), b.double()
    rho = a.mean() / b.mean()
    return Estimate(rho.item(), ((a - rho * b).std() / (b.mean() * math.sqrt(a.numel()))).item())


def w2_ratio(generated: torch.Tensor, test: torch.Tensor, reference: torch.Tensor, *, n: int = 1000) -> Estimate:
    """The W2 ratio (eq. ``app-w2-ratio``) of ``generated`` samples against ``test`` samples of the target, with
    ``reference`` a second, independent set of exact samples; all three hold ``R * n`` points, ``R >= 2``, i.i.d. and
    in random order.

    Block ``r`` gives ``a_r = W2(G_r, T_r)`` and ``b_r = W2(S_r, T_r)`` (:func:`w2_blocks`); the ratio is
    ``mean(a) / mean(b)`` with its standard error (:func:`ratio_estimate`): about 1 for a perfect sampler, whose
    ``a_r`` and ``b_r`` have the same law, and large for one far from the data; not a divergence, it falls below 1
    for samples that fluctuate less than independent draws. The appendix calibrates it under the null.
    To compare several samplers against one target, compute ``b = w2_blocks(reference, test, n)`` once and call
    ``ratio_estimate(w2_blocks(generated, test, n), b)`` for each; ``ratio_estimate(a1 - a2, b)`` is then the
    difference of two such ratios with its paired standard error.
    """
    check_points(generated, "generated")
    check_points(test, "test", d=generated.shape[1])
    check_points(reference, "reference", d=generated.shape[1])
    check_same_device(generated=generated, test=test, reference=reference)
    if not generated.shape[0] == test.shape[0] == reference.shape[0]:
        raise ValueError(f"generated, test and reference must hold the same number of points, got "
                         f"{generated.shape[0]}, {test.shape[0]} and {reference.shape[0]}")
    return ratio_estimate(w2_blocks(generated, test, n), w2_blocks(reference, test, n))


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> torch.Tensor:
    """Unbiased ``MMD^2`` with the Gaussian kernel ``exp(-|x-y|^2/(2h^2))`` (``h`` = ``bandwidth``, or the
    median pooled pairwise distance). Can be slightly negative when the two laws agree; exactly unbiased at a fixed
    bandwidth (the median rule makes the bandwidth itself random)."""
    _check_samples(x, y)
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("x and y must each hold at least 2 samples")
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z) ** 2
    if bandwidth is None:
        h2 = d2[torch.triu_indices(n + m, n + m, 1, device=z.device).unbind()].median().clamp_min(1e-12)
    else:
        h2 = torch.as_tensor(check_positive(bandwidth, "bandwidth") ** 2, dtype=x.dtype, device=x.device)
    k = torch.exp(-d2 / (2 * h2))
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
            + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (eq. ``app-energy``) of the laws of ``x`` (n, d) and
    ``y`` (m, d), ``n, m >= 2``, by its unbiased U-statistic; zero in expectation when the laws agree (so it can be
    slightly negative), ``MMD^2`` with the kernel ``-|x - y|``."""
    _check_samples(x, y)
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("x and y must each hold at least 2 samples")
    return 2 * torch.cdist(x, y).mean() - torch.cdist(x, x).sum() / (n * (n - 1)) - torch.cdist(y, y).sum() / (m * (m - 1))


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: an observed order or rate."""
    x, y = _positive_vector(x, "x"), _positive_vector(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _positive_vector(values, name: str) -> np.ndarray:
    """``values`` as a 1-D float array of at least 2 finite positive numbers (for logarithms)."""
    try:
        arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a 1-D sequence of numbers, got {type(values).__name__}") from err
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 entries, got shape {arr.shape}")
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f"{name} must hold finite numbers > 0 for a log-log slope, got {arr.tolist()}")
    return arr
