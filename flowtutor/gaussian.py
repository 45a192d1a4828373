"""Closed forms for Gaussians: the ground truth that checks the book's numerics.

Means are ``(d,)`` tensors, covariances ``(d, d)`` symmetric positive definite. Everything runs
on the inputs' device and dtype (eigendecompositions through ``torch.linalg.eigh``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._checks import check_positive, check_same_device, check_square, check_tensor

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


def _check_gaussian(m: torch.Tensor, s: torch.Tensor, name: str) -> int:
    check_tensor(m, f"m{name}", ndim=1)
    check_square(s, f"S{name}", d=m.shape[0])
    check_same_device(**{f"m{name}": m, f"S{name}": s})
    return m.shape[0]


def _check_pair(m0, s0, m1, s1) -> None:
    d0, d1 = _check_gaussian(m0, s0, "0"), _check_gaussian(m1, s1, "1")
    if d0 != d1:
        raise ValueError(f"m0 and m1 must have the same dimension, got {d0} and {d1}")
    check_same_device(m0=m0, m1=m1)


def sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    check_square(s, "s")
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
    check_square(a, "A", d=d)
    check_tensor(b, "b", ndim=1)
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
    ``W2^2 = |m0 - m1|^2 + tr(S0 + S1 - 2 (S0^{1/2} S1 S0^{1/2})^{1/2})``."""
    _check_pair(m0, s0, m1, s1)
    r0 = sqrtm_psd(s0)
    cross = sqrtm_psd(r0 @ s1 @ r0)
    w2sq = ((m0 - m1) ** 2).sum() + torch.trace(s0 + s1 - 2 * cross)
    return w2sq.clamp_min(0).sqrt()


def brenier_map_gaussians(m0, s0, m1, s1) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The optimal map ``T(x) = m1 + A (x - m0)`` from ``N(m0,S0)`` to ``N(m1,S1)`` (theorem ``thm-w2-gauss``),
    ``A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2}`` (symmetric positive definite). Returns ``(T, A)``."""
    _check_pair(m0, s0, m1, s1)
    r0 = sqrtm_psd(s0)
    r0_inv = torch.linalg.inv(r0)
    a = r0_inv @ sqrtm_psd(r0 @ s1 @ r0) @ r0_inv
    a = (a + a.T) / 2

    def transport(x: torch.Tensor) -> torch.Tensor:
        return m1 + (x - m0) @ a.T

    return transport, a


def displacement_interpolation_gaussians(t: float, m0, s0, m1, s1) -> tuple[torch.Tensor, torch.Tensor]:
    """McCann's interpolant ``((1-t) Id + t T)_# N(m0,S0)`` (eq. ``ch2-mccann``): returns its mean and covariance."""
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
    """``KL(N(m0,S0) || N(m1,S1)) = 1/2 [tr(S1^-1 S0) + dm^T S1^-1 dm - d + log(det S1 / det S0)]``."""
    _check_pair(m0, s0, m1, s1)
    d = m0.shape[0]
    dm = m1 - m0
    s1_inv_s0 = torch.linalg.solve(s1, s0)
    maha = dm @ torch.linalg.solve(s1, dm)
    return 0.5 * (torch.trace(s1_inv_s0) + maha - d + torch.logdet(s1) - torch.logdet(s0))


def renyi_gaussians(alpha: float, m0, s0, m1, s1) -> torch.Tensor:
    """Rényi divergence ``D_alpha(N(m0,S0) || N(m1,S1))`` of order ``alpha > 0, alpha != 1`` (eq. ``ch2-renyi-gauss``).

    With ``S_a = alpha S1 + (1 - alpha) S0`` (must be positive definite, else the divergence is
    infinite and a ``ValueError`` is raised):
    ``D_alpha = alpha/2 dm^T S_a^-1 dm - 1/(2(alpha-1)) log(det S_a / (det S0^(1-alpha) det S1^alpha))``.
    """
    check_positive(alpha, "alpha")
    if alpha == 1:
        raise ValueError("alpha must differ from 1; the order-1 Rényi divergence is kl_gaussians")
    _check_pair(m0, s0, m1, s1)
    sa = alpha * s1 + (1 - alpha) * s0
    if bool((torch.linalg.eigvalsh((sa + sa.T) / 2) <= 0).any()):
        raise ValueError(f"alpha={alpha}: alpha*S1 + (1-alpha)*S0 is not positive definite; D_alpha is infinite")
    dm = m1 - m0
    quad = dm @ torch.linalg.solve(sa, dm)
    logdet = torch.logdet(sa) - (1 - alpha) * torch.logdet(s0) - alpha * torch.logdet(s1)
    return alpha / 2 * quad - logdet / (2 * (alpha - 1))


def hellinger_gaussians(m0, s0, m1, s1) -> torch.Tensor:
    """Squared Hellinger distance ``H^2 = 1/2 int (sqrt p - sqrt q)^2 = 1 - BC``, ``BC = exp(-D_{1/2}/2)``."""
    return 1 - torch.exp(-0.5 * renyi_gaussians(0.5, m0, s0, m1, s1))


def chi2_gaussians(m0, s0, m1, s1) -> torch.Tensor:
    """``chi^2(P || Q) = int p^2/q - 1 = exp(D_2(P || Q)) - 1`` (finite only if ``2 S1 - S0`` is positive definite)."""
    return torch.expm1(renyi_gaussians(2.0, m0, s0, m1, s1))


def tv_gaussians_same_cov(m0, m1, s) -> torch.Tensor:
    """``TV(N(m0,S), N(m1,S)) = 2 Phi(delta/2) - 1 = erf(delta / (2 sqrt 2))``, ``delta`` the Mahalanobis
    distance of the means. TV is ``sup_A |P(A) - Q(A)| = 1/2 int |p - q|`` throughout the book."""
    _check_pair(m0, s, m1, s)
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
    ``E|D - u_t(x_t)|^2``, the constant of the consistency lemma (eq. ``ch4-consistency``) at time ``t``.
    Times are scalar tensors or ``(n,)`` (one per point).
    """

    def __init__(self, path, m1: torch.Tensor, s1: torch.Tensor, cross: torch.Tensor | None = None):
        self.d = _check_gaussian(m1, s1, "1")
        self.path, self.m1, self.s1 = path, m1, s1
        self.cross = torch.zeros_like(s1) if cross is None else check_square(cross, "cross", d=self.d)
        self.eye = torch.eye(self.d, dtype=s1.dtype, device=s1.device)
        residual = s1 - self.cross @ self.cross.T  # Cov(x1 | x0)
        if bool((torch.linalg.eigvalsh((residual + residual.T) / 2) < -1e-10).any()):
            raise ValueError("cross is too large: S1 - C C^T must be positive semi-definite")
        self._noise = sqrtm_psd(residual)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` coupled endpoint pairs ``(x0, x1)``: ``x1 = m1 + C x0 + (S1 - C C^T)^{1/2} xi``."""
        kw = {"dtype": self.s1.dtype, "device": self.s1.device, "generator": generator}
        x0, xi = torch.randn(n, self.d, **kw), torch.randn(n, self.d, **kw)
        return x0, self.m1 + x0 @ self.cross.T + xi @ self._noise.T

    def _coefficients(self, t: torch.Tensor, n: int) -> list[torch.Tensor]:
        t = torch.as_tensor(t, dtype=self.s1.dtype, device=self.s1.device).reshape(-1).expand(n)
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
        n = torch.as_tensor(t).numel()
        a, _, cov_x, _, _ = self._moments(t, n)
        return a * self.m1, cov_x

    def velocity(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The marginal velocity ``u_t(x)`` (eq. ``ch4-gauss-u``)."""
        a, da, cov_x, cov_dx, _ = self._moments(t, x.shape[0])
        centred = torch.linalg.solve(cov_x, (x - a * self.m1)[..., None])
        return da * self.m1 + (cov_dx @ centred)[..., 0]

    def score(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``grad log p_t(x) = -Sigma_t^{-1} (x - alpha_t m1)``."""
        a, _, cov_x, _, _ = self._moments(t, x.shape[0])
        return -torch.linalg.solve(cov_x, (x - a * self.m1)[..., None])[..., 0]

    def residual(self, t: torch.Tensor) -> torch.Tensor:
        """``E|D - u_t(x_t)|^2 = tr(Cov(D) - Cov(D, x_t) Sigma_t^{-1} Cov(x_t, D))`` per time."""
        n = torch.as_tensor(t).numel()
        _, _, cov_x, cov_dx, cov_d = self._moments(t, n)
        explained = cov_dx @ torch.linalg.solve(cov_x, cov_dx.transpose(-1, -2))
        return torch.diagonal(cov_d - explained, dim1=-2, dim2=-1).sum(-1)
