import math

import pytest
import torch

from flowtutor.training import fit


def test_fit_minimises_and_checkpoints(tmp_path):
    w = torch.nn.Parameter(torch.tensor([3.0]))
    module = torch.nn.Module()
    module.w = w
    opt = torch.optim.SGD([w], lr=0.1)
    ckpt = tmp_path / "ckpt.pt"
    hist = fit(lambda step: ((w - 1) ** 2).sum(), opt, 50, progress=False, checkpoint=ckpt, checkpoint_every=20, module=module)
    assert len(hist) == 50 and hist[-1] < 1e-6 < hist[0]
    state = torch.load(ckpt)
    assert state["step"] == 49 and len(state["history"]) == 50


def test_nan_guard_names_the_step():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    with pytest.raises(FloatingPointError, match="at step 3 .*hint"):
        fit(lambda step: w.sum() * (math.nan if step == 3 else 1.0), opt, 10, progress=False)


def test_a_gradient_that_overflows_is_reported():
    def sqrt_at_zero():  # a finite loss (0) with an infinite gradient
        w = torch.nn.Parameter(torch.tensor([1.0]))
        return (lambda step: torch.sqrt(w - w.detach()).sum()), torch.optim.SGD([w], lr=0.1)

    loss, opt = sqrt_at_zero()
    with pytest.raises(FloatingPointError, match="at step 1 .*gradient of the step before"):
        fit(loss, opt, 10, progress=False)
    loss, opt = sqrt_at_zero()
    with pytest.raises(FloatingPointError, match="a gradient became NaN or infinite at step 0"):
        fit(loss, opt, 10, progress=False, clip_grad=1.0)
    loss, opt = sqrt_at_zero()
    with pytest.raises(FloatingPointError, match="last step"):
        fit(loss, opt, 1, progress=False)


def test_bad_input():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    with pytest.raises(TypeError, match="optimizer must be"):
        fit(lambda s: w.sum(), "adam", 10)
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        fit(lambda s: w.sum(), torch.optim.SGD([w], lr=0.1), 0)
    with pytest.raises(ValueError, match="checkpoint needs module"):
        fit(lambda s: w.sum(), torch.optim.SGD([w], lr=0.1), 1, checkpoint="x.pt", checkpoint_every=1)
