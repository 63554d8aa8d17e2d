"""Exact spatially variant blur + direct downsampling (Eq. 1 of the SSR paper, DESIGN.md sec. 3).

``LR[c, i, j] = sum_{a, b = -R..R} HRpad[c, s*i + a, s*j + b] * k_ij[a, b]`` with ``k_ij`` the
normalized anisotropic Gaussian of the field at LR pixel (i, j) and HRpad the numpy-'reflect'
padding. Only LR positions are computed, so the cost is K*K taps per *LR* pixel: s^2 fewer than a
full-resolution blur.

Four backends compute the same sum (each is tested against the literal formula):

* ``"c"``, the CPU fast path (``_svblur.c``, built as an optional extension at install): per LR
  pixel the K*K weights come from exact multiplicative recurrences (the exponent is quadratic in
  the tap offset, so neighbouring weights differ by a geometric sequence of factors), started at
  the tap nearest the kernel centre in double precision, and a tile of 8 LR pixels accumulates in
  vector registers. About 9 ``exp`` per LR pixel instead of K*K. It is used for float32 CPU
  tensors when every sigma is above :func:`c_backend_min_sigma` (below it a start value could
  underflow while its row still carries weight).
* ``"autograd"``: the same sum through ``F.unfold`` and a softmax over the taps, so gradients
  flow to ``hr`` and ``kernel_field`` (data-consistency steps, kernel re-degradation losses); it holds
  all K*K patches at once, so keep it to training-sized crops. ``auto`` picks it when either
  input requires grad (the other backends write into preallocated buffers).
* ``"triton"``, the GPU fast path (:mod:`degrade.ops.blur_triton`): one fused kernel computes
  each LR pixel's K*K weights in registers and accumulates all channels in one pass, in float32,
  without atomics. ``auto`` picks it for CUDA tensors when triton is installed and no input
  requires grad. Asked for explicitly with inputs that require grad, it runs a fused backward
  too (:mod:`degrade.ops.blur_triton_grad`); ``auto`` keeps ``autograd`` for those until that
  backward is measured on a GPU. On a CPU it runs only under Triton's interpreter (tests).
* ``"torch"``, pure torch on any device (CUDA included), chunked over LR rows:

How the torch path stays fast on a CPU (measured in bench/engine.py):

* The padded HR image is split into its s x s polyphase components once, so the pixels that tap
  (a, b) needs for all LR positions form one dense slice ``poly[a % s][b % s][a // s :, b // s :]``.
* The K*K unnormalized weights of a chunk of LR rows are one matrix product
  ``[-dx^2/2, -dx dy, -dy^2/2] @ [A, B, C]`` followed by one in-place ``exp``; chunks are small
  enough to stay in cache.
* Exponents are shifted so that each pixel's largest weight is >= 1 and floored at -50:
  denormal numbers make x86 ``exp`` and multiplies about 30x slower, and such weights change
  nothing at float32 precision.
* Taps that carry less than 1e-11 of the peak weight for every pixel of a chunk are skipped
  (a bound from the chunk's largest sigma), so narrow kernels cost fewer taps.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from typing import Literal, get_args

import cv2
import torch
import torch.nn.functional as F

from ssr_core.errors import ConfigError

from .kernels import LOG_FLOOR, centered_delta, check_kernel_size, precision_terms, tap_offsets

# A tap is left out of a chunk when its weight is below this share of the pixel's largest weight
# for every pixel of the chunk; the K*K such shares add up to < 5e-9 of the sum (float32 eps 1.2e-7).
_PRUNE_LOG = math.log(1e-11)

# LR pixels per chunk: the chunk's K*K x n weight matrix (about 14 MB at K=21) and the slices it
# multiplies stay in the L2/L3 caches of a typical core.
_CHUNK_PIXELS = 8192


Backend = Literal["auto", "c", "triton", "torch", "autograd"]
ChosenBackend = Literal["c", "triton", "torch", "autograd"]
# Input dtypes the fused kernel reads (it accumulates in float32 and returns hr's dtype).
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

try:
    from . import _svblur
except ImportError:  # the extension is optional; the torch path computes the same sum
    _svblur = None


def c_backend_min_sigma(kernel_size: int, delta: float) -> float:
    """Return the smallest sigma (HR px) for which the C backend's recurrences cannot underflow.

    A row's recurrence starts at the centre column (|dx| <= 0.5) with exponent
    >= -(0.25 + dy_max^2) / (2 sigma_min^2), dy_max = R + |delta|; doubles hold it down to -700.
    """
    dy = kernel_size // 2 + abs(delta)
    return math.sqrt((0.25 + dy * dy) / 1400.0)


def triton_available() -> bool:
    """Return True when the ``triton`` package can be imported (the ``gpu`` extra)."""
    return importlib.util.find_spec("triton") is not None


def _triton_problem(hr: torch.Tensor) -> str | None:
    """Return why the fused kernel cannot run these inputs, or None when it can."""
    if not triton_available():
        return "needs triton: pip install 'ssr-bench[gpu]'"
    if hr.dtype not in _TRITON_DTYPES:
        return f"reads float32, float16 or bfloat16, got {hr.dtype}"
    if hr.device.type != "cuda" and not interpreting():
        return (f"runs on CUDA tensors (got {hr.device}); on a CPU only under Triton's "
                "interpreter (TRITON_INTERPRET=1)")
    return None


def interpreting() -> bool:
    """Return True when Triton kernels run on its CPU interpreter (``TRITON_INTERPRET=1``)."""
    # Triton reads the variable when it is imported; the tests set it before that.
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def select_backend(hr: torch.Tensor, kernel_field: torch.Tensor, kernel_size: int, delta: float,
                   backend: Backend = "auto") -> ChosenBackend:
    """Return the backend apply_kernel_field uses for these inputs ("c", "triton", "torch", "autograd").

    ``auto``: ``autograd`` whenever hr or kernel_field requires grad (no other backend has a backward,
    so none of them may silently drop gradients); else ``triton`` for CUDA tensors when triton is
    installed; else ``c`` when it applies; else ``torch``.

    Raises:
        ConfigError: an unknown name, or an explicit backend that cannot run these inputs.
    """
    if backend not in get_args(Backend):
        names = ", ".join(map(repr, get_args(Backend)))
        raise ConfigError(f"backend must be one of {names}, got {backend!r}")
    grad = hr.requires_grad or kernel_field.requires_grad
    if backend == "autograd" or (backend == "auto" and grad):
        return "autograd"
    # auto + grad took autograd above: the fused backward (explicit "triton") is not yet measured
    # on a GPU against it, so auto keeps the path whose speed is known.
    if backend == "triton" or (backend == "auto" and hr.device.type == "cuda"):
        problem = _triton_problem(hr)
        if problem is None:
            return "triton"
        if backend == "triton":
            raise ConfigError(f"the triton backend {problem}")
    ok = (_svblur is not None and hr.device.type == "cpu" and hr.dtype == torch.float32
          and hr.shape[1] <= 4 and not grad
          and float(kernel_field[:, :2].min()) > c_backend_min_sigma(kernel_size, delta))
    if backend == "c" and not ok:
        raise ConfigError(
            "the C backend needs the compiled extension degrade.ops._svblur"
            f"{'' if _svblur is not None else ' (not built: reinstall with a C compiler)'}, "
            "float32 CPU tensors with <= 4 channels and no grad, and every sigma > "
            f"{c_backend_min_sigma(kernel_size, delta):.3f} px"
        )
    if backend == "torch":
        return "torch"
    return "c" if ok else "torch"


def apply_kernel_field(
    hr: torch.Tensor,
    kernel_field: torch.Tensor,
    scale: int,
    kernel_size: int = 21,
    delta: float | None = None,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Blur HR with a per-LR-pixel Gaussian and sample at LR positions (Eq. 1, direct).

    Args:
        hr: (B, C, H, W) float image (any range; [0, 1] by convention), H and W multiples of
            ``scale`` and larger than ``kernel_size // 2`` (reflect padding).
        kernel_field: (B, 3, H/s, W/s) kernel field (s1, s2, theta): standard deviations in HR px, radians.
        scale: integer downsampling factor s >= 1.
        kernel_size: odd window size K in HR px.
        delta: LR grid offset in HR px; ``None`` means centred, (s - 1) / 2.
        backend: "auto" (see :func:`select_backend`), "c", "triton", "torch" or "autograd".
            All agree with the direct formula to float32 precision.

    Returns:
        (B, C, H/s, W/s) tensor on hr's device and dtype.

    >>> hr = torch.rand(1, 3, 32, 32)
    >>> field = torch.tensor([1.2, 0.8, 0.3]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    >>> tuple(apply_kernel_field(hr, field, scale=4, kernel_size=9).shape)
    (1, 3, 8, 8)
    """
    _check_inputs(hr, kernel_field, scale, kernel_size)
    if delta is None:
        delta = centered_delta(scale)
    b_, c_, h_hr, w_hr = hr.shape
    h, w = h_hr // scale, w_hr // scale
    r = kernel_size // 2
    dtype, device = hr.dtype, hr.device
    chosen = select_backend(hr, kernel_field, kernel_size, delta, backend)
    if chosen == "triton":  # the kernel reads the field in float32 whatever hr's dtype
        return _apply_triton(hr, kernel_field, scale, kernel_size, delta)
    kernel_field = kernel_field.to(dtype)
    if chosen == "c":
        return _apply_c(hr, kernel_field, scale, kernel_size, delta)
    if chosen == "autograd":
        return _apply_autograd(hr, kernel_field, scale, kernel_size, delta)

    poly = _polyphase(hr, r, scale)  # (s, s, B, C, Hq, Wq)
    st = poly.stride()

    a_, b_term, c_term = precision_terms(kernel_field[:, 0], kernel_field[:, 1], kernel_field[:, 2])
    d = tap_offsets(kernel_size, delta, dtype, device)
    # Exponents are shifted by their value at the tap nearest the kernel centre, so the largest
    # weight of every pixel is >= 1: weights are then floored at exp(-50) (their share of the
    # sum is < 1e-19) and no product with a pixel value is denormal.
    near = int(torch.argmin(d.abs()))
    dn = float(d[near])
    shift = -0.5 * dn * dn * (a_ + 2 * b_term + c_term)
    coeffs = torch.stack([a_, b_term, c_term, -shift], dim=1)  # (B, 4, h, w)
    dy = d.view(-1, 1).expand(kernel_size, kernel_size).reshape(-1)
    dx = d.view(1, -1).expand(kernel_size, kernel_size).reshape(-1)
    basis = torch.stack([-0.5 * dx * dx, -dx * dy, -0.5 * dy * dy, torch.ones_like(dx)], dim=1)
    radius2 = (dx * dx + dy * dy).tolist()
    smax = kernel_field[:, :2].amax(dim=1)  # (B, h, w): the largest standard deviation per pixel
    # Storage offset of tap (a, b)'s slice for LR pixel (0, 0) of image 0.
    tap_base = [(a % scale) * st[0] + (b % scale) * st[1] + (a // scale) * st[4]
                + (b // scale) * st[5] for a in range(kernel_size) for b in range(kernel_size)]

    out = torch.empty(b_, c_, h, w, dtype=dtype, device=device)
    rows = max(1, min(h, _CHUNK_PIXELS // max(w, 1)))
    # Preallocated so that no chunk pays for fresh pages.
    wbuf = torch.empty(kernel_size * kernel_size, rows * w, dtype=dtype, device=device)
    abuf = torch.empty(c_, rows, w, dtype=dtype, device=device)
    for n in range(b_):
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            m = r1 - r0
            taps = _live_taps(radius2, float(smax[n, r0:r1].max()), float(shift[n, r0:r1].min()))
            weights = wbuf[: len(taps), : m * w]
            torch.mm(basis[taps], coeffs[n, :, r0:r1].reshape(4, m * w), out=weights)
            weights.clamp_min_(LOG_FLOOR).exp_()  # see kernels.LOG_FLOOR
            total = weights.sum(0).view(1, m, w)
            acc = abuf[:, :m].zero_()
            offset = n * st[2] + r0 * st[4]
            size, stride = (c_, m, w), (st[3], st[4], st[5])
            for k, wk in zip(taps, weights.view(-1, m, w).unbind(0), strict=True):
                acc.addcmul_(poly.as_strided(size, stride, tap_base[k] + offset), wk)
            torch.div(acc, total, out=out[n, :, r0:r1])
    return out


def _apply_autograd(hr: torch.Tensor, kernel_field: torch.Tensor, scale: int, kernel_size: int,
                    delta: float) -> torch.Tensor:
    b, c, h_hr, w_hr = hr.shape
    h, w, r = h_hr // scale, w_hr // scale, kernel_size // 2
    d = tap_offsets(kernel_size, delta, hr.dtype, hr.device)
    dy = d.view(-1, 1).expand(kernel_size, kernel_size).reshape(-1, 1, 1)
    dx = d.view(1, -1).expand(kernel_size, kernel_size).reshape(-1, 1, 1)
    a_, b_t, c_t = (x.unsqueeze(1)
                    for x in precision_terms(kernel_field[:, 0], kernel_field[:, 1], kernel_field[:, 2]))
    # softmax over the taps = exp(q) / sum exp(q), the normalized kernel, without overflow
    weights = torch.softmax(-0.5 * (a_ * dx * dx + 2 * b_t * dx * dy + c_t * dy * dy), dim=1)
    padded = F.pad(hr, (r, r, r, r), mode="reflect")
    patches = F.unfold(padded, kernel_size, stride=scale)  # (B, C*K*K, rows*cols)
    cols = (padded.shape[-1] - kernel_size) // scale + 1
    patches = patches.view(b, c, kernel_size * kernel_size, -1, cols)[..., :h, :w]
    return (patches * weights.unsqueeze(1)).sum(2)


def _apply_triton(hr: torch.Tensor, kernel_field: torch.Tensor, scale: int, kernel_size: int,
                  delta: float) -> torch.Tensor:
    from .blur_triton import apply_kernel_field_triton

    d = tap_offsets(kernel_size, delta)  # float32, as the kernel computes its offsets
    dn = float(d[int(torch.argmin(d.abs()))])
    if hr.requires_grad or kernel_field.requires_grad:
        from .blur_triton_grad import TritonBlur

        return TritonBlur.apply(hr, kernel_field, scale, kernel_size, delta, dn).to(hr.dtype)
    return apply_kernel_field_triton(hr, kernel_field, scale, kernel_size, delta, dn).to(hr.dtype)


def _apply_c(hr: torch.Tensor, kernel_field: torch.Tensor, scale: int, kernel_size: int,
             delta: float) -> torch.Tensor:
    b, c, h_hr, w_hr = hr.shape
    h, w = h_hr // scale, w_hr // scale
    out = torch.empty(b, c, h, w, dtype=torch.float32)
    for n in range(b):
        # (s, s, C, Hq, Wq) in this thread's reused buffer: a fresh 32 MiB buffer per call is
        # above glibc's mmap threshold, so every call paid ~8,000 page faults of zeroed pages
        # (issue 15: 71 -> 50 ms per 2040x1356 image).
        poly = _polyphase(hr[n:n + 1], kernel_size // 2, scale, reuse=True)[:, :, 0]
        field_n = kernel_field[n].contiguous()
        if not poly.is_contiguous():
            poly = poly.contiguous()
        hq, wq = poly.shape[-2:]
        _svblur.svblur(poly.data_ptr(), out[n].data_ptr(), field_n.data_ptr(), c, h, w, hq, wq,
                       scale, kernel_size, float(delta))
    return out


def _live_taps(radius2: list[float], smax: float, min_shift: float) -> list[int]:
    """Return the taps that can carry weight for some pixel of a chunk.

    For every pixel, tap k's shifted exponent is at most ``-|d_k|^2 / (2 smax^2) - shift``
    (the quadratic form is at least |d|^2 over the largest variance); ``shift`` <= 0.
    """
    limit = _PRUNE_LOG + min_shift
    inv = 0.5 / (smax * smax)
    return [k for k, r2 in enumerate(radius2) if -r2 * inv >= limit]


def _polyphase(hr: torch.Tensor, r: int, scale: int, reuse: bool = False) -> torch.Tensor:
    """Reflect-pad by r, pad to a multiple of s, and split into (s, s, B, C, Hq, Wq) phases.

    ``poly[p, q, n, c] = padded[n, c, p::s, q::s]``: the pixels that one tap needs for all LR
    positions form one dense slice. The rows/columns added beyond R are never read. With
    ``reuse`` (CPU) the result lives in a per-thread buffer that the next call overwrites:
    only for callers done with it before they call again.
    """
    b, c, h_hr, w_hr = hr.shape
    h_pad = -(-(h_hr + 2 * r) // scale) * scale
    w_pad = -(-(w_hr + 2 * r) // scale) * scale
    hq, wq = h_pad // scale, w_pad // scale
    extra_h, extra_w = h_pad - h_hr - 2 * r, w_pad - w_hr - 2 * r
    if hr.device.type == "cpu":
        # OpenCV's border copy is ~3x faster than torch's reflection_pad2d on one CPU thread;
        # BORDER_REFLECT_101 is numpy's 'reflect'. Planes go one at a time: de-interleaving
        # channels-last input first (cv2.split) is cheaper than a 5-D transposing copy.
        shape = (scale, scale, b, c, hq, wq)
        poly = _thread_buffer(shape, hr.dtype) if reuse else torch.empty(shape, dtype=hr.dtype)
        border = (r, r + extra_h, r, r + extra_w, cv2.BORDER_REFLECT_101)
        for n in range(b):
            hwc = hr[n].detach().permute(1, 2, 0)
            if hwc.is_contiguous() and 1 < c <= 4:
                planes = cv2.split(hwc.numpy())
            else:
                planes = [hr[n, ch].detach().contiguous().numpy() for ch in range(c)]
            for ch, plane in enumerate(planes):
                padded = torch.from_numpy(cv2.copyMakeBorder(plane, *border))
                poly[:, :, n, ch].copy_(padded.view(hq, scale, wq, scale).permute(1, 3, 0, 2))
        return poly
    padded = F.pad(hr, (r, r, r, r), mode="reflect")
    padded = F.pad(padded, (0, extra_w, 0, extra_h))
    return padded.view(b, c, hq, scale, wq, scale).permute(3, 5, 0, 1, 2, 4).contiguous()


_BUFFERS = threading.local()


def _thread_buffer(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Return an uninitialized tensor of ``shape`` in this thread's grow-only scratch buffer."""
    n = math.prod(shape)
    buf = getattr(_BUFFERS, "buf", None)
    if buf is None or buf.dtype != dtype or buf.numel() < n:
        buf = _BUFFERS.buf = torch.empty(n, dtype=dtype)
    return buf[:n].view(shape)


def _check_inputs(hr: torch.Tensor, kernel_field: torch.Tensor, scale: int, kernel_size: int) -> None:
    check_kernel_size(kernel_size)
    if not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be an integer >= 1, got {scale!r}")
    if hr.ndim != 4 or not hr.is_floating_point():
        raise ConfigError(f"hr must be a float (B, C, H, W) tensor, got {hr.dtype} {tuple(hr.shape)}")
    b, _, h_hr, w_hr = hr.shape
    if h_hr % scale or w_hr % scale:
        raise ConfigError(f"hr size {h_hr}x{w_hr} is not a multiple of scale {scale}; mod-crop it")
    expected = (b, 3, h_hr // scale, w_hr // scale)
    if tuple(kernel_field.shape) != expected:
        raise ConfigError(f"params must have shape {expected} (B, 3, H/s, W/s), "
                          f"got {tuple(kernel_field.shape)}")
    r = kernel_size // 2
    if min(h_hr, w_hr) <= r:
        raise ConfigError(
            f"hr size {h_hr}x{w_hr} is too small for kernel_size {kernel_size}: reflect padding "
            f"needs both sides > {r} px"
        )
    if kernel_field.device != hr.device:
        raise ConfigError(f"params on {kernel_field.device} but hr on {hr.device}")
    s = kernel_field[:, :2]
    if not bool(torch.isfinite(kernel_field).all()) or bool((s <= 0).any()):
        raise ConfigError("params must be finite with s1, s2 > 0 (standard deviations in HR px)")
