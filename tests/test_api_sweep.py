"""Property-based sweep of the public API with malformed input.

Every public function, class and method is fed wrong types, wrong shapes, integer/bool dtypes, NaN/inf
values, out-of-range parameters and (where several tensors meet) tensors on another device, and must
raise a ``ValueError`` or ``TypeError`` whose message names the argument. The sweep is a table: one
:class:`Probe` per (callable, argument). To add a function, add its probes to ``PROBES``;
``test_every_public_name_is_swept`` fails for any name in a module's ``__all__`` that has none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import flowtutor as ft  # noqa: E402
from flowtutor import (  # noqa: E402
    blocks,
    cnf,
    compare,
    control,
    data,
    diffusion,
    divergence,
    energy,
    flow,
    gaussian,
    guidance,
    jko,
    kac,
    matching,
    metrics,
    nets,
    pde,
    plotting,
    ratio,
    sde,
    training,
)

F64 = torch.float64
NAN, INF = math.nan, math.inf


def T(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def SPD(d: int = 2, seed: int = 1) -> torch.Tensor:
    a = T(d, d, seed=seed)
    return a @ a.T + 0.5 * torch.eye(d, dtype=F64)


# -- strategies of bad values ------------------------------------------------------------------------------------
NOT_A_TENSOR = st.sampled_from([None, "abc", 1.5, [[0.0, 1.0], [1.0, 0.0]], object()])
NOT_A_NUMBER = st.sampled_from(["1.0", [1.0], (0.5,), True, object()]) | st.just(torch.ones(2))


def lazy(*makers: Callable[[], object]) -> st.SearchStrategy:
    """Values built fresh for each example (tensors are not shared between examples)."""
    return st.sampled_from(makers).map(lambda make: make())


def bad_tensor(shape: tuple[int, ...], *, wrong_shapes: tuple[tuple[int, ...], ...] = (), values: bool = True,
               meta: bool = True, types: bool = True) -> st.SearchStrategy:
    """Wrong types, wrong ranks/shapes, integer and bool dtypes, NaN/inf at a random place, meta tensors."""
    shapes = list(wrong_shapes) + [(*shape, 2)] + ([shape[:-1]] if shape else [])
    parts = [
        st.sampled_from(shapes).map(lambda s: torch.zeros(s, dtype=F64)),
        st.sampled_from([torch.int64, torch.int32, torch.bool]).map(lambda dt: torch.ones(shape, dtype=dt)),
    ]
    if types:
        parts.append(NOT_A_TENSOR)
    if values:
        n = max(1, math.prod(shape))

        def poisoned(args):
            i, v = args
            x = torch.ones(shape, dtype=F64)
            x.view(-1)[i % n] = v
            return x

        parts.append(st.tuples(st.integers(0, n - 1), st.sampled_from([NAN, INF, -INF])).map(poisoned))
    if meta:
        parts.append(st.just(shape).map(lambda s: torch.zeros(s, dtype=F64, device="meta")))
    return st.one_of(parts)


def bad_points(n: int = 5, d: int = 2, *, fixed_d: bool = True, **kw) -> st.SearchStrategy:
    wrong = ((0, d), (n, d + 1)) if fixed_d else ((0, d),)
    return bad_tensor((n, d), wrong_shapes=wrong, **kw)


def bad_real(*, low: float | None = None, high: float | None = None, open_low: bool = False,
             open_high: bool = False, also: tuple = (), optional: bool = False) -> st.SearchStrategy:
    """Non-numbers (``None`` too unless the argument is ``optional``), NaN, +-inf, one-element NaN tensors, and
    finite numbers outside the allowed range."""
    parts = [NOT_A_NUMBER, st.sampled_from([NAN, INF, -INF]), st.just(torch.tensor([NAN]))]
    if not optional:
        parts.append(st.none())
    if low is not None:
        parts.append(st.floats(max_value=low, exclude_max=not open_low, allow_nan=False, allow_infinity=False))
    if high is not None:
        parts.append(st.floats(min_value=high, exclude_min=not open_high, allow_nan=False, allow_infinity=False))
    if also:
        parts.append(st.sampled_from(also))
    return st.one_of(parts)


POSITIVE = bad_real(low=0.0, open_low=True)
NONNEGATIVE = bad_real(low=0.0)
UNIT = bad_real(low=0.0, high=1.0)


def bad_int(minimum: int = 1) -> st.SearchStrategy:
    return st.one_of(st.integers(max_value=minimum - 1), st.sampled_from([1.5, 2.0, None, "3", True, NAN]))


def bad_choice(choices: tuple[str, ...]) -> st.SearchStrategy:
    return st.one_of(st.text(max_size=8).filter(lambda s: s not in choices), st.sampled_from([None, 3, ["exact"]]))


BAD_CALLABLE = st.sampled_from([None, 3, "f", [1, 2]])
BAD_BOOL = st.sampled_from([None, "yes", 1, 0.0])
BAD_GENERATOR = st.sampled_from([3, "seed", torch.zeros(2)])
BAD_DTYPE = st.sampled_from([torch.int64, torch.bool, "float32", None, float])
BAD_DEVICE = st.sampled_from(["nodevice", 3, None, 1.5])
BAD_DIST = st.sampled_from([None, 3, "normal", torch.zeros(2)])


def bad_cov(d: int = 2) -> st.SearchStrategy:
    """Non-symmetric, indefinite, negative definite, NaN, non-square, wrong size, integer, not tensors."""
    return st.one_of(
        lazy(lambda: torch.tensor([[1.0, 0.9], [-0.9, 1.0]], dtype=F64),
             lambda: torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64),
             lambda: -SPD(d),
             lambda: torch.tensor([[1.0, NAN], [NAN, 1.0]], dtype=F64)),
        bad_tensor((d, d), wrong_shapes=((d, d + 1), (d + 1, d + 1))),
    )


def bad_times_sequence() -> st.SearchStrategy:
    return st.sampled_from([[0.5], [0.0, 1.0, 0.5], [0.0, 0.0], [NAN, 1.0], [0.0, INF], "ab", None, [[0.0, 1.0]]])


def bad_time_tensor(n: int | None) -> st.SearchStrategy:
    """Times of a path: outside [0, 1], NaN, wrong shapes (any length is right for ``n=None``) and types."""
    def valid(t) -> bool:
        return (isinstance(t, torch.Tensor) and t.is_floating_point() and not t.is_meta
                and (t.numel() == 1 or (t.ndim == 1 and t.numel() > 0 and (n is None or t.numel() == n)))
                and bool(((t >= 0) & (t <= 1)).all()))

    k = n or 2
    return st.one_of(bad_real(low=0.0, high=1.0), bad_tensor((k,), wrong_shapes=((k + 1,),)),
                     lazy(lambda: torch.full((k,), 1.5, dtype=F64), lambda: torch.full((k,), -0.1, dtype=F64))
                     ).filter(lambda t: not valid(t))


# -- the table --------------------------------------------------------------------------------------------------
@dataclass
class Probe:
    name: str  # "module.public_name[.method]" as listed in the module's __all__
    call: Callable[..., object]
    valid: Callable[[], dict]
    arg: str
    bad: st.SearchStrategy
    match: str | None = None  # the name the message must contain (default: arg)


PROBES: list[Probe] = []


def probes(name: str, call: Callable[..., object], valid: Callable[[], dict], **bad: st.SearchStrategy) -> None:
    for arg, strategy in bad.items():
        PROBES.append(Probe(name, call, valid, arg, strategy))


def field(t, x):
    return -x


def rk4_flow(v=field):
    return ft.ODEFlow(v, method="rk4", n_steps=4)


STD_NORMAL = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))

# package root (_runtime)
probes("flowtutor.seed_everything", ft.seed_everything, lambda: {"seed": 0}, seed=bad_int(0))
probes("flowtutor.generator_on", ft.generator_on, lambda: {"device": "cpu", "generator": torch.Generator()},
       device=BAD_DEVICE, generator=BAD_GENERATOR)

# flow
probes("flow.ODEFlow", ft.ODEFlow, lambda: {"v": field, "method": "rk4", "n_steps": 4},
       v=BAD_CALLABLE, method=bad_choice(flow.FIXED_STEP_METHODS + flow.ADAPTIVE_METHODS), n_steps=bad_int(),
       adjoint=BAD_BOOL)
probes("flow.ODEFlow", ft.ODEFlow, lambda: {"v": field, "method": "dopri5"},
       rtol=bad_real(low=0.0, open_low=True, optional=True), atol=bad_real(low=0.0, open_low=True, optional=True))
probes("flow.reverse_time", ft.reverse_time, lambda: {"u": field}, u=BAD_CALLABLE)
probes("flow.ODEFlow.trajectory", lambda **kw: rk4_flow().trajectory(**kw), lambda: {"x": T(5, 2), "times": [0.0, 1.0]},
       x=bad_points(fixed_d=False), times=bad_times_sequence())
for method in ("push", "pull"):
    probes(f"flow.ODEFlow.{method}", lambda method=method, **kw: getattr(rk4_flow(), method)(**kw),
           lambda: {"x": T(5, 2), "t0": 0.0, "t1": 1.0}, x=bad_points(fixed_d=False), t0=bad_real(), t1=bad_real())
probes("flow.ODEFlow.log_prob_trajectory", lambda **kw: rk4_flow().log_prob_trajectory(**kw),
       lambda: {"x": T(5, 2), "log_p": torch.zeros(5, dtype=F64), "times": [0.0, 1.0], "divergence": "hutchinson"},
       x=bad_points(fixed_d=False), log_p=bad_tensor((5,), wrong_shapes=((4,),)), times=bad_times_sequence(),
       divergence=bad_choice(("exact", "hutchinson")), probe=bad_choice(("rademacher", "gaussian")),
       n_probes=bad_int(), generator=BAD_GENERATOR)
probes("flow.ODEFlow.log_prob", lambda **kw: rk4_flow().log_prob(**kw),
       lambda: {"x": T(5, 2), "base": STD_NORMAL, "t0": 0.0, "t1": 1.0, "divergence": "hutchinson"},
       x=bad_points(), base=BAD_CALLABLE, t0=bad_real(), t1=bad_real(), divergence=bad_choice(("exact", "hutchinson")),
       probe=bad_choice(("rademacher", "gaussian")), n_probes=bad_int())
probes("flow.ODEFlow.log_prob_regularized", lambda **kw: rk4_flow().log_prob_regularized(**kw),
       lambda: {"x": T(5, 2), "base": STD_NORMAL, "t0": 0.0, "t1": 1.0},
       x=bad_points(), base=BAD_DIST, t0=bad_real(), t1=bad_real(), divergence=bad_choice(("exact", "hutchinson")))

# gaussian


def pair():
    return {"m0": T(2, seed=2), "s0": SPD(seed=3), "m1": T(2, seed=4), "s1": SPD(seed=5)}


BAD_PAIR = dict(m0=bad_tensor((2,), wrong_shapes=((3,),)), s0=bad_cov(), m1=bad_tensor((2,), wrong_shapes=((3,),)),
                s1=bad_cov())
probes("gaussian.sqrtm_psd", gaussian.sqrtm_psd, lambda: {"s": SPD()}, s=bad_cov().filter(lambda s: not (
    isinstance(s, torch.Tensor) and s.shape == (3, 3) and s.dtype == F64 and not s.is_meta)))
probes("gaussian.linear_flow_gaussian", gaussian.linear_flow_gaussian,
       lambda: {"a": T(2, 2), "b": T(2), "m0": T(2), "s0": SPD(), "t": 0.5},
       a=bad_tensor((2, 2), wrong_shapes=((3, 3), (2, 3))), b=bad_tensor((2,), wrong_shapes=((3,),)),
       m0=BAD_PAIR["m0"], s0=bad_cov(), t=bad_real())
probes("gaussian.ou_marginal", gaussian.ou_marginal, lambda: {"m0": T(2), "s0": SPD(), "t": 0.5},
       m0=BAD_PAIR["m0"], s0=bad_cov(), t=bad_real(low=0.0))
probes("gaussian.ou_velocity", gaussian.ou_velocity, lambda: {"m0": T(2), "s0": SPD()}, m0=BAD_PAIR["m0"], s0=bad_cov())
for fname in ("w2_gaussians", "brenier_map_gaussians", "displacement_velocity_gaussians", "kl_gaussians",
              "hellinger_gaussians", "chi2_gaussians"):
    probes(f"gaussian.{fname}", getattr(gaussian, fname), pair, **BAD_PAIR)
probes("gaussian.displacement_interpolation_gaussians", gaussian.displacement_interpolation_gaussians,
       lambda: {"t": 0.5, **pair()}, t=UNIT, **BAD_PAIR)
probes("gaussian.renyi_gaussians", gaussian.renyi_gaussians, lambda: {"alpha": 0.5, **pair()},
       alpha=bad_real(low=0.0, also=(0.0, 1.0, 1)), **BAD_PAIR)
probes("gaussian.tv_gaussians_same_cov", gaussian.tv_gaussians_same_cov,
       lambda: {"m0": T(2), "m1": T(2, seed=3), "s": SPD()}, m0=BAD_PAIR["m0"], m1=BAD_PAIR["m1"], s=bad_cov())
probes("gaussian.GaussianPath", gaussian.GaussianPath,
       lambda: {"path": matching.LinearPath(), "m1": T(2), "s1": SPD(), "cross": 0.1 * torch.eye(2, dtype=F64)},
       path=st.sampled_from([None, "linear", 3, object()]), m1=BAD_PAIR["m1"], s1=bad_cov(),
       cross=st.one_of(bad_tensor((2, 2), wrong_shapes=((3, 3),)), lazy(lambda: 10 * torch.eye(2, dtype=F64))))


def gpath():
    return gaussian.GaussianPath(matching.LinearPath(), T(2), SPD())


probes("gaussian.GaussianPath.sample", lambda **kw: gpath().sample(**kw), lambda: {"n": 4},
       n=bad_int(), generator=BAD_GENERATOR)
for method in ("mean_cov", "residual"):
    probes(f"gaussian.GaussianPath.{method}", lambda method=method, **kw: getattr(gpath(), method)(**kw),
           lambda: {"t": torch.tensor([0.2, 0.5], dtype=F64)}, t=bad_time_tensor(None))
for method in ("velocity", "score"):
    probes(f"gaussian.GaussianPath.{method}", lambda method=method, **kw: getattr(gpath(), method)(**kw),
           lambda: {"t": torch.full((5,), 0.5, dtype=F64), "x": T(5, 2)}, t=bad_time_tensor(5), x=bad_points())

# metrics
probes("metrics.Estimate.within", lambda **kw: metrics.Estimate(1.0, 0.1).within(**kw),
       lambda: {"target": 1.0, "n_sigma": 4.0, "slack": 0.0}, target=bad_real(), n_sigma=NONNEGATIVE, slack=NONNEGATIVE)
probes("metrics.mean_estimate", metrics.mean_estimate, lambda: {"values": T(5)},
       values=bad_tensor((5,), wrong_shapes=((1,), (5, 2))))
probes("metrics.kl_mc", metrics.kl_mc, lambda: {"log_p": T(5), "log_q": T(5, seed=1)},
       log_p=bad_tensor((5,), wrong_shapes=((4,),)),
       log_q=st.one_of(bad_tensor((5,), wrong_shapes=((4,),), values=False),
                       lazy(lambda: torch.full((5,), NAN, dtype=F64))))
probes("metrics.entropy_mc", metrics.entropy_mc, lambda: {"dist": STD_NORMAL, "n": 10}, dist=BAD_DIST, n=bad_int(2))
probes("metrics.nll", metrics.nll, lambda: {"log_probs": T(5)}, log_probs=bad_tensor((5,), wrong_shapes=((1,),)))


def grid_pq():
    return {"p": torch.rand(4, 4, dtype=F64) + 0.1, "q": torch.rand(4, 4, dtype=F64) + 0.1, "cell": 0.25}


BAD_GRID = dict(p=st.one_of(bad_tensor((4, 4), wrong_shapes=((4, 5),)), lazy(lambda: -torch.ones(4, 4, dtype=F64))),
                q=st.one_of(bad_tensor((4, 4), wrong_shapes=((4, 5),)), lazy(lambda: -torch.ones(4, 4, dtype=F64))),
                cell=POSITIVE)
for fname in ("kl_grid", "tv_grid", "hellinger_grid", "chi2_grid"):
    probes(f"metrics.{fname}", getattr(metrics, fname), grid_pq, **BAD_GRID)
probes("metrics.f_divergence_grid", metrics.f_divergence_grid, lambda: {**grid_pq(), "f": lambda r: (r - 1) ** 2},
       f=BAD_CALLABLE, **BAD_GRID)
probes("metrics.renyi_grid", metrics.renyi_grid, lambda: {**grid_pq(), "alpha": 0.5},
       alpha=bad_real(low=0.0, also=(1.0,)), **BAD_GRID)
probes("metrics.w2", metrics.w2, lambda: {"x": T(5, 2), "y": T(6, 2, seed=1), "method": "sinkhorn"},
       x=bad_points(), y=bad_points(6), method=bad_choice(("exact", "sinkhorn")), reg=POSITIVE)
probes("metrics.w2", metrics.w2, lambda: {"x": T(5, 2), "y": T(6, 2, seed=1)}, num_iter_max=bad_int())
probes("metrics.relative_fisher_grid", metrics.relative_fisher_grid,
       lambda: {"p": grid_pq()["p"], "q": grid_pq()["q"], "dx": 0.5, "dy": 0.5},
       p=BAD_GRID["p"], q=st.one_of(BAD_GRID["q"], lazy(lambda: torch.zeros(4, 4, dtype=F64))), dx=POSITIVE,
       dy=POSITIVE)
probes("metrics.reverse_pinsker_bound", metrics.reverse_pinsker_bound, lambda: {"tv": 0.1, "ratio_max": 3.0},
       tv=UNIT, ratio_max=bad_real(also=(0.5, -2.0)))
probes("metrics.mode_recovery", metrics.mode_recovery,
       lambda: {"x": T(5, 2), "centres": T(3, 2, seed=1), "weights": torch.ones(3, dtype=F64), "radius": 0.5},
       x=bad_points(fixed_d=False), centres=bad_points(3, 2),
       weights=st.one_of(bad_tensor((3,), wrong_shapes=((2,), (3, 1))), st.just(-torch.ones(3, dtype=F64))),
       radius=POSITIVE)
probes("metrics.auroc", metrics.auroc, lambda: {"scores_in": T(5), "scores_out": T(6, seed=1)},
       scores_in=st.one_of(bad_tensor((5,), wrong_shapes=((5, 2),)), st.just(torch.zeros(0, dtype=F64))),
       scores_out=bad_tensor((6,), wrong_shapes=((6, 2),)))
probes("metrics.mmd", metrics.mmd, lambda: {"x": T(5, 2), "y": T(6, 2, seed=1)},
       x=st.one_of(bad_points(), lazy(lambda: T(1, 2))), y=bad_points(6),
       bandwidth=bad_real(low=0.0, open_low=True, optional=True))
probes("metrics.energy_distance", metrics.energy_distance, lambda: {"x": T(5, 2), "y": T(6, 2, seed=1)},
       x=st.one_of(bad_points(), lazy(lambda: T(1, 2))), y=st.one_of(bad_points(6), lazy(lambda: T(1, 2))))
probes("metrics.w2_blocks", metrics.w2_blocks, lambda: {"x": T(6, 2), "y": T(6, 2, seed=1), "n": 3},
       x=st.one_of(bad_points(6), lazy(lambda: T(4, 2))), y=st.one_of(bad_points(6), lazy(lambda: T(9, 2))),
       n=st.one_of(bad_int(2), st.sampled_from([4, 6])))
probes("metrics.ratio_estimate", metrics.ratio_estimate,
       lambda: {"a": T(5), "b": T(5, seed=1).abs() + 1},
       a=st.one_of(bad_tensor((5,), wrong_shapes=((4,), (5, 1))), lazy(lambda: T(1))),
       b=st.one_of(bad_tensor((5,), wrong_shapes=((4,),)), lazy(lambda: -torch.ones(5, dtype=F64))))
probes("metrics.w2_ratio", metrics.w2_ratio,
       lambda: {"generated": T(6, 2), "test": T(6, 2, seed=1), "reference": T(6, 2, seed=2), "n": 3},
       generated=st.one_of(bad_points(6), lazy(lambda: T(9, 2))), test=bad_points(6),
       reference=st.one_of(bad_points(6), lazy(lambda: T(3, 2))), n=st.one_of(bad_int(2), st.just(4)))
probes("metrics.loglog_slope", metrics.loglog_slope, lambda: {"x": [1.0, 2.0, 4.0], "y": [1.0, 0.5, 0.25]},
       x=st.sampled_from([[1.0], [1.0, -2.0, 4.0], [1.0, NAN, 4.0], [1.0, INF, 4.0], ["a", "b", "c"], None, 3.0,
                          [1.0, 2.0]]),
       y=st.sampled_from([[1.0, 0.0, 0.25], [1.0, NAN, 0.25], ["a", "b", "c"], None, [[1.0, 0.5, 0.25]]]))

# data
PLANAR = {"Rings": dict(noise=POSITIVE, radii=st.sampled_from([(), (1.0, -2.0), (NAN,), "ab", None, [[1.0]]]),
                        weights=st.sampled_from([(1.0,), (-1.0, 1.0, 1.0, 1.0), (NAN, 1.0, 1.0, 1.0), (0.0,) * 4,
                                                 "w"])),
          "TwoMoons": dict(noise=POSITIVE, scale=POSITIVE, n_quad=bad_int(8)),
          "Checkerboard": dict(n_squares=bad_int(2), size=POSITIVE),
          "Pinwheel": dict(n_arms=bad_int(), rate=NONNEGATIVE, scale=POSITIVE),
          "TwoSpirals": dict(turns=POSITIVE, radius=POSITIVE, noise=POSITIVE)}
for cls, bad in PLANAR.items():
    probes(f"data.{cls}", getattr(data, cls), lambda: {"dtype": F64}, **bad)
probes("data.Rings", data.Rings, dict, dtype=BAD_DTYPE, device=BAD_DEVICE, generator=BAD_GENERATOR)
BAD_SAMPLE_SHAPE = st.sampled_from([(2, 3), (-1,), "n", None, 2.5, (2.5,)])
TARGETS = {"Rings": lambda: data.Rings(dtype=F64), "TwoMoons": lambda: data.TwoMoons(dtype=F64),
           "Checkerboard": lambda: data.Checkerboard(dtype=F64), "Pinwheel": lambda: data.Pinwheel(dtype=F64),
           "TwoSpirals": lambda: data.TwoSpirals(dtype=F64), "GaussianMixture": lambda: data.eight_gaussians(dtype=F64)}
for cls, make in TARGETS.items():
    probes(f"data.{cls}.sample", lambda make=make, **kw: make().sample(**kw), lambda: {"sample_shape": (3,)},
           sample_shape=BAD_SAMPLE_SHAPE)
    if cls not in ("Pinwheel", "TwoSpirals"):
        probes(f"data.{cls}.log_prob", lambda make=make, **kw: make().log_prob(**kw), lambda: {"x": T(5, 2)},
               x=st.one_of(NOT_A_TENSOR, lazy(lambda: torch.zeros(5, 3, dtype=F64),
                                              lambda: torch.ones(5, 2, dtype=torch.int64),
                                              lambda: torch.full((5, 2), NAN, dtype=F64))))
probes("data.GaussianMixture", data.GaussianMixture,
       lambda: {"means": T(3, 2), "covariances": torch.eye(2, dtype=F64).expand(3, 2, 2).clone(),
                "weights": torch.ones(3, dtype=F64)},
       means=bad_tensor((3, 2), wrong_shapes=((3,),)),
       covariances=st.one_of(bad_tensor((3, 2, 2), wrong_shapes=((2, 2, 2),)),
                             lazy(lambda: -torch.eye(2, dtype=F64).expand(3, 2, 2).clone(),
                                  lambda: torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64).expand(3, 2, 2).clone())),
       weights=st.one_of(bad_tensor((3,), wrong_shapes=((2,),)), lazy(lambda: -torch.ones(3, dtype=F64),
                                                                       lambda: torch.zeros(3, dtype=F64))),
       generator=BAD_GENERATOR)
probes("data.eight_gaussians", data.eight_gaussians, dict, radius=POSITIVE, std=POSITIVE, dtype=BAD_DTYPE,
       device=BAD_DEVICE, generator=BAD_GENERATOR)
probes("data.narrow_mode_mixture", data.narrow_mode_mixture, dict, std=POSITIVE, radius=POSITIVE,
       generator=BAD_GENERATOR)
probes("data.small_mode_mixture", data.small_mode_mixture, dict,
       small_weight=bad_real(low=0.0, high=1.0, open_low=True, open_high=True), dtype=BAD_DTYPE, device=BAD_DEVICE)

# diffusion
SDE = diffusion.VPSDE()
probes("diffusion.VPSDE", diffusion.VPSDE, dict, beta_min=POSITIVE, beta_max=POSITIVE)
probes("diffusion.VPSDE", diffusion.VPSDE, lambda: {"beta_min": 5.0, "beta_max": 10.0},
       beta_max=st.floats(0.01, 4.99))
probes("diffusion.dsm_loss", diffusion.dsm_loss, lambda: {"score": field, "x": T(5, 2), "sde": SDE},
       score=BAD_CALLABLE, x=bad_points(fixed_d=False), sde=st.sampled_from([None, "vp", matching.VPPath()]),
       s_min=bad_real(low=0.0, high=1.0, open_low=True, open_high=True), time_power=POSITIVE,
       generator=BAD_GENERATOR)
probes("diffusion.fit_score", diffusion.fit_score,
       lambda: {"score": nets.VelocityMLP(2, hidden=4, n_layers=1), "sample": data.eight_gaussians().sample,
                "sde": SDE, "n_steps": 1, "batch": 4, "progress": False},
       score=st.sampled_from([None, field, 3]), sample=BAD_CALLABLE, sde=st.sampled_from([None, "vp"]),
       n_steps=bad_int(), batch=bad_int(), lr=POSITIVE,
       s_min=bad_real(low=0.0, high=1.0, open_low=True, open_high=True), time_power=POSITIVE)
for fname in ("probability_flow_velocity", "reverse_sde_drift"):
    probes(f"diffusion.{fname}", getattr(diffusion, fname), lambda: {"score": field, "sde": SDE},
           score=BAD_CALLABLE, sde=st.sampled_from([None, "vp", 3]))

# divergence


def fx_x():
    x = T(5, 2).requires_grad_(True)
    return {"fx": x**2, "x": x}


# fx and x are not value-checked: the divergences run inside ODE solves, where ODEFlow reports non-finite values.
BAD_FX = dict(fx=bad_points(values=False, meta=False), x=st.one_of(bad_points(values=False, meta=False),
                                                                     lazy(lambda: T(5, 2))))  # x without grad
probes("divergence.divergence_exact", divergence.divergence_exact, fx_x, create_graph=BAD_BOOL, frobenius=BAD_BOOL,
       **BAD_FX)
probes("divergence.jacobian", divergence.jacobian, fx_x, create_graph=BAD_BOOL, **BAD_FX)
probes("divergence.divergence_hutchinson", divergence.divergence_hutchinson,
       lambda: {**fx_x(), "probes": torch.ones(3, 5, 2, dtype=F64)},
       probes=bad_tensor((3, 5, 2), wrong_shapes=((3, 4, 2), (5, 3)), values=False, meta=False), **BAD_FX)
probes("divergence.sample_probes", divergence.sample_probes, lambda: {"shape": (3, 2)},
       shape=st.sampled_from([None, "3", 3.5, (3, -1), (2.0, 2), [[3]]]), kind=bad_choice(("rademacher", "gaussian")),
       dtype=BAD_DTYPE, device=BAD_DEVICE, generator=BAD_GENERATOR)

# nets
probes("nets.MLP", nets.MLP, lambda: {"d_in": 2, "d_out": 2}, d_in=bad_int(), d_out=bad_int(), hidden=bad_int(),
       n_layers=bad_int(), activation=bad_choice(("silu", "tanh", "softplus", "relu", "elu")))
probes("nets.TimeEmbedding", nets.TimeEmbedding, dict, n_freq=bad_int(0))
probes("nets.VelocityMLP", nets.VelocityMLP, lambda: {"d": 2}, d=bad_int(), hidden=bad_int(), n_freq=bad_int(0),
       activation=bad_choice(("silu", "tanh")), fourier=bad_int(0), fourier_scale=POSITIVE, generator=BAD_GENERATOR)
probes("nets.VelocityMLP.forward", lambda **kw: nets.VelocityMLP(2, hidden=4, fourier=3).double()(**kw),
       lambda: {"t": torch.tensor(0.5, dtype=F64), "x": T(5, 2)},
       x=bad_points(values=False, meta=False), t=st.sampled_from([None, "t", torch.zeros(3, dtype=F64)]))

# pde
G1 = pde.Grid1D(-2.0, 2.0, 16)
probes("pde.Grid1D", pde.Grid1D, lambda: {"a": -1.0, "b": 1.0, "n": 8}, a=bad_real(also=(2.0,)),
       b=bad_real(low=-1.0, open_low=True),
       n=bad_int(4), dtype=BAD_DTYPE, device=BAD_DEVICE)
probes("pde.Grid2D", pde.Grid2D, lambda: {"x": G1, "y": G1}, x=st.sampled_from([None, 3, "g"]),
       y=st.sampled_from([None, (1, 2)]))
probes("pde.Grid2D.square", pde.Grid2D.square, lambda: {"a": -1.0, "b": 1.0, "n": 8}, a=bad_real(also=(2.0,)),
       n=bad_int(4))


def rho1d():
    return {"rho0": torch.exp(-G1.centers**2), "grid": G1, "v": lambda t, x: torch.ones_like(x), "times": [0.0, 0.1]}


BAD_RHO1 = st.one_of(bad_tensor((16,), wrong_shapes=((15,),)), lazy(lambda: -torch.ones(16, dtype=F64)))
probes("pde.continuity_1d", pde.continuity_1d, rho1d, rho0=BAD_RHO1, grid=st.sampled_from([None, "grid", 3]),
       v=BAD_CALLABLE, times=bad_times_sequence(), scheme=bad_choice(("upwind", "muscl")), cfl=POSITIVE)
G2 = pde.Grid2D.square(-2.0, 2.0, 8)
probes("pde.continuity_2d", pde.continuity_2d,
       lambda: {"rho0": torch.ones(8, 8, dtype=F64), "grid": G2, "v": lambda t, x: torch.ones_like(x),
                "times": [0.0, 0.1]},
       rho0=st.one_of(bad_tensor((8, 8), wrong_shapes=((8, 7),)), lazy(lambda: -torch.ones(8, 8, dtype=F64))),
       grid=st.sampled_from([None, G1]), v=BAD_CALLABLE, times=bad_times_sequence(),
       scheme=bad_choice(("upwind", "muscl")), cfl=POSITIVE)
probes("pde.damped_wave_1d", pde.damped_wave_1d,
       lambda: {"rho0": torch.exp(-G1.centers**2), "grid": G1, "a": 1.0, "c": 1.0, "t_end": 0.5},
       rho0=BAD_RHO1, grid=st.sampled_from([None, G2]), a=POSITIVE, c=POSITIVE, t_end=POSITIVE,
       cfl=st.one_of(POSITIVE, st.just(1.5)))
probes("pde.fokker_planck_1d", pde.fokker_planck_1d,
       lambda: {"rho0": torch.exp(-G1.centers**2), "grid": G1, "grad_potential": lambda x: x, "diffusion": 1.0,
                "times": [0.0, 0.1]},
       rho0=BAD_RHO1, grid=st.sampled_from([None, G2]), grad_potential=BAD_CALLABLE, diffusion=NONNEGATIVE,
       times=bad_times_sequence(), cfl=POSITIVE)
probes("pde.fokker_planck_2d", pde.fokker_planck_2d,
       lambda: {"rho0": torch.ones(8, 8, dtype=F64), "grid": G2, "grad_potential": lambda x: x, "diffusion": 1.0,
                "times": [0.0, 0.01]},
       rho0=st.one_of(bad_tensor((8, 8), wrong_shapes=((8, 7),)), lazy(lambda: -torch.ones(8, 8, dtype=F64))),
       grid=st.sampled_from([None, G1]), grad_potential=st.one_of(BAD_CALLABLE, st.just(lambda x: x * math.nan)),
       diffusion=NONNEGATIVE, times=bad_times_sequence(), cfl=POSITIVE)

# plotting
probes("plotting.panels", plotting.panels, lambda: {"n": 3}, n=bad_int(), ncols=bad_int(),
       row_height=POSITIVE, width=POSITIVE)
probes("plotting.plot_density", plotting.plot_density, lambda: {"values": torch.ones(8, 8), "grid": G2},
       values=st.one_of(NOT_A_TENSOR, lazy(lambda: torch.ones(8, 7), lambda: torch.ones(64))),
       grid=st.sampled_from([None, G1, "grid"]))
probes("plotting.plot_samples", plotting.plot_samples, lambda: {"x": T(5, 2)},
       x=st.one_of(NOT_A_TENSOR, lazy(lambda: T(5, 3), lambda: T(5))))
probes("plotting.plot_trajectories", plotting.plot_trajectories, lambda: {"traj": T(3, 5, 2)},
       traj=st.one_of(NOT_A_TENSOR, lazy(lambda: T(5, 2), lambda: T(3, 5, 3))), n_show=bad_int())
probes("plotting.plot_convergence", plotting.plot_convergence, lambda: {"h": [1.0, 0.5], "errors": [1.0, 0.25]},
       h=st.sampled_from([[1.0], [1.0, -0.5], None, "h", [1.0, NAN]]),
       errors=st.sampled_from([[1.0], [1.0, 0.0], None]),
       reference=st.sampled_from(["2", NAN, [2.0]]))
probes("plotting.animation_html", plotting.animation_html,
       lambda: {"anim": plotting.animate_flow(T(2, 3, 2), [0.0, 1.0])}, anim=st.sampled_from([None, "anim", 3]))
probes("plotting.animate_flow", plotting.animate_flow, lambda: {"traj": T(3, 5, 2), "times": [0.0, 0.5, 1.0]},
       traj=st.one_of(NOT_A_TENSOR, lazy(lambda: T(5, 2), lambda: T(3, 5, 3))),
       times=st.sampled_from([[0.0, 1.0], None, "t", [0.0, NAN, 1.0]]),
       densities=st.one_of(NOT_A_TENSOR.filter(lambda v: v is not None),
                           lazy(lambda: torch.ones(3, 8, 8), lambda: torch.ones(2, 8, 8))),
       interval=bad_int(), n_show=bad_int())
probes("plotting.animate_flow", plotting.animate_flow,
       lambda: {"traj": T(3, 5, 2), "times": [0.0, 0.5, 1.0], "densities": torch.ones(3, 8, 8), "grid": G2},
       densities=lazy(lambda: torch.ones(2, 8, 8), lambda: torch.ones(3, 8, 7)), grid=st.sampled_from([None, G1, "g"]))

# sde
probes("sde.euler_maruyama", sde.euler_maruyama,
       lambda: {"drift": field, "x0": T(5, 2), "sigma": 0.5, "t0": 0.0, "t1": 1.0, "n_steps": 4},
       drift=BAD_CALLABLE, x0=bad_points(fixed_d=False), sigma=st.one_of(NONNEGATIVE, st.just(lambda t: -1.0)),
       t0=bad_real(also=(1.0, 2.0)), t1=bad_real(low=0.0, open_low=True), n_steps=bad_int(), generator=BAD_GENERATOR)

# control


def neuron():
    return control.ReLUNeuron(torch.tensor([1.0, 0.5], dtype=F64), torch.tensor([1.0, 0.0], dtype=F64), 0.2)


BAD_W = bad_tensor((2,), wrong_shapes=((3,),))
probes("control.ReLUNeuron", control.ReLUNeuron,
       lambda: {"w": torch.tensor([1.0, 0.5], dtype=F64), "a": torch.tensor([1.0, 0.0], dtype=F64), "b": 0.2},
       w=BAD_W, a=BAD_W, b=bad_real())
for method in ("flow_map", "inverse_map"):
    probes(f"control.ReLUNeuron.{method}", lambda method=method, **kw: getattr(neuron(), method)(**kw),
           lambda: {"x": T(5, 2), "t": 0.5}, x=bad_points(), t=bad_real())
probes("control.ReLUNeuron.log_density", lambda **kw: neuron().log_density(**kw),
       lambda: {"base_log_prob": STD_NORMAL.log_prob, "x": T(5, 2), "t": 0.5},
       base_log_prob=BAD_CALLABLE, x=bad_points(), t=bad_real())
for method in ("divergence", "activation"):
    probes(f"control.ReLUNeuron.{method}", lambda method=method, **kw: getattr(neuron(), method)(**kw),
           lambda: {"x": T(5, 2)}, x=bad_points())

SEQ_NEURONS = [control.ReLUNeuron(torch.ones(1, dtype=F64), torch.ones(1, dtype=F64), 0.0)]
probes("control.ControlSequence", control.ControlSequence, lambda: {"neurons": SEQ_NEURONS, "durations": [0.5]},
       neurons=st.sampled_from([[], [3], None]), durations=st.sampled_from([[], [-1.0], [0.5, 0.5], [math.nan], "a"]))


def sequence():
    return control.ControlSequence([neuron(), neuron()], [0.3, 0.2])


for method in ("flow_map", "inverse_map"):
    probes(f"control.ControlSequence.{method}", lambda method=method, **kw: getattr(sequence(), method)(**kw),
           lambda: {"x": T(5, 2)}, x=bad_points())
probes("control.ControlSequence.log_density", lambda **kw: sequence().log_density(**kw),
       lambda: {"base_log_prob": STD_NORMAL.log_prob, "x": T(5, 2)}, base_log_prob=BAD_CALLABLE, x=bad_points())
QUANTILES = lambda: torch.tensor([-1.0, 0.0, 1.0], dtype=F64)  # noqa: E731
probes("control.tv_control_1d", control.tv_control_1d,
       lambda: {"base_quantiles": QUANTILES(), "target_quantiles": 2 * QUANTILES()},
       base_quantiles=st.one_of(bad_tensor((3,), wrong_shapes=((2,), (3, 1))),
                                lazy(lambda: torch.tensor([0.0, 0.0, 1.0], dtype=F64))),
       target_quantiles=st.one_of(bad_tensor((3,), wrong_shapes=((4,),)),
                                  lazy(lambda: torch.tensor([1.0, 0.0, 2.0], dtype=F64))),
       duration=POSITIVE)
LINE = torch.linspace(-6.0, 6.0, 241, dtype=F64)
probes("control.quantiles_from_density", control.quantiles_from_density,
       lambda: {"density": torch.exp(-LINE**2), "points": LINE, "levels": torch.tensor([0.1, 0.5], dtype=F64)},
       density=st.one_of(bad_tensor((241,), wrong_shapes=((240,),)), lazy(lambda: torch.zeros(241, dtype=F64))),
       points=st.one_of(bad_tensor((241,), wrong_shapes=((241, 1),)), lazy(lambda: LINE.flip(0))),
       levels=st.one_of(bad_tensor((2,), wrong_shapes=((2, 1),)), lazy(lambda: torch.tensor([0.5, 1.5], dtype=F64))))
probes("control.tv_control_to_eps", control.tv_control_to_eps,
       lambda: {"base": torch.distributions.Normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64)),
                "target_density": torch.exp(-LINE**2), "points": LINE, "eps": 0.5},
       base=BAD_DIST, target_density=st.one_of(bad_tensor((241,), wrong_shapes=((240,),)),
                                               lazy(lambda: -torch.ones(241, dtype=F64))),
       points=st.one_of(bad_tensor((241,), wrong_shapes=((241, 1),)), lazy(lambda: LINE.flip(0))),
       eps=bad_real(low=0.0, high=2.0), tail_mass=bad_real(low=0.0, high=1.0, optional=True),
       duration=POSITIVE, max_blocks=bad_int(2))
probes("control.tail_control_1d", control.tail_control_1d,
       lambda: {"left": -2.0, "right": 2.0, "left_factor": 1.5, "right_factor": 0.5},
       left=bad_real(also=(3.0,)), right=bad_real(), left_factor=POSITIVE, right_factor=POSITIVE, duration=POSITIVE,
       dtype=BAD_DTYPE, device=BAD_DEVICE)

for method in ("flow_map",):
    probes(f"control.XLogXField.{method}", lambda method=method, **kw: getattr(control.XLogXField(), method)(**kw),
           lambda: {"x": T(5, 1), "t": 0.5}, x=bad_points(d=1), t=bad_real())
probes("control.XLogXField.log_density", lambda **kw: control.XLogXField().log_density(**kw),
       lambda: {"base_log_prob": lambda y: -y[:, 0] ** 2, "x": T(5, 1), "t": 0.5}, base_log_prob=BAD_CALLABLE,
       x=bad_points(d=1), t=bad_real())

# matching


def endpoints(n: int = 5):
    return {"x0": T(n, 2), "x1": T(n, 2, seed=1)}


BAD_ENDS = dict(x0=bad_points(), x1=bad_points())
probes("matching.AffinePath.sample", lambda **kw: matching.LinearPath().sample(**kw),
       lambda: {**endpoints(), "t": torch.full((5,), 0.5, dtype=F64)},
       t=bad_time_tensor(5),
       **BAD_ENDS)
probes("matching.LinearPath.sample", lambda **kw: matching.LinearPath().sample(**kw),
       lambda: {**endpoints(), "t": torch.full((5,), 0.5, dtype=F64)}, x1=lazy(lambda: T(4, 2)))
probes("matching.CondOTPath", matching.CondOTPath, dict, sigma_min=bad_real(low=0.0, high=1.0, open_high=True))
probes("matching.VPPath", matching.VPPath, dict, beta_min=POSITIVE, beta_max=POSITIVE)
probes("matching.VPPath", matching.VPPath, lambda: {"beta_min": 5.0, "beta_max": 10.0}, beta_max=st.floats(0.01, 4.99))
probes("matching.cfm_loss", matching.cfm_loss, lambda: {"v": field, **endpoints(), "path": matching.LinearPath()},
       v=BAD_CALLABLE, path=st.sampled_from([None, "linear", 3]),
       t=bad_time_tensor(5).filter(lambda t: t is not None), t_max=bad_real(low=0.0, high=1.0, open_low=True),
       generator=BAD_GENERATOR, **BAD_ENDS)
probes("matching.couple", matching.couple, lambda: {**endpoints(), "method": "sinkhorn"},
       method=bad_choice(("independent", "ot", "sinkhorn")), reg=POSITIVE, tol=POSITIVE,
       cost_scale=bad_choice(("mean", "max")), generator=BAD_GENERATOR,
       x0=bad_points(), x1=st.one_of(bad_points(), lazy(lambda: T(4, 2))))
probes("matching.reflow_pairs", matching.reflow_pairs, lambda: {"v": field, "x0": T(5, 2)},
       v=BAD_CALLABLE, x0=bad_points(fixed_d=False))
probes("matching.straightness", matching.straightness,
       lambda: {"trajectory": T(3, 5, 2), "times": torch.tensor([0.0, 0.5, 1.0], dtype=F64)},
       trajectory=bad_tensor((3, 5, 2), wrong_shapes=((4, 5, 2),)),
       times=st.one_of(bad_tensor((3,), wrong_shapes=((4,),)), lazy(lambda: torch.tensor([0.0, 0.0, 1.0], dtype=F64))))
probes("matching.resample_pairs", matching.resample_pairs, lambda: {**endpoints()},
       x0=bad_points(), x1=st.one_of(bad_points(), lazy(lambda: T(4, 2))), generator=BAD_GENERATOR)
probes("matching.fit_matching", matching.fit_matching,
       lambda: {"v": nets.VelocityMLP(2, hidden=4, n_layers=1), "n_steps": 1, "batch": 4, "progress": False,
                "sample_pairs": lambda s: (torch.randn(*s, 2), torch.randn(*s, 2))},
       v=st.sampled_from([None, field, 3]), sample_pairs=BAD_CALLABLE, n_steps=bad_int(),
       path=st.sampled_from(["linear", 3]), coupling=bad_choice(("independent", "ot", "sinkhorn")), batch=bad_int(),
       lr=POSITIVE, t_max=bad_real(low=0.0, high=1.0, open_low=True), generator=BAD_GENERATOR,
       coupling_options=st.sampled_from([3, "fast", [("tol", 1e-4)], {"reg": -1.0}, {"tol": 0.0}, {"cost_scale": "min"},
                                         {"speed": 2}]))

# cnf
probes("cnf.CNF", cnf.CNF, lambda: {"d": 2}, d=bad_int(), hidden=bad_int(), n_layers=bad_int(), n_freq=bad_int(0),
       scale=POSITIVE, activation=bad_choice(("silu", "tanh")))


def small_cnf():
    return cnf.CNF(2, hidden=4, n_layers=1).double()


FAST = {"method": "euler", "n_steps": 2}
BAD_SOLVER = st.sampled_from(["rk4", 3, ["rk4"]])
probes("cnf.CNF.log_prob", lambda **kw: small_cnf().log_prob(**kw), lambda: {"x": T(5, 2), "solver": FAST},
       x=bad_points(), solver=BAD_SOLVER)
probes("cnf.CNF.sample", lambda **kw: small_cnf().sample(**kw), lambda: {"n": 3, "solver": FAST},
       n=bad_int(), solver=BAD_SOLVER, generator=BAD_GENERATOR)
probes("cnf.CNF.loss", lambda **kw: small_cnf().loss(**kw), lambda: {"x": T(5, 2), "solver": FAST},
       x=bad_points(), kinetic=NONNEGATIVE, frobenius=NONNEGATIVE, solver=BAD_SOLVER)
probes("cnf.fit_cnf", cnf.fit_cnf,
       lambda: {"model": cnf.CNF(2, hidden=4, n_layers=1), "sample": data.eight_gaussians().sample, "n_steps": 1,
                "batch": 4, "progress": False, "solver": FAST},
       model=st.sampled_from([None, field, nets.VelocityMLP(2, hidden=4)]), sample=BAD_CALLABLE, n_steps=bad_int(),
       batch=bad_int(), lr=POSITIVE)

# blocks, jko, compare (chapter 5)
BAD_GAMMAS = st.sampled_from([None, 1.0, "0.5", [], [1.0, 0.0], [0.5, -1.0], [math.nan], [math.inf], [True]])
probes("blocks.BlockFlow", blocks.BlockFlow, lambda: {"d": 2, "gammas": [0.5, 1.0]}, d=bad_int(), gammas=BAD_GAMMAS,
       hidden=bad_int(), n_layers=bad_int(), n_freq=bad_int(0), scale=POSITIVE,
       activation=bad_choice(("silu", "tanh")),
       blocks=st.sampled_from([3, "net", [nets.VelocityMLP(2, hidden=4)], [field, field],
                               [nets.VelocityMLP(3, hidden=4), nets.VelocityMLP(3, hidden=4)]]))


def small_blocks():
    return blocks.BlockFlow(2, [0.5, 1.0], hidden=4, n_layers=1).double()


BAD_INDEX = st.one_of(bad_int(0), st.just(3))
BAD_STOP = st.one_of(st.integers(max_value=-1), st.sampled_from([1.5, "3", True, math.nan, 3]))  # None: all blocks
probes("blocks.BlockFlow.encode", lambda **kw: small_blocks().encode(**kw), lambda: {"x": T(5, 2), "solver": FAST},
       x=bad_points(), solver=BAD_SOLVER, start=BAD_INDEX, stop=BAD_STOP, trajectory=BAD_BOOL)
probes("blocks.BlockFlow.decode", lambda **kw: small_blocks().decode(**kw), lambda: {"z": T(5, 2), "solver": FAST},
       z=bad_points(), solver=BAD_SOLVER, start=BAD_INDEX, stop=BAD_STOP)
probes("blocks.BlockFlow.log_prob", lambda **kw: small_blocks().log_prob(**kw), lambda: {"x": T(5, 2), "solver": FAST},
       x=bad_points(), solver=BAD_SOLVER, divergence=bad_choice(("exact", "hutchinson")))
probes("blocks.BlockFlow.log_prob_forward", lambda **kw: small_blocks().log_prob_forward(**kw),
       lambda: {"z": T(5, 2), "log_p0": STD_NORMAL.log_prob, "solver": FAST},
       z=bad_points(), log_p0=BAD_CALLABLE, solver=BAD_SOLVER, start=BAD_INDEX, stop=BAD_STOP)
probes("blocks.BlockFlow.sample", lambda **kw: small_blocks().sample(**kw), lambda: {"n": 3, "solver": FAST},
       n=bad_int(), solver=BAD_SOLVER, generator=BAD_GENERATOR)
probes("jko.gaussian_jko_step", jko.gaussian_jko_step, lambda: {"m": T(2), "s": SPD(), "gamma": 0.5},
       m=bad_tensor((2,), wrong_shapes=((3,),)), s=bad_cov(), gamma=POSITIVE)
probes("jko.gaussian_jko_iterates", jko.gaussian_jko_iterates, lambda: {"m0": T(2), "s0": SPD(), "gammas": [0.5, 1.0]},
       m0=bad_tensor((2,), wrong_shapes=((3,),)), s0=bad_cov(), gammas=BAD_GAMMAS)


def gauss_step_args():
    return {"m0": T(2), "s0": SPD(), "m1": T(2, seed=3), "s1": SPD(seed=4), "gamma": 0.5}


for fn in (jko.jko_objective_gaussians, jko.jko_residual_gaussians):
    probes(f"jko.{fn.__name__}", fn, gauss_step_args, **BAD_PAIR, gamma=POSITIVE)
probes("jko.jko_loss", jko.jko_loss, lambda: {"u": field, "x": T(5, 2), "gamma": 0.5, "solver": FAST},
       u=BAD_CALLABLE, x=bad_points(fixed_d=False), gamma=POSITIVE, penalty=bad_choice(("kinetic", "displacement")),
       solver=BAD_SOLVER, divergence=bad_choice(("exact", "hutchinson")))
probes("jko.ou_step", jko.ou_step, lambda: {"x": T(5, 2), "gamma": 0.5}, x=bad_points(fixed_d=False), gamma=POSITIVE,
       generator=BAD_GENERATOR)


def fit_blocks_args():
    return {"flow": blocks.BlockFlow(2, [0.5], hidden=4, n_layers=1), "sample": data.eight_gaussians().sample,
            "n_steps": 1, "batch": 4, "pool": 16, "n_report": 8, "progress": False}


probes("jko.fit_jko", jko.fit_jko, lambda: {**fit_blocks_args(), "solver": FAST},
       flow=st.sampled_from([None, field, nets.VelocityMLP(2, hidden=4)]), sample=BAD_CALLABLE, n_steps=bad_int(),
       batch=bad_int(), pool=bad_int(), lr=POSITIVE, start=st.one_of(bad_int(0), st.just(1)),
       penalty=bad_choice(("kinetic", "displacement")), solver=BAD_SOLVER, generator=BAD_GENERATOR,
       n_report=bad_int())
probes("jko.fit_local_matching", jko.fit_local_matching, fit_blocks_args,
       flow=st.sampled_from([None, field, nets.VelocityMLP(2, hidden=4)]), sample=BAD_CALLABLE, n_steps=bad_int(),
       batch=bad_int(), pool=bad_int(), lr=POSITIVE, start=st.one_of(bad_int(0), st.just(1)),
       generator=BAD_GENERATOR, n_report=bad_int())
probes("compare.evaluate_generator", compare.evaluate_generator,
       lambda: {"target": data.eight_gaussians(), "log_prob": STD_NORMAL.log_prob,
                "sample": lambda n: torch.randn(n, 2), "nfe": lambda: 0, "n_test": 10, "n_w2": 10},
       target=st.sampled_from([None, "ring", field]), log_prob=BAD_CALLABLE, sample=BAD_CALLABLE, nfe=BAD_CALLABLE,
       n_test=bad_int(), n_w2=bad_int(2), w2_blocks=bad_int(2))
probes("compare.compare_flows", compare.compare_flows,
       lambda: {"target": data.eight_gaussians(), "n_steps": 1, "methods": ["global FM"], "hidden": 4, "n_layers": 1,
                "n_test": 10, "n_w2": 10, "progress": False},
       target=st.sampled_from([None, "ring", field]), n_steps=bad_int(),
       methods=st.sampled_from(["CNF", ["VAE"], [3]]), steps=st.sampled_from([3, {"VAE": 2}, {"CNF": 0}]),
       lrs=st.sampled_from([3, {"CNF": -1.0}, {"VAE": 1e-3}]), scale=POSITIVE, n_test=bad_int(), n_w2=bad_int(2),
       w2_blocks=bad_int(2), device=st.sampled_from(["nodevice", 3, 1.5]))

# energy (chapter 6)
def quad_energy(x):
    return (x**2).sum(1) / 2


BAD_ENERGY = st.sampled_from([None, 3, "U", [1, 2]])
probes("energy.EnergyMLP", energy.EnergyMLP, lambda: {"d": 2}, d=bad_int(), hidden=bad_int(), n_layers=bad_int(),
       activation=bad_choice(("softplus", "silu")), scale=POSITIVE)
for fn in (energy.energy_grad, energy.energy_laplacian):
    probes(f"energy.{fn.__name__}", fn, lambda: {"energy": quad_energy, "x": T(5, 2)}, energy=BAD_ENERGY,
           x=bad_points(fixed_d=False), create_graph=BAD_BOOL)
probes("energy.sample_energy", energy.sample_energy,
       lambda: {"energy": quad_energy, "x0": T(5, 2), "step": 0.1, "n_steps": 2},
       energy=BAD_ENERGY, x0=bad_points(fixed_d=False), step=POSITIVE, n_steps=bad_int(), langevin=BAD_BOOL,
       record_every=st.one_of(bad_int(), st.just(3)), generator=BAD_GENERATOR)
probes("energy.lyapunov_terms", energy.lyapunov_terms, lambda: {"energy": quad_energy, "x": T(5, 2)},
       energy=BAD_ENERGY, x=bad_points(fixed_d=False))
probes("energy.stopping_step", energy.stopping_step, lambda: {"ratios": [0.5, 1.2]},
       ratios=st.sampled_from([[], "r", [[0.5]], [math.nan, 1.0], torch.zeros(2, 2)]))
probes("energy.langevin_time", energy.langevin_time, lambda: {"kl0": 1.0, "eps": 0.1, "c_ls": 1.0},
       kl0=POSITIVE, eps=POSITIVE, c_ls=POSITIVE)
for fn in (energy.conjunction, energy.disjunction):
    probes(f"energy.{fn.__name__}", lambda energies, f=fn: f(*energies), lambda: {"energies": [quad_energy, quad_energy]},
           energies=st.sampled_from([[quad_energy], [quad_energy, 3], [None, quad_energy], []]))
probes("energy.negation", energy.negation, lambda: {"keep": quad_energy, "remove": quad_energy},
       keep=BAD_ENERGY, remove=BAD_ENERGY, weight=bad_real())
probes("energy.jacobian_asymmetry", energy.jacobian_asymmetry, lambda: {"field": lambda x: -x, "x": T(5, 2)},
       field=BAD_CALLABLE, x=bad_points(fixed_d=False))
probes("energy.dsm_energy_loss", energy.dsm_energy_loss, lambda: {"energy": quad_energy, "x": T(5, 2), "sigma": 0.1},
       energy=BAD_ENERGY, x=bad_points(fixed_d=False), sigma=POSITIVE, generator=BAD_GENERATOR)
probes("energy.ism_energy_loss", energy.ism_energy_loss, lambda: {"energy": quad_energy, "x": T(5, 2)},
       energy=BAD_ENERGY, x=bad_points(fixed_d=False))
probes("energy.gibbs_grid", energy.gibbs_grid, lambda: {"energy": quad_energy, "grid": G2},
       energy=st.one_of(BAD_ENERGY, st.just(lambda x: x[:, 0] * math.nan)), grid=st.sampled_from([None, G1, 3]))
probes("energy.trace_gradient_flow", energy.trace_gradient_flow,
       lambda: {"energy": quad_energy, "x0": T(5, 2), "log_rho0": T(5), "log_z": 1.0, "step": 0.1, "n_steps": 2},
       energy=BAD_ENERGY, x0=bad_points(fixed_d=False), log_rho0=bad_tensor((5,), wrong_shapes=((4,), (5, 1))),
       log_z=bad_real(), step=st.one_of(POSITIVE, st.just(1.0)), n_steps=bad_int(),
       record_every=st.one_of(bad_int(), st.just(3)))
probes("energy.ood_scores", energy.ood_scores, lambda: {"energy": quad_energy, "x": T(5, 2), "step": 0.1, "n_steps": 2},
       energy=BAD_ENERGY, x=bad_points(fixed_d=False), step=POSITIVE, n_steps=bad_int())
probes("energy.fit_energy", energy.fit_energy,
       lambda: {"energy": energy.EnergyMLP(2, hidden=4, n_layers=1), "sample": lambda s: torch.randn(*s, 2),
                "n_steps": 1, "batch": 4, "progress": False},
       energy=st.sampled_from([None, quad_energy, 3]), sample=BAD_CALLABLE, n_steps=bad_int(),
       method=bad_choice(("dsm", "ism")), sigma=POSITIVE, batch=bad_int(), lr=POSITIVE, generator=BAD_GENERATOR)

# kac

KAC_AC = {"a": 2.0, "c": 1.0}
BAD_ANY_SHAPE = st.one_of(NOT_A_TENSOR, st.sampled_from([torch.int64, torch.bool]).map(lambda dt: torch.ones(5, dtype=dt)),
                          st.just(torch.tensor([0.0, math.nan], dtype=F64)), st.just(torch.zeros(5, device="meta")))
BAD_KAC_TIME = st.one_of(st.sampled_from([None, "1", [1.0], True]), st.sampled_from([-0.5, -1e-9, math.nan, math.inf]),
                         st.just(torch.tensor([-1.0])), st.just(torch.tensor([math.nan])))
probes("kac.kac_density", kac.kac_density, lambda: {"t": 0.5, "x": T(5), **KAC_AC},
       t=BAD_KAC_TIME, x=BAD_ANY_SHAPE, a=POSITIVE, c=POSITIVE)
probes("kac.kac_edge_mass", kac.kac_edge_mass, lambda: {"t": 0.5, "a": 2.0}, t=BAD_KAC_TIME, a=POSITIVE)
probes("kac.kac_velocity", kac.kac_velocity, lambda: {"t": 0.5, "x": T(5), **KAC_AC},
       t=st.one_of(BAD_KAC_TIME, st.just(torch.ones(4, dtype=F64))), x=BAD_ANY_SHAPE, a=POSITIVE, c=POSITIVE)
probes("kac.sample_kac", kac.sample_kac, lambda: {"t": 0.5, "shape": (5, 2), **KAC_AC},
       t=st.one_of(BAD_KAC_TIME, st.just(torch.ones(3, dtype=torch.float32))),
       shape=st.sampled_from([None, 5, (5, 0), (2.0,), [5, 2]]), a=POSITIVE, c=POSITIVE,
       method=bad_choice(("beta", "jumps")), generator=BAD_GENERATOR)
probes("kac.kac_walk", kac.kac_walk, lambda: {"t_end": 1.0, "n_steps": 4, "n_paths": 3, **KAC_AC},
       t_end=POSITIVE, n_steps=st.one_of(bad_int(), st.just(1)), n_paths=bad_int(), a=POSITIVE, c=POSITIVE,
       d=bad_int(), generator=BAD_GENERATOR)
probes("kac.kac_marginal_velocity", kac.kac_marginal_velocity,
       lambda: {"t": 0.5, "x": T(5, 2) * 0.1, "centres": T(3, 2, seed=1) * 0.1, "weights": torch.ones(3, dtype=F64),
                **KAC_AC},
       t=st.one_of(BAD_KAC_TIME, st.just(torch.ones(2, dtype=F64))), x=bad_points(fixed_d=False),
       centres=bad_points(3, 2), weights=st.one_of(bad_tensor((3,), wrong_shapes=((2,), (3, 1))),
                                                   st.just(-torch.ones(3, dtype=F64))), a=POSITIVE, c=POSITIVE)
probes("kac.kac_matching_loss", kac.kac_matching_loss, lambda: {"v": field, "x0": T(5, 2), **KAC_AC},
       v=BAD_CALLABLE, x0=bad_points(fixed_d=False), a=POSITIVE, c=POSITIVE, mean_reverting=BAD_BOOL,
       time_power=POSITIVE, generator=BAD_GENERATOR)
probes("kac.fit_kac", kac.fit_kac,
       lambda: {"v": nets.VelocityMLP(2, hidden=4, n_layers=1), "sample": lambda s: torch.randn(*s, 2), "n_steps": 1,
                "batch": 4, "progress": False, **KAC_AC},
       v=st.sampled_from([None, field, 3]), sample=BAD_CALLABLE, n_steps=bad_int(), a=POSITIVE, c=POSITIVE,
       batch=bad_int(), lr=POSITIVE, mean_reverting=BAD_BOOL, time_power=POSITIVE, generator=BAD_GENERATOR)

# training


def fit_args():
    w = torch.nn.Parameter(torch.ones(2))
    return {"loss_fn": lambda step: (w**2).sum(), "optimizer": torch.optim.SGD([w], lr=0.1), "n_steps": 1,
            "progress": False}


probes("training.fit", training.fit, fit_args, loss_fn=BAD_CALLABLE, optimizer=st.sampled_from([None, "adam", 3]),
       n_steps=bad_int(), checkpoint_every=bad_int(0),
       clip_grad=bad_real(low=0.0, open_low=True, optional=True), progress=BAD_BOOL,
       scheduler=st.sampled_from(["cosine", 3]), module=st.sampled_from(["net", 3]))
probes("training.progress_enabled", training.progress_enabled, lambda: {"progress": True}, progress=BAD_BOOL)

# guidance
BAD_LABELS = st.one_of(NOT_A_TENSOR, lazy(lambda: torch.tensor([0, 3, 1, 0, 1]), lambda: torch.tensor([0, -1, 1, 0, 1]),
                                          lambda: torch.zeros(5), lambda: torch.zeros(5, 1, dtype=torch.long)))


def mixture_path():
    return guidance.MixturePath(torch.ones(2, dtype=F64), T(2, 2), torch.stack([SPD(), SPD(seed=2)]))


probes("guidance.MixturePath", guidance.MixturePath,
       lambda: {"weights": torch.ones(2, dtype=F64), "means": T(2, 2), "covariances": torch.stack([SPD(), SPD()])},
       weights=st.one_of(bad_tensor((2,), wrong_shapes=((3,),)), lazy(lambda: torch.tensor([-1.0, 2.0], dtype=F64))),
       means=bad_tensor((2, 2), wrong_shapes=((3, 2),)),
       covariances=st.one_of(bad_tensor((2, 2, 2), wrong_shapes=((2, 3, 3),)), lazy(lambda: -torch.stack([SPD()] * 2))),
       path=st.sampled_from(["linear", 3, object()]))
probes("guidance.MixturePath.component", lambda **kw: mixture_path().component(**kw), lambda: {"index": [1]},
       index=st.sampled_from([[], [2], [-1], [0, 5]]))
for method in ("log_prob", "posterior", "velocity", "score"):
    probes(f"guidance.MixturePath.{method}", lambda method=method, **kw: getattr(mixture_path(), method)(**kw),
           lambda: {"t": torch.full((5,), 0.5, dtype=F64), "x": T(5, 2)}, t=bad_time_tensor(5), x=bad_points())
probes("guidance.MixturePath.log_class_posterior", lambda **kw: mixture_path().log_class_posterior(**kw),
       lambda: {"t": torch.full((5,), 0.5, dtype=F64), "x": T(5, 2), "index": [1]}, t=bad_time_tensor(5),
       x=bad_points(), index=st.sampled_from([[], [2], [-1], [0, 5]]))
probes("guidance.classifier_guidance", guidance.classifier_guidance,
       lambda: {"v": field, "log_classifier": lambda t, x: x[:, 0], "w": 2.0},
       v=BAD_CALLABLE, log_classifier=BAD_CALLABLE, w=bad_real(), path=st.sampled_from(["linear", 3]))
probes("guidance.guided_velocity", guidance.guided_velocity, lambda: {"v_uncond": field, "v_cond": field, "w": 2.0},
       v_uncond=BAD_CALLABLE, v_cond=BAD_CALLABLE, w=bad_real())
probes("guidance.drop_labels", guidance.drop_labels, lambda: {"y": torch.tensor([0, 1, 2, 0, 1]), "n_classes": 3,
                                                              "p": 0.5},
       y=BAD_LABELS, n_classes=bad_int(), p=UNIT, generator=BAD_GENERATOR)
probes("guidance.ConditionalVelocityMLP", guidance.ConditionalVelocityMLP, lambda: {"d": 2, "n_classes": 3},
       d=bad_int(), n_classes=bad_int(), hidden=bad_int(), n_layers=bad_int(), n_freq=bad_int(0), embed_dim=bad_int())
probes("guidance.ConditionalVelocityMLP.forward",
       lambda **kw: guidance.ConditionalVelocityMLP(2, 2, hidden=4).double()(**kw),
       lambda: {"t": torch.tensor(0.5, dtype=F64), "x": T(5, 2), "y": torch.tensor([0, 1, 2, 0, 1])},
       x=bad_points(values=False, meta=False), y=st.one_of(BAD_LABELS, lazy(lambda: torch.tensor([0, 1]))))
probes("guidance.ConditionalVelocityMLP.field", lambda **kw: guidance.ConditionalVelocityMLP(2, 2, hidden=4).field(**kw),
       lambda: {"y": 1, "w": 2.0}, y=st.one_of(BAD_LABELS, st.sampled_from([3, -1, True, 1.0])), w=bad_real())
probes("guidance.fit_conditional_matching", guidance.fit_conditional_matching,
       lambda: {"model": guidance.ConditionalVelocityMLP(2, 2, hidden=4), "n_steps": 1, "batch": 4, "progress": False,
                "sample": lambda n: (torch.randn(n, 2), torch.randint(0, 2, (n,)))},
       model=st.sampled_from([None, field, nets.VelocityMLP(2, hidden=4)]), sample=BAD_CALLABLE, n_steps=bad_int(),
       p_drop=UNIT, batch=bad_int(), lr=POSITIVE, path=st.sampled_from(["linear", 3]), generator=BAD_GENERATOR,
       progress=BAD_BOOL)
probes("data.load_digits", data.load_digits, lambda: {"split": "test"}, split=bad_choice(("train", "test")),
       test_fraction=UNIT, dtype=BAD_DTYPE, device=BAD_DEVICE)
probes("data.dequantize", data.dequantize, lambda: {"x": torch.tensor([[0.0, 16.0]], dtype=F64)},
       x=st.one_of(NOT_A_TENSOR, lazy(lambda: torch.ones(2, dtype=torch.int64), lambda: torch.zeros(2, device="meta")),
                   lazy(lambda: torch.tensor([[0.5, 1.0]], dtype=F64),
                                                          lambda: torch.tensor([[17.0, 1.0]], dtype=F64),
                                                          lambda: torch.tensor([[NAN, 1.0]], dtype=F64))),
       n_levels=bad_int(2), generator=BAD_GENERATOR)
probes("metrics.bits_per_dim", metrics.bits_per_dim, lambda: {"log_probs": T(5), "d": 64, "n_levels": 17},
       log_probs=bad_tensor((5,)), d=bad_int(), n_levels=bad_int(2))

# ratio
probes("ratio.logistic_loss", ratio.logistic_loss, lambda: {"logits_0": T(5), "logits_1": T(5, seed=1)},
       logits_0=bad_tensor((5,)), logits_1=bad_tensor((5,)))
probes("ratio.LogRatio", ratio.LogRatio, lambda: {"d": 2}, d=bad_int(), n_terms=bad_int(), hidden=bad_int(),
       n_layers=bad_int(0), generator=BAD_GENERATOR, dtype=BAD_DTYPE, device=BAD_DEVICE)
for method in ("forward", "terms"):
    probes(f"ratio.LogRatio.{method}", lambda method=method, **kw: getattr(ratio.LogRatio(2, 2, hidden=4).double(),
                                                                          method)(**kw),
           lambda: {"x": T(5, 2)}, x=bad_points())
probes("ratio.fit_log_ratio", ratio.fit_log_ratio,
       lambda: {"samples": T(2, 6, 2), "n_steps": 1, "batch": 4, "hidden": 4, "progress": False},
       samples=bad_tensor((2, 6, 2), wrong_shapes=((1, 6, 2), (2, 0, 2), (6, 2))), n_steps=bad_int(),
       batch=bad_int(), lr=POSITIVE, weight_decay=NONNEGATIVE, hidden=bad_int(), n_layers=bad_int(0),
       generator=BAD_GENERATOR, progress=BAD_BOOL)

# Public names that take no input to validate, with the reason.
EXEMPT = {
    "flowtutor.default_device": "no arguments",
    "flowtutor.quick_mode": "no arguments",
    "flowtutor.sized": "returns one of its two arguments, whatever they are",
    "flowtutor.ODEFlow": "swept as flow.ODEFlow",
    "flowtutor.reverse_time": "swept as flow.reverse_time",
    "flow.FIXED_STEP_METHODS": "a constant",
    "flow.ADAPTIVE_METHODS": "a constant",
    "metrics.Estimate": "a named tuple of two floats; its method Estimate.within is swept",
    "matching.AffinePath": "abstract; its methods are swept through LinearPath",
    "blocks.TRAIN_SOLVER": "a constant",
    "blocks.EVAL_SOLVER": "a constant",
    "compare.METHODS": "a constant",
    "compare.LEARNING_RATES": "a constant",
    "plotting.COLUMN_WIDTH": "a constant",
    "energy.GradientFlowTrace": "a named tuple returned by energy.trace_gradient_flow",
    "kac.KacSample": "a named tuple returned by kac.sample_kac",
    "metrics.ModeRecovery": "a named tuple returned by metrics.mode_recovery",
}


# -- the tests --------------------------------------------------------------------------------------------------
def _names(message: str, arg: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(arg)}(?![A-Za-z0-9_])", message) is not None


@pytest.mark.parametrize("probe", PROBES, ids=[f"{p.name}:{p.arg}" for p in PROBES])
@settings(max_examples=8, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_malformed_input_is_rejected_naming_the_argument(probe: Probe, data) -> None:
    bad = data.draw(probe.bad, label=probe.arg)
    kwargs = probe.valid()
    kwargs[probe.arg] = bad
    with pytest.raises((ValueError, TypeError)) as info:
        probe.call(**kwargs)
    assert _names(str(info.value), probe.match or probe.arg), f"message does not name {probe.arg!r}: {info.value}"


VALID = {(p.name, id(p.valid)): p for p in PROBES}


@pytest.mark.parametrize("probe", list(VALID.values()), ids=[p.name for p in VALID.values()])
def test_the_valid_arguments_of_each_probe_are_accepted(probe: Probe) -> None:
    probe.call(**probe.valid())  # otherwise the sweep would pass for the wrong reason


def _public_names() -> set[str]:
    names = {f"flowtutor.{n}" for n in ft.__all__ if not hasattr(getattr(ft, n), "__all__")}
    for n in ft.__all__:
        module = getattr(ft, n)
        if hasattr(module, "__all__"):
            names |= {f"{n}.{m}" for m in module.__all__}
    return names


def test_every_public_name_is_swept() -> None:
    swept = {".".join(p.name.split(".")[:2]) for p in PROBES}
    missing = sorted(_public_names() - swept - set(EXEMPT))
    assert not missing, f"public names without probes in tests/test_api_sweep.py: {missing}"
    stale = sorted((set(EXEMPT) | swept) - _public_names())
    assert not stale, f"names in the sweep table that are not public: {stale}"


# -- regressions: the holes the first probe of the API found, one test each ------------------------------------------
def nan_after_half(t, x):
    return -x + (NAN if float(t) > 0.5 else 0.0)


@pytest.mark.parametrize("solver", [{"method": "rk4", "n_steps": 10}, {"method": "dopri5"}])
def test_a_field_returning_nan_is_reported_with_its_time_and_name(solver) -> None:
    # before: an all-NaN result (fixed step) or "AssertionError: underflow in dt" (adaptive)
    flow = ft.ODEFlow(nan_after_half, **solver)
    with pytest.raises(ValueError, match=r"nan_after_half.*at t = 0\.5\d*"):
        flow.push(T(8, 2))
    with pytest.raises(ValueError, match=r"nan_after_half.*at t = 1\b"):  # log_prob integrates from t1 = 1 backwards
        flow.log_prob(T(8, 2), STD_NORMAL)
    ok = ft.ODEFlow(field, **solver)
    assert torch.isfinite(ok.push(T(8, 2))).all()  # finite fields are untouched


def test_a_solution_that_overflows_is_reported() -> None:
    # v stays finite where it is evaluated but the last Euler step overflows
    flow = ft.ODEFlow(lambda t, x: torch.full_like(x, 3e38), method="euler", n_steps=1)
    with pytest.raises(ValueError, match="overflowed"):
        flow.push(T(4, 2).float(), t1=10.0)


def test_covariances_must_be_symmetric_positive_semidefinite() -> None:
    m = torch.zeros(2, dtype=F64)
    indefinite = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)  # before: KL came out NaN or negative
    with pytest.raises(ValueError, match="s1 must be positive"):
        gaussian.kl_gaussians(m, torch.eye(2, dtype=F64), m, indefinite)
    with pytest.raises(ValueError, match="s0 must be symmetric"):
        gaussian.w2_gaussians(m, torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=F64), m, torch.eye(2, dtype=F64))
    singular = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))  # PSD: fine for W2, not for KL
    assert gaussian.w2_gaussians(m, singular, m, singular).item() == 0.0
    with pytest.raises(ValueError, match="s0 must be positive definite"):
        gaussian.kl_gaussians(m, singular, m, torch.eye(2, dtype=F64))


def test_nan_times_are_rejected_by_the_gaussian_closed_forms() -> None:
    m, s = torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)
    path = gaussian.GaussianPath(matching.LinearPath(), m, s)
    for call in (lambda: path.velocity(torch.tensor(NAN, dtype=F64), T(3, 2)), lambda: path.mean_cov(NAN),
                 lambda: path.residual(torch.tensor([0.5, NAN], dtype=F64)),
                 lambda: gaussian.displacement_interpolation_gaussians(NAN, m, s, m, s),
                 lambda: gaussian.ou_marginal(m, s, NAN), lambda: gaussian.linear_flow_gaussian(s, m, m, s, NAN)):
        with pytest.raises(ValueError, match=r"\bt\b"):
            call()


def test_messages_name_the_argument_given() -> None:
    with pytest.raises(ValueError, match=r"^probe must be one of"):  # before: "kind must be one of"
        rk4_flow().log_prob(T(4, 2), STD_NORMAL, divergence="hutchinson", probe="uniform")
    with pytest.raises(ValueError, match=r"^t_max must be <= 1"):  # before: "t must lie in [0, 1]"
        matching.cfm_loss(field, T(4, 2), T(4, 2, seed=1), matching.LinearPath(), t_max=1.5)


def test_lists_and_floats_where_tensors_are_expected_raise_type_errors() -> None:
    # before: AttributeError ('list' object has no attribute 'shape')
    with pytest.raises(TypeError, match=r"^x0 must be a torch.Tensor"):
        matching.cfm_loss(field, [[0.0, 0.0]], T(1, 2), matching.LinearPath())
    with pytest.raises(TypeError, match=r"^m0 must be a torch.Tensor"):
        gaussian.w2_gaussians([0.0, 0.0], torch.eye(2), torch.zeros(2), torch.eye(2))
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor"):
        rk4_flow().log_prob([[0.0, 0.0]], STD_NORMAL)
    with pytest.raises(TypeError, match=r"^trajectory must be a torch.Tensor"):
        matching.straightness([[[0.0]]], torch.zeros(1))


def test_dsm_loss_rejects_s_min_outside_the_unit_interval() -> None:
    for s_min in (1.5, 1.0, 0.0):  # before: s_min > 1 drew times outside [0, 1] silently
        with pytest.raises(ValueError, match=r"^s_min must lie in \(0, 1\)"):
            diffusion.dsm_loss(field, T(4, 2), diffusion.VPSDE(), s_min=s_min)


def test_w2_between_equal_gaussians_is_zero_in_float32() -> None:
    # before: the float32 trace difference left W2(mu, mu) ~ 4e-2 for covariances of size ~100
    a = T(3, 3)
    s = 100 * (a @ a.T + 0.1 * torch.eye(3, dtype=F64))
    m = T(3, seed=2)
    assert gaussian.w2_gaussians(m.float(), s.float(), m.float(), s.float()).item() < 1e-4
    assert gaussian.w2_gaussians(m.float(), s.float(), m.float(), s.float()).dtype == torch.float32
    # and it agrees with the textbook formula in float64 on a generic pair (computed independently here)
    s1 = SPD(3, seed=7)
    r0 = gaussian.sqrtm_psd(s)
    textbook = (torch.trace(s + s1 - 2 * gaussian.sqrtm_psd(r0 @ s1 @ r0))).sqrt().item()
    assert math.isclose(gaussian.w2_gaussians(m, s, m, s1).item(), textbook, rel_tol=1e-10)
    assert math.isclose(gaussian.w2_gaussians(m.float(), s.float(), m.float(), s1.float()).item(), textbook,
                        rel_tol=1e-5)


def test_gaussian_mixture_rejects_covariances_that_are_not_positive_definite() -> None:
    with pytest.raises(ValueError, match=r"^covariances must be positive definite"):
        data.GaussianMixture(T(2, 2), -torch.eye(2, dtype=F64).expand(2, 2, 2).clone())


def test_kl_between_nearby_gaussians_is_nonnegative_in_float32() -> None:
    # before: the float32 sum of traces and log-determinants gave KL(mu, mu) = -4.8e-7 for this pair
    a = T(3, 3, seed=25)
    s = 100 * (a @ a.T + 0.1 * torch.eye(3, dtype=F64))
    m = T(3, seed=125)
    kl = gaussian.kl_gaussians(m.float(), s.float(), m.float(), s.float())
    assert kl.dtype == torch.float32 and 0 <= kl.item() < 1e-6
    s1, m1 = SPD(3, seed=7), T(3, seed=8)  # a generic pair: the textbook formula in float64, written out here
    textbook = 0.5 * (torch.trace(torch.linalg.solve(s1, s)) + (m1 - m) @ torch.linalg.solve(s1, m1 - m) - 3
                      + torch.logdet(s1) - torch.logdet(s)).item()
    assert math.isclose(gaussian.kl_gaussians(m, s, m1, s1).item(), textbook, rel_tol=1e-10)
