"""Density-ratio estimation: the logistic-loss lemma, the batched telescope, fitting, bad input, CUDA."""

from __future__ import annotations

import math

import pytest
import torch

import flowtutor as ft
from flowtutor.ratio import LogRatio, fit_log_ratio, logistic_loss

F64 = torch.float64


def _atoms(counts: list[int]) -> torch.Tensor:
    """Indices of K atoms, atom k repeated counts[k] times: an exact empirical distribution."""
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


def _minimise(idx0: torch.Tensor, idx1: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    phi = torch.zeros(k, dtype=F64, requires_grad=True)
    opt = torch.optim.LBFGS([phi], lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = logistic_loss(phi[idx0], phi[idx1])
        loss.backward()
        return loss

    opt.step(closure)
    return phi.detach(), logistic_loss(phi[idx0], phi[idx1]).item()


def test_the_logistic_loss_is_minimised_by_the_log_ratio_and_its_minimum_is_2log2_minus_2js():
    c0, c1 = [5, 1, 3, 7], [2, 6, 3, 1]
    f0 = torch.tensor(c0, dtype=F64) / sum(c0)
    f1 = torch.tensor(c1, dtype=F64) / sum(c1)
    phi, value = _minimise(_atoms(c0), _atoms(c1), 4)
    torch.testing.assert_close(phi, (f1 / f0).log(), atol=1e-6, rtol=0)
    m = (f0 + f1) / 2
    js = 0.5 * (f0 * (f0 / m).log()).sum() + 0.5 * (f1 * (f1 / m).log()).sum()
    assert value == pytest.approx(2 * math.log(2) - 2 * js.item(), abs=1e-10)


def test_the_loss_has_one_value_per_leading_index():
    a, b = torch.randn(3, 7, dtype=F64), torch.randn(3, 5, dtype=F64)
    out = logistic_loss(a, b)
    assert out.shape == (3,)
    torch.testing.assert_close(out[1], logistic_loss(a[1], b[1]))
    assert logistic_loss(torch.zeros(4), torch.zeros(9)).item() == pytest.approx(2 * math.log(2))


def test_the_batched_terms_are_independent_networks_and_forward_is_their_sum():
    model = LogRatio(2, n_terms=3, hidden=8, n_layers=2, generator=torch.Generator().manual_seed(0)).double()
    x = torch.randn(10, 2, dtype=F64)
    terms = model.terms(x)
    assert terms.shape == (3, 10)
    torch.testing.assert_close(model(x), terms.sum(0))
    for k in range(3):  # term k by hand from its own block of weights
        h = x
        for i, (w, b) in enumerate(zip(model.weights, model.biases)):
            h = h @ w[k] + b[k, 0]
            h = torch.nn.functional.silu(h) if i < 2 else h
        torch.testing.assert_close(terms[k], h[:, 0])
    with torch.no_grad():  # changing one term's weights leaves the others alone
        model.weights[0][1] += 1.0
    after = model.terms(x)
    torch.testing.assert_close(after[[0, 2]], terms[[0, 2]])
    assert not torch.allclose(after[1], terms[1])


def _gaussian_path(m: torch.Tensor, n_terms: int, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.stack([k / n_terms * m + torch.randn(n, len(m), dtype=F64, generator=generator)
                        for k in range(n_terms + 1)])


def test_the_telescope_is_exact_where_the_intermediate_ratios_are_known():
    # p_k = N(k m / N, I): log p_{k+1}/p_k = <m, x>/N - (2k + 1)|m|^2 / (2 N^2), affine, so logistic regressions
    # (n_layers = 0) holding exactly these coefficients telescope to log q/p = <m, x> - |m|^2 / 2
    m, n_terms = torch.tensor([3.0, -1.0], dtype=F64), 4
    model = LogRatio(2, n_terms=n_terms, n_layers=0).double()
    with torch.no_grad():
        model.weights[0].copy_((m / n_terms).expand(n_terms, 2)[:, :, None])
        ks = torch.arange(n_terms, dtype=F64)
        model.biases[0].copy_((-(2 * ks + 1) / (2 * n_terms**2) * (m @ m))[:, None, None])
    x = torch.randn(100, 2, dtype=F64)
    q = torch.distributions.MultivariateNormal(m, torch.eye(2, dtype=F64))
    p = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    torch.testing.assert_close(model(x), q.log_prob(x) - p.log_prob(x), atol=1e-12, rtol=0)


def test_fitted_logistic_regressions_recover_the_terms_of_a_gaussian_path():
    ft.seed_everything(0)
    g = torch.Generator().manual_seed(1)
    m, n_terms = torch.tensor([3.0, -1.0], dtype=F64), 4
    model = fit_log_ratio(_gaussian_path(m, n_terms, 4000, g), 600, n_layers=0, lr=0.05, generator=g,
                          progress=False)
    assert model.weights[0].dtype == F64 and len(model.history) == 600
    slopes = model.weights[0][:, :, 0].detach()
    torch.testing.assert_close(slopes, (m / n_terms).expand(n_terms, 2), atol=0.08, rtol=0)
    x = torch.randn(2000, 2, dtype=F64, generator=g) + m / 2  # between p and q
    truth = x @ m - (m @ m) / 2
    with torch.no_grad():
        err = (model(x) - truth).abs().mean().item()
    assert err < 0.3 < truth.abs().mean().item(), err


def test_equal_generators_give_equal_fits_in_the_samples_dtype():
    samples = torch.randn(3, 50, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    fits = [fit_log_ratio(samples, 20, batch=8, hidden=4, generator=torch.Generator().manual_seed(5), progress=False)
            for _ in range(2)]
    assert fits[0].weights[0].dtype == F64
    for a, b in zip(fits[0].parameters(), fits[1].parameters()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    other = fit_log_ratio(samples, 20, batch=8, hidden=4, generator=torch.Generator().manual_seed(6), progress=False)
    assert not torch.equal(other.weights[0], fits[0].weights[0])


def test_one_classifier_estimates_an_overlapping_log_ratio():
    ft.seed_everything(0)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(3000, 2, generator=g)
    x1 = torch.randn(3000, 2, generator=g) + torch.tensor([1.5, 0.0])
    model = fit_log_ratio(torch.stack([x0, x1]), 500, hidden=32, generator=g, progress=False)
    x = torch.cat([x0[:500], x1[:500]])
    with torch.no_grad():
        err = (model(x) - (1.5 * x[:, 0] - 1.125)).abs().mean().item()
    assert err < 0.15, err  # the zero logit errs by about 1.4


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="samples"):
        fit_log_ratio(torch.randn(1, 10, 2), 5)
    with pytest.raises(ValueError, match="samples"):
        fit_log_ratio(torch.randn(10, 2), 5)
    with pytest.raises(ValueError, match="samples"):
        fit_log_ratio(torch.full((2, 10, 2), math.nan), 5)
    with pytest.raises(ValueError, match="weight_decay"):
        fit_log_ratio(torch.randn(2, 10, 2), 5, weight_decay=-1.0)
    with pytest.raises(ValueError, match="logits_0 and logits_1"):
        logistic_loss(torch.zeros(3, 4), torch.zeros(2, 4))
    model = LogRatio(2)
    with pytest.raises(ValueError, match="x"):
        model(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="dtype"):
        model(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(FloatingPointError, match="step"):  # a learning rate that overflows stops with the step
        fit_log_ratio(torch.stack([torch.zeros(8, 2), torch.ones(8, 2)]), 50, lr=1e30, progress=False)


@pytest.mark.gpu
def test_ratio_on_cuda():
    samples = torch.randn(3, 64, 2, device="cuda")
    model = fit_log_ratio(samples, 5, batch=16, generator=torch.Generator("cuda").manual_seed(0), progress=False)
    assert model.weights[0].device.type == "cuda"
    x = torch.randn(10, 2, device="cuda")
    assert model(x).device.type == "cuda" and model.terms(x).shape == (2, 10)
    assert logistic_loss(model(x), model(x)).device.type == "cuda"
