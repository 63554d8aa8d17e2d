"""Tests of ssr_models.infer (SRPipeline, tiling) and the ssr-infer command.

The run folders hold tiny random-initialised models (no training): the tests check shapes,
tiling, naming, errors and determinism, not image quality.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from degrade.ops.kernels import gaussian_kernels
from ssr_datasets.errors import ConfigError, InputError
from ssr_models import create_model
from ssr_models.checkpoint import CKPT_FORMAT, CKPT_VERSION
from ssr_models.infer import SRPipeline, blend_tiles, kernels_to_params, ramp_window, tile_starts
from ssr_models.infer_cli import main
from ssr_models.run import write_run

SCALE = 4
STAGE_MODELS = {"kernel": "dkenet-tiny", "nbsr": "nbsr-tiny", "diffusion": "diffusion-tiny"}


def write_stage(folder: Path, stage: str, name: str, seed: int = 0) -> None:
    """Save a random-initialised model as a run stage folder (run.json + Trainer-format last.pt)."""
    torch.manual_seed(seed)
    model = create_model(name)
    write_run(folder, stage=stage, model=name, model_config=model.config.to_dict(), scale=SCALE,
              kernel_size=21, delta=(SCALE - 1) / 2, shards="none", trainer={})
    state = model.state_dict()
    torch.save({"format": CKPT_FORMAT, "version": CKPT_VERSION, "step": 0, "model": state, "ema": state},
               folder / "last.pt")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with all three stages."""
    root = tmp_path_factory.mktemp("infer_run")
    for i, (stage, name) in enumerate(STAGE_MODELS.items()):
        write_stage(root / stage, stage, name, seed=i)
    return root


@pytest.fixture(scope="module")
def pipe(run_dir: Path) -> SRPipeline:
    """The single-pass DKENet -> NBSR pipeline (the fastest), tile 16, overlap 6."""
    return SRPipeline.from_checkpoint(run_dir, method="nbsr-dkenet", tile=16, overlap=6)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random uint8 (h, w, 3) image: low-frequency cosines (no edges of its own)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fy, fx, ph = rng.uniform(0.02, 0.08, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 0.5 + 0.35 * np.cos(2 * np.pi * (fy * y + fx * x) + ph)
    return np.round(img * 255).astype(np.uint8)


# ---- pure helpers ---------------------------------------------------------------------------------
def test_kernels_to_params_recovers_gaussian_parameters() -> None:
    # well inside the 21-tap window (nearest edge 8.5 px = 3.4 s1 away), truncation < 1e-3
    params = torch.tensor([[2.5, 1.0, 0.6], [1.2, 1.2, 0.0], [2.0, 0.8, 2.9]])
    k = gaussian_kernels(params, 21, delta=1.5).reshape(3, 441).T.reshape(1, 441, 1, 3)
    got = kernels_to_params(k, min_sigma=0.2)[0, :, 0].T
    assert torch.allclose(got[:, :2], params[:, :2], atol=0.02)
    aniso = [0, 2]  # theta of an isotropic kernel is arbitrary
    d = (got[aniso, 2] - params[aniso, 2]).abs()
    assert torch.minimum(d, math.pi - d).max() < 0.01


def test_kernels_to_params_rejects_non_square_and_clamps_delta_kernels() -> None:
    with pytest.raises(ConfigError, match="K\\*K channels"):
        kernels_to_params(torch.ones(1, 10, 2, 2))
    delta = torch.zeros(1, 9, 1, 1)
    delta[0, 4] = 1
    assert kernels_to_params(delta, min_sigma=0.3)[0, :2].flatten().tolist() == pytest.approx([0.3, 0.3])


def test_tile_starts_cover_with_overlap() -> None:
    assert tile_starts(10, 16, 4) == [0]
    starts = tile_starts(45, 16, 6)
    assert starts[0] == 0 and starts[-1] == 45 - 16
    assert all(b - a <= 10 for a, b in zip(starts, starts[1:], strict=False))


def test_ramp_window_is_one_at_image_edges_and_rises_over_overlap() -> None:
    w = ramp_window(20, 6, left=True, right=False)
    assert w[-1] == 1 and w[6:].eq(1).all() and 0 < w[0] < 0.02
    assert torch.all(w[1:6] > w[:5])
    assert ramp_window(20, 6, left=False, right=False).eq(1).all()


def test_blend_tiles_equals_untiled_for_a_per_pixel_function() -> None:
    lr = torch.rand(1, 3, 29, 35, generator=torch.Generator().manual_seed(0))

    def per_pixel(t: torch.Tensor):  # SR, nearness and field depend on each pixel alone
        sr = t.repeat_interleave(SCALE, -2).repeat_interleave(SCALE, -1)
        field = torch.stack([1 + t[:, 0], 0.5 + 0.4 * t[:, 1], 3.0 * t[:, 2]], 1)
        return sr, sr[:, :1], field

    whole = blend_tiles(lr, per_pixel, SCALE, 64, 8)
    tiled = blend_tiles(lr, per_pixel, SCALE, 12, 5)
    for a, b in zip(whole, tiled, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ConfigError, match="overlap < tile"):
        blend_tiles(lr, per_pixel, SCALE, 8, 8)


# ---- the pipeline ---------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(5, 7), (13, 19), (37, 45)])
def test_output_is_scale_times_input_for_odd_sizes(pipe: SRPipeline, hw: tuple[int, int]) -> None:
    h, w = hw
    res = pipe(smooth_image(h, w))
    assert res.sr.shape == (SCALE * h, SCALE * w, 3) and res.sr.dtype == np.uint8
    assert res.nearness.shape == (SCALE * h, SCALE * w) and res.nearness.dtype == np.float32
    assert res.kernel_field.shape == (3, h, w)
    assert (res.kernel_field[1] <= res.kernel_field[0] + 1e-5).all() and (res.kernel_field[1] > 0).all()


@pytest.mark.parametrize("method", ["svkr", "diffusion"])
def test_svkr_and_diffusion_methods_give_scaled_outputs(run_dir: Path, method: str) -> None:
    p = SRPipeline.from_checkpoint(run_dir, method=method, svkr_iterations=1, tile=16, overlap=4, steps=2)
    res = p(smooth_image(11, 21))
    assert res.sr.shape == (44, 84, 3) and res.kernel_field.shape == (3, 11, 21)


def test_auto_picks_diffusion_then_svkr(run_dir: Path, tmp_path: Path) -> None:
    assert SRPipeline.from_checkpoint(run_dir).method == "diffusion"
    for stage in ("kernel", "nbsr"):
        shutil.copytree(run_dir / stage, tmp_path / stage)
    assert SRPipeline.from_checkpoint(tmp_path).method == "svkr"
    # a stage folder given directly: the other stages are its siblings
    assert SRPipeline.from_checkpoint(tmp_path / "nbsr", method="nbsr-dkenet").method == "nbsr-dkenet"


def seam_energy(d: np.ndarray, borders: list[int]) -> list[tuple[float, float]]:
    """Per axis: mean |gradient| of d (HR, 3) across the given HR borders vs across all other lines."""
    out = []
    for axis, rest in ((1, (0, 2)), (0, (1, 2))):
        g = np.abs(np.diff(d, axis=axis)).mean(axis=rest)  # g[j]: between lines j and j + 1
        at = [b - 1 for b in borders]
        out.append((float(g[at].mean()), float(np.delete(g, at).mean())))
    return out


def test_tiles_leave_no_seam(pipe: SRPipeline, run_dir: Path) -> None:
    """Small tiles vs one tile: close everywhere, and their difference has no edge at tile borders.

    The difference to the untiled output is used (not the output itself) because a random
    NBSR's pixel-shuffle texture has the period of the scale, which all tile borders share.
    """
    img = smooth_image(40, 40, seed=3)
    whole = SRPipeline.from_checkpoint(run_dir, method="nbsr-dkenet", tile=64, overlap=6)(img).sr

    def seams(p: SRPipeline) -> tuple[np.ndarray, list[tuple[float, float]]]:
        d = p(img).sr.astype(np.float64) - whole.astype(np.float64)
        starts = tile_starts(40, p.tile, p.overlap)
        borders = sorted({SCALE * b for s in starts for b in (s, s + p.tile)} - {0, SCALE * 40})
        return d, seam_energy(d, borders)

    d, energy = seams(pipe)
    assert np.abs(d).max() <= 8 and np.abs(d).mean() < 1  # 8-bit levels; per-tile depth differs
    for at, elsewhere in energy:
        assert at < 1.5 * elsewhere + 0.25, (at, elsewhere)
    # control: hard-edged tiles (no overlap) do show up in this measure
    hard = SRPipeline.from_checkpoint(run_dir, method="nbsr-dkenet", tile=16, overlap=0)
    _, energy = seams(hard)
    assert all(at > 2 * elsewhere for at, elsewhere in energy), energy


def test_diffusion_is_deterministic_for_a_seed(run_dir: Path) -> None:
    p = SRPipeline.from_checkpoint(run_dir, method="diffusion", svkr_iterations=0, tile=16, overlap=4,
                                   steps=2)
    img = smooth_image(9, 10)
    a, b, c = p(img, seed=5).sr, p(img, seed=5).sr, p(img, seed=6).sr
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_missing_stage_names_the_folder_and_the_stage(run_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(run_dir / "kernel", tmp_path / "kernel")
    with pytest.raises(InputError, match=r"'diffusion'.*missing: diffusion/") as err:
        SRPipeline.from_checkpoint(tmp_path, method="diffusion")
    assert str(tmp_path) in str(err.value)
    with pytest.raises(InputError, match="missing: nbsr/"):
        SRPipeline.from_checkpoint(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        SRPipeline.from_checkpoint(tmp_path / "nope")
    (tmp_path / "kernel" / "last.pt").unlink()
    with pytest.raises(InputError, match="no last.pt"):
        SRPipeline.from_checkpoint(tmp_path)


def test_bad_inputs_and_options(pipe: SRPipeline, run_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"uint8 \(h, w, 3\)"):
        pipe(np.zeros((8, 8), np.uint8))
    with pytest.raises(ConfigError, match="unknown method"):
        SRPipeline.from_checkpoint(run_dir, method="esrgan")
    with pytest.raises(ConfigError, match="unknown device 'gpu7'"):
        SRPipeline.from_checkpoint(run_dir, method="nbsr-dkenet", device="gpu7")
    with pytest.raises(ConfigError, match="svkr_iterations >= 1"):
        SRPipeline.from_checkpoint(run_dir, method="svkr", svkr_iterations=0)


# ---- the command ----------------------------------------------------------------------------------
def test_cli_folder_odd_sizes_gray_rgba_and_maps(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(smooth_image(11, 13)).save(src / "rgb.png")
    Image.fromarray(smooth_image(9, 7)[..., 0]).save(src / "gray.bmp")
    Image.fromarray(np.dstack([smooth_image(7, 9), np.full((7, 9), 128, np.uint8)])).save(src / "rgba.png")
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    args = ["--checkpoint", str(run_dir), "--input", str(src), "--out", str(out),
            "--method", "nbsr-dkenet", "--tile", "16", "--overlap", "4", "--save-maps"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "3 image(s) from folder" in res.output and "method nbsr-dkenet" in res.output
    sizes = {"rgb": (11, 13), "gray": (9, 7), "rgba": (7, 9)}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}{suffix}.png" for s in sizes for suffix in ("", "_nearness", "_blur"))
    for stem, (h, w) in sizes.items():
        for suffix in ("", "_nearness", "_blur"):
            with Image.open(out / f"{stem}{suffix}.png") as im:
                assert (im.height, im.width, im.mode) == (SCALE * h, SCALE * w, "RGB")
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.output
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0


def test_cli_shard_set_names_outputs_by_sample_key(run_dir: Path, shard_dir: Path, samples: dict,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["--checkpoint", str(run_dir), "--input", str(shard_dir),
                                    "--out", str(out), "--method", "nbsr-dkenet"])
    assert res.exit_code == 0, res.output
    assert f"{len(samples)} image(s) from shard set" in res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}.png" for k in samples)
    for key, sample in samples.items():
        with Image.open(out / f"{key}.png") as im:
            assert (im.height, im.width) == (SCALE * sample.lr.shape[0], SCALE * sample.lr.shape[1])


def test_cli_errors_exit_codes_and_messages(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    partial = tmp_path / "run"
    shutil.copytree(run_dir / "kernel", partial / "kernel")
    base = ["--input", str(src), "--out", str(tmp_path / "out")]
    res = CliRunner().invoke(main, ["--checkpoint", str(partial), *base])
    assert res.exit_code == 1 and "missing: nbsr/" in res.output and str(partial) in res.output
    res = CliRunner().invoke(main, ["--checkpoint", str(run_dir), *base, "--method", "nbsr-dkenet"])
    assert res.exit_code == 1 and "no images" in res.output
    Image.fromarray(smooth_image(8, 8)).save(src / "a.png")
    Image.fromarray(smooth_image(8, 8)).save(src / "a.jpg")
    res = CliRunner().invoke(main, ["--checkpoint", str(run_dir), *base, "--method", "nbsr-dkenet"])
    assert res.exit_code == 1 and "ambiguous file names" in res.output
    res = CliRunner().invoke(main, ["--checkpoint", str(run_dir), *base, "--tile", "16", "--overlap", "16"])
    assert res.exit_code == 2 and "must be smaller than --tile" in res.output
