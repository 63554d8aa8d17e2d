"""Tests of ssr_models.method_choice: what ``auto`` picks from a run folder's recorded validation.

One real run (module fixture): every stage trained for 2 steps by ``train_stage`` on the tiny
shard set, validating on it every step, so ``metrics.jsonl`` is what the Trainer really writes.
Each case copies that run and appends one validation row in the same format with the values
the case needs (the Trainer appends rows; the last one counts).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ssr_core.errors import InputError
from ssr_models.configs import load_train_config
from ssr_models.infer_cli import main
from ssr_models.method_choice import (
    Validation,
    choose_method,
    find_stages,
    paper_method,
    stage_validation,
)
from ssr_models.run import train_stage

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, shard_dir: Path) -> Path:
    """A run folder trained by ``train_stage`` (2 steps per stage, validated every step)."""
    root = tmp_path_factory.mktemp("choice_run")
    config = load_train_config("tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: the function-scoped one_torch_thread is not active yet
    try:
        for stage in ("kernel", "nbsr", "diffusion"):
            cfg = config.stage(stage)
            cfg = dataclasses.replace(cfg, trainer={**cfg.trainer, "val_every": 1, "log_every": 1},
                                      data=dataclasses.replace(cfg.data, batch_size=2, crop_hr=16,
                                                                crops_per_image=1))
            train_stage(stage, cfg, str(shard_dir), root / stage, val_shards=str(shard_dir), steps=2)
    finally:
        torch.set_num_threads(threads)
    return root


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def with_validation(run: Path, dest: Path, **values: tuple[float, float] | None) -> Path:
    """Copy ``run`` to ``dest``; per stage, append a (psnr, psnr_bicubic) row or drop all val rows."""
    shutil.copytree(run, dest)
    for stage, pair in values.items():
        path = dest / stage / "metrics.jsonl"
        kept = [r for r in rows(dest / stage) if pair is not None or "val/psnr" not in r]
        if pair is not None:
            kept.append({"step": 2, "time": 0.0, "val/psnr": pair[0], "val/psnr_bicubic": pair[1]})
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return dest


def test_the_trainer_writes_what_auto_reads(real_run: Path) -> None:
    for stage in ("nbsr", "diffusion"):
        last = [r for r in rows(real_run / stage) if "val/psnr" in r][-1]  # read independently
        got = stage_validation(real_run / stage)
        assert got == Validation(2, last["val/psnr"], last["val/psnr_bicubic"])
        assert math.isfinite(got.psnr) and 5 < got.psnr_bicubic < 60
    assert stage_validation(real_run / "kernel") is None  # DKENet validates kernels, not images


def test_auto_prefers_diffusion_only_when_it_beats_bicubic(real_run: Path, tmp_path: Path) -> None:
    run = with_validation(real_run, tmp_path / "a", diffusion=(25.0, 24.0), nbsr=(26.0, 24.0))
    choice = choose_method("auto", find_stages(run), run)
    assert choice.method == "diffusion" and choice.warning is None
    assert "diffusion stage validated 25.00 dB vs bicubic 24.00 dB at step 2" in choice.reason


def test_auto_falls_back_to_svkr_when_diffusion_is_below_bicubic(real_run: Path, tmp_path: Path) -> None:
    run = with_validation(real_run, tmp_path / "b", diffusion=(17.1, 20.6), nbsr=(21.0, 20.6))
    choice = choose_method("auto", find_stages(run), run)
    assert choice.method == "svkr" and choice.warning is None
    assert "validated below bicubic (17.10 dB vs bicubic 20.60 dB" in choice.reason
    assert "nbsr stage validated 21.00 dB vs bicubic 20.60 dB" in choice.reason


def test_auto_warns_when_svkr_is_below_bicubic_too(real_run: Path, tmp_path: Path) -> None:
    run = with_validation(real_run, tmp_path / "c", diffusion=(17.1, 20.6), nbsr=(20.5, 20.6))
    choice = choose_method("auto", find_stages(run), run)
    assert choice.method == "svkr"
    assert choice.warning.startswith("svkr may be worse than bicubic: the nbsr stage validated 20.50 dB")


def test_auto_without_diffusion_validation_or_nbsr_stage(real_run: Path, tmp_path: Path) -> None:
    run = with_validation(real_run, tmp_path / "d", diffusion=None, nbsr=(21.0, 20.6))
    choice = choose_method("auto", find_stages(run), run)
    assert choice.method == "svkr" and "diffusion stage has no recorded validation" in choice.reason
    # no nbsr stage: diffusion is all there is, with a warning when it validated below bicubic
    run = with_validation(real_run, tmp_path / "e", diffusion=(17.1, 20.6))
    shutil.rmtree(run / "nbsr")
    choice = choose_method("auto", find_stages(run), run)
    assert choice.method == "diffusion" and "no nbsr stage" in choice.reason
    assert choice.warning.startswith("diffusion may be worse than bicubic")
    shutil.rmtree(run / "diffusion")
    with pytest.raises(InputError, match="missing: nbsr/"):
        choose_method("auto", find_stages(run), run)


def test_an_asked_method_is_kept_but_warned_about(real_run: Path, tmp_path: Path) -> None:
    run = with_validation(real_run, tmp_path / "f", diffusion=(17.1, 20.6), nbsr=(21.0, 20.6))
    choice = choose_method("diffusion", find_stages(run), run)
    assert choice.method == "diffusion" and choice.warning.startswith("diffusion may be worse")
    assert choose_method("nbsr-dkenet", find_stages(run), run).warning is None
    assert paper_method(find_stages(run)) == "diffusion"  # tables measure the paper's method anyway


def test_a_torn_or_nan_metrics_line_is_not_fatal(real_run: Path, tmp_path: Path) -> None:
    run = with_validation(real_run, tmp_path / "g", diffusion=(25.0, 24.0))
    with open(run / "diffusion" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "val/psnr": NaN, "val/psnr_bicubic": 20.0}\n{"step": 4, "val/ps')
    assert stage_validation(run / "diffusion").step == 3  # the torn line is skipped
    choice = choose_method("auto", find_stages(run), run)
    assert choice.method == "svkr"  # NaN never beats bicubic


def test_cli_prints_the_choice_and_the_warning(real_run: Path, tmp_path: Path) -> None:
    run = with_validation(real_run, tmp_path / "h", diffusion=(17.1, 20.6), nbsr=(20.5, 20.6))
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (6, 5), (120, 60, 30)).save(src / "a.png")
    res = CliRunner().invoke(main, ["--checkpoint", str(run), "--input", str(src), "--out",
                                    str(tmp_path / "out"), "--svkr-iterations", "1"])
    assert res.exit_code == 0, res.output
    assert "ssr-infer: method svkr: the diffusion stage validated below bicubic" in res.stderr
    assert "warning: svkr may be worse than bicubic" in res.stderr
