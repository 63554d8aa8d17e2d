"""Latent SSR (ssr_models.latent): backbone loading and checks, identity at initialisation,
frozen backbone, conditioning sensitivity, resume, and the ssr-train/ssr-infer path.

The backbone is a tiny diffusers VQModel + UNet2DModel + DDIMScheduler saved by
``save_pretrained`` in the real pipeline layout (``tests/ssr_models/tiny_backbone.py``); the
reference for "SSR equals its backbone" is diffusers' own ``LDMSuperResolutionPipeline``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssr_core.errors import ConfigError, MissingAssetError
from ssr_models import create_model
from ssr_models.batch import Batch
from ssr_models.latent_backbone import WEIGHTS, check_backbone, load_backbone
from ssr_models.trainer import Trainer, TrainerConfig
from tests.ssr_models.tiny_backbone import make_tiny_backbone


@pytest.fixture
def backbone_copy(tiny_backbone: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny backbone that a test may damage."""
    return Path(shutil.copytree(tiny_backbone, tmp_path / "backbone"))


def _model(backbone: Path, **overrides: object):
    torch.manual_seed(0)
    return create_model("ssr-latent-tiny", backbone=str(backbone), **overrides)


def _batch(n: int = 2, side: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    kernel = torch.stack([0.6 + 2.9 * torch.rand(n, side, side, generator=g),
                          0.6 + 2.9 * torch.rand(n, side, side, generator=g),
                          3.14 * torch.rand(n, side, side, generator=g)], 1)
    return Batch(hr=torch.rand(n, 3, 4 * side, 4 * side, generator=g),
                 lr=torch.rand(n, 3, side, side, generator=g),
                 nearness=torch.rand(n, 1, 4 * side, 4 * side, generator=g), kernel_field=kernel,
                 scale=4, kernel_size=21, delta=1.5)


# ---- loading and checks ---------------------------------------------------------------------
def test_load_records_sha256_of_weight_files(tiny_backbone: Path) -> None:
    model = _model(tiny_backbone)
    want = {f"{sub}/{WEIGHTS}": hashlib.sha256((tiny_backbone / sub / WEIGHTS).read_bytes()).hexdigest()
            for sub in ("vqvae", "unet")}
    assert model.config.backbone_sha256 == want
    assert model.config.to_dict()["backbone"] == str(tiny_backbone)
    assert model.levels == 2 and model.size_multiple == 2


@pytest.mark.parametrize("sub", ["unet", "vqvae"])
def test_missing_weight_file_is_named(backbone_copy: Path, sub: str) -> None:
    (backbone_copy / sub / WEIGHTS).unlink()
    with pytest.raises(MissingAssetError, match=f"{sub}/{WEIGHTS}.*put it in .*{sub}"):
        check_backbone(str(backbone_copy))


def test_pickled_weights_are_refused_with_a_hint(backbone_copy: Path) -> None:
    (backbone_copy / "unet" / WEIGHTS).rename(backbone_copy / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(MissingAssetError, match="pickle, which is never loaded"):
        check_backbone(str(backbone_copy))


def test_missing_scheduler_config_is_named(backbone_copy: Path) -> None:
    (backbone_copy / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(MissingAssetError, match="scheduler/scheduler_config.json"):
        check_backbone(str(backbone_copy))


def test_hub_id_not_in_cache_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingAssetError, match="hf download CompVis/ldm-super-resolution-4x-openimages"):
        check_backbone("CompVis/ldm-super-resolution-4x-openimages")


def _edit_config(folder: Path, sub: str, **changes: object) -> None:
    path = folder / sub / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_weights_not_matching_config_are_a_config_error(backbone_copy: Path) -> None:
    _edit_config(backbone_copy, "unet", block_out_channels=[8, 24])
    with pytest.raises(ConfigError, match=r"unet/diffusion_pytorch_model.safetensors: does not "
                                          r"match .*shape"):
        load_backbone(str(backbone_copy))


def test_unet_input_must_be_latent_plus_lr(backbone_copy: Path) -> None:
    _edit_config(backbone_copy, "unet", in_channels=4)
    with pytest.raises(ConfigError, match=r"unet/config.json: in_channels 4, expected 6"):
        check_backbone(str(backbone_copy))


def test_other_bytes_than_recorded_are_refused(tiny_backbone: Path) -> None:
    recorded = {f"unet/{WEIGHTS}": "0" * 64}
    with pytest.raises(ConfigError, match="not the backbone the run was trained on"):
        check_backbone(str(tiny_backbone), expect_sha256=recorded)


def test_scale_must_match_the_vq_factor(tiny_backbone: Path) -> None:
    with pytest.raises(ConfigError, match="downsamples by 4"):
        _model(tiny_backbone, scale=2)


def test_unknown_override_did_you_mean(tiny_backbone: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'lambda_lr'"):
        _model(tiny_backbone, lamda_lr=0.1)


# ---- identity at initialisation --------------------------------------------------------------
def test_ssr_equals_backbone_at_init(tiny_backbone: Path) -> None:
    from diffusers import DDIMScheduler, LDMSuperResolutionPipeline

    model = _model(tiny_backbone).eval()
    batch = _batch()
    lr = batch.lr * 2 - 1
    ref = load_backbone(str(tiny_backbone))
    z, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])
    enc = model.encode(lr, batch.kernel_field, batch.nearness)
    eps_ssr = model.eps(z, lr, t, enc)
    eps_ref = ref.unet(torch.cat([z, lr], 1), t).sample
    assert torch.equal(eps_ssr, eps_ref)
    sr = model.sample(batch.lr, batch.kernel_field, batch.nearness, steps=4,
                      generator=torch.Generator().manual_seed(7))
    pipe = LDMSuperResolutionPipeline(vqvae=ref.vqvae, unet=ref.unet,
                                      scheduler=DDIMScheduler.from_config(ref.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    want = pipe(lr, num_inference_steps=4, generator=torch.Generator().manual_seed(7),
                output_type="pt").images
    assert torch.equal(sr, want)


# ---- frozen backbone, checkpoints --------------------------------------------------------------
def _fit(model, tmp_path: Path, batches, steps: int, lr: float = 1e-2, **kw: object) -> Trainer:
    cfg = TrainerConfig(out_dir=str(tmp_path), steps=steps, lr=lr, warmup_steps=0, log_every=1000,
                        val_every=0, ckpt_every=steps, tensorboard=False, seed=0, **kw)
    trainer = Trainer(model, cfg, batches, device="cpu")
    trainer.fit()
    return trainer


def test_backbone_frozen_and_left_out_of_checkpoints(tiny_backbone: Path, tmp_path: Path) -> None:
    model = _model(tiny_backbone)
    before = {k: v.clone() for k, v in itertools.chain(model.vqvae.state_dict(prefix="vqvae.").items(),
                                                        model.unet.state_dict(prefix="unet.").items())}
    amf_before = {k: v.clone() for k, v in model.sites.state_dict().items()}
    _fit(model, tmp_path, itertools.repeat(_batch()), steps=3)
    assert not model.unet.training and not model.vqvae.training  # train() left them in eval
    after = dict(itertools.chain(model.vqvae.state_dict(prefix="vqvae.").items(),
                                 model.unet.state_dict(prefix="unet.").items()))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(v, model.sites.state_dict()[k]) for k, v in amf_before.items())
    saved = model.state_dict()
    assert not any(k.startswith(("unet.", "vqvae.")) for k in saved)
    fresh = _model(tiny_backbone)
    fresh.load_state_dict(saved, strict=True)  # the backbone comes from its folder
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in saved.items())


def test_named_backbone_blocks_train(tiny_backbone: Path, tmp_path: Path) -> None:
    model = _model(tiny_backbone, train_backbone_blocks=("up_blocks.1",))
    up = {k: v.clone() for k, v in model.unet.up_blocks[1].state_dict().items()}
    down = {k: v.clone() for k, v in model.unet.down_blocks[0].state_dict().items()}
    _fit(model, tmp_path, itertools.repeat(_batch()), steps=2)
    assert any(not torch.equal(v, model.unet.up_blocks[1].state_dict()[k]) for k, v in up.items())
    assert all(torch.equal(v, model.unet.down_blocks[0].state_dict()[k]) for k, v in down.items())
    assert any(k.startswith("unet.up_blocks.1.") for k in model.state_dict())
    with pytest.raises(ConfigError, match="did you mean 'up_blocks.1'"):
        _model(tiny_backbone, train_backbone_blocks=("up_block.1",))


# ---- conditioning sensitivity, resume ---------------------------------------------------------
def _toy_batch(side: int = 8) -> Batch:
    """Grey LR everywhere; HR bright where the kernel field is sharp, dark where it is wide
    (image 0 sharp on the left half, image 1 on the right): the target depends on the field."""
    left = torch.arange(side) < side // 2
    s = torch.where(left, 0.6, 3.5).expand(side, side)
    s = torch.stack([s, s.flip(-1)])
    kernel = torch.stack([s, s, torch.zeros_like(s)], 1)
    hr = F.interpolate(torch.where(kernel[:, :1] < 1, 0.85, 0.15), scale_factor=4)
    return Batch(hr=hr.expand(2, 3, 4 * side, 4 * side).contiguous(),
                 lr=torch.full((2, 3, side, side), 0.5),
                 nearness=torch.full((2, 1, 4 * side, 4 * side), 0.5), kernel_field=kernel,
                 scale=4, kernel_size=21, delta=1.5)


def test_kernel_field_steers_the_output_after_a_short_fit(tiny_backbone: Path, tmp_path: Path) -> None:
    """Ignored exactly at init (zero-initialised AMF); after a short fit on a task whose target
    depends on the kernel field, swapping the field (mirroring it) changes the prediction.

    Measured on epsilon: the tiny VQ's 16-entry codebook quantises small latent changes away in
    decoded images (a random backbone has no reason to make the change large enough).
    """
    model = _model(tiny_backbone)
    batch = _toy_batch()
    swapped = batch.kernel_field.flip(-1)
    z, t, lr = torch.randn(2, 3, 8, 8), torch.tensor([50, 500]), batch.lr * 2 - 1

    def eps(kernel: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.eval().eps(z, lr, t, model.encode(lr, kernel, batch.nearness))

    assert torch.equal(eps(batch.kernel_field), eps(swapped))
    _fit(model, tmp_path, itertools.repeat(batch), steps=8, lr=3e-2)
    change = (eps(batch.kernel_field) - eps(swapped)).abs().mean() / eps(batch.kernel_field).abs().mean()
    assert change > 0.01, change


def test_resume_equals_one_run(tiny_backbone: Path, tmp_path: Path) -> None:
    """4 steps straight == 2 steps, checkpoint, a fresh process-like rebuild, resume, 2 steps."""
    batches = itertools.repeat(_batch())
    one = _fit(_model(tiny_backbone), tmp_path / "one", batches, steps=4)
    cfg = dataclasses.replace(one.config, out_dir=str(tmp_path / "two"), ckpt_every=2)
    Trainer(_model(tiny_backbone), cfg, batches, device="cpu").fit(stop_at=2)
    resumed = Trainer(_model(tiny_backbone), cfg, batches, device="cpu")
    assert resumed.resume(tmp_path / "two" / "last.pt") == 2
    resumed.fit()
    for a, b in ((one.model, resumed.model), (one.ema, resumed.ema)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- ssr-train / ssr-infer ----------------------------------------------------------------------
def test_cli_trains_and_infers_with_a_backbone(shard_dir: Path, tiny_backbone: Path,
                                               tmp_path: Path) -> None:
    """``ssr-train --stage all --model ssr-latent-tiny --backbone DIR``, then ``ssr-infer`` and
    ``ssr-eval run --method SSR=RUN`` on the run; run.json records the backbone and its sha256,
    and a backbone with other bytes is refused at inference."""
    from click.testing import CliRunner
    from PIL import Image

    from eval.tables.methods import parse_method
    from eval.tables.testsets import TestImage
    from ssr_models.infer_cli import main as infer
    from ssr_models.train_cli import main as train

    run = tmp_path / "run"
    res = CliRunner().invoke(train, ["--shards", str(shard_dir), "--stage", "all", "--steps", "2",
                                     "--model", "ssr-latent-tiny", "--backbone", str(tiny_backbone),
                                     "--out", str(run), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    recorded = json.loads((run / "diffusion" / "run.json").read_text())
    assert recorded["model"] == "ssr-latent-tiny"
    assert recorded["model_config"]["backbone"] == str(tiny_backbone)
    assert recorded["model_config"]["backbone_sha256"] == _model(tiny_backbone).config.backbone_sha256
    images = tmp_path / "lr"
    images.mkdir()
    Image.fromarray((torch.rand(12, 10, 3) * 255).byte().numpy()).save(images / "a.png")
    args = ["--checkpoint", str(run), "--input", str(images), "--method", "diffusion",
            "--steps", "2", "--device", "cpu", "--depth", "prior"]
    res = CliRunner().invoke(infer, [*args, "--out", str(tmp_path / "sr")])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "sr" / "a.png").size == (40, 48)
    other = Path(shutil.copytree(tiny_backbone, tmp_path / "other"))
    make_tiny_backbone(other, seed=1)  # same layout and shapes, other weights
    res = CliRunner().invoke(infer, [*args, "--out", str(tmp_path / "sr2"), "--backbone", str(other)])
    assert res.exit_code != 0 and "not the backbone the run was trained on" in res.output
    # ssr-eval run --method SSR=RUN: the table method the CLI makes of the run, on one LR image
    method = parse_method(f"SSR={run}")
    assert (method.kind, method.method) == ("ssr", "diffusion")
    lr = np.asarray(Image.open(images / "a.png"))
    sr = method.super_resolve(TestImage("a", "a", lr, np.zeros((48, 40, 3), np.uint8)), None)
    assert sr.shape == (48, 40, 3) and sr.dtype == np.uint8 and sr.std() > 0


def test_backbone_option_needs_a_backbone_model(shard_dir: Path, tiny_backbone: Path,
                                                tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ssr_models.train_cli import main as train

    res = CliRunner().invoke(train, ["--shards", str(shard_dir), "--stage", "diffusion",
                                     "--backbone", str(tiny_backbone), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--backbone is for the models ssr-latent-tiny, ssr-latent" in res.output
