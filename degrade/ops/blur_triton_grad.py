"""Backward of the fused Triton blur: d/d(hr) and d/d(kernel_field) of Eq. 1, without atomics.

With ``w_t`` the unnormalised weight of tap t at an LR pixel, ``W = sum_t w_t`` and
``LR_c = sum_t w_t x_ct / W``, an upstream gradient ``g_c`` gives

* ``dL/de_t = w_t / W * (sum_c g_c x_ct - G)`` with ``G = sum_c g_c LR_c`` (e_t the exponent;
  the shift cancels in the normalisation), hence for ``Sigma^-1 = [[A, B], [B, C]]``
  ``dL/dA = -0.5 / W * (S_xx - G T_xx)``, ``dL/dB = -1 / W * (S_xy - G T_xy)``,
  ``dL/dC = -0.5 / W * (S_yy - G T_yy)``, where ``S_.. = sum_t w_t (sum_c g_c x_ct) m_t`` and
  ``T_.. = sum_t w_t m_t`` for the monomials ``m = dx^2, dx dy, dy^2``. The chain to
  ``(s1, s2, theta)`` goes through torch's autograd of :func:`kernels.precision_terms`.
* ``dL/dx_c`` at a reflect-padded HR position ``(p, q)`` gathers ``g_c w / W`` from the LR pixels
  whose windows hold it: rows ``i = p // s - u`` for ``u < ceil(K / s)`` (tap row
  ``a = p - s i < K``), columns likewise. The padded gradient is folded back onto the image by
  slicing adds (the numpy-'reflect' border), so the result is deterministic.

Launch grids: :func:`_field_grad_kernel` runs one program per ``BLOCK`` LR pixels of one image
(grid ``(cdiv(h*w, BLOCK), B)``), loops over the K x K taps as the forward does and over the
channels inside each tap, and stores ``(dL/dA, dL/dB, dL/dC, A, B, C, shift, 1/W)`` per LR
pixel; :func:`_hr_grad_kernel` runs one program per ``BLOCK`` padded HR pixels of one plane
(grid ``(cdiv(Hp*Wp, BLOCK), B*C)``) and loops over the ``ceil(K/s)^2`` candidate LR pixels,
recomputing their weights from the stored coefficients (the forward's exact float32 values).
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from .blur_triton import BLOCK, NUM_WARPS, _precision, _tap, _tap_row, apply_kernel_field_triton
from .kernels import LOG_FLOOR, precision_terms


@triton.jit
def _field_grad_kernel(
    hr_ptr, field_ptr, out_ptr, g_ptr, res_ptr,
    n_lr, w_lr, h_hr, w_hr, delta,
    st_n, st_c, st_row,
    f_st_n, f_st_c,
    o_st_n, o_st_c,
    r_st_n, r_st_c,
    dn, log_floor,
    C: tl.constexpr, K: tl.constexpr, S: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    pix = pid * BLOCK + tl.arange(0, BLOCK)
    live = pix < n_lr
    i = pix // w_lr
    j = pix - i * w_lr

    pa, pb, pc, shift = _precision(field_ptr + n * f_st_n + pix, f_st_c, live, dn)  # as the forward

    # G = sum_c g_c LR_c
    obase = n * o_st_n + pix.to(tl.int64)
    gsum = tl.zeros((BLOCK,), dtype=tl.float32)
    for cc in range(C):
        gv = tl.load(g_ptr + obase + cc * o_st_c, mask=live, other=0.0)
        ov = tl.load(out_ptr + obase + cc * o_st_c, mask=live, other=0.0)
        gsum += gv * ov

    r0 = i * S - K // 2
    c0 = j * S - K // 2
    img = hr_ptr + n * st_n
    wsum = tl.zeros((BLOCK,), dtype=tl.float32)
    sxx = tl.zeros((BLOCK,), dtype=tl.float32)
    sxy = tl.zeros((BLOCK,), dtype=tl.float32)
    syy = tl.zeros((BLOCK,), dtype=tl.float32)
    txx = tl.zeros((BLOCK,), dtype=tl.float32)
    txy = tl.zeros((BLOCK,), dtype=tl.float32)
    tyy = tl.zeros((BLOCK,), dtype=tl.float32)
    for a in range(K):
        dy = (a - K // 2) - delta
        ey, bxy, row = _tap_row(a, K, delta, pb, pc, shift, img, r0, h_hr, st_row)
        for b in range(K):
            dx = (b - K // 2) - delta
            wgt, px = _tap(b, K, delta, ey, bxy, pa, log_floor, row, c0, w_hr)
            wsum += wgt
            gx = tl.zeros((BLOCK,), dtype=tl.float32)
            for cc in range(C):
                xv = tl.load(px + cc * st_c, mask=live, other=0.0).to(tl.float32)
                gv = tl.load(g_ptr + obase + cc * o_st_c, mask=live, other=0.0)
                gx += gv * xv
            wg = wgt * gx
            sxx += wg * (dx * dx)
            sxy += wg * (dx * dy)
            syy += wg * (dy * dy)
            txx += wgt * (dx * dx)
            txy += wgt * (dx * dy)
            tyy += wgt * (dy * dy)

    inv = 1.0 / wsum
    rb = res_ptr + n * r_st_n + pix
    tl.store(rb, -0.5 * inv * (sxx - gsum * txx), mask=live)
    tl.store(rb + r_st_c, -inv * (sxy - gsum * txy), mask=live)
    tl.store(rb + 2 * r_st_c, -0.5 * inv * (syy - gsum * tyy), mask=live)
    tl.store(rb + 3 * r_st_c, pa, mask=live)
    tl.store(rb + 4 * r_st_c, pb, mask=live)
    tl.store(rb + 5 * r_st_c, pc, mask=live)
    tl.store(rb + 6 * r_st_c, shift, mask=live)
    tl.store(rb + 7 * r_st_c, inv, mask=live)


@triton.jit
def _hr_grad_kernel(
    coef_ptr, g_ptr, gpad_ptr,
    n_pad, w_pad, h_lr, w_lr, delta,
    cf_st_n, cf_st_c,
    o_st_n, o_st_c,
    p_st_n, p_st_c,
    log_floor,
    C: tl.constexpr, K: tl.constexpr, S: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    q = tl.program_id(1).to(tl.int64)
    n = q // C
    ch = q - n * C
    pix = pid * BLOCK + tl.arange(0, BLOCK)  # flat padded HR index p * w_pad + x
    live = pix < n_pad
    p = pix // w_pad
    x = pix - p * w_pad
    i_top = p // S
    j_top = x // S
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    cbase = coef_ptr + n * cf_st_n
    gbase = g_ptr + n * o_st_n + ch * o_st_c
    for u in range((K + S - 1) // S):
        i = i_top - u
        a = p - i * S
        ok_i = live & (a < K) & (i >= 0) & (i < h_lr)
        dy = (a - K // 2) - delta
        for v in range((K + S - 1) // S):
            j = j_top - v
            bb = x - j * S
            ok = ok_i & (bb < K) & (j >= 0) & (j < w_lr)
            lr = (i * w_lr + j).to(tl.int64)
            pa = tl.load(cbase + 3 * cf_st_c + lr, mask=ok, other=0.0)
            pb = tl.load(cbase + 4 * cf_st_c + lr, mask=ok, other=0.0)
            pc = tl.load(cbase + 5 * cf_st_c + lr, mask=ok, other=0.0)
            shift = tl.load(cbase + 6 * cf_st_c + lr, mask=ok, other=0.0)
            inv = tl.load(cbase + 7 * cf_st_c + lr, mask=ok, other=0.0)
            gv = tl.load(gbase + lr, mask=ok, other=0.0)
            dx = (bb - K // 2) - delta
            # the forward's exponent, term for term: ey + dx * (bxy - 0.5 * A * dx)
            e = (-0.5 * pc * dy * dy - shift) + dx * (-pb * dy - 0.5 * pa * dx)
            wgt = tl.exp(tl.maximum(e, log_floor))
            acc += tl.where(ok, gv * wgt * inv, 0.0)
    tl.store(gpad_ptr + n * p_st_n + ch * p_st_c + pix.to(tl.int64), acc, mask=live)


def _fold_reflect(gpad: torch.Tensor, r: int) -> torch.Tensor:
    """Add the gradient of a numpy-'reflect' padding by r back onto the (H, W) image (no atomics)."""
    rows = gpad[:, :, r:gpad.shape[2] - r].clone()
    h = rows.shape[2]
    if r:
        rows[:, :, 1:r + 1] += gpad[:, :, :r].flip(2)
        rows[:, :, h - 1 - r:h - 1] += gpad[:, :, h + r:].flip(2)
    out = rows[:, :, :, r:rows.shape[3] - r].clone()
    w = out.shape[3]
    if r:
        out[:, :, :, 1:r + 1] += rows[:, :, :, :r].flip(3)
        out[:, :, :, w - 1 - r:w - 1] += rows[:, :, :, w + r:].flip(3)
    return out


class TritonBlur(torch.autograd.Function):
    """The fused forward with the fused backward above (float32 gradients)."""

    @staticmethod
    def forward(ctx, hr: torch.Tensor, kernel_field: torch.Tensor, scale: int, kernel_size: int,
                delta: float, dn: float) -> torch.Tensor:
        out = apply_kernel_field_triton(hr.detach(), kernel_field.detach(), scale, kernel_size, delta, dn)
        ctx.save_for_backward(hr, kernel_field, out)
        ctx.geometry = (scale, kernel_size, delta, dn)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        hr, kernel_field, out = ctx.saved_tensors
        scale, k, delta, dn = ctx.geometry
        grad_hr, grad_kernel_field = field_and_image_grads(hr, kernel_field, out, grad, scale, k, delta, dn,
                                                     ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return grad_hr, grad_kernel_field, None, None, None, None


def field_and_image_grads(hr: torch.Tensor, kernel_field: torch.Tensor, out: torch.Tensor,
                          grad: torch.Tensor, scale: int, k: int, delta: float, dn: float,
                          want_hr: bool, want_params: bool
                          ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Return (dL/d hr, dL/d kernel_field) for upstream ``grad`` (B, C, h, w); None where not wanted."""
    b, c, h_hr, w_hr = hr.shape
    h, w = h_hr // scale, w_hr // scale
    x = hr.detach().to(torch.float32).contiguous()
    kernel_field32 = kernel_field.detach().to(torch.float32).contiguous()
    g = grad.detach().to(torch.float32).contiguous()
    res = torch.empty(b, 8, h, w, dtype=torch.float32, device=hr.device)
    r = k // 2
    hp, wp = h_hr + 2 * r, w_hr + 2 * r
    with torch.cuda.device(hr.device) if hr.device.type == "cuda" else contextlib.nullcontext():
        _field_grad_kernel[(triton.cdiv(h * w, BLOCK), b)](
            x, kernel_field32, out, g, res,
            h * w, w, h_hr, w_hr, float(delta),
            x.stride(0), x.stride(1), x.stride(2),
            kernel_field32.stride(0), kernel_field32.stride(1),
            out.stride(0), out.stride(1),
            res.stride(0), res.stride(1),
            float(dn), LOG_FLOOR,
            C=c, K=k, S=scale, BLOCK=BLOCK, num_warps=NUM_WARPS,
        )
        grad_hr = None
        if want_hr:
            gpad = torch.empty(b, c, hp, wp, dtype=torch.float32, device=hr.device)
            _hr_grad_kernel[(triton.cdiv(hp * wp, BLOCK), b * c)](
                res, g, gpad,
                hp * wp, wp, h, w, float(delta),
                res.stride(0), res.stride(1),
                g.stride(0), g.stride(1),
                gpad.stride(0), gpad.stride(1),
                LOG_FLOOR,
                C=c, K=k, S=scale, BLOCK=BLOCK, num_warps=NUM_WARPS,
            )
            grad_hr = _fold_reflect(gpad, r).to(hr.dtype)
    grad_kernel_field = None
    if want_params:
        with torch.enable_grad():
            p = kernel_field.detach().to(torch.float32).requires_grad_(True)
            terms = precision_terms(p[:, 0], p[:, 1], p[:, 2])
            (grad_kernel_field,) = torch.autograd.grad(terms, p, (res[:, 0], res[:, 1], res[:, 2]))
        grad_kernel_field = grad_kernel_field.to(kernel_field.dtype)
    return grad_hr, grad_kernel_field
