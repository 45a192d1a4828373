"""Closed forms for Gaussians: the ground truth that checks the book's numerics.

Means are ``(d,)`` tensors, covariances ``(d, d)`` symmetric positive semi-definite (definite where a
formula inverts them), checked on entry. Everything runs on the inputs' device and dtype
(eigendecompositions through ``torch.linalg.eigh``), except :func:`w2_gaussians` and :func:`kl_gaussians`,
computed in float64 in a form without cancellation and cast back (see there).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._checks import (
    check_covariance,
    check_int,
    check_generator,
    check_interval,
    check_nonnegative,
    check_points,
    check_positive,
    check_real,
    check_same_device,
    check_square,
    check_tensor,
    check_time,
)

__all__ = [
    "sqrtm_psd",
    "linear_flow_gaussian",
    "ou_marginal",
    "ou_velocity",
    "w2_gaussians",
    "brenier_map_gaussians",
    "displacement_interpolation_gaussians",
    "displacement_velocity_gaussians",
    "kl_gaussians",
    "renyi_gaussians",
    "hellinger_gaussians",
    "chi2_gaussians",
    "tv_gaussians_same_cov",
    "GaussianPath",
]


def _check_gaussian(m: torch.Tensor, s: torch.Tensor, name: str, *, definite: bool = False) -> int:
    """Validate a mean ``m{name}`` of shape ``(d,)`` and a covariance ``s{name}`` (symmetric PSD, or PD)."""
    check_tensor(m, f"m{name}", ndim=1)
    check_tensor(s, f"s{name}", ndim=2)
    d = m.shape[0]
    if tuple(s.shape) != (d, d):
        raise ValueError(f"s{name} must have shape ({d}, {d}) to match m{name} of shape ({d},), got {tuple(s.shape)}")
    check_same_device(**{f"m{name}": m, f"s{name}": s})
    check_covariance(s, f"s{name}", definite=definite)
    return d


def _check_means(m0, m1) -> None:
    """Two means ``(d,)`` of the same dimension, on one device."""
    check_tensor(m0, "m0", ndim=1)
    check_tensor(m1, "m1", ndim=1)
    if m0.shape != m1.shape:
        raise ValueError(f"m0 and m1 must have the same dimension, got {m0.shape[0]} and {m1.shape[0]}")
    check_same_device(m0=m0, m1=m1)


def _check_pair(m0, s0, m1, s1, *, definite: bool = False) -> None:
    _check_means(m0, m1)
    _check_gaussian(m0, s0, "0", definite=definite)
    _check_gaussian(m1, s1, "1", definite=definite)


def sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    return _sqrtm(check_covariance(s, "s"))


def _sqrtm(s: torch.Tensor) -> torch.Tensor:
    """:func:`sqrtm_psd` without the checks, for matrices PSD by construction (up to round-off)."""
    evals, evecs = torch.linalg.eigh((s + s.T) / 2)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def linear_flow_gaussian(a: torch.Tensor, b: torch.Tensor, m0: torch.Tensor, s0: torch.Tensor,
                         t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance at time ``t`` of ``N(m0, S0)`` pushed by ``v(x) = Ax + b`` (eq. ``ch1-linear``).

    ``x_t = e^{tA} x_0 + (int_0^t e^{sA} ds) b``; the integral is read off the exponential of the
    augmented matrix ``[[A, b], [0, 0]]``. So ``m_t = e^{tA} m0 + (int_0^t e^{sA} ds) b`` and
    ``S_t = e^{tA} S0 e^{tA^T}``.
    """
    d = _check_gaussian(m0, s0, "0")
    check_square(a, "a", d=d)
    check_tensor(b, "b", ndim=1)
    if b.shape[0] != d:
        raise ValueError(f"b must have shape ({d},) to match m0, got {tuple(b.shape)}")
    check_same_device(a=a, b=b, m0=m0)
    t = check_real(t, "t")
    aug = torch.zeros(d + 1, d + 1, dtype=a.dtype, device=a.device)
    aug[:d, :d], aug[:d, d] = a, b
    e = torch.linalg.matrix_exp(t * aug)
    phi, shift = e[:d, :d], e[:d, d]
    return phi @ m0 + shift, phi @ s0 @ phi.T


def ou_marginal(m0: torch.Tensor, s0: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Law at time ``t`` of the OU process ``dX = -X dt + sqrt(2) dW`` from ``N(m0, S0)`` (eq. ``ch1-ou``).

    ``m_t = e^{-t} m0``, ``S_t = e^{-2t} S0 + (1 - e^{-2t}) I``; the stationary law is ``N(0, I)``.
    """
    d = _check_gaussian(m0, s0, "0")
    t = check_nonnegative(t, "t")
    eye = torch.eye(d, dtype=s0.dtype, device=s0.device)
    return math.exp(-t) * m0, math.exp(-2 * t) * s0 + (1 - math.exp(-2 * t)) * eye


def ou_velocity(m0: torch.Tensor, s0: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The deterministic velocity ``v_t(x) = -x - grad log rho_t(x) = -x + S_t^{-1} (x - m_t)`` whose flow has
    the OU marginals of :func:`ou_marginal` (eq. ``ch1-ou``). Time ``t`` is the OU process's own time."""
    _check_gaussian(m0, s0, "0")

    def v(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        m, s = ou_marginal(m0, s0, float(t))
        return -x + torch.linalg.solve(s, (x - m).T).T

    return v


def w2_gaussians(m0, s0, m1, s1) -> torch.Tensor:
    """``W2(N(m0,S0), N(m1,S1))`` (eq. ``ch2-w2-gauss``):
    ``W2^2 = |m0 - m1|^2 + tr(S0 + S1 - 2 (S0^{1/2} S1 S0^{1/2})^{1/2})``.

    The Bures term is evaluated without cancellation: ``tr((S0^{1/2} S1 S0^{1/2})^{1/2})`` is the nuclear norm
    of ``S1^{1/2} S0^{1/2}``, and with ``U`` the orthogonal polar factor of that matrix
    ``tr(S0 + S1) - 2 ||S1^{1/2} S0^{1/2}||_* = ||S0^{1/2} - S1^{1/2} U||_F^2``, a sum of squares (zero when
    ``S0 = S1``). It is computed in float64 and the distance cast back to the inputs' dtype (the float32
    difference of traces gave ``W2(mu, mu) ~ 1e-2``).
    """
    _check_pair(m0, s0, m1, s1)
    r0, r1 = _sqrtm(s0.double()), _sqrtm(s1.double())
    p, _, qh = torch.linalg.svd(r1 @ r0)
    bures = ((r0 - r1 @ (p @ qh)) ** 2).sum()
    w2sq = ((m0.double() - m1.double()) ** 2).sum() + bures
    return w2sq.sqrt().to(s0.dtype)


def brenier_map_gaussians(m0, s0, m1, s1) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The optimal map ``T(x) = m1 + A (x - m0)`` from ``N(m0,S0)`` to ``N(m1,S1)`` (theorem ``thm-w2-gauss``),
    ``A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2}`` (symmetric positive definite). Returns ``(T, A)``."""
    _check_pair(m0, s0, m1, s1)
    check_covariance(s0, "s0", definite=True)
    r0 = _sqrtm(s0)
    r0_inv = torch.linalg.inv(r0)
    a = r0_inv @ _sqrtm(r0 @ s1 @ r0) @ r0_inv
    a = (a + a.T) / 2

    def transport(x: torch.Tensor) -> torch.Tensor:
        return m1 + (x - m0) @ a.T

    return transport, a


def displacement_interpolation_gaussians(t: float, m0, s0, m1, s1) -> tuple[torch.Tensor, torch.Tensor]:
    """McCann's interpolant ``((1-t) Id + t T)_# N(m0,S0)`` (eq. ``ch2-mccann``): returns its mean and covariance."""
    t = check_interval(t, "t", 0.0, 1.0)
    _, a = brenier_map_gaussians(m0, s0, m1, s1)
    eye = torch.eye(m0.shape[0], dtype=s0.dtype, device=s0.device)
    mt = (1 - t) * eye + t * a
    return (1 - t) * m0 + t * m1, mt @ s0 @ mt.T


def displacement_velocity_gaussians(m0, s0, m1, s1) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Eulerian velocity of McCann's interpolant (eq. ``ch2-mccann``), for ``t`` in [0, 1]:
    ``v_t(x) = (m1 - m0) + (A - I) M_t^{-1} (x - m_t)``, ``M_t = (1-t) I + t A``, ``m_t = (1-t) m0 + t m1``.
    Its flow moves each point on the straight line ``x -> T(x)``."""
    _, a = brenier_map_gaussians(m0, s0, m1, s1)
    eye = torch.eye(m0.shape[0], dtype=s0.dtype, device=s0.device)

    def v(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = float(t)
        mt = (1 - t) * eye + t * a
        return (m1 - m0) + torch.linalg.solve(mt, (x - ((1 - t) * m0 + t * m1)).T).T @ (a - eye).T

    return v


def kl_gaussians(m0, s0, m1, s1) -> torch.Tensor:
    """``KL(N(m0,S0) || N(m1,S1)) = 1/2 [tr(S1^-1 S0) + dm^T S1^-1 dm - d + log(det S1 / det S0)]``
    (both covariances positive definite).

    Evaluated as a sum of non-negative terms, ``1/2 [sum_i (l_i - 1 - log l_i) + |L^-1 dm|^2]`` with ``S1 = L L^T``
    and ``l_i`` the eigenvalues of ``L^-1 S0 L^-T`` (``l - 1 - log l`` as ``x - log1p(x)``, ``x = l - 1``), in
    float64 and cast back: the textbook sum of traces and log-determinants cancels to a negative value in
    float32 when the two laws are close.
    """
    _check_pair(m0, s0, m1, s1, definite=True)
    chol = torch.linalg.cholesky(s1.double())
    half = torch.linalg.solve_triangular(chol, s0.double(), upper=False)  # L^-1 S0
    whitened = torch.linalg.solve_triangular(chol, half.T, upper=False)  # L^-1 S0 L^-T
    x = torch.linalg.eigvalsh((whitened + whitened.T) / 2) - 1
    dm = torch.linalg.solve_triangular(chol, (m1 - m0).double()[:, None], upper=False)
    return (0.5 * ((x - torch.log1p(x)).sum() + (dm**2).sum())).to(s0.dtype)


def renyi_gaussians(alpha: float, m0, s0, m1, s1) -> torch.Tensor:
    """Rényi divergence ``D_alpha(N(m0,S0) || N(m1,S1))`` of order ``alpha > 0, alpha != 1`` (eq. ``ch2-renyi-gauss``).

    With ``S_a = alpha S1 + (1 - alpha) S0`` (must be positive definite, else the divergence is
    infinite and a ``ValueError`` is raised):
    ``D_alpha = alpha/2 dm^T S_a^-1 dm - 1/(2(alpha-1)) log(det S_a / (det S0^(1-alpha) det S1^alpha))``.
    """
    alpha = check_positive(alpha, "alpha")
    if alpha == 1:
        raise ValueError("alpha must differ from 1; the order-1 Rényi divergence is kl_gaussians")
    _check_pair(m0, s0, m1, s1, definite=True)
    sa = alpha * s1 + (1 - alpha) * s0
    if bool((torch.linalg.eigvalsh((sa + sa.T) / 2) <= 0).any()):
        raise ValueError(f"alpha={alpha}: alpha*S1 + (1-alpha)*S0 is not positive definite; D_alpha is infinite")
    dm = m1 - m0
    quad = dm @ torch.linalg.solve(sa, dm)
    logdet = torch.logdet(sa) - (1 - alpha) * torch.logdet(s0) - alpha * torch.logdet(s1)
    return alpha / 2 * quad - logdet / (2 * (alpha - 1))


def hellinger_gaussians(m0, s0, m1, s1) -> torch.Tensor:
    """Squared Hellinger distance ``H^2 = 1/2 int (sqrt p - sqrt q)^2 = 1 - BC``, ``BC = exp(-D_{1/2}/2)``
    (as ``-expm1(-D_{1/2}/2)``, exact for nearby laws where ``1 - exp`` cancels)."""
    return -torch.expm1(-0.5 * renyi_gaussians(0.5, m0, s0, m1, s1))


def chi2_gaussians(m0, s0, m1, s1) -> torch.Tensor:
    """``chi^2(P || Q) = int p^2/q - 1 = exp(D_2(P || Q)) - 1`` (finite only if ``2 S1 - S0`` is positive definite)."""
    return torch.expm1(renyi_gaussians(2.0, m0, s0, m1, s1))


def tv_gaussians_same_cov(m0, m1, s) -> torch.Tensor:
    """``TV(N(m0,S), N(m1,S)) = 2 Phi(delta/2) - 1 = erf(delta / (2 sqrt 2))``, ``delta`` the Mahalanobis
    distance of the means. TV is ``sup_A |P(A) - Q(A)| = 1/2 int |p - q|`` throughout the book."""
    _check_means(m0, m1)
    check_covariance(s, "s", d=m0.shape[0], definite=True)
    check_same_device(m0=m0, s=s)
    dm = m1 - m0
    delta = torch.sqrt(dm @ torch.linalg.solve(s, dm))
    return torch.erf(delta / (2 * math.sqrt(2)))


class GaussianPath:
    """An affine path ``x_t = alpha_t x1 + sigma_t x0`` between Gaussian endpoints, in closed form.

    ``x0 ~ N(0, I)``, ``x1 ~ N(m1, S1)`` and ``Cov(x1, x0) = C`` (``cross``; zero for the independent
    coupling). ``path`` is any object with ``alpha``, ``sigma``, ``d_alpha`` and ``d_sigma`` of a time
    tensor (the paths of :mod:`flowtutor.matching`). Then ``x_t`` and ``D = dx_t/dt`` are jointly Gaussian and

    ``u_t(x) = E[D | x_t = x] = alpha'_t m1 + Cov(D, x_t) Sigma_t^{-1} (x - alpha_t m1)``  (eq. ``ch4-gauss-u``),

    the marginal velocity of flow matching; ``score`` is ``grad log p_t`` and ``residual`` is
    ``E|D - u_t(x_t)|^2``, the constant of the consistency lemma (theorem ``thm-consistency``) at time ``t``.
    Times are numbers, scalar tensors or ``(n,)`` tensors (one per point), in [0, 1].
    """

    def __init__(self, path, m1: torch.Tensor, s1: torch.Tensor, cross: torch.Tensor | None = None):
        missing = [f for f in ("alpha", "sigma", "d_alpha", "d_sigma") if not callable(getattr(path, f, None))]
        if missing:
            raise TypeError(f"path must have methods alpha, sigma, d_alpha and d_sigma (a path of flowtutor.matching), "
                            f"got {type(path).__name__} without {', '.join(missing)}")
        self.d = _check_gaussian(m1, s1, "1")
        self.path, self.m1, self.s1 = path, m1, s1
        if cross is not None:
            check_square(cross, "cross", d=self.d)
            check_same_device(s1=s1, cross=cross)
        self.cross = torch.zeros_like(s1) if cross is None else cross
        self.eye = torch.eye(self.d, dtype=s1.dtype, device=s1.device)
        residual = s1 - self.cross @ self.cross.T  # Cov(x1 | x0)
        if bool((torch.linalg.eigvalsh((residual + residual.T) / 2) < -1e-10).any()):
            raise ValueError("cross is too large: S1 - C C^T must be positive semi-definite")
        self._noise = _sqrtm(residual)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` coupled endpoint pairs ``(x0, x1)``: ``x1 = m1 + C x0 + (S1 - C C^T)^{1/2} xi``."""
        check_int(n, "n")
        check_generator(generator, device=self.s1.device)
        kw = {"dtype": self.s1.dtype, "device": self.s1.device, "generator": generator}
        x0, xi = torch.randn(n, self.d, **kw), torch.randn(n, self.d, **kw)
        return x0, self.m1 + x0 @ self.cross.T + xi @ self._noise.T

    def _check_tx(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Types and shapes, then the values of ``x`` and ``t`` in one device sync (this runs inside ODE solves)."""
        check_points(x, "x", d=self.d, finite=False)
        check_same_device(x=x, m1=self.m1)
        t = check_time(t, "t", n=x.shape[0], values=False).to(x.device)
        finite_x, t_in_range = torch.stack([torch.isfinite(x).all(), ((t >= 0) & (t <= 1)).all()]).tolist()
        if not finite_x:
            raise ValueError("x contains NaN or infinite values")
        if not t_in_range:
            raise ValueError(f"t must lie in [0, 1] (and not be NaN), got {t.flatten()[:4].tolist()}")
        return t

    def _coefficients(self, t: torch.Tensor, n: int) -> list[torch.Tensor]:
        t = t.to(dtype=self.s1.dtype, device=self.s1.device).reshape(-1).expand(n)
        return [f(t)[:, None, None] for f in (self.path.alpha, self.path.sigma, self.path.d_alpha, self.path.d_sigma)]

    def _moments(self, t: torch.Tensor, n: int):
        a, s, da, ds = self._coefficients(t, n)
        c, ct, S, eye = self.cross, self.cross.T, self.s1, self.eye
        cov_x = a**2 * S + s**2 * eye + a * s * (c + ct)  # Cov(x_t)
        cov_dx = da * a * S + ds * s * eye + da * s * c + ds * a * ct  # Cov(D, x_t)
        cov_d = da**2 * S + ds**2 * eye + da * ds * (c + ct)  # Cov(D)
        return a[:, :, 0], da[:, :, 0], cov_x, cov_dx, cov_d

    def mean_cov(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(n, d)`` and covariance ``(n, d, d)`` of ``x_t`` (``n`` = number of times)."""
        t = check_time(t, "t")
        a, _, cov_x, _, _ = self._moments(t, t.numel())
        return a * self.m1, cov_x

    def velocity(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The marginal velocity ``u_t(x)`` (eq. ``ch4-gauss-u``)."""
        t = self._check_tx(t, x)
        a, da, cov_x, cov_dx, _ = self._moments(t, x.shape[0])
        centred = torch.linalg.solve(cov_x, (x - a * self.m1)[..., None])
        return da * self.m1 + (cov_dx @ centred)[..., 0]

    def score(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``grad log p_t(x) = -Sigma_t^{-1} (x - alpha_t m1)``."""
        t = self._check_tx(t, x)
        a, _, cov_x, _, _ = self._moments(t, x.shape[0])
        return -torch.linalg.solve(cov_x, (x - a * self.m1)[..., None])[..., 0]

    def residual(self, t: torch.Tensor) -> torch.Tensor:
        """``E|D - u_t(x_t)|^2 = tr(Cov(D) - Cov(D, x_t) Sigma_t^{-1} Cov(x_t, D))`` per time."""
        t = check_time(t, "t")
        _, _, cov_x, cov_dx, cov_d = self._moments(t, t.numel())
        explained = cov_dx @ torch.linalg.solve(cov_x, cov_dx.transpose(-1, -2))
        return torch.diagonal(cov_d - explained, dim1=-2, dim2=-1).sum(-1)
