"""Tests of the table methods (eval.tables.methods and its kinds): parsing, matching, running.

Models are tiny and random-initialised (spandrel's own ESRGAN class, the ssr_models test stages):
the tests check dispatch, provenance, refusals and that each method computes what it claims
(against the same computation done directly), not image quality.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from degrade.ops.quantize import to_uint8
from degrade.ops.resize import imresize_bicubic
from eval.tables.methods import (
    BUILTINS,
    METHOD_KINDS,
    BicubicMethod,
    FolderMethod,
    NBSROracleMethod,
    SpandrelMethod,
    SSRMethod,
    builtin_method,
    kinds_help,
    parse_method,
)
from eval.tables.spec import RowSpec
from eval.tables.testsets import TestImage, TestSet
from ssr_core.errors import ConfigError, InputError
from ssr_models.infer import SRPipeline
from ssr_models.run import load_model_from_run
from tests.ssr_models.test_infer import STAGE_MODELS, write_stage

SCALE = 4
ESRGAN = pytest.importorskip("spandrel.architectures.ESRGAN").ESRGAN


# ---- helpers ----------------------------------------------------------------------------------
def make_image(key: str, image_id: str, h: int = 6, w: int = 8, seed: int = 0,
               field: bool = True) -> TestImage:
    """A random LR (h, w) with a black HR and, unless ``field`` is False, a random kernel field."""
    rng = np.random.default_rng(seed)
    lr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kf = None
    if field:
        s1 = rng.uniform(1.0, 3.0, (h, w))
        kf = np.stack([s1, s1 * rng.uniform(0.3, 1.0, (h, w)), rng.uniform(0, np.pi, (h, w))])
    return TestImage(key, image_id, lr, np.zeros((SCALE * h, SCALE * w, 3), np.uint8),
                     None if kf is None else kf.astype(np.float32))


def make_set(root: Path, images: list[TestImage], *, scale: int = SCALE, delta: float | None = 1.5,
             group: str = "g", real_pairs: bool = False) -> TestSet:
    """A TestSet over ``images`` whose LR PNGs are written to ``root/lr``."""
    lr_dir = root / "lr"
    lr_dir.mkdir(parents=True, exist_ok=True)
    for im in images:
        Image.fromarray(im.lr).save(lr_dir / f"{im.key}.png")
    keys = [im.key for im in images]
    fp = hashlib.sha256(f"{keys}{scale}{group}{delta}".encode()).hexdigest()
    return TestSet(name="test set", group=group, path=str(root), scale=scale, keys=keys,
                   image_ids={im.key: im.image_id for im in images}, fingerprint=fp, info={},
                   lr_dir=str(lr_dir), images=lambda: iter(images),
                   kernel_size=None if real_pairs else 21, delta=None if real_pairs else delta,
                   real_pairs=real_pairs)


def save_png(path: Path, h: int, w: int, value: int = 7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return path


def save_esrgan(path: Path, scale: int = 4, seed: int = 0, **kw: int) -> torch.nn.Module:
    """Save a tiny spandrel ESRGAN (RRDBNet) state dict and return the module (eval mode)."""
    torch.manual_seed(seed)
    model = ESRGAN(num_filters=8, num_blocks=1, scale=scale, **kw).eval()
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    else:
        torch.save(model.state_dict(), path)
    return model


def expects_row(**flags: bool) -> RowSpec:
    return RowSpec(id="ablation", label="Ablation", expects=flags)


def condition_nbsr(folder: Path, seed: int = 0) -> None:
    """Give a stage's NBSR non-zero SFT heads: they start at zero, so a fresh NBSR ignores K."""
    ckpt = torch.load(folder / "last.pt", weights_only=True)
    g = torch.Generator().manual_seed(seed)
    for weights in (ckpt["model"], ckpt["ema"]):
        for k, v in weights.items():
            if k.startswith("sfts.") and (".gamma.2." in k or ".beta.2." in k):
                weights[k] = 0.1 * torch.randn(v.shape, generator=g)
    torch.save(ckpt, folder / "last.pt")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with the three tiny stages (ssr_models test helper), the NBSR conditioned."""
    root = tmp_path_factory.mktemp("tables_run")
    for i, (stage, name) in enumerate(STAGE_MODELS.items()):
        write_stage(root / stage, stage, name, seed=i)
    condition_nbsr(root / "nbsr")
    return root


@pytest.fixture(scope="module")
def svkr_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder without a diffusion stage (kernel + nbsr)."""
    root = tmp_path_factory.mktemp("tables_svkr_run")
    for stage in ("kernel", "nbsr"):
        write_stage(root / stage, stage, STAGE_MODELS[stage])
    return root


# ---- registry and bicubic ---------------------------------------------------------------------
def test_registry_lists_every_kind_with_a_usage_line() -> None:
    assert set(METHOD_KINDS) == {"bicubic", "nbsr-oracle", "ssr", "spandrel", "folder"}
    assert set(BUILTINS) <= set(METHOD_KINDS)
    help_text = kinds_help()
    assert all(METHOD_KINDS.meta(k).usage in help_text for k in METHOD_KINDS)
    assert METHOD_KINDS.meta("spandrel").extra == "methods"


def test_the_kind_literal_and_classes_agree_with_the_registry() -> None:
    from typing import get_args

    from eval.tables.methods import MethodKind

    assert get_args(MethodKind) == METHOD_KINDS.names()
    classes = {BicubicMethod: "bicubic", NBSROracleMethod: "nbsr-oracle", SSRMethod: "ssr",
               SpandrelMethod: "spandrel", FolderMethod: "folder"}
    for cls, kind in classes.items():
        assert METHOD_KINDS.get(kind) is cls
        assert cls.__dataclass_fields__["kind"].default == kind  # the class says its own kind
    with pytest.raises(ConfigError, match=r"unknown method kind 'spandrell' \(did you mean 'spandrel'"):
        METHOD_KINDS.get("spandrell")


def test_bicubic_equals_imresize_bicubic_rounded_half_up(tmp_path: Path) -> None:
    image = make_image("a", "a", 5, 7)
    ts = make_set(tmp_path, [image])
    method = parse_method("bicubic")
    assert isinstance(method, BicubicMethod) and method.name == "bicubic" and method.caches_outputs
    out = method.super_resolve(image, ts)
    ref = imresize_bicubic(torch.from_numpy(image.lr).permute(2, 0, 1).double(), SCALE)
    ref = np.clip(np.floor(ref.permute(1, 2, 0).numpy() + 0.5), 0, 255).astype(np.uint8)
    assert out.dtype == np.uint8 and out.shape == (20, 28, 3)
    assert np.array_equal(out, ref)
    assert method.unsupported(ts) is None
    assert method.fingerprint_for(ts) == BicubicMethod("other").fingerprint_for(ts)
    assert method.describe()["kind"] == "bicubic"


def test_builtin_method_names_the_row_and_rejects_unknown_builtins() -> None:
    assert builtin_method("bicubic", "Bicubic").name == "Bicubic"
    with pytest.raises(ConfigError, match="unknown built-in method 'lanczos'; built-ins: bicubic"):
        builtin_method("lanczos")


def test_methods_without_a_diffusion_config_refuse_ablation_rows() -> None:
    row = expects_row(use_kernel=True, use_depth=False)
    parse_method("bicubic").check_row(RowSpec(id="bicubic", label="Bicubic"))
    with pytest.raises(ConfigError, match="row ablation expects a training run whose diffusion stage "
                                          "has use_depth=false, use_kernel=true; bicubic methods"):
        parse_method("bicubic").check_row(row)


# ---- parse_method -----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "match"), [
    ("nbsr-oracle", r"--method nbsr-oracle=RUN_DIR"),
    ("bicubik", r"expected NAME=PATH or a built-in \(did you mean 'bicubic'\?\)"),
    ("SwinIR", r"expected NAME=PATH or a built-in; forms:\nbicubic: "),
    (".", r"expected NAME=PATH or a built-in \(to use this path: --method NAME=\.\)"),
    ("-x=somewhere", r"NAME '-x' must start with a letter or digit"),
    ("a b=somewhere", r"NAME 'a b' must start"),
    ("A=", r"no path after '='"),
])
def test_parse_method_rejects_malformed_text(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_method(text)


def test_parse_method_names_a_missing_path_and_non_checkpoint_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"no such file or folder: {tmp_path / 'nope'}"):
        parse_method(f"A={tmp_path / 'nope'}")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"notes.txt is a file but not a checkpoint \(.pth, .pt"):
        parse_method(f"A={tmp_path / 'notes.txt'}")


def test_parse_method_checks_options(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(ConfigError, match="0 <= overlap < tile"):
        parse_method("bicubic", tile=8, overlap=8)
    with pytest.raises(ConfigError, match="unknown depth provider 'sonar'"):
        parse_method(f"SSR={run_dir}", depth="sonar")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        parse_method(f"SSR={run_dir}", device="gpu0")


def test_parse_method_dispatches_each_kind(tmp_path: Path, run_dir: Path) -> None:
    (tmp_path / "outputs").mkdir()
    save_esrgan(tmp_path / "x4.pth")
    kinds = {
        "Out=" + str(tmp_path / "outputs"): (FolderMethod, "folder"),
        "SSR=" + str(run_dir): (SSRMethod, "ssr"),
        "SSR-nbsr=" + str(run_dir / "nbsr"): (SSRMethod, "ssr"),  # a stage folder finds its siblings
        "nbsr-oracle=" + str(run_dir): (NBSROracleMethod, "nbsr-oracle"),
        "Real.ESRGAN+x4=" + str(tmp_path / "x4.pth"): (SpandrelMethod, "spandrel"),
    }
    for text, (cls, kind) in kinds.items():
        method = parse_method(text)
        assert isinstance(method, cls) and method.kind == kind, text
        assert method.name == text.partition("=")[0]
        assert method.caches_outputs is (kind != "folder")


def test_parse_method_refuses_a_stage_checkpoint_and_bad_oracle_folders(
        tmp_path: Path, run_dir: Path, svkr_run: Path) -> None:
    with pytest.raises(ConfigError, match=f"belongs to an ssr-train stage folder; give the run folder "
                                          f"instead: A={run_dir}"):
        parse_method(f"A={run_dir / 'nbsr' / 'last.pt'}")
    (tmp_path / "outputs").mkdir()
    with pytest.raises(ConfigError, match="the NBSR oracle needs an ssr-train run folder holding nbsr/"):
        parse_method(f"nbsr-oracle={tmp_path / 'outputs'}")
    only_kernel = tmp_path / "run"
    shutil.copytree(svkr_run / "kernel", only_kernel / "kernel")
    with pytest.raises(ConfigError, match=r"the run has no nbsr stage \(found: kernel/\)"):
        parse_method(f"nbsr-oracle={only_kernel}")
    only_nbsr = tmp_path / "run2"
    shutil.copytree(svkr_run / "nbsr", only_nbsr / "nbsr")
    with pytest.raises(InputError, match=r"an SSR run needs kernel/ plus diffusion/ or nbsr/ .*found: nbsr/"):
        parse_method(f"SSR={only_nbsr}")


# ---- folder -----------------------------------------------------------------------------------
def test_folder_matches_by_key_and_by_image_id(tmp_path: Path) -> None:
    a, b = make_image("set-a-000", "a", 4, 5, seed=1), make_image("set-b-000", "b", 4, 5, seed=2)
    ts = make_set(tmp_path / "set", [a, b])
    out = tmp_path / "out"
    save_png(out / "set-a-000.png", 16, 20, value=11)
    save_png(out / "b.jpg", 16, 20, value=200)
    method = parse_method(f"M={out}")
    assert method.unsupported(ts) is None
    assert np.array_equal(method.super_resolve(a, ts), np.full((16, 20, 3), 11, np.uint8))
    assert np.abs(method.super_resolve(b, ts).astype(int) - 200).max() <= 2  # JPEG
    assert method.check_row(expects_row(use_kernel=True)) is None  # outputs carry no config


def test_folder_prefers_the_group_subfolder(tmp_path: Path) -> None:
    a = make_image("k", "k", 4, 4)
    out = tmp_path / "out"
    save_png(out / "k.png", 16, 16, value=1)
    save_png(out / "div2k" / "k.png", 16, 16, value=2)
    grouped = make_set(tmp_path / "s1", [a], group="div2k")
    other = make_set(tmp_path / "s2", [a], group="bsds100")
    method = parse_method(f"M={out}")
    assert method.super_resolve(a, grouped)[0, 0, 0] == 2
    assert method.super_resolve(a, other)[0, 0, 0] == 1
    assert method.fingerprint_for(grouped) != method.fingerprint_for(other)


def test_folder_reasons_missing_ambiguous_and_wrong_size(tmp_path: Path) -> None:
    imgs = [make_image(f"img-{i}", str(i), 4, 5, seed=i) for i in range(5)]
    ts = make_set(tmp_path / "set", imgs)
    out = tmp_path / "out"
    save_png(out / "img-0.png", 16, 20)
    reason = parse_method(f"M={out}").unsupported(ts)
    assert reason is not None and reason.startswith(f"4 of 5 images have no output in {out} (any of png/jpg")
    assert "img-1.png (or 1.png), img-2.png (or 2.png), img-3.png (or 3.png), ... (1 more)" in reason

    for i in range(1, 5):
        save_png(out / f"img-{i}.png", 16, 20)
    save_png(out / "2.png", 16, 20)  # its image id too: two outputs for img-2
    save_png(out / "img-3.JPG", 16, 20)
    reason = parse_method(f"M={out}").unsupported(ts)
    assert reason == (f"several outputs match one image in {out}: img-2: img-2.png and 2.png, "
                      "img-3: img-3.JPG and img-3.png")

    (out / "2.png").unlink()
    (out / "img-3.JPG").unlink()
    save_png(out / "img-4.png", 20, 16)
    method = parse_method(f"M={out}")
    assert method.unsupported(ts) == ("outputs of the wrong size: img-4.png is 16x20, expected 20x16 "
                                      "(x4 of the 5x4 LR)")
    with pytest.raises(ConfigError, match="outputs of the wrong size"):
        method.super_resolve(imgs[0], ts)


def test_folder_refuses_an_image_id_shared_by_variants(tmp_path: Path) -> None:
    v0, v1 = make_image("src-a-000", "a", 4, 4), make_image("src-a-001", "a", 4, 4, seed=1)
    ts = make_set(tmp_path / "set", [v0, v1])
    out = tmp_path / "out"
    save_png(out / "a.png", 16, 16)  # would be the output of two different LR images
    reason = parse_method(f"M={out}").unsupported(ts)
    assert reason is not None and "2 of 2 images have no output" in reason and "src-a-000.png," in reason


def test_folder_fingerprint_follows_the_files(tmp_path: Path) -> None:
    a = make_image("k", "k", 4, 4)
    ts = make_set(tmp_path / "set", [a])
    out = tmp_path / "out"
    save_png(out / "k.png", 16, 16, value=1)
    fp = parse_method(f"M={out}").fingerprint_for(ts)
    assert parse_method(f"Other={out}").fingerprint_for(ts) == fp
    save_png(out / "k.png", 16, 16, value=2)
    assert parse_method(f"M={out}").fingerprint_for(ts) != fp


# ---- spandrel ---------------------------------------------------------------------------------
def test_spandrel_output_equals_the_architecture_run_directly(tmp_path: Path) -> None:
    model = save_esrgan(tmp_path / "x4.pth")
    image = make_image("k", "k", 10, 12)
    ts = make_set(tmp_path / "set", [image])
    method = parse_method(f"RealESRGAN={tmp_path / 'x4.pth'}", tile=64, overlap=8)
    assert method.unsupported(ts) is None
    x = torch.from_numpy(image.lr).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        want = to_uint8(model(x)[0].clamp(0, 1))
    got = method.super_resolve(image, ts)
    assert got.shape == (40, 48, 3) and np.array_equal(got, want)
    info = method.describe()
    assert info["architecture"] == "ESRGAN" and info["scale"] == 4
    assert info["sha256"] == hashlib.sha256((tmp_path / "x4.pth").read_bytes()).hexdigest()
    assert info["versions"]["spandrel"]


def test_spandrel_tiles_blend_to_nearly_the_whole_image_result(tmp_path: Path) -> None:
    save_esrgan(tmp_path / "x4.pth")
    image = make_image("k", "k", 20, 24)
    ts = make_set(tmp_path / "set", [image])
    whole = parse_method(f"M={tmp_path / 'x4.pth'}", tile=64, overlap=8).super_resolve(image, ts)
    tiled_method = parse_method(f"M={tmp_path / 'x4.pth'}", tile=12, overlap=6)
    tiled = tiled_method.super_resolve(image, ts)
    # the tiny net's receptive field reaches past the 6 px overlap, but its far context weighs
    # little: measured < 0.35 of a level before rounding, so at most 1 level after
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    assert tiled_method.fingerprint_for(ts) != parse_method(f"M={tmp_path / 'x4.pth'}").fingerprint_for(ts)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_spandrel_loads_safetensors_and_bin_state_dicts(tmp_path: Path, suffix: str) -> None:
    save_esrgan(tmp_path / f"m{suffix}", scale=2)
    method = parse_method(f"M={tmp_path / f'm{suffix}'}")
    assert method.describe()["scale"] == 2
    ts = make_set(tmp_path / "set", [make_image("k", "k")])
    assert method.unsupported(ts) == "x2 model on a x4 test set"


def test_spandrel_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_esrgan(tmp_path / "gray.pth", in_nc=1, out_nc=1)
    with pytest.raises(ConfigError, match=r"the ESRGAN model maps 1 to 1 channels; table methods need RGB"):
        parse_method(f"M={tmp_path / 'gray.pth'}")
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "unknown.pth")
    with pytest.raises(ConfigError, match="does not recognise the architecture"):
        parse_method(f"M={tmp_path / 'unknown.pth'}")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth: cannot load the checkpoint: UnpicklingError"):
        parse_method(f"M={tmp_path / 'garbage.pth'}")
    save_esrgan(tmp_path / "x4.pth")
    with pytest.raises(ConfigError, match="row ablation expects .* spandrel methods cannot fill it"):
        parse_method(f"M={tmp_path / 'x4.pth'}").check_row(expects_row(use_svkr=True))
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel -> ImportError
    with pytest.raises(ConfigError, match=r'needs spandrel, which is not installed: '
                                          r'pip install "ssr-bench\[methods\]"'):
        parse_method(f"M={tmp_path / 'x4.pth'}")


# ---- nbsr-oracle ------------------------------------------------------------------------------
def test_oracle_feeds_the_ground_truth_kernel_field(tmp_path: Path, run_dir: Path) -> None:
    image = make_image("k", "k", 8, 8, seed=3)
    ts = make_set(tmp_path, [image])
    method = parse_method(f"nbsr-oracle={run_dir}")
    assert method.unsupported(ts) is None
    got = method.super_resolve(image, ts)
    nbsr = load_model_from_run(run_dir / "nbsr")
    x = torch.from_numpy(image.lr).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        want = to_uint8(nbsr.super_resolve(x, torch.from_numpy(image.kernel_field)[None])[0].clamp(0, 1))
    assert got.shape == (32, 32, 3) and np.array_equal(got, want)
    other = TestImage("k", "k", image.lr, image.hr, make_image("z", "z", 8, 8, seed=9).kernel_field)
    assert not np.array_equal(method.super_resolve(other, ts), got)
    record = method.describe()["stages"]["nbsr"]
    assert record["checkpoint"] == ("best.pt" if (run_dir / "nbsr" / "best.pt").is_file()
                                    else "last.pt")
    assert record["weights_sha256"] == hashlib.sha256(
        (run_dir / "nbsr" / record["checkpoint"]).read_bytes()).hexdigest()


def test_oracle_is_unsupported_without_matching_ground_truth(tmp_path: Path, run_dir: Path) -> None:
    method = parse_method(f"nbsr-oracle={run_dir}")
    image = make_image("k", "k", field=False)
    assert method.unsupported(make_set(tmp_path / "a", [image], real_pairs=True)) == \
        "real LR/HR pairs have no ground-truth kernel field for the NBSR oracle"
    assert method.unsupported(make_set(tmp_path / "b", [image], scale=2)) == "x4 NBSR on a x2 test set"
    reason = method.unsupported(make_set(tmp_path / "c", [image], delta=0.0))
    assert reason is not None and "trained with delta 1.5 HR px, the test set uses delta 0" in reason
    bicubic_set = make_set(tmp_path / "e", [image])
    bicubic_set.info["downsampler"] = "bicubic"
    assert "'bicubic' downsampler is not the exact" in method.unsupported(bicubic_set)
    with pytest.raises(ConfigError, match="image k has no ground-truth kernel field"):
        method.super_resolve(image, make_set(tmp_path / "d", [image]))
    with pytest.raises(ConfigError, match="nbsr-oracle methods cannot fill it"):
        method.check_row(expects_row(use_kernel=True))


# ---- ssr --------------------------------------------------------------------------------------
def test_ssr_runs_the_pipeline_with_seed_zero(tmp_path: Path, run_dir: Path) -> None:
    image = make_image("k", "k", 8, 8, seed=4)
    ts = make_set(tmp_path, [image])
    method = parse_method(f"SSR={run_dir}")
    assert method.unsupported(ts) is None
    assert method.unsupported(make_set(tmp_path / "x2", [image], scale=2)) == "x4 SSR run on a x2 test set"
    want = SRPipeline.from_checkpoint(run_dir, method="diffusion", seed=0)(image.lr).sr
    assert np.array_equal(method.super_resolve(image, ts), want)
    info = method.describe()
    assert info["method"] == "diffusion" and set(info["stages"]) == {"kernel", "nbsr", "diffusion"}


def test_ssr_check_row_compares_the_diffusion_flags(run_dir: Path, svkr_run: Path) -> None:
    method = parse_method(f"SSR={run_dir}")  # ssr-pixel-tiny: every flag true
    method.check_row(RowSpec(id="SSR", label="SSR"))
    method.check_row(expects_row(use_kernel=True, use_depth=True, use_svkr=True))
    with pytest.raises(ConfigError, match=r"row ablation expects a diffusion stage with use_depth=false, "
                                          r"use_kernel=true, use_svkr=false; its diffusion stage "
                                          r"\(.*diffusion\) has use_depth=true, use_svkr=true"):
        method.check_row(expects_row(use_kernel=True, use_depth=False, use_svkr=False))
    with pytest.raises(ConfigError, match=r"the run has no diffusion stage \(found: kernel, nbsr\)"):
        parse_method(f"SSR={svkr_run}").check_row(expects_row(use_svkr=False))


def test_ssr_fingerprint_follows_weights_and_options_not_the_folder(tmp_path: Path, run_dir: Path) -> None:
    ts = make_set(tmp_path / "set", [make_image("k", "k")])
    fp = parse_method(f"SSR={run_dir}").fingerprint_for(ts)
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    assert parse_method(f"SSR={moved}").fingerprint_for(ts) == fp
    assert parse_method(f"SSR={moved}", tile=128).fingerprint_for(ts) != fp
    write_stage(moved / "nbsr", "nbsr", STAGE_MODELS["nbsr"], seed=7)
    assert parse_method(f"SSR={moved}").fingerprint_for(ts) != fp
