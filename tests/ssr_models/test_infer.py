"""Tests of ssr_models.infer (SRPipeline, tiling) and the ssr-infer command.

The run folders hold tiny random-initialised models (no training): the tests check shapes,
tiling, naming, errors and determinism, not image quality.
"""

from __future__ import annotations

import math
import shlex
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from degrade.ops.kernels import gaussian_kernels
from ssr_core.errors import ConfigError, InputError
from ssr_models import create_model
from ssr_models.checkpoint import CKPT_FORMAT, CKPT_VERSION
from ssr_models.infer import Progress, SRPipeline, taps_to_kernel_field, tile_starts
from ssr_models.infer_cli import main
from ssr_models.run import load_stage, write_run
from tests.helpers import FLAT_PIXEL_CONFIG_V1, with_random_residual
from tests.ssr_models.test_tiling import fewest_tiles

# one intra-op thread: on a shared 2-core machine, tiny convolutions on 2 threads spend most of
# their time waiting for each other (the progress test took 50 s on 2 threads, 2 s on one)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCALE = 4
STAGE_MODELS = {"kernel": "dkenet-tiny", "nbsr": "nbsr-tiny", "diffusion": "ssr-pixel-tiny"}


def write_stage(folder: Path, stage: str, name: str, seed: int = 0) -> None:
    """Save a random-initialised model as a run stage folder (run.json + Trainer-format last.pt)."""
    torch.manual_seed(seed)
    model = create_model(name)
    if stage == "diffusion":  # a fresh ssr-pixel ignores the noise (bicubic); a trained one does not
        with_random_residual(model, seed)
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
def test_taps_to_kernel_field_recovers_gaussian_parameters() -> None:
    # well inside the 21-tap window (nearest edge 8.5 px = 3.4 s1 away), truncation < 1e-3
    params = torch.tensor([[2.5, 1.0, 0.6], [1.2, 1.2, 0.0], [2.0, 0.8, 2.9]])
    k = gaussian_kernels(params, 21, delta=1.5).reshape(3, 441).T.reshape(1, 441, 1, 3)
    got = taps_to_kernel_field(k, min_sigma=0.2)[0, :, 0].T
    assert torch.allclose(got[:, :2], params[:, :2], atol=0.02)
    aniso = [0, 2]  # theta of an isotropic kernel is arbitrary
    d = (got[aniso, 2] - params[aniso, 2]).abs()
    assert torch.minimum(d, math.pi - d).max() < 0.01


def test_taps_to_kernel_field_rejects_non_square_and_clamps_delta_kernels() -> None:
    with pytest.raises(ConfigError, match="K\\*K channels"):
        taps_to_kernel_field(torch.ones(1, 10, 2, 2))
    delta = torch.zeros(1, 9, 1, 1)
    delta[0, 4] = 1
    assert taps_to_kernel_field(delta, min_sigma=0.3)[0, :2].flatten().tolist() == pytest.approx([0.3, 0.3])


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


def test_auto_without_recorded_validation_picks_svkr(run_dir: Path, tmp_path: Path) -> None:
    # (the cases with validation are in test_method_choice.py)
    p = SRPipeline.from_checkpoint(run_dir)
    assert p.method == "svkr" and "diffusion stage has no recorded validation" in p.choice.reason
    for stage in ("kernel", "nbsr"):
        shutil.copytree(run_dir / stage, tmp_path / stage)
    assert SRPipeline.from_checkpoint(tmp_path).method == "svkr"
    # a stage folder given directly: the other stages are its siblings
    assert SRPipeline.from_checkpoint(tmp_path / "nbsr", method="nbsr-dkenet").method == "nbsr-dkenet"


def test_progress_counts_every_tile_and_unit_once(run_dir: Path) -> None:
    img = smooth_image(20, 17)
    tiles = fewest_tiles(20, 16, 4) * fewest_tiles(17, 16, 4)  # 2 x 2 from the direct definition
    for method, options, units in (("nbsr-dkenet", {}, 1),  # one pass: one unit per tile
                                   ("svkr", {"svkr_iterations": 2}, 2),  # a unit per iteration
                                   ("diffusion", {"svkr_iterations": 1, "steps": 2}, 1 + 2)):
        p = SRPipeline.from_checkpoint(run_dir, method=method, tile=16, overlap=4, **options)
        seen: list[Progress] = []
        p(img, progress=seen.append)
        assert seen[0] == Progress(1, tiles, 0, units)
        assert len(seen) == 1 + tiles * units, method
        assert [e.done for e in seen] == list(range(tiles * units + 1))
        assert {(e.tiles, e.steps) for e in seen} == {(tiles, units)}
        assert [e.tile for e in seen[1:]] == [t for t in range(1, tiles + 1) for _ in range(units)]


def test_diffusion_keeps_rgb_order_and_range(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An x_0 predictor that returns y_0 must give bicubic back: checks [-1, 1] <-> [0, 1] and RGB order.

    The reference is torch's bicubic on the [0, 1] LR, per channel (PixelSSR's y_0 convention).
    """
    p = SRPipeline.from_checkpoint(run_dir, method="diffusion", svkr_iterations=0, tile=64, steps=3)
    monkeypatch.setattr(p.diffusion, "predict_x0", lambda xt, t, y0, enc: y0)
    img = np.zeros((8, 12, 3), np.uint8)
    img[..., 0], img[:4, :, 1], img[:, 6:, 2] = 200, 90, 30  # distinct per channel and region
    got = p(img).sr
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255
    ref = torch.nn.functional.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False)
    ref = (ref.clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(got.astype(float) - ref).max() <= 1


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


def test_a_run_of_the_raw_x0_pixel_model_is_refused_clearly(tmp_path: Path) -> None:
    # what such a run folder holds: the former name, the flat config, weights without the marker
    folder = tmp_path / "diffusion"
    model = create_model("diffusion-tiny", **FLAT_PIXEL_CONFIG_V1)
    write_run(folder, stage="diffusion", model="diffusion-tiny", model_config=FLAT_PIXEL_CONFIG_V1,
              scale=SCALE, kernel_size=21, delta=(SCALE - 1) / 2, shards="none", trainer={})
    state = {k: v for k, v in model.state_dict().items() if k != "format_version"}
    torch.save({"format": CKPT_FORMAT, "version": CKPT_VERSION, "step": 0, "model": state, "ema": state},
               folder / "last.pt")
    with pytest.raises(ConfigError, match=r"last\.pt: ssr-pixel weights of format 1 .*retrain"):
        load_stage(folder)


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
        with Image.open(out / f"{stem}.png") as im:
            assert (im.height, im.width, im.mode) == (SCALE * h, SCALE * w, "RGB")
        for suffix in ("_nearness", "_blur"):  # the map at the SR size, a legend strip below
            with Image.open(out / f"{stem}{suffix}.png") as im:
                assert im.mode == "RGB" and im.width == max(SCALE * w, 256) and im.height > SCALE * h
    assert "ssr-infer: method nbsr-dkenet: asked for; its nbsr stage has no recorded validation" in res.output
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


def legend_colours(sheet: np.ndarray, map_h: int) -> set[tuple[int, ...]]:
    """The distinct RGB colours of the legend strip (rows below the map)."""
    return {tuple(c) for c in sheet[map_h:].reshape(-1, 3).tolist()}


def cmap_colour(level: int, cmap: int) -> tuple[int, ...]:
    """RGB of OpenCV colour map ``cmap`` at 8-bit ``level`` (the reference for the bar's ends)."""
    return tuple(cv2.applyColorMap(np.array([[level]], np.uint8), cmap)[0, 0, ::-1].tolist())


def test_cli_maps_carry_a_colour_bar_with_range_and_units(run_dir: Path, tmp_path: Path) -> None:
    """The map pixels are the values through the colour map; the strip holds the map's full bar."""
    src = tmp_path / "in"
    src.mkdir()
    img = smooth_image(18, 22)
    Image.fromarray(img).save(src / "a.png")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["--checkpoint", str(run_dir), "--input", str(src), "--out", str(out),
                                    "--method", "nbsr-dkenet", "--tile", "16", "--overlap", "4",
                                    "--save-maps"])
    assert res.exit_code == 0, res.output
    want = SRPipeline.from_checkpoint(run_dir, method="nbsr-dkenet", tile=16, overlap=4)(img)
    sh, sw = want.sr.shape[:2]
    near = np.asarray(Image.open(out / "a_nearness.png"))
    blur = np.asarray(Image.open(out / "a_blur.png"))
    # the map: nearness 0..1 and sqrt(s1 s2) 0..5 HR px through viridis / inferno, at the SR size
    levels = np.round(np.clip(want.nearness, 0, 1) * 255).astype(np.uint8)
    ref = cv2.applyColorMap(levels, cv2.COLORMAP_VIRIDIS)[..., ::-1]
    assert np.abs(near[:sh, :sw].astype(int) - ref).max() <= 1
    size = np.sqrt(want.kernel_field[0] * want.kernel_field[1]).repeat(SCALE, 0).repeat(SCALE, 1)
    levels = np.round(np.clip(size / 5.0, 0, 1) * 255).astype(np.uint8)
    ref = cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO)[..., ::-1]
    assert np.abs(blur[:sh, :sw].astype(int) - ref).max() <= 1
    # the bar: both ends of each colour map appear in the strip, and a smooth ramp between them
    for sheet, cmap in ((near, cv2.COLORMAP_VIRIDIS), (blur, cv2.COLORMAP_INFERNO)):
        strip = legend_colours(sheet, sh)
        assert {cmap_colour(0, cmap), cmap_colour(255, cmap), cmap_colour(128, cmap)} <= strip
        assert len(strip & {cmap_colour(v, cmap) for v in range(256)}) > 100


def command_lines(text: str) -> list[str]:
    """The ``ssr-infer`` command lines of a text, comments dropped."""
    lines = [ln.strip() for ln in text.splitlines()]
    return [shlex.join(shlex.split(ln, comments=True)) for ln in lines if ln.startswith("ssr-infer --")]


def test_help_and_readme_examples_run_as_written(run_dir: Path, shard_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example runs in a folder laid out as the README leaves it (runs/tiny, out/sample)."""
    in_help = command_lines(CliRunner().invoke(main, ["--help"]).output)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    in_readme = command_lines(readme)
    assert len(in_help) == 3 and len(in_readme) >= 1, (in_help, in_readme)
    examples = list(dict.fromkeys(in_help + in_readme))  # the README repeats the first one
    shutil.copytree(run_dir, tmp_path / "runs" / "tiny")
    shutil.copytree(shard_dir, tmp_path / "out" / "sample")
    monkeypatch.chdir(tmp_path)
    for line in examples:
        args = shlex.split(line)[1:]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, (line, res.output)
        out = Path(args[args.index("--out") + 1])
        assert len(list(out.glob("*.png"))) >= 6, line  # one per sample of the shard set at least


def test_allow_download_reaches_the_depth_check(run_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The missing-weights message names ssr-infer among the commands with --allow-download: the
    # flag must exist and reach the learned provider's check (replaced here: no network).
    seen: list[bool] = []

    def check(provider: str, **kw: object) -> None:
        seen.append(bool(kw["allow_download"]))
        raise ConfigError("stop here")

    monkeypatch.setattr("ssr_models.infer.check_depth_provider", check)
    (tmp_path / "in").mkdir()
    Image.fromarray(smooth_image(8, 8)).save(tmp_path / "in" / "a.png")
    for extra in ((), ("--allow-download",)):
        res = CliRunner().invoke(main, ["--checkpoint", str(run_dir), "--input", str(tmp_path / "in"),
                                        "--out", str(tmp_path / "out"), "--method", "nbsr-dkenet",
                                        "--depth", "midas", *extra])
        assert res.exit_code != 0 and "stop here" in res.output, res.output
    assert seen == [False, True]


def test_default_depth_is_auto_and_prior_notes_the_fixed_point(run_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # no learned weights anywhere
    monkeypatch.delenv("SSR_BENCH_DEPTH_WEIGHTS", raising=False)
    (tmp_path / "in").mkdir()
    Image.fromarray(smooth_image(8, 8)).save(tmp_path / "in" / "a.png")
    res = CliRunner().invoke(main, ["--checkpoint", str(run_dir), "--input", str(tmp_path / "in"),
                                    "--out", str(tmp_path / "out"), "--method", "svkr",
                                    "--svkr-iterations", "1"])
    assert res.exit_code == 0, res.output
    assert "depth prior" in res.output and "fixed point" in res.output


def test_best_pt_is_used_by_default_and_named(run_dir: Path, tmp_path: Path) -> None:
    for stage in ("kernel", "nbsr"):
        shutil.copytree(run_dir / stage, tmp_path / stage)
    torch.manual_seed(99)
    best = create_model("nbsr-tiny").state_dict()
    torch.save({"format": CKPT_FORMAT, "version": CKPT_VERSION, "step": 7, "model": best, "ema": best,
                "best": {"metric": "psnr_y", "direction": "max", "value": 25.5, "step": 7}},
               tmp_path / "nbsr" / "best.pt")
    p = SRPipeline.from_checkpoint(tmp_path, method="nbsr-dkenet")
    assert p.checkpoints == {"kernel": "kernel/last.pt (step 0)",
                             "nbsr": "nbsr/best.pt (step 7, best val psnr_y 25.5)"}
    assert all(torch.equal(v, best[k]) for k, v in p.restorer.state_dict().items()
               if isinstance(v, torch.Tensor))
    last, note = load_stage(tmp_path / "nbsr", which="last")
    assert note == "nbsr/last.pt (step 0)"
    assert not torch.equal(last.first.weight, best["first.weight"])
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(smooth_image(6, 6)).save(src / "a.png")
    res = CliRunner().invoke(main, ["--checkpoint", str(tmp_path), "--input", str(src), "--out",
                                    str(tmp_path / "out"), "--method", "nbsr-dkenet"])
    assert res.exit_code == 0, res.output
    assert ("ssr-infer: weights kernel/last.pt (step 0), nbsr/best.pt (step 7, best val psnr_y "
            "25.5)") in res.output
