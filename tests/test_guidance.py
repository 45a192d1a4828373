"""Conditional fields and guidance, the closed-form mixture path, the digits, dequantisation and bits/dim."""

from __future__ import annotations

import math

import pytest
import torch

import flowtutor as ft
from flowtutor import data, metrics
from flowtutor.gaussian import GaussianPath
from flowtutor.guidance import (
    ConditionalVelocityMLP,
    MixturePath,
    classifier_guidance,
    drop_labels,
    fit_conditional_matching,
    guided_velocity,
)
from flowtutor.matching import CondOTPath, LinearPath

F64 = torch.float64


def _mixture() -> MixturePath:
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]], dtype=F64)
    covs = torch.stack([torch.eye(2, dtype=F64) * s for s in (0.3, 0.5, 0.2)])
    covs[1, 0, 1] = covs[1, 1, 0] = 0.1
    return MixturePath(torch.tensor([0.5, 0.3, 0.2], dtype=F64), means, covs)


def test_a_one_component_mixture_is_the_gaussian_path():
    m, s = torch.tensor([1.0, -1.0], dtype=F64), torch.tensor([[0.5, 0.1], [0.1, 0.3]], dtype=F64)
    mix = MixturePath(torch.ones(1, dtype=F64), m[None], s[None], CondOTPath())
    gauss = GaussianPath(CondOTPath(), m, s)
    x, t = torch.randn(20, 2, dtype=F64), torch.rand(20, dtype=F64)
    torch.testing.assert_close(mix.velocity(t, x), gauss.velocity(t, x))
    torch.testing.assert_close(mix.score(t, x), gauss.score(t, x))


def test_the_mixture_score_is_the_gradient_of_its_log_density():
    mix = _mixture()
    x = torch.randn(30, 2, dtype=F64, requires_grad=True)
    t = torch.full((30,), 0.7, dtype=F64)
    grad = torch.autograd.grad(mix.log_prob(t, x).sum(), x)[0]
    torch.testing.assert_close(mix.score(t, x.detach()), grad)


def test_the_mixture_velocity_transports_its_density():
    # the continuity equation d_t p + div(p u) = 0, with d_t by finite differences and div by autograd
    mix = _mixture()
    x = torch.randn(40, 2, dtype=F64) * 1.5
    t, h = 0.6, 1e-5
    d_t = (mix.log_prob(t + h, x).exp() - mix.log_prob(t - h, x).exp()) / (2 * h)
    xg = x.clone().requires_grad_(True)
    flux = mix.log_prob(t, xg).exp()[:, None] * mix.velocity(t, xg)
    div = sum(torch.autograd.grad(flux[:, i].sum(), xg, retain_graph=True)[0][:, i] for i in range(2))
    torch.testing.assert_close(d_t, -div, atol=1e-7, rtol=1e-5)


def test_the_mixture_path_ends_at_noise_and_at_the_data():
    mix = _mixture()
    x = torch.randn(50, 2, dtype=F64)
    normal = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    torch.testing.assert_close(mix.log_prob(0.0, x), normal.log_prob(x))
    target = data.GaussianMixture(mix.means, mix.covariances, mix.weights)
    torch.testing.assert_close(mix.log_prob(1.0, x), target.log_prob(x))


def test_a_component_is_the_sub_mixture_of_those_components():
    mix = _mixture()
    sub = mix.component([1, 2])
    torch.testing.assert_close(sub.weights, torch.tensor([0.6, 0.4], dtype=F64))
    x = torch.randn(10, 2, dtype=F64)
    # p_t(x | components 1, 2) = sum_{k in {1, 2}} w_k N_k / (w_1 + w_2)
    joint = mix._log_joint(torch.tensor(0.5, dtype=F64), x)[:, 1:]
    torch.testing.assert_close(sub.log_prob(0.5, x), torch.logsumexp(joint, 1) - math.log(0.5))
    with pytest.raises(ValueError, match="index"):
        mix.component([3])


def test_guidance_weights_zero_and_one_give_the_unconditional_and_conditional_fields():
    mix = _mixture()
    cond = mix.component([0])
    x, t = torch.randn(15, 2, dtype=F64), torch.rand(15, dtype=F64)
    torch.testing.assert_close(guided_velocity(mix.velocity, cond.velocity, 0.0)(t, x), mix.velocity(t, x))
    torch.testing.assert_close(guided_velocity(mix.velocity, cond.velocity, 1.0)(t, x), cond.velocity(t, x))
    w = 2.5
    torch.testing.assert_close(guided_velocity(mix.velocity, cond.velocity, w)(t, x),
                               (1 - w) * mix.velocity(t, x) + w * cond.velocity(t, x))


def test_the_network_field_is_the_guided_combination_of_its_null_and_label_outputs():
    torch.manual_seed(0)
    model = ConditionalVelocityMLP(2, n_classes=3, hidden=16, n_layers=2).double()
    x, t = torch.randn(6, 2, dtype=F64), torch.rand(6, dtype=F64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    null = torch.full((6,), 3)
    for w in (0.0, 1.0, 3.0):
        expected = model(t, x, null) + w * (model(t, x, y) - model(t, x, null))
        torch.testing.assert_close(model.field(y, w)(t, x), expected)
    torch.testing.assert_close(model.field(2, 1.0)(t, x), model(t, x, torch.full((6,), 2)))


def test_label_dropout_drops_the_stated_fraction():
    y = torch.randint(0, 10, (20_000,), generator=torch.Generator().manual_seed(0))
    out = drop_labels(y, 10, 0.3, torch.Generator().manual_seed(1))
    dropped = (out == 10).double().mean().item()
    assert abs(dropped - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(y))
    kept = out != 10
    assert torch.equal(out[kept], y[kept])
    assert torch.equal(drop_labels(y, 10, 0.0), y) and bool((drop_labels(y, 10, 1.0) == 10).all())


def test_conditional_matching_learns_the_closed_form_conditional_velocity():
    ft.seed_everything(0)
    g = torch.Generator().manual_seed(3)
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    covs = torch.stack([torch.eye(2) * 0.3] * 2)
    mix = MixturePath(torch.ones(2), means, covs)

    def sample(n):
        y = torch.randint(0, 2, (n,), generator=g)
        return means[y] + 0.3**0.5 * torch.randn(n, 2, generator=g), y

    model = ConditionalVelocityMLP(2, 2, hidden=64, n_layers=2)
    history = fit_conditional_matching(model, sample, 1200, p_drop=0.5, batch=256, lr=3e-3, generator=g,
                                       progress=False)
    assert len(history) == 1200

    def relative_error(field, exact, x1):  # on points of the path, where the field is trained
        t = torch.rand(len(x1), generator=g) * 0.9
        xt = t[:, None] * x1 + (1 - t[:, None]) * torch.randn(x1.shape, generator=g)
        with torch.no_grad():
            u = exact(t, xt)
            return ((field(t, xt) - u).norm(dim=1).mean() / u.norm(dim=1).mean()).item()

    x1, y1 = sample(1000)
    for label in (0, 1):  # each label's field, and the null label's unconditional field
        err = relative_error(model.field(label), mix.component([label]).velocity, x1[y1 == label])
        assert err < 0.2, (label, err)
    err_null = relative_error(model.field(0, 0.0), mix.velocity, x1)
    assert err_null < 0.25, err_null  # harder: the posterior over classes switches sharply


def test_the_digits_have_a_fixed_stratified_split_of_integer_pixels():
    x, y = data.load_digits("train")
    xt, yt = data.load_digits("test")
    assert x.shape == (1347, 64) and xt.shape == (450, 64) and y.dtype == torch.int64
    assert torch.equal(x, torch.round(x)) and x.min() == 0 and x.max() == 16
    assert torch.bincount(yt, minlength=10).min() >= 43  # stratified: 43-46 per class
    x2, _ = data.load_digits("train")
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="split"):
        data.load_digits("validation")


def test_a_uniform_model_of_dequantised_data_costs_log2_levels_bits_per_dim():
    x, _ = data.load_digits("test")
    y = data.dequantize(x, 17, torch.Generator().manual_seed(0))
    assert bool(((y >= 0) & (y < 1)).all())
    assert bool((torch.floor(y * 17) == x).all())  # each value stays in its own bin
    bpd = metrics.bits_per_dim(torch.zeros(len(x), dtype=F64), 64, 17)  # the uniform density on [0, 1)^64
    assert bpd.value == pytest.approx(math.log2(17), abs=1e-12) and bpd.stderr == 0
    # a density twice as large everywhere it matters saves exactly one bit per image: 1/64 bit per dimension
    assert metrics.bits_per_dim(torch.full((10,), math.log(2), dtype=F64), 64, 17).value == pytest.approx(math.log2(17) - 1 / 64)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="x must hold integers"):
        data.dequantize(torch.tensor([[0.5, 3.0]]), 17)
    with pytest.raises(ValueError, match="x must hold integers"):
        data.dequantize(torch.tensor([[17.0]]), 17)
    with pytest.raises(ValueError, match="y must hold labels"):
        drop_labels(torch.tensor([0, 11]), 10, 0.1)
    with pytest.raises(TypeError, match="y must be"):
        drop_labels(torch.tensor([0.0, 1.0]), 10, 0.1)
    model = ConditionalVelocityMLP(2, 3)
    with pytest.raises(ValueError, match="y must hold labels"):
        model(torch.tensor(0.5), torch.zeros(2, 2), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="one label per point"):
        model(torch.tensor(0.5), torch.zeros(2, 2), torch.tensor([0]))
    with pytest.raises(ValueError, match="log_probs"):
        metrics.bits_per_dim(torch.tensor([0.0, -math.inf]), 64, 17)


@pytest.mark.gpu
def test_guidance_on_cuda():
    model = ConditionalVelocityMLP(2, 3, hidden=8).cuda()
    x = torch.randn(5, 2, device="cuda")
    assert model.field(1, 2.0)(torch.tensor(0.5, device="cuda"), x).device.type == "cuda"
    mix = MixturePath(torch.ones(2, device="cuda"), torch.randn(2, 2, device="cuda"),
                      torch.eye(2, device="cuda").expand(2, 2, 2).clone())
    assert mix.velocity(torch.tensor(0.3, device="cuda"), x).device.type == "cuda"
    guided = classifier_guidance(mix.velocity, lambda t, z: mix.log_class_posterior(t, z, [0]), 2.0)
    assert guided(torch.tensor(0.3, device="cuda"), x).device.type == "cuda"
    assert data.dequantize(torch.zeros(3, device="cuda")).device.type == "cuda"
    y = torch.randint(0, 3, (8,), device="cuda")
    assert drop_labels(y, 3, 0.5, torch.Generator("cuda").manual_seed(0)).device.type == "cuda"
    history = fit_conditional_matching(model, lambda n: (torch.randn(n, 2, device="cuda"),
                                                         torch.randint(0, 3, (n,), device="cuda")), 3,
                                       batch=8, progress=False)
    assert len(history) == 3


@pytest.mark.parametrize("path", [LinearPath(), CondOTPath()])
def test_classifier_guidance_with_the_exact_noisy_classifier_is_the_class_field(path):
    # eq. ch10-cg: u_t(x | y) = u_t(x) + c_t grad log p_t(y | x), with the class = components {0, 2}
    mix = MixturePath(_mixture().weights, _mixture().means, _mixture().covariances, path)
    x = torch.randn(50, 2, dtype=F64) * 2
    for t in (0.1, 0.5, 0.9):
        tt = torch.tensor(t, dtype=F64)
        guided = classifier_guidance(mix.velocity, lambda s, z: mix.log_class_posterior(s, z, [0, 2]), 1.0, path)
        torch.testing.assert_close(guided(tt, x), mix.component([0, 2]).velocity(tt, x))
        w3 = classifier_guidance(mix.velocity, lambda s, z: mix.log_class_posterior(s, z, [0, 2]), 3.0, path)
        cfg = guided_velocity(mix.velocity, mix.component([0, 2]).velocity, 3.0)
        torch.testing.assert_close(w3(tt, x), cfg(tt, x))


def test_the_class_posteriors_sum_to_one_and_reject_bad_indices():
    mix, x = _mixture(), torch.randn(20, 2, dtype=F64)
    t = torch.full((20,), 0.4, dtype=F64)
    total = mix.log_class_posterior(t, x, [0, 1]).exp() + mix.log_class_posterior(t, x, [2]).exp()
    torch.testing.assert_close(total, torch.ones(20, dtype=F64))
    with pytest.raises(ValueError, match="index"):
        mix.log_class_posterior(t, x, [3])


def test_classifier_guidance_reports_a_classifier_of_the_wrong_shape():
    guided = classifier_guidance(lambda t, x: x, lambda t, x: x, 1.0)
    with pytest.raises(ValueError, match="log_classifier must return shape"):
        guided(torch.tensor(0.5), torch.randn(4, 2))


def test_classifier_guidance_takes_one_time_per_point():
    # n = d makes a wrong broadcast of c_t silent: rows must use their own times
    mix = _mixture()
    x, t = torch.randn(2, 2, dtype=F64), torch.tensor([0.2, 0.8], dtype=F64)
    guided = classifier_guidance(mix.velocity, lambda s, z: mix.log_class_posterior(s, z, [1]), 1.0)
    torch.testing.assert_close(guided(t, x), mix.component([1]).velocity(t, x))


def test_dequantized_values_stay_in_their_cells_in_float32():
    x = torch.randint(0, 17, (20000, 64)).float()  # about 6 values of 12.8 million land on an edge unfixed
    for seed in range(10):
        y = data.dequantize(x, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(torch.floor(17 * y), x) and y.dtype == torch.float32
