"""2-D targets used across the book, as ``torch.distributions`` objects, and one real data set.

Every target takes its scale, noise, ``dtype``/``device`` and an optional seeded
``torch.Generator`` as explicit arguments (a generator must live on the target's device).
``log_prob`` is exact where a closed form exists (mixtures, rings, checkerboard), computed by
quadrature where it is a one-dimensional integral (two moons), and absent (``NotImplementedError``)
where neither holds (pinwheel, two spirals). Each docstring says how the set differs from the
same-named one in FFJORD (Grathwohl et al. 2019) or torchcfm, so reported numbers compare.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch
from torch.distributions import Categorical, Distribution, MixtureSameFamily, MultivariateNormal, constraints

from ._checks import (
    check_device,
    check_dtype,
    check_generator,
    check_int,
    check_interval,
    check_nonnegative,
    check_positive,
    check_same_device,
    check_tensor,
)

__all__ = [
    "GaussianMixture",
    "eight_gaussians",
    "small_mode_mixture",
    "narrow_mode_mixture",
    "Rings",
    "TwoMoons",
    "Checkerboard",
    "Pinwheel",
    "TwoSpirals",
    "load_digits",
    "dequantize",
]


def _n(sample_shape) -> int:
    if isinstance(sample_shape, int) or not isinstance(sample_shape, (tuple, list, torch.Size)) or not all(
            isinstance(k, Integral) and not isinstance(k, bool) for k in sample_shape):
        raise TypeError(f"sample_shape must be () or (n,) with n an int, got {sample_shape!r}")
    shape = torch.Size(sample_shape)
    if any(k < 0 for k in shape):
        raise ValueError(f"sample_shape must hold sizes >= 0, got {tuple(shape)}")
    if len(shape) > 1:
        raise ValueError(f"sample_shape must be () or (n,), got {tuple(shape)}")
    return int(shape.numel()) if len(shape) else 1


def _shape_out(sample_shape, x: torch.Tensor) -> torch.Tensor:
    return x[0] if len(torch.Size(sample_shape)) == 0 else x


def _check_x(x: torch.Tensor, d: int) -> torch.Tensor:
    """Points at which to evaluate a density: a floating tensor ``(..., d)`` without NaN (``+-inf`` is allowed)."""
    check_tensor(x, "x", finite="no-nan")
    if x.ndim == 0 or x.shape[-1] != d:
        raise ValueError(f"x must have last dimension {d}, got shape {tuple(x.shape)}")
    return x


def _check_kind(dtype, device, generator) -> torch.device:
    check_dtype(dtype)
    device = check_device(device)
    check_generator(generator, device=device)
    return device


class GaussianMixture(MixtureSameFamily):
    """Mixture of Gaussians ``sum_k w_k N(mu_k, Sigma_k)`` with exact ``log_prob``.

    ``means`` is ``(K, d)``, ``covariances`` is ``(K, d, d)``, ``weights`` is ``(K,)`` (normalised
    here). Sampling uses ``generator`` when one is given.
    """

    def __init__(self, means: torch.Tensor, covariances: torch.Tensor, weights: torch.Tensor | None = None,
                 *, generator: torch.Generator | None = None, validate_args: bool | None = None):
        check_tensor(means, "means", ndim=2)
        k, d = means.shape
        check_tensor(covariances, "covariances", ndim=3)
        if covariances.shape != (k, d, d):
            raise ValueError(f"covariances must have shape ({k}, {d}, {d}), got {tuple(covariances.shape)}")
        if weights is None:
            weights = torch.ones(k, dtype=means.dtype, device=means.device)
        check_tensor(weights, "weights", ndim=1)
        if weights.shape[0] != k or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
        check_same_device(means=means, covariances=covariances, weights=weights)
        asym = (covariances - covariances.transpose(-1, -2)).abs().amax()
        if float(asym) > 1000 * torch.finfo(covariances.dtype).eps * float(covariances.abs().amax()):
            raise ValueError(f"covariances must be symmetric, got max asymmetry {float(asym):.3g}")
        smallest = float(torch.linalg.eigvalsh(covariances).amin())
        if smallest <= 0:
            raise ValueError(f"covariances must be positive definite, got smallest eigenvalue {smallest:.3g}")
        self.generator = check_generator(generator, device=means.device)
        super().__init__(Categorical(probs=weights / weights.sum()),
                         MultivariateNormal(means, covariance_matrix=covariances),
                         validate_args=validate_args)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        n = _n(sample_shape)
        comp = self.component_distribution
        idx = torch.multinomial(self.mixture_distribution.probs, n, replacement=True, generator=self.generator)
        z = torch.randn(n, comp.event_shape[0], dtype=comp.loc.dtype, device=comp.loc.device,
                        generator=self.generator)
        x = comp.loc[idx] + (comp.scale_tril[idx] @ z.unsqueeze(-1)).squeeze(-1)
        return _shape_out(sample_shape, x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log sum_k w_k N(x; mu_k, Sigma_k)`` for ``x`` of shape ``(..., d)``."""
        return super().log_prob(_check_x(x, self.event_shape[0]))


def _isotropic(means: torch.Tensor, std: float | torch.Tensor, weights=None, generator=None) -> GaussianMixture:
    k, d = means.shape
    std = torch.as_tensor(std, dtype=means.dtype, device=means.device).expand(k)
    covs = torch.eye(d, dtype=means.dtype, device=means.device) * (std**2)[:, None, None]
    return GaussianMixture(means, covs, weights, generator=generator)


def eight_gaussians(radius: float = 4.0, std: float = 0.5, *, dtype=torch.float32, device="cpu",
                    generator: torch.Generator | None = None) -> GaussianMixture:
    """Eight equal-weight isotropic Gaussians on a circle of ``radius``.

    FFJORD's "8gaussians" uses radius 4*1.414/1.414 = 4 with std 0.5 and divides by 1.414 after
    sampling; torchcfm's ``eight_normal_sample`` uses scale 5 and unit variance. Ours is FFJORD's
    before its final division.
    """
    check_positive(radius, "radius")
    check_positive(std, "std")
    device = _check_kind(dtype, device, generator)
    angles = torch.arange(8, dtype=dtype, device=device) * (2 * math.pi / 8)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return _isotropic(means, std, generator=generator)


def small_mode_mixture(small_weight: float = 0.05, *, dtype=torch.float32, device="cpu",
                       generator: torch.Generator | None = None) -> GaussianMixture:
    """Two large modes at (+-2, 0) (std 0.5) and one small, narrow mode at (0, 2.5) (std 0.25).

    The small mode carries ``small_weight`` of the mass: a target on which methods that drop
    rare modes show it.
    """
    check_interval(small_weight, "small_weight", 0.0, 1.0, open_low=True, open_high=True)
    device = _check_kind(dtype, device, generator)
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=dtype, device=device)
    big = (1 - small_weight) / 2
    weights = torch.tensor([big, big, small_weight], dtype=dtype, device=device)
    return _isotropic(means, torch.tensor([0.5, 0.5, 0.25], dtype=dtype, device=device), weights, generator)


def narrow_mode_mixture(std: float = 0.03, radius: float = 1.0, *, dtype=torch.float32, device="cpu",
                        generator: torch.Generator | None = None) -> GaussianMixture:
    """Six narrow isotropic Gaussians (``std``) evenly spaced on a circle of ``radius``, with unequal weights
    0.35, 0.25, 0.15, 0.10, 0.10, 0.05 (counter-clockwise from ``(radius, 0)``): nearly Dirac modes, some of them
    light, on which a sampler that blurs modes into blobs or drops light ones shows it."""
    check_positive(std, "std")
    check_positive(radius, "radius")
    device = _check_kind(dtype, device, generator)
    angles = torch.arange(6, dtype=dtype, device=device) * (2 * math.pi / 6)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    weights = torch.tensor([0.35, 0.25, 0.15, 0.10, 0.10, 0.05], dtype=dtype, device=device)
    return _isotropic(means, std, weights, generator)


class _Planar(Distribution):
    """Base of the 2-D samplers: holds dtype, device and generator; validates sample shapes."""

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, *, dtype=torch.float32, device="cpu", generator: torch.Generator | None = None):
        self.device = _check_kind(dtype, device, generator)
        self.dtype, self.generator = dtype, generator
        super().__init__(event_shape=torch.Size([2]), validate_args=False)

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=self.dtype, device=self.device, generator=self.generator)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, dtype=self.dtype, device=self.device, generator=self.generator)

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        return _check_x(x, 2)


class Rings(_Planar):
    """Concentric rings: angle uniform, radius ``|R_k + noise * N(0, 1)|`` for ring k.

    Exact density: ``p(x) = sum_k w_k [phi((r - R_k)/s) + phi((r + R_k)/s)] / (s * 2 pi r)``,
    ``r = |x|``. The absolute value makes the radial law a folded normal, so the formula is exact.
    FFJORD's "rings" uses radii 1..4 (scaled by 3/4 after a fixed grid of angles) with noise 0.08
    and no exact density.
    """

    def __init__(self, radii=(1.0, 2.0, 3.0, 4.0), noise: float = 0.08, weights=None, **kw):
        super().__init__(**kw)
        self.radii = self._vector(radii, "radii")
        if self.radii.numel() == 0 or bool((self.radii <= 0).any()):
            raise ValueError(f"radii must be one or more numbers > 0, got {self.radii.tolist()}")
        self.noise = check_positive(noise, "noise")
        w = torch.ones_like(self.radii) if weights is None else self._vector(weights, "weights")
        if w.shape != self.radii.shape or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, one per radius, got {w.tolist()}")
        self.weights = w / w.sum()

    def _vector(self, values, name: str) -> torch.Tensor:
        try:
            v = torch.as_tensor(values, dtype=self.dtype, device=self.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}") from err
        return check_tensor(v, name, ndim=1)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        n = _n(sample_shape)
        k = torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        r = (self.radii[k] + self.noise * self._randn(n)).abs()
        theta = 2 * math.pi * self._rand(n)
        return _shape_out(sample_shape, torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r = self._check_x(x).norm(dim=-1, keepdim=True)
        s = self.noise
        log_phi = lambda z: -0.5 * z**2 - 0.5 * math.log(2 * math.pi)  # noqa: E731
        radial = torch.logsumexp(torch.stack([log_phi((r - self.radii) / s), log_phi((r + self.radii) / s)]), 0)
        radial = torch.logsumexp(radial + self.weights.log(), dim=-1) - math.log(s)
        return radial - torch.log(2 * math.pi * r.squeeze(-1))


class TwoMoons(_Planar):
    """Two interleaved half circles (unit radius) plus isotropic Gaussian noise ``noise``.

    Upper moon: ``(cos u, sin u)``, lower moon: ``(1 - cos u, 1/2 - sin u)``, ``u ~ U[0, pi]``,
    then centred by subtracting (1/2, 1/4) and multiplied by ``scale``. The density is the
    one-dimensional integral ``p(x) = (1/2) sum_m (1/pi) int_0^pi N(x; c_m(u), s^2 I) du``, computed by
    Gauss-Legendre quadrature with ``n_quad`` nodes (exact to float precision for the defaults;
    not a closed form). scikit-learn's ``make_moons`` uses the same arcs, uncentred, unscaled.
    """

    def __init__(self, noise: float = 0.1, scale: float = 2.0, n_quad: int = 256, **kw):
        super().__init__(**kw)
        self.noise = check_positive(noise, "noise")
        self.scale = check_positive(scale, "scale")
        self.n_quad = check_int(n_quad, "n_quad", minimum=8)

    def _arc(self, u: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        upper_pts = torch.stack([torch.cos(u), torch.sin(u)], dim=-1)
        lower_pts = torch.stack([1 - torch.cos(u), 0.5 - torch.sin(u)], dim=-1)
        pts = torch.where(lower[..., None], lower_pts, upper_pts)
        centre = torch.tensor([0.5, 0.25], dtype=self.dtype, device=self.device)
        return (pts - centre) * self.scale

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        n = _n(sample_shape)
        u = math.pi * self._rand(n)
        lower = self._rand(n) < 0.5
        x = self._arc(u, lower) + self.noise * self._randn(n, 2)
        return _shape_out(sample_shape, x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        x = self._check_x(x)
        nodes, wts = np.polynomial.legendre.leggauss(self.n_quad)
        u = torch.as_tensor((nodes + 1) * math.pi / 2, dtype=self.dtype, device=self.device)
        log_w = torch.as_tensor(np.log(wts / 2), dtype=self.dtype, device=self.device)  # mean over [0, pi]
        centres = torch.cat([self._arc(u, torch.zeros_like(u, dtype=torch.bool)),
                             self._arc(u, torch.ones_like(u, dtype=torch.bool))])  # (2Q, 2)
        s2 = self.noise**2
        sq = ((x[..., None, :] - centres) ** 2).sum(-1)
        log_n = -sq / (2 * s2) - math.log(2 * math.pi * s2)
        return torch.logsumexp(log_n + torch.cat([log_w, log_w]) + math.log(0.5), dim=-1)


class Checkerboard(_Planar):
    """Uniform on the black squares of a ``n_squares x n_squares`` board of side ``size``.

    Exact density: ``1 / (black area)`` on black squares, 0 elsewhere (``log_prob = -inf``).
    FFJORD's "checkerboard" is the 4x4 board on [-4, 4]^2 with side 2 squares, as here by default.
    """

    def __init__(self, n_squares: int = 4, size: float = 8.0, **kw):
        super().__init__(**kw)
        self.n_squares = check_int(n_squares, "n_squares", minimum=2)
        self.size = check_positive(size, "size")
        self.side = self.size / self.n_squares
        black = [(i, j) for i in range(self.n_squares) for j in range(self.n_squares) if (i + j) % 2 == 0]
        self.black = torch.tensor(black, device=self.device)
        self.area = len(black) * self.side**2

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        n = _n(sample_shape)
        k = torch.randint(0, len(self.black), (n,), device=self.device, generator=self.generator)
        corner = self.black[k].to(self.dtype) * self.side - self.size / 2
        return _shape_out(sample_shape, corner + self.side * self._rand(n, 2))

    def _cells(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.floor((x + self.size / 2) / self.side)
        inside = ((idx >= 0) & (idx < self.n_squares)).all(-1)
        return idx, inside

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        idx, inside = self._cells(self._check_x(x))
        black = inside & (idx.sum(-1) % 2 == 0)
        out = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype, device=x.device)
        return out.masked_fill(black, -math.log(self.area))


class Pinwheel(_Planar):
    """FFJORD's pinwheel: ``n_arms`` Gaussian arms twisted by an angle growing as ``rate * exp(r)``.

    Radial std ``0.3``, tangential std ``0.1``, arms at ``1`` before twisting, as in FFJORD, then
    multiplied by ``scale`` (FFJORD multiplies by 3). No closed-form density: ``log_prob`` raises.
    """

    def __init__(self, n_arms: int = 5, rate: float = 0.25, scale: float = 3.0, **kw):
        super().__init__(**kw)
        self.n_arms = check_int(n_arms, "n_arms")
        self.rate = check_nonnegative(rate, "rate")
        self.scale = check_positive(scale, "scale")

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        n = _n(sample_shape)
        arm = torch.randint(0, self.n_arms, (n,), device=self.device, generator=self.generator)
        f = self._randn(n, 2) * torch.tensor([0.3, 0.1], dtype=self.dtype, device=self.device)
        f[:, 0] = f[:, 0] + 1
        angle = arm.to(self.dtype) * (2 * math.pi / self.n_arms) + self.rate * torch.exp(f[:, 0])
        c, s = torch.cos(angle), torch.sin(angle)
        x = torch.stack([c * f[:, 0] - s * f[:, 1], s * f[:, 0] + c * f[:, 1]], dim=-1)
        return _shape_out(sample_shape, self.scale * x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Pinwheel has no closed-form density; use it as a sampler")


class TwoSpirals(_Planar):
    """Two interleaved spirals ``r = u``, angle ``u`` and ``u + pi``, ``u = sqrt(U[0,1]) * turns * 2 pi``,
    plus isotropic Gaussian noise ``noise``, scaled so the outer radius is ``radius``.

    FFJORD's "2spirals" uses ``sqrt(U) * 540 degrees`` (1.5 turns) with uniform noise of width 0.5
    and an outer radius of about 4.7; ours uses Gaussian noise. No closed-form density.
    """

    def __init__(self, turns: float = 1.5, radius: float = 4.0, noise: float = 0.1, **kw):
        super().__init__(**kw)
        self.turns = check_positive(turns, "turns")
        self.radius = check_positive(radius, "radius")
        self.noise = check_positive(noise, "noise")

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        n = _n(sample_shape)
        u = torch.sqrt(self._rand(n)) * self.turns * 2 * math.pi
        angle = u + math.pi * (self._rand(n) < 0.5).to(self.dtype)
        r = u / (self.turns * 2 * math.pi) * self.radius
        x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=-1)
        return _shape_out(sample_shape, x + self.noise * self._randn(n, 2))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("TwoSpirals has no closed-form density; use it as a sampler")


DIGIT_LEVELS = 17  # the pixels of scikit-learn's 8x8 digits take the integer values 0, ..., 16


def load_digits(split: str = "train", *, test_fraction: float = 0.25, dtype=torch.float32,
                device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 handwritten digits (1797 images, shipped inside the package: nothing is downloaded).

    Returns ``(x, y)``: ``x`` of shape ``(n, 64)`` with the raw integer pixel values 0..16 (row-major, as
    ``float``), ``y`` the labels 0..9 (``int64``). The split is fixed: a stratified ``train_test_split`` with
    ``random_state=0`` holding out ``test_fraction`` of the images (450 with the default).
    """
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    test_fraction = check_interval(test_fraction, "test_fraction", 0.0, 1.0, open_low=True, open_high=True)
    dtype, device = check_dtype(dtype), check_device(device)
    images = _sk_digits()
    parts = train_test_split(images.data, images.target, test_size=test_fraction, random_state=0,
                             stratify=images.target)
    x, y = (parts[0], parts[2]) if split == "train" else (parts[1], parts[3])
    return (torch.as_tensor(x, dtype=dtype, device=device),
            torch.as_tensor(y, dtype=torch.int64, device=device))


def dequantize(x: torch.Tensor, n_levels: int = DIGIT_LEVELS, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantisation: integer values ``x`` in ``{0, ..., n_levels - 1}`` to ``(x + u) / n_levels`` in
    ``[0, 1)``, ``u ~ U[0, 1)`` per entry. A density ``q`` of the result bounds the discrete log-likelihood (eq.
    ``ch10-dequant``), ``log P(x) >= E_u log q((x + u) / n_levels) - d log n_levels``
    (:func:`flowtutor.metrics.bits_per_dim`). Each value stays in its image's cell: ``floor(n_levels * y) == x``.
    """
    check_tensor(x, "x")
    n_levels = check_int(n_levels, "n_levels", minimum=2)
    check_generator(generator, device=x.device)
    if bool(((x < 0) | (x > n_levels - 1) | (x != torch.round(x))).any()):
        raise ValueError(f"x must hold integers in [0, {n_levels - 1}]")
    u = torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    y = (x + u) / n_levels
    # Rounding can carry (x + u) / n_levels onto the next cell's edge; step such values back one ulp at a time so
    # that floor(n_levels * y) == x holds exactly in y's dtype (about one entry in a million in float32).
    for _ in range(8):
        cell = torch.floor(n_levels * y)
        if bool((cell == x).all()):
            break
        y = torch.where(cell > x, torch.nextafter(y, torch.zeros_like(y)),
                        torch.where(cell < x, torch.nextafter(y, torch.ones_like(y)), y))
    return y
