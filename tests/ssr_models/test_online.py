"""Online degradation (ssr_models.online): Eq. 1 on the batch, the build's ops, determinism,
workers, resume, rank split, and ``ssr-train --online``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from degrade.ops.blur import apply_kernel_field
from degrade.ops.noise import add_gaussian_noise
from degrade.ops.quantize import jpeg_roundtrip, to_uint8
from degrade.recipes import recipe_path
from ssr_core.errors import ConfigError, InputError
from ssr_models.online import OnlineSpec, OnlineStream, PendingBatch, degrade_batch
from ssr_models.train_cli import main
from tests.helpers import write_folder
from tests.reference import direct_degradation
from tests.ssr_models.batches import assert_same, take

CROP, S, K = 16, 4, 21


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 48x64 random photos; three carry metric depth (<stem>.depth.npy, metres)."""
    root = tmp_path_factory.mktemp("online_images")
    write_folder(root, ["a", "b", "c", "d"])
    rng = np.random.default_rng(1)
    for name in ("a", "b", "c"):
        np.save(root / f"{name}.depth.npy", rng.uniform(1.0, 9.0, (48, 64)).astype(np.float32))
    return root


@pytest.fixture(scope="module")
def blur_only(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The ssr recipe with noise and JPEG off (blur + downsampling + 8-bit rounding only)."""
    data = yaml.safe_load(recipe_path("ssr").read_text())
    data.update(name="ssr-blur-only", noise=None, jpeg=None)
    path = tmp_path_factory.mktemp("recipes") / "blur-only.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def stream(images: Path, batch: int = 4, recipe: str = "ssr", **kw: object) -> OnlineStream:
    spec = OnlineSpec("folder", root=str(images), recipe=recipe, depth="gt",
                      jpeg=kw.pop("jpeg", "cpu"))  # type: ignore[arg-type]
    return OnlineStream(spec, CROP, batch, seed=kw.pop("seed", 3), **kw)  # type: ignore[arg-type]


def test_lr_is_eq1_of_the_batch_hr_and_field(images: Path, blur_only: str) -> None:
    """Without noise/JPEG, LR = round(255 * Eq. 1 (HR, kernel field)) / 255 (direct formula)."""
    (batch,) = take(stream(images, recipe=blur_only), 1)
    assert batch.hr.shape == (4, 3, CROP, CROP) and batch.lr.shape == (4, 3, CROP // S, CROP // S)
    assert batch.nearness.shape == (4, 1, CROP, CROP) and batch.kernel_field.shape == (4, 3, 4, 4)
    assert (batch.scale, batch.kernel_size, batch.delta) == (S, K, 1.5)
    for i in range(4):
        ref = direct_degradation(batch.hr[i].double().numpy(), batch.kernel_field[i].numpy(), S, K, 1.5)
        # float32 blur vs float64 reference may round to the neighbouring 8-bit level
        assert np.abs(batch.lr[i].numpy() * 255 - np.rint(ref * 255)).max() <= 1.0
        assert np.mean(batch.lr[i].numpy() * 255 == np.rint(ref * 255)) > 0.95
    # nearness sits on the shards' uint16 grid; the field's sigmas are in the recipe's range
    assert torch.equal(torch.round(batch.nearness * 65535) / 65535, batch.nearness)
    sigmas = batch.kernel_field[:, :2]
    assert 0.6 - 1e-6 <= float(sigmas.min()) and float(sigmas.max()) <= 3.5 + 1e-6
    assert set(k.split("-")[1] for k in batch.keys) <= {"a", "b", "c"}  # gt: only images with depth


def test_noise_and_jpeg_follow_the_build_ops() -> None:
    """degrade_batch = apply_kernel_field -> add_gaussian_noise -> to_uint8 -> OpenCV JPEG
    (the build's order and ops, DESIGN.md section 3); kornia's JPEG stays close to it."""
    rng = np.random.default_rng(0)
    hr = torch.from_numpy(rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8))
    field = torch.stack([torch.full((2, 8, 8), 1.8), torch.full((2, 8, 8), 1.1),
                         torch.full((2, 8, 8), 0.4)], 1)
    states = [np.random.Generator(np.random.Philox(7 + i)).bit_generator.state for i in range(2)]
    pending = PendingBatch(hr=hr, nearness=torch.zeros(2, 1, 32, 32), kernel_field=field,
                           noise=[(12.0, False), (5.0, True)], jpeg_quality=[40, None],
                           rng_states=states, keys=("x-a-000", "x-b-000"))
    got = degrade_batch(pending, S, K, 1.5, "cpu", "cpu")
    blurred = apply_kernel_field(hr.float() / 255, field, S, K, 1.5)
    for i, (noise, q) in enumerate(zip(pending.noise, pending.jpeg_quality, strict=True)):
        gen = np.random.Generator(np.random.Philox(7 + i))
        u8 = to_uint8(add_gaussian_noise(blurred[i], noise[0], noise[1], gen).clamp(0, 1))
        want = u8 if q is None else jpeg_roundtrip(u8, q)
        np.testing.assert_array_equal(np.rint(got.lr[i].permute(1, 2, 0).numpy() * 255), want)
    kornia = degrade_batch(pending, S, K, 1.5, "cpu", "kornia")
    assert torch.equal(kornia.lr[1], got.lr[1])  # no JPEG drawn: identical
    assert 0 < float((kornia.lr[0] - got.lr[0]).abs().mean()) < 4 / 255


def test_deterministic_for_seed_and_any_workers(images: Path) -> None:
    plain = take(stream(images, crops_per_image=2), 3)
    assert_same(take(stream(images, crops_per_image=2, num_workers=2), 3), plain)
    assert plain[0].keys[0].rsplit("-", 1)[0] == plain[0].keys[1].rsplit("-", 1)[0]
    other = take(stream(images, crops_per_image=2, seed=4), 3)
    assert any(not torch.equal(x.hr, y.hr) for x, y in zip(plain, other, strict=True))
    assert not torch.equal(plain[0].kernel_field, plain[1].kernel_field)  # fresh draws every step


def test_resume_continues_the_same_stream(images: Path) -> None:
    straight = take(stream(images), 5)
    first = stream(images)
    head = take(first, 2)
    second = stream(images)
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))  # JSON-safe state
    assert_same(head + take(second, 3), straight)
    with pytest.raises(ConfigError, match="batch_size"):
        stream(images, batch=2).load_state_dict(first.state_dict())


def test_ranks_take_disjoint_images(images: Path) -> None:
    """Within an epoch of the 3 depth-carrying images, two ranks never share one."""
    per_rank = [take(stream(images, batch=1, rank=r, world_size=2), 1)[0].keys for r in (0, 1)]
    assert per_rank[0] != per_rank[1]


def test_prior_once_per_image(images: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The prior runs once per image (not per crop or step), then comes from the depth cache."""
    from degrade.depth import prior

    calls: list[tuple[int, int]] = []
    real = prior.prior_nearness

    def counting(rgb: np.ndarray) -> tuple[np.ndarray, dict]:
        calls.append(rgb.shape[:2])
        return real(rgb)

    monkeypatch.setattr(prior, "prior_nearness", counting)
    spec = OnlineSpec("folder", root=str(images), depth="prior", depth_cache=str(tmp_path))
    first = take(OnlineStream(spec, CROP, 4, seed=0, crops_per_image=2), 4)  # 8 images loaded
    assert len(calls) == 4  # the folder's 4 images, once each
    again = take(OnlineStream(spec, CROP, 4, seed=0, crops_per_image=2), 4)
    assert len(calls) == 4
    assert_same(again, first)


def test_images_over_max_pixels_are_left_out_before_any_decode(tmp_path: Path) -> None:
    """An image bomb (a few kB declaring 81 MP) is skipped from its header, with the reason."""
    from tests.datasets.test_hostile_images import bilevel_png

    root = tmp_path / "with-bomb"
    write_folder(root, ["a", "b"])
    bilevel_png(root / "bomb.png", 9000, 9000)
    def prior_stream(folder: Path) -> OnlineStream:
        return OnlineStream(OnlineSpec("folder", root=str(folder), depth="prior"), CROP, 4, seed=0)

    with pytest.warns(UserWarning, match=r"1 image\(s\) over max_pixels 16000000 left out"):
        s = prior_stream(root)
    assert [it.image_id for it in s.items] == ["a", "b"]
    assert list(s.skipped) == ["bomb.png"] and "9000x9000" in s.skipped["bomb.png"]
    assert len(take(s, 1)[0].keys) == 4
    only_bomb = tmp_path / "only-bomb"
    only_bomb.mkdir()
    bilevel_png(only_bomb / "bomb.png", 9000, 9000)
    with pytest.warns(UserWarning), pytest.raises(InputError, match="1 over max_pixels"):
        prior_stream(only_bomb)


def test_bad_settings(images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="multiple of the scale 4"):
        OnlineStream(OnlineSpec("folder", root=str(images)), 18, 2, seed=0)
    with pytest.raises(ConfigError, match="online_jpeg"):
        OnlineSpec("folder", jpeg="png")  # type: ignore[arg-type]
    write_folder(tmp_path / "flat", ["z"])
    with pytest.raises(InputError, match="ground-truth depth"):
        OnlineStream(OnlineSpec("folder", root=str(tmp_path / "flat"), depth="gt"), CROP, 2, 0)
    monkeypatch.setattr("degrade.depth._learned_available", lambda: None)  # no weights here
    with pytest.raises(ConfigError, match="--depth cache needs a learned depth model"):
        OnlineStream(OnlineSpec("folder", root=str(images), depth="cache"), CROP, 2, 0)
    with pytest.raises(ConfigError, match="holds real LR/HR pairs"):
        OnlineStream(OnlineSpec("drealsr", root=str(tmp_path)), CROP, 2, 0)
    big = OnlineStream(OnlineSpec("folder", root=str(images), depth="gt"), 64, 1, seed=0)
    with pytest.raises(InputError, match="smaller than the 64 px crop"):
        take(big, 1)


def test_ssr_train_online_tiny(images: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSR_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["--online", "--source", "folder", "--root", str(images), "--stage", "kernel",
            "--config", "tiny", "--out", str(out)]
    res = CliRunner().invoke(main, [*args, "--steps", "2"])
    assert res.exit_code == 0, res.output
    run = json.loads((out / "kernel" / "run.json").read_text())
    assert run["online"]["jpeg"] == "cpu" and run["online"]["depth"] == "prior"
    assert run["shards"] == "online:folder" and (run["scale"], run["kernel_size"]) == (4, 21)
    assert len(list((tmp_path / "cache" / "depth").rglob("*.npy"))) == 4  # prior once per image
    res = CliRunner().invoke(main, [*args, "--steps", "3", "--resume"])
    assert res.exit_code == 0 and "trained to step 3" in res.output, res.output
    bad = CliRunner().invoke(main, ["--online", "--stage", "kernel", "--out", str(out)])
    assert bad.exit_code == 2 and "Missing option '--source'" in bad.output
    bad = CliRunner().invoke(main, ["--shards", "x", "--source", "sample", "--stage", "kernel",
                                    "--out", str(out)])
    assert bad.exit_code == 2 and "--source only apply with --online" in bad.output


@pytest.mark.parametrize("recipe", ["gaussian8", "div2krk"])
def test_protocol_recipes_without_an_exact_field_are_refused_online(images: Path, recipe: str) -> None:
    # Training supervises with the kernel field; a bicubic or taps recipe would hand it the
    # wrong ground truth, so the stream refuses it by name instead of ignoring the difference.
    with pytest.raises(ConfigError, match=f"recipe '{recipe}'.*not supported online"):
        stream(images, recipe=recipe)
