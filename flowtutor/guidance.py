"""Conditional generation: class-conditional fields, classifier-free guidance, and closed forms to check them.

A conditional field ``v(t, x, y)`` is trained by flow matching on pairs ``(x1, y)``; with the label replaced by a
null label ``n_classes`` for a fraction of the pairs, the same network also learns the unconditional field, and
classifier-free guidance follows ``v_null + w (v_y - v_null)`` (Ho & Salimans 2022). For Gaussian-mixture data
every one of these fields is known in closed form (:class:`MixturePath`), which is how the book checks what
guidance does and does not sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ._checks import (
    check_callable,
    check_generator,
    check_int,
    check_interval,
    check_points,
    check_positive,
    check_real,
    check_same_device,
    check_tensor,
    check_time,
)
from .gaussian import GaussianPath
from .matching import AffinePath, LinearPath, _check_path
from .nets import MLP, TimeEmbedding
from .training import fit

__all__ = ["MixturePath", "guided_velocity", "classifier_guidance", "ConditionalVelocityMLP", "drop_labels",
           "fit_conditional_matching"]


class MixturePath:
    """Flow-matching path from ``x0 ~ N(0, I)`` to Gaussian-mixture data ``sum_k w_k N(m_k, S_k)``, independent
    coupling, in closed form.

    ``x_t`` is the mixture of the components' Gaussian paths, ``p_t = sum_k w_k N(alpha_t m_k, alpha_t^2 S_k +
    sigma_t^2 I)``, and its marginal velocity is the posterior average of the components' velocities (eq.
    ``ch4-gauss-u`` for each): ``u_t(x) = sum_k pi_k(t, x) u_t^k(x)`` with ``pi_k ∝ w_k N_k(t, x)``, since
    ``u_t(x) = E[dx_t/dt | x_t = x]`` and the component is one more latent variable (as the label is in
    eq. ``ch10-tower``). ``component(k)`` restricts to a sub-mixture (the data of one class).
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor,
                 path: AffinePath | None = None):
        check_tensor(means, "means", ndim=2)
        k, d = means.shape
        check_tensor(covariances, "covariances", ndim=3)
        if covariances.shape != (k, d, d):
            raise ValueError(f"covariances must have shape ({k}, {d}, {d}) to match means of shape ({k}, {d}), "
                             f"got {tuple(covariances.shape)}")
        check_tensor(weights, "weights", ndim=1)
        if weights.shape[0] != k or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
        check_same_device(weights=weights, means=means, covariances=covariances)
        self.path = LinearPath() if path is None else path
        _check_path(self.path)
        self.weights, self.means, self.covariances = weights / weights.sum(), means, covariances
        self.d = d
        self._parts = [GaussianPath(self.path, m, s) for m, s in zip(means, covariances)]  # checks each S_k

    def component(self, index: list[int] | torch.Tensor) -> MixturePath:
        """The sub-mixture of the components ``index`` (weights renormalised)."""
        index = self._index(index)
        return MixturePath(self.weights[index], self.means[index], self.covariances[index], self.path)

    def _index(self, index: list[int] | torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(index, dtype=torch.long, device=self.means.device).reshape(-1)
        if (index.numel() == 0 or bool(((index < 0) | (index >= len(self.weights))).any())
                or len(set(index.tolist())) != index.numel()):
            raise ValueError(f"index must hold distinct component numbers in [0, {len(self.weights)}), "
                             f"got {index.tolist()}")
        return index

    def _log_joint(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # (n, K): log w_k N_k(t, x)
        check_points(x, "x", d=self.d)
        t = check_time(t, "t", n=x.shape[0]).to(x.device)
        t = t.to(x.dtype).reshape(-1).expand(x.shape[0])
        out = []
        for w, part in zip(self.weights, self._parts):
            mean, cov = part.mean_cov(t)
            dist = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
            out.append(dist.log_prob(x) + torch.log(w))
        return torch.stack(out, dim=1)

    def log_prob(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p_t(x)``, shape ``(n,)``."""
        return torch.logsumexp(self._log_joint(t, x), dim=1)

    def posterior(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``pi_k(t, x)``, the probability of component ``k`` given ``x_t = x``, shape ``(n, K)``."""
        return torch.softmax(self._log_joint(t, x), dim=1)

    def log_class_posterior(self, t: torch.Tensor, x: torch.Tensor, index: list[int] | torch.Tensor) -> torch.Tensor:
        """``log p_t(y | x) = log sum_{k in index} pi_k(t, x)``: the log-probability that ``x_t = x`` came from the
        class ``y`` made of the components ``index`` (the exact noisy classifier of eq. ``ch10-cg``), shape ``(n,)``."""
        index = self._index(index)
        log_joint = self._log_joint(t, x)
        return torch.logsumexp(log_joint[:, index], dim=1) - torch.logsumexp(log_joint, dim=1)

    def velocity(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The marginal velocity ``sum_k pi_k u_t^k``, shape ``(n, d)``."""
        pi = self.posterior(t, x)
        return sum(pi[:, k, None] * part.velocity(t, x) for k, part in enumerate(self._parts))

    def score(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``grad log p_t(x) = sum_k pi_k grad log N_k(t, x)``, shape ``(n, d)``."""
        pi = self.posterior(t, x)
        return sum(pi[:, k, None] * part.score(t, x) for k, part in enumerate(self._parts))


def guided_velocity(v_uncond: Callable, v_cond: Callable, w: float) -> Callable[[torch.Tensor, torch.Tensor],
                                                                                  torch.Tensor]:
    """Classifier-free guidance (eq. ``ch10-cfg``): ``v(t, x) = v_uncond(t, x) + w (v_cond(t, x) - v_uncond(t, x))``.

    ``w = 0`` is the unconditional field, ``w = 1`` the conditional one (each returned as it is, so that one network
    evaluation is spent per call), ``w > 1`` extrapolates past it.
    """
    check_callable(v_uncond, "v_uncond")
    check_callable(v_cond, "v_cond")
    w = check_real(w, "w")
    if w in (0.0, 1.0):
        return v_cond if w == 1.0 else v_uncond

    def v(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        base = v_uncond(t, x)
        return base + w * (v_cond(t, x) - base)

    return v


def classifier_guidance(v: Callable, log_classifier: Callable, w: float, path: AffinePath | None = None
                        ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Classifier guidance (eq. ``ch10-cg``): ``v(t, x) + w c_t grad_x log p_t(y | x)`` with
    ``c_t = sigma_t^2 alpha_t'/alpha_t - sigma_t sigma_t'``, the factor that turns a score into a velocity on an affine
    path (chapter 4). ``log_classifier(t, x)`` returns ``log p_t(y | x)`` of shape ``(n,)`` for the wanted label;
    its gradient comes from autograd. ``path`` defaults to :class:`~flowtutor.matching.LinearPath`. Defined where
    ``alpha_t > 0`` (for the linear path, ``t > 0``).
    """
    check_callable(v, "v")
    check_callable(log_classifier, "log_classifier")
    w = check_real(w, "w")
    path = LinearPath() if path is None else path
    _check_path(path)

    def guided(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            log_p = log_classifier(t, xg)
            if not isinstance(log_p, torch.Tensor) or log_p.shape != (x.shape[0],):
                raise ValueError(f"log_classifier must return shape ({x.shape[0]},), got "
                                 f"{tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__}")
            (grad,) = torch.autograd.grad(log_p.sum(), xg)
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        alpha, sigma = path.alpha(tt), path.sigma(tt)
        c = sigma**2 * path.d_alpha(tt) / alpha - sigma * path.d_sigma(tt)
        return v(t, x) + w * c.reshape(-1, 1) * grad  # one time for all points, or one per point

    return guided


def drop_labels(y: torch.Tensor, n_classes: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label by the null label ``n_classes`` with probability ``p`` (label dropout)."""
    n_classes = check_int(n_classes, "n_classes")
    _check_labels(y, n_classes)
    p = check_interval(p, "p", 0.0, 1.0)
    check_generator(generator, device=y.device)
    drop = torch.rand(y.shape, device=y.device, generator=generator) < p
    return torch.where(drop, torch.full_like(y, n_classes), y)


def _check_labels(y: object, n_classes: int, *, allow_null: bool = False) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32) or y.ndim != 1:
        raise TypeError(f"y must be a 1-D tensor of integer labels, got {type(y).__name__}"
                        + (f" of dtype {y.dtype} and shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else ""))
    if y.is_meta:
        raise ValueError("y is on the meta device: it holds no values")
    top = n_classes + 1 if allow_null else n_classes
    if y.numel() and bool(((y < 0) | (y >= top)).any()):
        null = f" or the null label {n_classes}" if allow_null else ""
        raise ValueError(f"y must hold labels in [0, {n_classes}){null}, got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    return y


class ConditionalVelocityMLP(nn.Module):
    """``v(t, x, y)`` in ``R^d`` for labels ``y`` in ``[0, n_classes]``, where ``n_classes`` is the null label.

    The network sees ``x``, a time embedding and a learned embedding of the label. ``field(y, w)`` returns the
    guided velocity field ``v(t, x) = v(t, x, null) + w (v(t, x, y) - v(t, x, null))`` for one label or one label per
    point, ready for :class:`~flowtutor.flow.ODEFlow`.
    """

    def __init__(self, d: int, n_classes: int, hidden: int = 128, n_layers: int = 3, n_freq: int = 4,
                 embed_dim: int = 16):
        super().__init__()
        self.d, self.n_classes = check_int(d, "d"), check_int(n_classes, "n_classes")
        check_int(embed_dim, "embed_dim")
        self.time = TimeEmbedding(n_freq)
        self.label = nn.Embedding(n_classes + 1, embed_dim)
        self.net = MLP(d + self.time.dim + embed_dim, d, hidden, n_layers)

    def forward(self, t: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_points(x, "x", d=self.d, finite=False)
        _check_labels(y, self.n_classes, allow_null=True)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"y must hold one label per point ({x.shape[0]}), got {y.shape[0]}")
        emb = self.label(y.to(self.label.weight.device))
        return self.net(torch.cat([x, self.time(t, x.shape[0]).to(x), emb.to(x)], dim=1))

    def field(self, y: int | torch.Tensor, w: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The classifier-free guided field of label(s) ``y`` with weight ``w`` (:func:`guided_velocity`)."""
        w = check_real(w, "w")
        if isinstance(y, bool) or not isinstance(y, (int, torch.Tensor)):
            raise TypeError(f"y must be an int label or a 1-D tensor of labels, got {type(y).__name__}")
        if isinstance(y, int):
            _check_labels(torch.tensor([y]), self.n_classes, allow_null=True)
        else:
            _check_labels(y, self.n_classes, allow_null=True)

        def labels(x: torch.Tensor) -> torch.Tensor:
            if isinstance(y, int):
                return torch.full((x.shape[0],), y, dtype=torch.long, device=x.device)
            return y.to(x.device)

        def null(x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0],), self.n_classes, dtype=torch.long, device=x.device)

        return guided_velocity(lambda t, x: self(t, x, null(x)), lambda t, x: self(t, x, labels(x)), w)


def fit_conditional_matching(model: ConditionalVelocityMLP, sample: Callable, n_steps: int, *, p_drop: float = 0.1,
                             batch: int = 256, lr: float = 1e-3, path: AffinePath | None = None,
                             generator: torch.Generator | None = None, progress: bool = True) -> list[float]:
    """Conditional flow matching (eq. ``ch10-cfm``) with label dropout: minimise ``E |v(t, x_t, y') - dx_t/dt|^2`` over
    ``(x1, y) = sample(batch)``, ``x0 ~ N(0, I)``, ``t ~ U[0, 1]``, ``y'`` the label dropped to null with
    probability ``p_drop`` (:func:`drop_labels`); Adam with a cosine decay, through :func:`flowtutor.training.fit`.
    ``path`` defaults to :class:`~flowtutor.matching.LinearPath`. Returns the loss history.
    """
    if not isinstance(model, ConditionalVelocityMLP):
        raise TypeError(f"model must be a ConditionalVelocityMLP, got {type(model).__name__}")
    check_callable(sample, "sample")
    check_int(n_steps, "n_steps")
    p_drop = check_interval(p_drop, "p_drop", 0.0, 1.0)
    check_int(batch, "batch")
    check_positive(lr, "lr")
    path = LinearPath() if path is None else path
    _check_path(path)
    check_generator(generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)

    def loss(step: int) -> torch.Tensor:
        x1, y = sample(batch)
        if step == 0:
            check_points(x1, "x1 (from sample)", d=model.d)
            _check_labels(y, model.n_classes)
        x0 = torch.randn(x1.shape, dtype=x1.dtype, device=x1.device, generator=generator)
        t = torch.rand(x1.shape[0], dtype=x1.dtype, device=x1.device, generator=generator)
        xt, dxt = path._interpolate(x0, x1, t)
        y_in = drop_labels(y, model.n_classes, p_drop, generator)
        return ((model(t, xt, y_in) - dxt) ** 2).sum(1).mean()

    return fit(loss, optimizer, n_steps, scheduler=scheduler, progress=progress)
