"""Speed and values of the native PSNR, SSIM and NIQE against pyiqa's, on one 2040x1356 pair.

The pair is scikit-image's 'coffee' photo resized to 2040x1356 (bicubic) and a degraded copy
(x4 area downsampling, bicubic upsampling, Gaussian noise sigma 2 on the 0-255 scale, seeded).
Everything runs in this process on one thread; times are the best of N calls after a warm-up.

For PSNR and SSIM the values are also compared with the BasicSR convention (DESIGN.md sec. 7),
restated here independently: BT.601 Y in float64, ``10 log10(255^2 / MSE)``, and SSIM with a
full 11x11 ``cv2.filter2D`` window cropped to the valid region. pyiqa's ``test_y_channel=True``
uses the Y of YIQ by default (its ``color_space='yiq'``), so its default values differ from the
SR literature's; its ``color_space='ycbcr'`` values are printed too. All metrics use
crop_border = 0 here (pyiqa's default) so that the values are comparable.

    python bench/metrics.py [--repeats 3] [--pyiqa-repeats 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch
from skimage import data

from eval.metrics.color import rgb_to_y
from eval.metrics.native import psnr, ssim
from eval.metrics.niqe_model import niqe

H, W = 1356, 2040


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Return (fastest time in seconds of ``repeats`` calls after one warm-up, the last value)."""
    value = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def test_pair() -> tuple[np.ndarray, np.ndarray]:
    """Return (gt, degraded) uint8 RGB (1356, 2040, 3)."""
    gt = cv2.resize(data.coffee(), (W, H), interpolation=cv2.INTER_CUBIC)
    lr = cv2.resize(gt, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
    up = cv2.resize(lr, (W, H), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    noisy = up + np.random.default_rng(0).normal(0.0, 2.0, up.shape)
    return gt, np.clip(noisy, 0, 255).round().astype(np.uint8)


def basicsr_psnr(gt: np.ndarray, pred: np.ndarray) -> float:
    a, b = rgb_to_y(gt.astype(np.float64)), rgb_to_y(pred.astype(np.float64))
    return float(10.0 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


def basicsr_ssim(gt: np.ndarray, pred: np.ndarray) -> float:
    """BasicSR's ``_ssim`` on Y: full 2-D 11x11 filter2D, crop [5:-5, 5:-5], float64."""
    a, b = rgb_to_y(gt.astype(np.float64)), rgb_to_y(pred.astype(np.float64))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.T)

    def f(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, win)[5:-5, 5:-5]

    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    m = (2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def pyiqa_metric(name: str, **options: Any) -> tuple[Any, str]:
    """Return (pyiqa metric or None, reason when None); never raises."""
    try:
        import pyiqa
    except ImportError as exc:
        return None, f"n/a (pyiqa not installed: {exc})"
    try:
        return pyiqa.create_metric(name, device="cpu", **options), ""
    except Exception as exc:  # offline: pyiqa downloads parameter files on creation
        return None, f"n/a (weights missing: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of ours (best is kept)")
    parser.add_argument("--pyiqa-repeats", type=int, default=1, help="timed calls of pyiqa's")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print("command: python " + " ".join(sys.argv))
    print(f"image: skimage 'coffee' resized to {W}x{H}, degraded copy (x4 area down, bicubic up, "
          "noise 2/255); one thread; crop_border 0; best of "
          f"{args.repeats} (ours) / {args.pyiqa_repeats} (pyiqa) after a warm-up")

    gt, pred = test_pair()
    t_gt = torch.from_numpy(gt).permute(2, 0, 1)[None].float() / 255
    t_pred = torch.from_numpy(pred).permute(2, 0, 1)[None].float() / 255
    reference = {"psnr": basicsr_psnr(gt, pred), "ssim": basicsr_ssim(gt, pred), "niqe": None}
    ours_fn = {"psnr": lambda: psnr(gt, pred), "ssim": lambda: ssim(gt, pred),
               "niqe": lambda: niqe(pred)}

    print(f"\n{'metric':6} {'impl':28} {'seconds':>9} {'value':>12} {'- BasicSR':>11} {'speed-up':>9}")
    for name in ("psnr", "ssim", "niqe"):
        t_ours, v_ours = best_of(ours_fn[name], args.repeats)
        ref = reference[name]
        diff = f"{v_ours - ref:+.1e}" if ref is not None else "-"
        print(f"{name:6} {'ssr-bench (BT.601 Y)' if name != 'niqe' else 'ssr-bench':28} "
              f"{t_ours:9.4f} {v_ours:12.6f} {diff:>11} {'1.0x':>9}")
        variants = [("pyiqa default (YIQ Y)", {"test_y_channel": True})] if name != "niqe" else \
            [("pyiqa default", {})]
        if name != "niqe":
            variants.append(("pyiqa color_space='ycbcr'", {"test_y_channel": True, "color_space": "ycbcr"}))
        for label, options in variants:
            metric, why = pyiqa_metric(name, **options)
            if metric is None:
                print(f"{name:6} {label:28} {why}")
                continue
            call = (lambda m=metric: float(m(t_pred, t_gt))) if name != "niqe" else \
                (lambda m=metric: float(m(t_pred)))
            with torch.no_grad():
                t_py, v_py = best_of(call, args.pyiqa_repeats)
            diff = f"{v_py - ref:+.1e}" if ref is not None else f"{v_py - v_ours:+.1e} vs ours"
            print(f"{name:6} {label:28} {t_py:9.4f} {v_py:12.6f} {diff:>11} {t_py / t_ours:8.1f}x")


if __name__ == "__main__":
    main()
