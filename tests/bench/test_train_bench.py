"""bench/train.py helpers that run without a GPU."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from ssr_models.configs import load_train_config

# bench/ is a folder of scripts, not a package: load the file under its own name
_SPEC = importlib.util.spec_from_file_location(
    "bench_train", Path(__file__).resolve().parents[2] / "bench" / "train.py")
assert _SPEC is not None and _SPEC.loader is not None
train = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(train)


@pytest.mark.parametrize(("amp", "dtype"), [("off", None), (False, None), (True, torch.float16),
                                            ("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_paper_timing_autocasts_as_the_trainer(amp: object, dtype: torch.dtype | None) -> None:
    """``amp: "off"`` times float32 (``bool("off")`` was True: float16), bf16 times bf16."""
    sc = load_train_config("paper").stage("kernel")
    assert train.autocast_dtype(dataclasses.replace(sc, trainer={**sc.trainer, "amp": amp})) is dtype
