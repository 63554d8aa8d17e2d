"""Speed of the exact spatially variant degradation against one spatially invariant blur.

CPU (default): prints, for a 2040x1356 RGB image on one thread, the time of ``draw_degradation``
(the kernel field from nearness) + ``apply_kernel_field`` divided by the time of ``cv2.filter2D``
with one 21x21 kernel at full resolution followed by ``[::4, ::4]`` subsampling, measured in this
process (best of N). Also prints the naive per-pixel unfold at full resolution for scale.

GPU (``--device cuda``, ``cuda:N``): the fused Triton kernel (``apply_kernel_field`` with
``backend="triton"``, the field already on the device) divided by one invariant 21x21 depthwise
cuDNN ``F.conv2d`` of the same batch at full resolution, in img/s at batch 1, 8 and 32; the torch
backend at batch 1 for scale; the largest difference from the CPU backend (C when built) on the
0-255 scale, and whether two runs give the same bits. :func:`gpu_engine_report` returns the same
figures as a dict (``bench/gpu_check.py`` calls it).

    python bench/engine.py [--repeats 5] [--recipe ssr] [--naive]
    python bench/engine.py --device cuda [--batches 1 8 32]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from degrade import apply_kernel_field
from degrade.build.sample import sample_rng
from degrade.depth import estimate_nearness
from degrade.fields import draw_degradation
from degrade.recipes import load_recipe
from ssr_datasets.sources import list_items, load_item

H, W = 1356, 2040


def best_of(fn, repeats: int, clock=time.perf_counter) -> float:
    """Return the fastest of ``repeats`` calls of fn in seconds of ``clock`` (after a warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def test_image() -> tuple[np.ndarray, np.ndarray]:
    """Return the 'coffee' sample photo resized to 2040x1356 and its prior nearness."""
    item = next(i for i in list_items("sample") if i.image_id == "coffee")
    rgb = cv2.resize(load_item(item).rgb, (W, H), interpolation=cv2.INTER_CUBIC)
    return rgb, estimate_nearness("prior", rgb, None).nearness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--recipe", default="ssr")
    parser.add_argument("--naive", action="store_true", help="also time the naive unfold (slow)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--batches", type=int, nargs="+", default=list(GPU_BATCHES),
                        help="batch sizes timed on a GPU")
    args = parser.parse_args()
    if args.device != "cpu":
        report = gpu_engine_report(args.device, batches=tuple(args.batches), recipe_name=args.recipe)
        print(format_gpu_report(report))
        return
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    recipe = load_recipe(args.recipe)
    rgb, near = test_image()
    hr = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255)
    img32 = rgb.astype(np.float32) / 255
    k = np.ones((21, 21), np.float32) / 441

    def baseline() -> np.ndarray:
        return np.ascontiguousarray(cv2.filter2D(img32, -1, k, borderType=cv2.BORDER_REFLECT_101)[::4, ::4])

    def exact(worst: bool = False, backend: str = "auto") -> torch.Tensor:
        draw = draw_degradation(recipe, near, sample_rng(0, recipe.hash, "bench-coffee-000"))
        field = torch.from_numpy(draw.kernel_field)[None]
        if worst:
            field = torch.empty_like(field)
            field[:, :2] = recipe.blur.sigma_range_px[1]
            field[:, 2] = 0.0
        return apply_kernel_field(hr, field, recipe.scale, recipe.kernel_size, recipe.delta_px,
                                  backend=backend)

    # CPU time of this (single) thread: on a shared machine wall time includes waiting for a core.
    clock = time.thread_time
    t_base = best_of(baseline, args.repeats, clock)
    t_exact = best_of(exact, args.repeats, clock)
    t_worst = best_of(lambda: exact(worst=True), args.repeats, clock)
    t_torch = best_of(lambda: exact(backend="torch"), args.repeats, clock)
    draw = draw_degradation(recipe, near, sample_rng(0, recipe.hash, "bench-coffee-000"))
    s = np.sqrt(draw.kernel_field[0] * draw.kernel_field[1])
    print(f"image {W}x{H} RGB, recipe {recipe.name} (x{recipe.scale}, K={recipe.kernel_size}), "
          f"1 thread, CPU time, best of {args.repeats}")
    print(f"  field sqrt(s1*s2): median {np.median(s):.2f} px, max {s.max():.2f} px")
    print(f"  cv2.filter2D 21x21 full res + [::4]     {t_base * 1e3:8.1f} ms   (reference)")
    print(f"  exact SV degradation (field + blur)     {t_exact * 1e3:8.1f} ms   "
          f"ratio {t_exact / t_base:.2f}")
    print(f"  same, every kernel at the recipe's max  {t_worst * 1e3:8.1f} ms   "
          f"ratio {t_worst / t_base:.2f}")
    print(f"  same, pure-torch backend                {t_torch * 1e3:8.1f} ms   "
          f"ratio {t_torch / t_base:.2f}")
    if args.naive:
        t_naive = best_of(lambda: naive_crop(hr, draw.kernel_field), 1) * (H * W) / NAIVE_CROP**2
        print(f"  naive per-pixel unfold at full res      {t_naive * 1e3:8.1f} ms   "
              f"ratio {t_naive / t_base:.1f}   (timed on a {NAIVE_CROP}x{NAIVE_CROP} crop, scaled)")


NAIVE_CROP = 128
GPU_BATCHES = (1, 8, 32)


def gpu_engine_report(device: str = "cuda", batches: tuple[int, ...] = GPU_BATCHES,
                      recipe_name: str = "ssr", size: tuple[int, int] = (H, W),
                      repeats: int = 5) -> dict:
    """Time the fused kernel against one invariant cuDNN conv2d on ``device``; return the figures.

    The 'coffee' photo at ``size`` (H, W) with its prior-nearness field from ``recipe_name``,
    repeated to each batch size. Times are the best of ``repeats`` rounds, each a few calls
    between two CUDA events after a warm-up (compilation, cuDNN autotuning) and synchronised.
    ``device="cpu"`` runs the same code under Triton's interpreter (``TRITON_INTERPRET=1``, tiny
    ``size`` only): a check of this function, not a measurement.

    Returns:
        ``{"device", "gpu", "image", "recipe", "kernel_size", "scale", "batches": {b: {"fused_ms",
        "conv_ms", "ratio", "fused_img_s", "conv_img_s"}}, "torch_backend_ms", "cpu_backend",
        "max_abs_err_255", "deterministic", "backward", "versions"}``; ``*_ms`` are per batch
        call, ``ratio`` is fused / conv (the target is <= 0.2); ``backward`` compares the fused
        backward with the autograd backend on training crops (see :func:`_backward_report`).
    """
    import triton

    from degrade.ops.blur import interpreting, select_backend

    dev = torch.device(device)
    on_gpu = dev.type == "cuda"
    if not (on_gpu and torch.cuda.is_available()) and not (dev.type == "cpu" and interpreting()):
        raise SystemExit(f"gpu_engine_report needs a CUDA device, got {device!r} (cuda available: "
                         f"{torch.cuda.is_available()}); 'cpu' only under TRITON_INTERPRET=1")
    torch.backends.cudnn.benchmark = True  # the baseline gets cuDNN's fastest algorithm
    recipe = load_recipe(recipe_name)
    k, s = recipe.kernel_size, recipe.scale
    rgb, near = test_image()
    if size != (H, W):
        rgb = np.ascontiguousarray(rgb[: size[0], : size[1]])
        near = np.ascontiguousarray(near[: size[0], : size[1]])
    draw = draw_degradation(recipe, near, sample_rng(0, recipe.hash, "bench-coffee-000"))
    hr_cpu = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255)
    field_cpu = torch.from_numpy(draw.kernel_field)[None]
    hr1, field1 = hr_cpu.to(dev), field_cpu.to(dev)
    if on_gpu and select_backend(hr1, field1, k, recipe.delta_px) != "triton":
        raise SystemExit("apply_kernel_field does not pick the triton backend on this device")

    def fused(hr: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        return apply_kernel_field(hr, field, s, k, recipe.delta_px, backend="triton")

    weight = torch.full((3, 1, k, k), 1.0 / (k * k), device=dev)

    def conv(hr: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(hr, weight, padding=k // 2, groups=3)

    rows = {}
    for b in batches:
        hr_b = hr1.expand(b, -1, -1, -1).contiguous()
        field_b = field1.expand(b, -1, -1, -1).contiguous()
        t_fused = _device_best(lambda hr_b=hr_b, field_b=field_b: fused(hr_b, field_b), on_gpu, repeats)
        t_conv = _device_best(lambda hr_b=hr_b: conv(hr_b), on_gpu, repeats)
        rows[b] = {"fused_ms": t_fused * 1e3, "conv_ms": t_conv * 1e3, "ratio": t_fused / t_conv,
                   "fused_img_s": b / t_fused, "conv_img_s": b / t_conv}
        del hr_b, field_b
    t_torch = _device_best(lambda: apply_kernel_field(hr1, field1, s, k, recipe.delta_px,
                                                      backend="torch"), on_gpu, 1, calls=1)
    backward = _backward_report(hr1, field1, s, k, recipe.delta_px, on_gpu, repeats)
    got = fused(hr1, field1)
    again = fused(hr1, field1)
    cpu_backend = select_backend(hr_cpu, field_cpu, k, recipe.delta_px)
    ref = apply_kernel_field(hr_cpu, field_cpu, s, k, recipe.delta_px)
    err = float((got.cpu() - ref).abs().max()) * 255.0
    return {
        "device": str(dev), "gpu": torch.cuda.get_device_name(dev) if on_gpu else "triton interpreter",
        "image": f"{rgb.shape[1]}x{rgb.shape[0]} RGB", "recipe": recipe.name,
        "kernel_size": k, "scale": s, "batches": rows, "torch_backend_ms": t_torch * 1e3,
        "cpu_backend": cpu_backend, "max_abs_err_255": err,
        "deterministic": bool(torch.equal(got, again)), "backward": backward,
        "versions": {"torch": torch.__version__, "triton": triton.__version__,
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()},
    }


BACKWARD_CROP, BACKWARD_BATCH = 256, 16  # a training step's crops (HR px) and batch


def _backward_report(hr: torch.Tensor, field: torch.Tensor, s: int, k: int, delta: float,
                     on_gpu: bool, repeats: int) -> dict:
    """Forward + backward (d/d hr, d/d field) of the fused and the autograd backends on crops.

    Returns ``{"crop", "batch", "fused_ms", "autograd_ms", "ratio", "max_grad_diff"}`` (ms per
    batch; ``max_grad_diff`` relative to the largest gradient), or ``{"error": ...}`` when the
    fused backward fails, so that the forward figures still come back.
    """
    c, b = BACKWARD_CROP, (BACKWARD_BATCH if on_gpu else 1)
    if not on_gpu:
        c = min(c, hr.shape[2], hr.shape[3]) // s * s
    x0 = hr[:, :, :c, :c].expand(b, -1, -1, -1).contiguous()
    f0 = field[:, :, : c // s, : c // s].expand(b, -1, -1, -1).contiguous()
    up = torch.randn(b, x0.shape[1], c // s, c // s, generator=torch.Generator().manual_seed(0))
    up = up.to(hr.device)

    def step(backend: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, f = x0.clone().requires_grad_(True), f0.clone().requires_grad_(True)
        (apply_kernel_field(x, f, s, k, delta, backend=backend) * up).sum().backward()
        return x.grad, f.grad

    try:
        t_fused = _device_best(lambda: step("triton"), on_gpu, repeats)
        t_auto = _device_best(lambda: step("autograd"), on_gpu, repeats)
        (gx, gf), (rx, rf) = step("triton"), step("autograd")
        diff = max(float((gx - rx).abs().max() / rx.abs().max()),
                   float((gf - rf).abs().max() / rf.abs().max()))
    except Exception as exc:  # a report, not a crash: the forward figures still matter
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"crop": c, "batch": b, "fused_ms": t_fused * 1e3, "autograd_ms": t_auto * 1e3,
            "ratio": t_fused / t_auto, "max_grad_diff": diff}


def _device_best(fn, on_gpu: bool, repeats: int, calls: int = 5) -> float:
    """Return the best per-call seconds of ``fn`` over ``repeats`` rounds of ``calls`` calls.

    Two warm-up calls first (Triton compilation, cuDNN autotuning); on a GPU each round is
    bracketed by CUDA events and synchronised, so queued work is counted in full.
    """
    for _ in range(2 if on_gpu else 0):
        fn()
    if not on_gpu:
        calls = 1
    else:
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        if on_gpu:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            t = time.perf_counter()
        for _ in range(calls):
            fn()
        if on_gpu:
            stop.record()
            stop.synchronize()
            best = min(best, start.elapsed_time(stop) / 1e3 / calls)
        else:
            best = min(best, time.perf_counter() - t)
    return best


def format_gpu_report(r: dict) -> str:
    """Render :func:`gpu_engine_report`'s dict as the table the script prints."""
    lines = [f"{r['gpu']} ({r['device']}), image {r['image']}, recipe {r['recipe']} "
             f"(x{r['scale']}, K={r['kernel_size']}); torch {r['versions']['torch']}, "
             f"triton {r['versions']['triton']}, CUDA {r['versions']['cuda']}",
             f"  {'batch':>5}  {'fused ms':>9}  {'fused img/s':>11}  {'conv2d ms':>9}  "
             f"{'conv2d img/s':>12}  {'fused/conv2d':>12}"]
    for b, row in r["batches"].items():
        lines.append(f"  {b:>5}  {row['fused_ms']:9.3f}  {row['fused_img_s']:11.0f}  "
                     f"{row['conv_ms']:9.3f}  {row['conv_img_s']:12.0f}  {row['ratio']:12.3f}")
    lines.append(f"  torch backend, batch 1: {r['torch_backend_ms']:.1f} ms")
    bw = r["backward"]
    if "error" in bw:
        lines.append(f"  fused backward failed: {bw['error']}")
    else:
        lines.append(f"  forward+backward, {bw['batch']} crops of {bw['crop']} px: fused "
                     f"{bw['fused_ms']:.2f} ms, autograd backend {bw['autograd_ms']:.2f} ms "
                     f"(ratio {bw['ratio']:.3f}); gradients agree to {bw['max_grad_diff']:.1e} "
                     "of their largest entry")
    lines.append(f"  max |fused - {r['cpu_backend']} backend on CPU| = {r['max_abs_err_255']:.2e} "
                 f"(0-255 scale); two runs bit-identical: {r['deterministic']}")
    return "\n".join(lines)


def naive_crop(hr: torch.Tensor, field: np.ndarray) -> torch.Tensor:
    """The textbook way on a crop: unfold every HR pixel's 21x21 window, weight, sum, then [::4]."""
    c = NAIVE_CROP
    pad = torch.nn.functional.pad(hr[:, :, :c, :c], (10, 10, 10, 10), mode="reflect")
    cols = torch.nn.functional.unfold(pad, 21).view(3, 441, c * c)
    f = torch.from_numpy(field[:, : c // 4, : c // 4]).repeat_interleave(4, 1).repeat_interleave(4, 2)
    f = f.reshape(3, -1)
    cos, sin = torch.cos(f[2]), torch.sin(f[2])
    i1, i2 = f[0] ** -2, f[1] ** -2
    a, b, cc = cos * cos * i1 + sin * sin * i2, cos * sin * (i1 - i2), sin * sin * i1 + cos * cos * i2
    d = torch.arange(-10, 11.0) - 1.5
    dy, dx = (t.reshape(-1, 1) for t in torch.meshgrid(d, d, indexing="ij"))
    wgt = torch.exp(-0.5 * (a * dx * dx + 2 * b * dx * dy + cc * dy * dy))
    wgt = wgt / wgt.sum(0, keepdim=True)
    return (cols * wgt).sum(1).view(3, c, c)[:, ::4, ::4]


if __name__ == "__main__":
    main()
