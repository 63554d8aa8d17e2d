"""The fused Triton backend against the literal Eq. 1, run on CPU under Triton's interpreter.

CI has no GPU, so the kernel's logic (tap offsets, reflected index addressing, the exponent shift and
floor, masks, RGB and per-plane programs) is checked by ``TRITON_INTERPRET=1``, which runs the same kernel
source with numpy. Triton reads that variable when it is first imported, so the kernel runs in a
child process that sets it (another test of this session may already have imported triton). The
parent draws the inputs, the child applies the kernel, and the parent compares with
``tests.reference.direct_degradation``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from degrade import apply_kernel_field
from degrade.ops import blur
from ssr_core.errors import ConfigError
from tests.reference import direct_degradation

REPO = Path(__file__).resolve().parents[2]

# (name, scale, K, delta (None = centred), (H, W) HR, batch, channels, sigma range, theta mode)
# Every LR pixel's window crosses a border in these small images (reflect padding everywhere).
# The interpreter runs each program's K*K taps in Python (~0.5 s per program): batches and
# channel counts are kept to what covers the kernel's paths (RGB, batch 2, per-plane channels).
CASES = [
    ("x2-k21-centred", 2, 21, None, (12, 14), 1, 3, (0.6, 3.5), "random"),
    ("x2-k21-topleft", 2, 21, 0.0, (12, 14), 2, 3, (0.6, 3.5), "random"),
    ("x3-k21-centred-gray-wide", 3, 21, None, (12, 15), 1, 1, (0.6, 5.0), "random"),
    ("x3-k21-topleft-2ch", 3, 21, 0.0, (12, 15), 1, 2, (0.3, 5.0), "random"),
    ("x4-k31-centred-wide", 4, 31, None, (16, 20), 1, 3, (0.6, 5.0), "random"),
    ("x4-k31-topleft-narrow", 4, 31, 0.0, (16, 20), 1, 3, (0.15, 0.6), "random"),
    # strong anisotropy at 45 and 135 degrees: rows peak far from the centre column
    ("x4-k21-centred-extreme", 4, 21, None, (24, 20), 1, 3, (0.3, 5.0), "diagonal"),
]

# (case name, scale, K, delta) of the gradient check: non-RGB planes, x3, top-left grid
GRAD_CASE = ("x3-k21-topleft-2ch", 3, 21, 0.0)

CHILD = f"GRAD_CASE = {GRAD_CASE!r}\n" + """
import json, sys
import numpy as np, torch
from degrade.ops.blur import apply_kernel_field, select_backend
data = np.load(sys.argv[1], allow_pickle=False)
specs = json.loads(sys.argv[3])
out = {}
for name, scale, k, delta in specs:
    hr, field = torch.from_numpy(data[name + "/hr"]), torch.from_numpy(data[name + "/field"])
    if select_backend(hr, field, k, 0.0, "triton") != "triton":
        raise SystemExit("the interpreter did not make the triton backend available")
    out[name] = apply_kernel_field(hr, field, scale, k, delta, backend="triton").numpy()
first = specs[0]
again = apply_kernel_field(torch.from_numpy(data[first[0] + "/hr"]),
                           torch.from_numpy(data[first[0] + "/field"]), first[1], first[2], first[3],
                           backend="triton").numpy()
out["again"] = again
half = apply_kernel_field(torch.from_numpy(data[first[0] + "/hr"]).half(),
                          torch.from_numpy(data[first[0] + "/field"]), first[1], first[2], first[3],
                          backend="triton")
out["half_dtype"] = np.array(str(half.dtype))
out["half"] = half.float().numpy()
# the fused backward (backend="triton" with inputs that require grad)
gname, gscale, gk, gdelta = GRAD_CASE
x = torch.from_numpy(data[gname + "/hr"]).requires_grad_(True)
p = torch.from_numpy(data[gname + "/field"]).requires_grad_(True)
y = apply_kernel_field(x, p, gscale, gk, gdelta, backend="triton")
(y * torch.from_numpy(data["grad/up"])).sum().backward()
out["grad/hr"], out["grad/field"] = x.grad.numpy(), p.grad.numpy()
np.savez(sys.argv[2], **out)
"""


def _inputs(case: tuple, gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    name, scale, k, delta, (h, w), b, c, (lo, hi), theta = case
    hr = torch.rand(b, c, h, w, generator=gen)
    s = torch.rand(b, 2, h // scale, w // scale, generator=gen) * (hi - lo) + lo
    th = torch.rand(b, 1, h // scale, w // scale, generator=gen) * math.pi
    if theta == "diagonal":
        s[:, 0], s[:, 1], th[:] = hi, lo, math.pi / 4
        s[:, 0, ::2, ::3], s[:, 1, ::2, ::3], th[:, :, ::2, ::3] = lo, hi, 3 * math.pi / 4
    return hr.numpy(), torch.cat([s, th], dim=1).numpy()


@pytest.fixture(scope="module")
def triton_run(tmp_path_factory):
    """Inputs of every case and the kernel's outputs under the interpreter (one child process)."""
    import json

    gen = torch.Generator().manual_seed(12)
    inputs = {case[0]: _inputs(case, gen) for case in CASES}
    tmp = tmp_path_factory.mktemp("triton")
    arrays = {f"{n}/{part}": a for n, (hr, f) in inputs.items() for part, a in (("hr", hr), ("field", f))}
    hr = inputs[GRAD_CASE[0]][0]
    up_shape = (hr.shape[0], hr.shape[1], hr.shape[2] // GRAD_CASE[1], hr.shape[3] // GRAD_CASE[1])
    arrays["grad/up"] = torch.randn(up_shape, generator=gen).numpy()
    inputs["grad/up"] = arrays["grad/up"]
    np.savez(tmp / "in.npz", **arrays)
    specs = json.dumps([[c[0], c[1], c[2], c[3]] for c in CASES])
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp / "in.npz"), str(tmp / "out.npz"), specs],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"interpreter run failed:\n{proc.stderr[-3000:]}"
    with np.load(tmp / "out.npz", allow_pickle=False) as out:
        return inputs, {k: out[k] for k in out.files}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kernel_matches_direct_formula_under_the_interpreter(triton_run, case):
    inputs, outputs = triton_run
    name, scale, k, delta = case[:4]
    hr, field = inputs[name]
    got = outputs[name]
    assert got.shape == (hr.shape[0], hr.shape[1], hr.shape[2] // scale, hr.shape[3] // scale)
    assert got.dtype == np.float32
    d = (scale - 1) / 2 if delta is None else delta
    for n in range(hr.shape[0]):
        # The reference gets the same float32 inputs in float64; what remains is the kernel's
        # float32 arithmetic: weights within a few ulp (exp), a sum over <= 961 taps of values in
        # [0, 1] normalised by a sum >= 1; 2e-6 is the tolerance of the other backends.
        ref = direct_degradation(hr[n].astype(np.float64), field[n].astype(np.float64), scale, k, d)
        np.testing.assert_allclose(got[n], ref, atol=2e-6, rtol=0, err_msg=name)


def test_kernel_is_deterministic_and_reads_half_precision(triton_run):
    inputs, outputs = triton_run
    first = CASES[0][0]
    assert np.array_equal(outputs["again"], outputs[first])  # same bits on a second run
    assert str(outputs["half_dtype"]) == "torch.float16"
    hr, field = inputs[first]
    # float16 in, float32 inside (field too), float16 out: the reference sees the same float16
    # pixels, so what remains is the output's rounding, half an ulp of float16 below 1 (2.4e-4)
    ref = direct_degradation(hr[0].astype(np.float16).astype(np.float64), field[0].astype(np.float64),
                             2, 21, 0.5)
    np.testing.assert_allclose(outputs["half"][0], ref, atol=2.5e-4, rtol=0)


def test_fused_backward_matches_the_autograd_backend(triton_run):
    # Reference: the unfold/softmax backend in float64 (gradcheck-verified in test_blur.py) on the
    # same float32 inputs, so what remains is the fused backward's float32 arithmetic.
    inputs, outputs = triton_run
    name, scale, k, delta = GRAD_CASE
    hr, field = (torch.from_numpy(a).double().requires_grad_(True) for a in inputs[name])
    out = apply_kernel_field(hr, field, scale, k, delta, backend="autograd")
    (out * torch.from_numpy(inputs["grad/up"]).double()).sum().backward()
    # d/d hr: sums of g w / W over <= 49 LR pixels, float32 (observed 2e-7 of |grad| <= 0.6)
    np.testing.assert_allclose(outputs["grad/hr"], hr.grad.numpy(), atol=1e-6, rtol=0)
    # d/d field: float32 sums of 441 weighted moments (dx^2 up to 100) minus G times their weight
    # sums, a cancellation that leaves ~2e-5 of the largest entry; 1e-4 of it is the bound
    ref = field.grad.numpy()
    np.testing.assert_allclose(outputs["grad/field"], ref, atol=1e-4 * np.abs(ref).max(), rtol=0)
    assert np.abs(ref).max() > 0.05  # the check is not vacuous


def _fake(device: str, grad: bool = False, dtype: torch.dtype = torch.float32) -> types.SimpleNamespace:
    # select_backend reads only device, dtype and requires_grad: a stand-in for a CUDA tensor
    # lets CI check the dispatch rule without a GPU.
    return types.SimpleNamespace(device=torch.device(device), dtype=dtype, requires_grad=grad)


def test_auto_picks_triton_on_cuda_and_autograd_whenever_gradients_flow():
    assert blur.select_backend(_fake("cuda"), _fake("cuda"), 21, 1.5) == "triton"
    assert blur.select_backend(_fake("cuda:1"), _fake("cuda:1"), 21, 1.5) == "triton"
    assert blur.select_backend(_fake("cuda", grad=True), _fake("cuda"), 21, 1.5) == "autograd"
    assert blur.select_backend(_fake("cuda"), _fake("cuda", grad=True), 21, 1.5) == "autograd"
    # float64 on CUDA: the kernel reads float32, so auto keeps the exact float64 torch path
    assert blur.select_backend(_fake("cuda", dtype=torch.float64), _fake("cuda"), 21, 1.5) == "torch"


def test_explicit_triton_is_refused_where_it_cannot_run(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    hr, field = torch.rand(1, 3, 32, 32), torch.ones(1, 3, 8, 8)
    with pytest.raises(ConfigError, match="runs on CUDA tensors"):
        apply_kernel_field(hr, field, 4, backend="triton")
    with pytest.raises(ConfigError, match="runs on CUDA tensors"):
        apply_kernel_field(hr.requires_grad_(True), field, 4, backend="triton")
    with pytest.raises(ConfigError, match="reads float32"):
        blur.select_backend(_fake("cuda", dtype=torch.float64), _fake("cuda"), 21, 1.5, "triton")


def test_auto_on_cpu_never_picks_triton():
    hr, field = torch.rand(1, 3, 32, 32), torch.ones(1, 3, 8, 8)
    assert blur.select_backend(hr, field, 21, 1.5) in ("c", "torch")
