import pytest
import torch

from flowtutor.divergence import divergence_exact, divergence_hutchinson, jacobian, sample_probes


def _linear(d, gen):
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    x = torch.randn(50, d, generator=gen, dtype=torch.float64).requires_grad_(True)
    return a, x, x @ a.T


def test_exact_divergence_of_linear_field_is_trace(gen):
    a, x, fx = _linear(5, gen)
    assert torch.allclose(divergence_exact(fx, x), torch.trace(a).expand(50))


def test_exact_divergence_nonlinear(gen):
    x = torch.randn(20, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    fx = torch.sin(x) * x[:, [1, 2, 0]]
    expected = (torch.cos(x) * x[:, [1, 2, 0]]).sum(1)
    assert torch.allclose(divergence_exact(fx, x), expected)


def test_jacobian_of_linear_and_nonlinear_fields(gen):
    a, x, fx = _linear(4, gen)
    assert torch.allclose(jacobian(fx, x), a.expand(50, 4, 4))
    y = torch.randn(20, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    fy = torch.sin(y) * y[:, [1, 2, 0]]
    jac = jacobian(fy, y)
    assert torch.allclose(torch.diagonal(jac, dim1=1, dim2=2).sum(1), divergence_exact(fy, y))
    assert torch.allclose(jac[:, 0, 1], torch.sin(y[:, 0]))  # d(sin y0 * y1)/d y1


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_unbiased_with_predicted_variance(gen, kind):
    d, k = 4, 20_000
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    x = torch.randn(1, d, dtype=torch.float64).requires_grad_(True)
    fx = x @ a.T
    probes = sample_probes((k, 1, d), kind, dtype=torch.float64, generator=gen)
    samples = torch.stack([divergence_hutchinson(fx, x, p) for p in probes.split(1)]).squeeze()
    s = (a + a.T) / 2
    var = 2 * ((s**2).sum() - (torch.diagonal(s) ** 2).sum()) if kind == "rademacher" else 2 * (s**2).sum()
    assert abs(samples.mean() - torch.trace(a)) < 5 * torch.sqrt(var / k)
    assert abs(samples.var() / var - 1) < 0.1


def test_probes_have_identity_second_moment(gen):
    p = sample_probes((100_000, 3), "rademacher", generator=gen)
    assert set(p.unique().tolist()) == {-1.0, 1.0}
    assert torch.allclose(p.T @ p / 100_000, torch.eye(3), atol=0.02)


def test_bad_input(gen):
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="x must require grad"):
        divergence_exact(x * 2, x)
    x.requires_grad_(True)
    with pytest.raises(ValueError, match="probes must have shape"):
        divergence_hutchinson(x * 2, x, torch.ones(3, 3))
    with pytest.raises(ValueError, match="kind must be one of"):
        sample_probes((2, 2), "uniform")
