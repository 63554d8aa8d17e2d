"""Fused Triton backend of :func:`degrade.ops.blur.apply_kernel_field` (Eq. 1, direct downsampler).

The same sum as the other backends, ``LR[c, i, j] = sum_{a, b} HRpad[c, s*i + a, s*j + b] k_ij[a, b]``,
in one GPU kernel: each LR pixel's K*K weights are computed in registers and the channels are
accumulated in the same pass, so nothing but the HR image, the field and the output touches
memory (the torch backend materialises a K*K x pixels weight matrix per chunk).

Launch grid and work per program:

* grid ``(cdiv(H/s * W/s, BLOCK), B)`` for RGB, ``(cdiv(H/s * W/s, BLOCK), B * C)`` otherwise:
  program ``(p, q)`` owns the ``BLOCK`` consecutive LR pixels ``p*BLOCK ..`` (row-major over the
  H/s x W/s grid) of image ``q`` (RGB: all three channels at once) or of plane ``q % C`` of
  image ``q // C``.
* It loads ``(s1, s2, theta)`` of its pixels, forms ``Sigma^-1 = [[A, B], [B, C]]`` and the shift
  that makes the tap nearest the kernel centre weigh exactly 1 (the torch backend's shift), then
  runs over the K x K taps in a runtime loop. Per tap: exponent ``-0.5 d^T Sigma^-1 d - shift``
  floored at ``kernels.LOG_FLOOR`` = -50 (the torch backend's floor: exp(-50) < 2e-22 of the
  peak, and no denormals), ``exp``, add to the weight sum, and one load per channel multiplied
  into a float32 accumulator.
* It divides by the weight sum and stores the outputs. No atomics and a fixed tap order: the
  result is deterministic run to run and does not depend on BLOCK.

The HR image is read in place: the numpy-'reflect' border is applied to the row and column
indices (``x -> |x|``, then ``x -> (n-1) - |(n-1) - x|``, exact while K // 2 < H, W, which
``apply_kernel_field`` checks), so no padded or polyphase copy is made. On an H200 that copy cost
more than the kernel itself (0.11 of 0.26 ms per 2040x1356 image); consecutive LR pixels read
HR pixels s apart, and the K taps of a row reuse those cache lines from L1. Offsets are int64,
so large batches cannot overflow. K and s are compile-time constants (one compiled kernel per
K, s and channel mode).

On a CPU the kernel runs under Triton's interpreter (``TRITON_INTERPRET=1`` set before triton is
imported); that is how CI checks it against the direct formula.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from .kernels import LOG_FLOOR  # the one floor of shifted exponents (torch backend, kernels)

# LR pixels per program. Measured on an H200 at 2040x1356, batch 8 (bench/engine.py): 128 pixels
# on 4 warps, runtime tap loops, 0.118 ms per image; 256/8 warps and unrolled column loops were
# within 3%, BLOCK 512 or 2 warps with unrolling up to 2x slower.
BLOCK = 128
NUM_WARPS = 4


@triton.jit
def _reflect(x, last):
    """numpy 'reflect' of index x into [0, last] (one fold: the border is at most last wide)."""
    x = tl.abs(x)
    return last - tl.abs(last - x)


@triton.jit
def _precision(fptr, f_st_c, live, dn):
    """Load (s1, s2, theta) at ``fptr`` and return Sigma^-1 = [[pa, pb], [pb, pc]] and the shift.

    The shift is the exponent at the tap nearest the centre, d = (dn, dn): subtracting it makes
    that tap's weight exactly 1, so a pixel's weight sum is >= 1 and the exponent floor is
    relative to its peak. Shared by the forward and backward kernels (the same float32 ops).
    """
    s1 = tl.load(fptr, mask=live, other=1.0)
    s2 = tl.load(fptr + f_st_c, mask=live, other=1.0)
    th = tl.load(fptr + 2 * f_st_c, mask=live, other=0.0)
    cs = tl.cos(th)
    sn = tl.sin(th)
    i1 = 1.0 / (s1 * s1)
    i2 = 1.0 / (s2 * s2)
    pa = cs * cs * i1 + sn * sn * i2
    pb = cs * sn * (i1 - i2)
    pc = sn * sn * i1 + cs * cs * i2
    return pa, pb, pc, -0.5 * dn * dn * (pa + 2.0 * pb + pc)


@triton.jit
def _tap_weight(ey, bxy, pa, dx, log_floor):
    """Unnormalised weight of the tap at column offset dx of a row.

    Per row the shifted exponent is e(dx) = ey + dx * (bxy - 0.5 * A * dx), with ey and bxy
    the row's terms of -0.5 d^T Sigma^-1 d - shift; it is floored at ``log_floor`` before exp.
    Shared by the forward and backward kernels (the same float32 ops).
    """
    return tl.exp(tl.maximum(ey + dx * (bxy - 0.5 * pa * dx), log_floor))


@triton.jit
def _tap_row(a, K: tl.constexpr, delta, pb, pc, shift, img, r0, h_hr, st_row):
    """Row terms of tap row ``a``: (ey, bxy) for :func:`_tap_weight` and the row's HR pointer.

    ``r0`` is the HR row of tap (0, 0) before reflection. Shared by the forward and backward
    kernels, so both walk the same taps with the same float32 ops.
    """
    dy = (a - K // 2) - delta
    row = img + _reflect(r0 + a, h_hr - 1).to(tl.int64) * st_row
    return -0.5 * pc * dy * dy - shift, -pb * dy, row


@triton.jit
def _tap(b, K: tl.constexpr, delta, ey, bxy, pa, log_floor, row, c0, w_hr):
    """Weight of tap (a, b) (row terms from :func:`_tap_row`) and its HR pixel pointer."""
    dx = (b - K // 2) - delta
    return _tap_weight(ey, bxy, pa, dx, log_floor), row + _reflect(c0 + b, w_hr - 1)


@triton.jit
def _svblur_kernel(
    hr_ptr, field_ptr, out_ptr,
    n_lr, w_lr, h_hr, w_hr, delta,
    st_n, st_c, st_row,
    f_st_n, f_st_c,
    o_st_n, o_st_c,
    dn, log_floor,
    RGB: tl.constexpr, C: tl.constexpr, K: tl.constexpr, S: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    q = tl.program_id(1).to(tl.int64)
    if RGB:
        n = q
        ch = q * 0
    else:
        n = q // C
        ch = q - n * C
    pix = pid * BLOCK + tl.arange(0, BLOCK)  # flat LR index i * w_lr + j
    live = pix < n_lr
    i = pix // w_lr
    j = pix - i * w_lr

    pa, pb, pc, shift = _precision(field_ptr + n * f_st_n + pix, f_st_c, live, dn)

    # HR row/column of tap (0, 0) for each LR pixel, before reflection.
    r0 = i * S - K // 2
    c0 = j * S - K // 2
    img = hr_ptr + n * st_n + ch * st_c
    acc0 = tl.zeros((BLOCK,), dtype=tl.float32)
    acc1 = tl.zeros((BLOCK,), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK,), dtype=tl.float32)
    wsum = tl.zeros((BLOCK,), dtype=tl.float32)
    for a in range(K):
        ey, bxy, row = _tap_row(a, K, delta, pb, pc, shift, img, r0, h_hr, st_row)
        for b in range(K):
            wgt, px = _tap(b, K, delta, ey, bxy, pa, log_floor, row, c0, w_hr)
            wsum += wgt
            acc0 += tl.load(px, mask=live, other=0.0).to(tl.float32) * wgt
            if RGB:
                acc1 += tl.load(px + st_c, mask=live, other=0.0).to(tl.float32) * wgt
                acc2 += tl.load(px + 2 * st_c, mask=live, other=0.0).to(tl.float32) * wgt

    inv = 1.0 / wsum
    obase = out_ptr + n * o_st_n + ch * o_st_c + pix.to(tl.int64)
    tl.store(obase, acc0 * inv, mask=live)
    if RGB:
        tl.store(obase + o_st_c, acc1 * inv, mask=live)
        tl.store(obase + 2 * o_st_c, acc2 * inv, mask=live)


def apply_kernel_field_triton(hr: torch.Tensor, kernel_field: torch.Tensor, scale: int, kernel_size: int,
                              delta: float, dn: float) -> torch.Tensor:
    """Run the fused kernel on an HR batch read in place (reflect border applied to indices).

    Called by ``apply_kernel_field(..., backend="triton")`` after its checks; not a public entry.

    Args:
        hr: (B, C, H, W) float tensor (float32 accumulation whatever its dtype), H and W multiples
            of ``scale`` and larger than ``kernel_size // 2``.
        kernel_field: (B, 3, H/s, W/s) field of (s1, s2, theta), HR px and radians.
        scale: s; kernel_size: odd K; delta: LR grid offset in HR px.
        dn: the tap offset nearest the kernel centre, ``argmin |a - delta|`` (sets the shift).

    Returns:
        (B, C, H/s, W/s) float32 on hr's device.
    """
    b, c, h_hr, w_hr = hr.shape
    h, w = h_hr // scale, w_hr // scale
    if hr.stride(3) != 1:
        hr = hr.contiguous()
    kernel_field32 = kernel_field.to(torch.float32).contiguous()
    out = torch.empty(b, c, h, w, dtype=torch.float32, device=hr.device)
    if b == 0 or c == 0 or h * w == 0:
        return out
    rgb = c == 3
    grid = (triton.cdiv(h * w, BLOCK), b if rgb else b * c)
    # Triton launches on the current CUDA device: make it the tensors' one (cuda:N, N > 0).
    on_cuda = hr.device.type == "cuda"
    with torch.cuda.device(hr.device) if on_cuda else contextlib.nullcontext():
        _svblur_kernel[grid](
            hr, kernel_field32, out,
            h * w, w, h_hr, w_hr, float(delta),
            hr.stride(0), hr.stride(1), hr.stride(2),
            kernel_field32.stride(0), kernel_field32.stride(1),
            out.stride(0), out.stride(1),
            float(dn), LOG_FLOOR,
            RGB=rgb, C=c, K=kernel_size, S=scale, BLOCK=BLOCK,
            num_warps=NUM_WARPS,
        )
    return out
