"""Fused Triton backend of :func:`degrade.ops.blur.apply_kernel_field` (Eq. 1, direct downsampler).

The same sum as the other backends, ``LR[c, i, j] = sum_{a, b} HRpad[c, s*i + a, s*j + b] k_ij[a, b]``,
in one GPU kernel: each LR pixel's K*K weights are computed in registers and the channels are
accumulated in the same pass, so nothing but the padded image, the field and the output touches
memory (the torch backend materialises a K*K x pixels weight matrix per chunk).

Launch grid and work per program:

* grid ``(cdiv(H/s * W/s, BLOCK), B)``: program ``(p, n)`` owns the ``BLOCK`` consecutive LR pixels
  ``p*BLOCK ..`` (row-major over the H/s x W/s grid) of image ``n``.
* It loads ``(s1, s2, theta)`` of its pixels, forms ``Sigma^-1 = [[A, B], [B, C]]`` and the shift
  that makes the tap nearest the kernel centre weigh exactly 1 (the torch backend's shift), then
  runs over the K x K taps in a runtime loop. Per tap: exponent ``-0.5 d^T Sigma^-1 d - shift``
  floored at ``kernels.LOG_FLOOR`` = -50 (the torch backend's floor: exp(-50) < 2e-22 of the
  peak, and no denormals), ``exp``, add to the weight sum, and one masked (CP, BLOCK) load of the
  tap's pixels for all channels (CP = C rounded up to a power of two) multiplied into a float32
  accumulator.
* It divides by the weight sum and stores (C, BLOCK) outputs. No atomics and a fixed tap order:
  the result is deterministic run to run and does not depend on BLOCK.

The HR image is read through its polyphase split (``blur._polyphase``: reflect-padded, then
``poly[a % s, b % s, n, c] = padded[n, c, a::s, b::s]``), so the pixels that one tap needs for
consecutive LR columns are consecutive in memory (coalesced loads). Offsets are int64, so large
batches cannot overflow. K and s are compile-time constants (one compiled kernel per K, s, C).

On a CPU the kernel runs under Triton's interpreter (``TRITON_INTERPRET=1`` set before triton is
imported); that is how CI checks it against the direct formula.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .kernels import LOG_FLOOR  # the one floor of shifted exponents (torch backend, kernels)

# LR pixels per program: 128 pixels x 4 channel lanes fill 4 warps; a row of 510 LR pixels (x4 of
# 2040 px) spans 4 programs, whose neighbouring taps share cache lines in L1/L2.
BLOCK = 128
NUM_WARPS = 4


@triton.jit
def _svblur_kernel(
    poly_ptr, field_ptr, out_ptr,
    n_lr, w_lr, delta,
    st_p, st_q, st_n, st_c, st_row,
    f_st_n, f_st_c,
    o_st_n, o_st_c,
    dn, log_floor,
    C: tl.constexpr, CP: tl.constexpr, K: tl.constexpr, S: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    pix = pid * BLOCK + tl.arange(0, BLOCK)  # flat LR index i * w_lr + j
    live = pix < n_lr
    i = pix // w_lr
    j = pix - i * w_lr
    i64 = i.to(tl.int64)
    j64 = j.to(tl.int64)

    fbase = field_ptr + n * f_st_n + pix
    s1 = tl.load(fbase, mask=live, other=1.0)
    s2 = tl.load(fbase + f_st_c, mask=live, other=1.0)
    th = tl.load(fbase + 2 * f_st_c, mask=live, other=0.0)
    cs = tl.cos(th)
    sn = tl.sin(th)
    i1 = 1.0 / (s1 * s1)
    i2 = 1.0 / (s2 * s2)
    pa = cs * cs * i1 + sn * sn * i2
    pb = cs * sn * (i1 - i2)
    pc = sn * sn * i1 + cs * cs * i2
    # The exponent at the tap nearest the centre, d = (dn, dn): subtracting it makes that tap's
    # weight exactly 1, so the sum is >= 1 and the floor below is relative to the peak.
    shift = -0.5 * dn * dn * (pa + 2.0 * pb + pc)

    ch = tl.arange(0, CP)
    cmask = ch < C
    # (CP, BLOCK) element offsets of tap (0, 0) in phase (0, 0): channel, LR row i, LR column j.
    base = n * st_n + ch.to(tl.int64)[:, None] * st_c + (i64 * st_row + j64)[None, :]
    lmask = cmask[:, None] & live[None, :]

    # int64 copies of the strides, so that tap offsets (loop indices times strides) cannot wrap
    # around for big batches (a loop index cannot be cast portably: a tensor when compiled, an
    # int in the interpreter).
    zero = n * 0
    st_p64 = zero + st_p
    st_q64 = zero + st_q
    st_row64 = zero + st_row

    acc = tl.zeros((CP, BLOCK), dtype=tl.float32)
    wsum = tl.zeros((BLOCK,), dtype=tl.float32)
    for a in range(K):
        dy = (a - K // 2) - delta
        # Per row: e(dx) = ey + dx * (bxy - 0.5 * A * dx), the quadratic form minus the shift.
        ey = -0.5 * pc * dy * dy - shift
        bxy = -pb * dy
        row_off = (a % S) * st_p64 + (a // S) * st_row64
        for b in range(K):
            dx = (b - K // 2) - delta
            e = ey + dx * (bxy - 0.5 * pa * dx)
            wgt = tl.exp(tl.maximum(e, log_floor))
            wsum += wgt
            off = row_off + (b % S) * st_q64 + (b // S)
            px = tl.load(poly_ptr + base + off, mask=lmask, other=0.0)
            acc += px.to(tl.float32) * wgt[None, :]

    res = acc / wsum[None, :]
    obase = n * o_st_n + ch.to(tl.int64)[:, None] * o_st_c + pix.to(tl.int64)[None, :]
    tl.store(out_ptr + obase, res, mask=lmask)


def apply_kernel_field_triton(poly: torch.Tensor, params: torch.Tensor, scale: int, kernel_size: int,
                              delta: float, dn: float, out_hw: tuple[int, int]) -> torch.Tensor:
    """Run the fused kernel on a polyphase-split, reflect-padded HR batch.

    Called by ``apply_kernel_field(..., backend="triton")`` after its checks; not a public entry.

    Args:
        poly: (s, s, B, C, Hq, Wq) float32, contiguous: ``blur._polyphase(hr, K // 2, s)``.
        params: (B, 3, H/s, W/s) field of (s1, s2, theta), HR px and radians.
        scale: s; kernel_size: odd K; delta: LR grid offset in HR px.
        dn: the tap offset nearest the kernel centre, ``argmin |a - delta|`` (sets the shift).
        out_hw: (H/s, W/s).

    Returns:
        (B, C, H/s, W/s) float32 on poly's device.
    """
    _, _, b, c, _, _ = poly.shape
    h, w = out_hw
    field = params.to(torch.float32).contiguous()
    out = torch.empty(b, c, h, w, dtype=torch.float32, device=poly.device)
    if b == 0 or h * w == 0:
        return out
    st = poly.stride()
    grid = (triton.cdiv(h * w, BLOCK), b)
    _svblur_kernel[grid](
        poly, field, out,
        h * w, w, float(delta),
        st[0], st[1], st[2], st[3], st[4],
        field.stride(0), field.stride(1),
        out.stride(0), out.stride(1),
        float(dn), LOG_FLOOR,
        C=c, CP=triton.next_power_of_2(c), K=kernel_size, S=scale, BLOCK=BLOCK,
        num_warps=NUM_WARPS,
    )
    return out
