"""Class-conditional flow matching on scikit-learn's 8x8 digits, with classifier-free guidance (chapter 10).

    python benchmarks/guidance.py [--device cpu|cuda] [--steps 6000] [--batch 256]

Prints the time per training step, the test bits/dim of the unconditional field (w = 0, exact trace, rk4 8 steps)
against a full-covariance Gaussian and the best scikit-learn GaussianMixture (chosen on the last fifth of the
training set), and, per guidance weight, the accuracy of an independent MLP classifier on generated digits and the
Frechet distance (eq. ch10-fd) between its hidden features of generated and test images, with the floor of real
training sets drawn with the test set's label counts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from sklearn.neural_network import MLPClassifier

import flowtutor as ft
from flowtutor import ODEFlow, data, guidance, metrics
from flowtutor.gaussian import w2_gaussians
from report import save_table  # benchmarks/report.py: prints the table and saves it in results/


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=str(ft.default_device()))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    device = torch.device(args.device)
    ft.seed_everything(0)
    gen = torch.Generator(device=device).manual_seed(0)
    x_train, y_train = data.load_digits("train", device=device)
    x_test, y_test = data.load_digits("test", device=device)
    d, levels = x_train.shape[1], data.DIGIT_LEVELS
    y_deq = data.dequantize(x_train, generator=gen)
    mu, s = y_deq.mean(0), y_deq.std(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(0, len(x_train), (n,), device=device, generator=gen)
        return (data.dequantize(x_train[i], generator=gen) - mu) / s, y_train[i]

    net = guidance.ConditionalVelocityMLP(d, 10, hidden=256, n_layers=3).to(device)
    start = time.perf_counter()
    guidance.fit_conditional_matching(net, batch, args.steps, p_drop=0.2, batch=args.batch, lr=2e-3, generator=gen,
                                      progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - start) / args.steps
    net.eval()

    y_test_deq = data.dequantize(x_test, generator=gen)
    base = torch.distributions.MultivariateNormal(torch.zeros(d, device=device), torch.eye(d, device=device))
    with torch.no_grad():
        lq_flow = ODEFlow(net.field(10, 0.0), method="rk4", n_steps=8).log_prob((y_test_deq - mu) / s, base)
    lq_flow = (lq_flow - torch.log(s).sum()).double().cpu()
    y_np, yt_np = y_deq.double().cpu().numpy(), y_test_deq.double().cpu().numpy()
    n_fit = int(0.8 * len(y_np))
    grid = [("full", k) for k in (1, 2, 4, 8)] + [("diag", k) for k in (16, 32, 64, 128)]

    def mixture(kind: str, k: int) -> GaussianMixture:
        return GaussianMixture(k, covariance_type=kind, reg_covar=1e-4, random_state=0)

    val = {key: mixture(*key).fit(y_np[:n_fit]).score(y_np[n_fit:]) for key in grid}
    best = max(val, key=val.get)
    bpd = {"flow (w = 0)": lq_flow}
    for name, key in (("Gaussian", ("full", 1)), (f"GaussianMixture {best[1]} {best[0]}", best)):
        bpd[name] = torch.as_tensor(mixture(*key).fit(y_np).score_samples(yt_np))
    rows = [(name, str(metrics.bits_per_dim(lq, d, levels)), f"{per_step * 1e3:.1f} ms" if name.startswith("flow")
             else "") for name, lq in bpd.items()]
    save_table("guidance-likelihood", device, f"test bits/dim on dequantised digits, {args.steps} steps of batch "
               f"{args.batch}", ("model", "bits/dim", "time/step"), rows)

    xtr_np, ytr_np = x_train.cpu().numpy(), y_train.cpu().numpy()
    clf = MLPClassifier((64,), max_iter=400, random_state=0).fit(xtr_np / 16, ytr_np)

    def features(x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.maximum(x.double().cpu().numpy() / 16 @ clf.coefs_[0] + clf.intercepts_[0], 0))

    f_test = features(x_test)

    def frechet(x: torch.Tensor) -> float:
        f = features(x)
        return w2_gaussians(f.mean(0), torch.cov(f.T), f_test.mean(0), torch.cov(f_test.T)).item() ** 2

    def matched_real_set() -> torch.Tensor:  # training images with the test set's label counts
        picks = []
        for k in range(10):
            pool = torch.nonzero(y_train == k)[:, 0]
            order = torch.randperm(len(pool), device=device, generator=gen)
            picks.append(pool[order[: int((y_test == k).sum())]])
        return x_train[torch.cat(picks)]

    floors = torch.tensor([frechet(matched_real_set()) for _ in range(5)])
    rows = [("real train vs test (5 label-matched sets)", "", f"{floors.mean():.3f} ± {floors.std():.3f}", "")]
    for w in (0.0, 1.0, 1.5, 2.0, 3.0):
        z0 = torch.randn(len(y_test), d, device=device, generator=gen)
        start = time.perf_counter()
        with torch.no_grad():
            y = ODEFlow(net.field(y_test, w), method="rk4", n_steps=16).push(z0) * s + mu
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        x = torch.floor(levels * y).clamp(0, levels - 1)
        acc = float((clf.predict(x.cpu().numpy() / 16) == y_test.cpu().numpy()).mean())
        rows.append((f"w = {w:g}", f"{acc:.3f}", f"{frechet(x):.3f}", f"{elapsed * 1e3:.0f} ms"))
    save_table("guidance-samples", device, f"guided samples ({len(y_test)}, test label proportions, rk4 16 steps)",
               ("guidance", "judge accuracy", "Frechet distance", "sampling time"), rows)


if __name__ == "__main__":
    main()
