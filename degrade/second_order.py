"""Draw Real-ESRGAN's and BSRGAN's degradation parameters from the per-sample generator.

The settings are those of Real-ESRGAN's released ``options/train_realesrnet_x4plus.yml`` (also
``train_realesrgan_x4plus.yml``), held in :data:`REALESRGAN_X4PLUS`. Draw order (all from the
sample's numpy generator, then the noise values in pipeline order, see
:func:`degrade.ops.second_order.apply_realesrgan`):

1. first-round kernel: size from 7, 9, ..., 21; with probability sinc_prob a sinc (cutoff
   U(pi/3, pi) below size 13, else U(pi/5, pi)), otherwise a kind from kernel_list with
   kernel_prob, sig_x ~ U(blur_sigma), for aniso kinds sig_y ~ U(blur_sigma) and theta ~
   U(-pi, pi), for generalized/plateau kinds beta ~ U(low, 1) or U(1, high) with probability 1/2;
2. second-round kernel, the same with the second-round ranges;
3. final sinc with probability final_sinc_prob (size, cutoff U(pi/3, pi)), else identity;
4. round 1: resize up/down/keep with resize_prob, its factor, its mode (area, bilinear,
   bicubic), Gaussian (prob gaussian_noise_prob: sigma, gray) or Poisson (scale, gray) noise,
   JPEG quality ~ U(jpeg_range);
5. round 2: blur with second_blur_prob, resize (target ``int(H / s * f)``), noise, then the final
   order (resize + sinc before or after JPEG, 1/2 each), its resize mode, JPEG quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class RealEsrganSettings:
    """Real-ESRGAN x4plus degradation settings (names as in its option files)."""

    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    final_sinc_prob: float = 0.8
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    usm: bool = True  # gt_usm: the LR is made from the USM-sharpened HR


REALESRGAN_X4PLUS = RealEsrganSettings()


def _kernel(rng: np.random.Generator, st: RealEsrganSettings, sigma: tuple[float, float]) -> dict[str, Any]:
    size = int(rng.choice(np.arange(7, 22, 2)))
    if rng.uniform() < st.sinc_prob:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return {"kind": "sinc", "size": size, "omega_c": float(rng.uniform(low, math.pi))}
    kind = _KINDS[int(rng.choice(len(_KINDS), p=np.array(st.kernel_prob) / sum(st.kernel_prob)))]
    k: dict[str, Any] = {"kind": kind, "size": size, "sig_x": float(rng.uniform(*sigma))}
    if kind.endswith("aniso"):
        k["sig_y"], k["theta"] = float(rng.uniform(*sigma)), float(rng.uniform(-math.pi, math.pi))
    else:
        k["sig_y"], k["theta"] = k["sig_x"], 0.0
    if kind.startswith(("generalized", "plateau")):
        lo, hi = st.betag_range if kind.startswith("generalized") else st.betap_range
        k["beta"] = float(rng.uniform(lo, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, hi))
    return k


def _resize_factor(rng: np.random.Generator, prob: tuple[float, float, float],
                   rng_range: tuple[float, float]) -> float:
    kind = int(rng.choice(3, p=np.array(prob) / sum(prob)))
    if kind == 0:
        return float(rng.uniform(1.0, rng_range[1]))
    return float(rng.uniform(rng_range[0], 1.0)) if kind == 1 else 1.0


def _noise(rng: np.random.Generator, gauss_prob: float, sigma: tuple[float, float],
           poisson: tuple[float, float], gray_prob: float) -> dict[str, Any]:
    if rng.uniform() < gauss_prob:
        return {"type": "gaussian", "sigma_255": float(rng.uniform(*sigma)),
                "gray": bool(rng.uniform() < gray_prob)}
    return {"type": "poisson", "scale": float(rng.uniform(*poisson)),
            "gray": bool(rng.uniform() < gray_prob)}


def draw_realesrgan(rng: np.random.Generator, hr_size: tuple[int, int], scale: int,
                    st: RealEsrganSettings = REALESRGAN_X4PLUS) -> dict[str, Any]:
    """Draw every parameter of one sample (JSON-able), in the module docstring's order."""
    h, w = hr_size
    k1, k2 = _kernel(rng, st, st.blur_sigma), _kernel(rng, st, st.blur_sigma2)
    if rng.uniform() < st.final_sinc_prob:
        sinc = {"kind": "sinc", "size": int(rng.choice(np.arange(7, 22, 2))),
                "omega_c": float(rng.uniform(math.pi / 3, math.pi))}
    else:
        sinc = {"kind": "pulse"}
    f1 = _resize_factor(rng, st.resize_prob, st.resize_range)
    r1 = {"blur": k1, "resize": {"scale": f1, "mode": _MODES[int(rng.integers(3))]},
          "noise": _noise(rng, st.gaussian_noise_prob, st.noise_range, st.poisson_scale_range,
                          st.gray_noise_prob),
          "jpeg_quality": float(rng.uniform(*st.jpeg_range))}
    blur2 = k2 if rng.uniform() < st.second_blur_prob else None
    f2 = _resize_factor(rng, st.resize_prob2, st.resize_range2)
    size2 = [max(1, int(h / scale * f2)), max(1, int(w / scale * f2))]
    r2 = {"blur": blur2, "resize": {"size": size2, "mode": _MODES[int(rng.integers(3))]},
          "noise": _noise(rng, st.gaussian_noise_prob2, st.noise_range2, st.poisson_scale_range2,
                          st.gray_noise_prob)}
    order = "resize-sinc-jpeg" if rng.uniform() < 0.5 else "jpeg-resize-sinc"
    final = {"sinc": sinc, "order": order, "mode": _MODES[int(rng.integers(3))],
             "jpeg_quality": float(rng.uniform(*st.jpeg_range))}
    return {"usm": st.usm, "rounds": [r1, r2], "final": final}


def first_kernel_moments(params: dict[str, Any]) -> tuple[float, float, float]:
    """Return (s1, s2, theta) of the Gaussian with the first-round kernel's second moments.

    What ``kernel.npy`` holds for a second-order sample: a summary of its first blur, not the
    degradation (which the json's ``second_order`` records). Identity -> the smallest sigma.
    """
    from .ops.second_order import kernel_from_params

    return _moments(kernel_from_params(params["rounds"][0]["blur"]))


def _moments(k: np.ndarray) -> tuple[float, float, float]:
    """(s1, s2, theta) of the Gaussian with the normalised kernel's second moments (HR px)."""
    ax = np.arange(k.shape[0]) - k.shape[0] // 2
    xx, yy = np.meshgrid(ax, ax)
    cxx, cyy, cxy = (k * xx * xx).sum(), (k * yy * yy).sum(), (k * xx * yy).sum()
    mean, rad = (cxx + cyy) / 2, math.hypot((cxx - cyy) / 2, cxy)
    s1, s2 = math.sqrt(max(mean + rad, 0.0025)), math.sqrt(max(mean - rad, 0.0025))
    theta = 0.5 * math.atan2(2 * cxy, cxx - cyy) % math.pi
    return s1, s2, theta if theta < math.pi else 0.0


# ---------------------------------------------------------------- BSRGAN

_CV2_INTERP = (1, 2, 3)  # cv2.INTER_LINEAR, INTER_CUBIC, INTER_AREA: random.choice([1, 2, 3])


def _bsrgan_blur(rng: np.random.Generator, sf: int) -> dict[str, Any]:
    """``add_blur``: 50% anisotropic (variances U(0, 4 + sf)), else isotropic (std U(0, 2 + 0.2 sf))."""
    if rng.uniform() < 0.5:
        wd2 = 4.0 + sf
        l1, l2 = wd2 * rng.uniform(), wd2 * rng.uniform()
        size = 2 * int(rng.integers(2, 12)) + 3
        return {"kind": "aniso", "size": size, "theta": float(rng.uniform() * math.pi),
                "l1": float(l1), "l2": float(l2)}
    size = 2 * int(rng.integers(2, 12)) + 3
    return {"kind": "iso", "size": size, "sigma": float((2.0 + 0.2 * sf) * rng.uniform())}


def draw_bsrgan(rng: np.random.Generator, scale: int) -> dict[str, Any]:
    """Draw every parameter of BSRGAN's ``degradation_bsrgan`` for one sample (JSON-able).

    Order: the optional first x1/2 (x4 only, 25%: cv2 with a random interpolation or MATLAB
    bicubic, 1/2 each); a random order of the seven steps (two blurs, downsample2, downsample3,
    Gaussian noise, JPEG 90%, camera ISP), downsample2 kept before downsample3; each step's
    parameters in that order; the final JPEG quality. The ISP step has no model in the released
    code's defaults, so it draws and does nothing, as theirs.
    """
    down1 = None
    sf = scale
    if scale == 4 and rng.uniform() < 0.25:
        if rng.uniform() < 0.5:
            down1 = {"method": "cv2", "interp": int(rng.choice(_CV2_INTERP))}
        else:
            down1 = {"method": "matlab"}
        sf = 2
    order = [int(v) for v in rng.permutation(7)]
    i2, i3 = order.index(2), order.index(3)
    if i2 > i3:  # keep downsample3 after downsample2
        order[i2], order[i3] = order[i3], order[i2]
    ops: list[dict[str, Any]] = []
    for step in order:
        if step in (0, 1):
            ops.append({"op": "blur", "kernel": _bsrgan_blur(rng, sf)})
        elif step == 2:
            if rng.uniform() < 0.75:
                ops.append({"op": "down2", "sf1": float(rng.uniform(1, 2 * sf)),
                            "interp": int(rng.choice(_CV2_INTERP))})
            else:
                ops.append({"op": "down2", "sigma": float(rng.uniform(0.1, 0.6 * sf))})
        elif step == 3:
            ops.append({"op": "down3", "interp": int(rng.choice(_CV2_INTERP))})
        elif step == 4:
            level, r = int(rng.integers(2, 26)), float(rng.uniform())
            noise: dict[str, Any] = {"op": "noise", "level": level}
            if r > 0.6:
                noise["kind"] = "color"
            elif r < 0.4:
                noise["kind"] = "gray"
            else:
                noise.update(kind="correlated", level2=25, D=rng.uniform(size=3).tolist(),
                             A=rng.uniform(size=(3, 3)).tolist())
            ops.append(noise)
        elif step == 5:
            ops.append({"op": "jpeg",
                        "quality": int(rng.integers(30, 96)) if rng.uniform() < 0.9 else None})
        else:
            rng.uniform()  # isp_prob is drawn; no ISP model in the released defaults
            ops.append({"op": "isp", "applied": False})
    return {"down1": down1, "ops": ops, "final_jpeg_quality": int(rng.integers(30, 96))}


def bsrgan_first_blur_moments(params: dict[str, Any]) -> tuple[float, float, float]:
    """(s1, s2, theta) of the Gaussian with the first blur's second moments (kernel.npy summary)."""
    from .ops.bsrgan import bsrgan_kernel

    blur = next(op["kernel"] for op in params["ops"] if op["op"] == "blur")
    return _moments(bsrgan_kernel(blur))
