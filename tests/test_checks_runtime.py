import math
import os

import pytest
import torch

import flowtutor as ft
from flowtutor import _checks as C


def test_check_tensor_errors_name_the_argument():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        C.check_tensor([1.0], "x")
    with pytest.raises(TypeError, match="floating"):
        C.check_tensor(torch.tensor([1, 2]), "x")
    with pytest.raises(ValueError, match="x contains NaN"):
        C.check_tensor(torch.tensor([1.0, math.nan]), "x")
    with pytest.raises(ValueError, match="x must have shape \\(n, d\\)"):
        C.check_points(torch.zeros(3), "x")
    with pytest.raises(ValueError, match="x must have shape \\(n, 2\\)"):
        C.check_points(torch.zeros(3, 3), "x", d=2)


@pytest.mark.parametrize("bad", [-1.0, 0.0, math.inf, math.nan])
def test_check_positive(bad):
    with pytest.raises(ValueError, match="step"):
        C.check_positive(bad, "step")


def test_check_int_and_choice():
    with pytest.raises(TypeError, match="n must be an int"):
        C.check_int(2.0, "n")
    with pytest.raises(ValueError, match="n must be >= 1"):
        C.check_int(0, "n")
    with pytest.raises(ValueError, match="kind must be one of"):
        C.check_choice("x", "kind", ("a", "b"))


def test_check_same_device_names_both():
    a = torch.zeros(2)
    b = torch.zeros(2, device="meta")
    with pytest.raises(ValueError, match="y is on meta but x is on cpu"):
        C.check_same_device(x=a, y=b)


def test_seed_everything_reproducible():
    g1 = ft.seed_everything(3)
    a = torch.randn(4), torch.randn(2, generator=g1)
    g2 = ft.seed_everything(3)
    b = torch.randn(4), torch.randn(2, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError):
        ft.seed_everything(-1)
    with pytest.raises(TypeError):
        ft.seed_everything(1.5)


def test_quick_mode_reads_environment(monkeypatch):
    monkeypatch.setenv("FLOWTUTOR_QUICK", "1")
    assert ft.quick_mode() and ft.sized(100, 10) == 10
    monkeypatch.setenv("FLOWTUTOR_QUICK", "0")
    assert not ft.quick_mode() and ft.sized(100, 10) == 100
    monkeypatch.delenv("FLOWTUTOR_QUICK")
    assert not ft.quick_mode()


def test_default_device(monkeypatch):
    monkeypatch.delenv("FLOWTUTOR_DEVICE", raising=False)
    assert ft.default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("FLOWTUTOR_DEVICE", " cpu ")
    assert ft.default_device() == torch.device("cpu")
    monkeypatch.setenv("FLOWTUTOR_DEVICE", "gpu please")
    with pytest.raises(ValueError, match="FLOWTUTOR_DEVICE must name a device"):
        ft.default_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("FLOWTUTOR_DEVICE", "cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            ft.default_device()
    else:
        monkeypatch.setenv("FLOWTUTOR_DEVICE", f"cuda:{torch.cuda.device_count()}")
        with pytest.raises(ValueError, match="cannot use"):
            ft.default_device()


def test_generator_on_keeps_the_cpu_stream():
    gen = ft.seed_everything(3)
    assert ft.generator_on("cpu", gen) is gen  # one stream on the CPU: the numbers do not change
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        ft.generator_on("cpu", None)


@pytest.mark.gpu
def test_generator_on_seeds_a_gpu_generator_alike():
    gen = ft.seed_everything(3)
    a, b = ft.generator_on("cuda", gen), ft.generator_on("cuda", ft.seed_everything(3))
    assert a.device.type == "cuda" and a.initial_seed() == 3
    assert torch.equal(torch.randn(5, device="cuda", generator=a), torch.randn(5, device="cuda", generator=b))
    assert ft.generator_on("cuda:0", a) is a


def test_check_covariance_time_and_interval():
    ok = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert C.check_covariance(ok, "s") is ok
    with pytest.raises(ValueError, match="s must be symmetric"):
        C.check_covariance(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), "s")
    with pytest.raises(ValueError, match="s must be positive semi-definite"):
        C.check_covariance(torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "s")
    with pytest.raises(ValueError, match="s must be positive definite"):
        C.check_covariance(torch.diag(torch.tensor([1.0, 0.0])), "s", definite=True)
    assert C.check_time(0.5, "t").item() == 0.5
    for bad in (math.nan, 1.5, -1e-300, torch.tensor([0.5, math.nan])):
        with pytest.raises(ValueError, match="t must"):
            C.check_time(bad, "t")
    with pytest.raises(TypeError, match="t must be a number"):
        C.check_time("0.5", "t")
    assert C.check_interval(1.0, "t_max", 0.0, 1.0, open_low=True) == 1.0
    with pytest.raises(ValueError, match=r"s_min must lie in \(0, 1\)"):
        C.check_interval(1.0, "s_min", 0.0, 1.0, open_low=True, open_high=True)
    with pytest.raises(ValueError, match="x is on the meta device"):
        C.check_tensor(torch.zeros(2, device="meta"), "x")
