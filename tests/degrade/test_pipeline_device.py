"""The batched device path of `degrade build`: batching and encoding threads change no byte,
`--device` is checked before any work, and the fused kernel's build agrees with the CPU build.

CI has no GPU: the device path runs here with ``device="cpu"`` (the same batched code), with
the encoding threads of a device build forced on, and once with the Triton kernel under its
interpreter in a child process (``TRITON_INTERPRET=1`` must be set before triton is imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from degrade.build import DepthOptions, build
from degrade.build import shard as build_shard
from ssr_core.errors import ConfigError
from tests.helpers import make_config, samples_by_key, shard_bytes, write_folder

REPO = Path(__file__).resolve().parents[2]


def test_group_size_variants_and_encoding_threads_change_no_byte(tmp_path: Path, monkeypatch) -> None:
    # Device builds blur whole groups in one batch and encode on threads; a CPU build of one
    # image at a time on one thread must give the same shards.
    root = tmp_path / "images"
    write_folder(root, names=("a", "b", "c"))
    config = make_config(root, samples_per_image=2, shard_size=4, depth="prior")
    build(config, tmp_path / "one", depth_options=DepthOptions(batch_size=1), preview=False)
    monkeypatch.setattr(build_shard, "encode_threads", lambda device: 3)
    build(config, tmp_path / "batched", depth_options=DepthOptions(batch_size=3), preview=False)
    one, batched = shard_bytes(tmp_path / "one"), shard_bytes(tmp_path / "batched")
    assert len(one) == 2 and one == batched


def test_device_builds_encode_on_threads_and_cpu_builds_on_one() -> None:
    assert build_shard.encode_threads("cpu") == 1
    assert build_shard.encode_threads("cuda:0") == max(1, min(8, os.cpu_count() or 1))


@pytest.mark.parametrize("device,available,count,match", [
    ("cuda", False, 0, "needs CUDA, but torch.cuda.is_available"),
    ("cuda:3", True, 2, "does not exist: this machine has 2 CUDA devices"),
    ("tpu", True, 1, "unknown device 'tpu'"),
    ("auto", False, 0, "must be cpu, cuda or cuda:N, got 'auto'"),
])
def test_unusable_device_is_refused_before_any_work(tmp_path: Path, monkeypatch, device, available,
                                                    count, match) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    root = tmp_path / "images"
    write_folder(root, names=("a",))
    with pytest.raises(ConfigError, match=match):
        build(make_config(root, device=device), tmp_path / "out")
    assert not (tmp_path / "out").exists()


CHILD = """
import sys
import degrade.ops.downsample as downsample
from degrade.build import DepthOptions, build
from tests.helpers import make_config
# What a CUDA build picks (auto -> triton), on CPU tensors under the interpreter.
downsample.select_backend = lambda hr, field, k, delta, backend="auto": "triton"
config = make_config(sys.argv[1], recipe="ssr-nojpeg", shard_size=4, depth="prior", crop=(32, 48))
build(config, sys.argv[2], depth_options=DepthOptions(batch_size=2), preview=False)
"""


def test_fused_kernel_build_agrees_with_the_cpu_build(tmp_path: Path) -> None:
    root = tmp_path / "images"
    write_folder(root, names=("a", "b"))
    config = make_config(root, recipe="ssr-nojpeg", shard_size=4, depth="prior", crop=(32, 48))
    build(config, tmp_path / "cpu", depth_options=DepthOptions(batch_size=2), preview=False)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(tmp_path / "fused")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cpu, fused = samples_by_key(tmp_path / "cpu"), samples_by_key(tmp_path / "fused")
    assert sorted(cpu) == sorted(fused) and len(cpu) == 2
    for key, a in cpu.items():
        b = fused[key]
        assert a.meta["blur_backend"] in ("c", "torch") and b.meta["blur_backend"] == "triton"
        # the random draws, the HR crop and the nearness do not depend on the blur backend
        assert np.array_equal(a.hr, b.hr) and np.array_equal(a.kernel_field, b.kernel_field)
        assert np.array_equal(a.nearness, b.nearness)
        assert a.meta["noise"] == b.meta["noise"] is not None
        # float32 sums that agree to ~1e-6 round to the same uint8 except next to a half level
        diff = np.abs(a.lr.astype(int) - b.lr.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
        strip = {k: v for k, v in a.meta.items() if k != "blur_backend"}
        assert strip == {k: v for k, v in b.meta.items() if k != "blur_backend"}
    manifest = json.loads((tmp_path / "fused" / "manifest.json").read_text())
    assert manifest["config"]["device"] == "cpu"
