"""The pretrained latent SR backbone of ``ssr-latent``: find it on disk, check it, load it.

A backbone is a folder in the diffusers pipeline layout (what ``save_pretrained`` and
``hf download CompVis/ldm-super-resolution-4x-openimages`` write)::

    vqvae/config.json       vqvae/diffusion_pytorch_model.safetensors     (diffusers VQModel)
    unet/config.json        unet/diffusion_pytorch_model.safetensors      (diffusers UNet2DModel)
    scheduler/scheduler_config.json                                       (a diffusers scheduler)

``backbone`` names it either as a folder (``--backbone DIR``) or as a hub id, looked up in the
Hugging Face cache only (``models--ORG--NAME/snapshots/<refs/main>/``, the cache folder as
:func:`degrade.depth.weights.hf_hub_cache` finds it). Nothing here downloads anything.

Checks, all before any weight is used (:func:`check_backbone`):

* every file above exists, else :class:`MissingAssetError` naming the file, the folder to put it
  in and the hub URL. Weights load from safetensors only; a folder holding only the hub's
  pickled ``diffusion_pytorch_model.bin`` is refused with the same error (this project never
  unpickles files it did not write: convert it once on a trusted machine);
* the configs are the right diffusers classes, the UNet predicts epsilon or v, its input is the
  latent concatenated with the RGB LR (``in_channels = latent_channels + 3``) and its output a
  latent (``out_channels = latent_channels``) - the layout of the default backbone;
* the tensors stored in each safetensors file have exactly the names and shapes of the model
  its config builds (read from the file header: a mismatch is a ConfigError naming the file and
  the first differing tensors), and load strictly;
* the sha256 of each weight file is computed and returned; a run records it (``backbone_sha256``
  in config.json) and a reload with other bytes is refused. The hub publishes no sha256 of
  safetensors for the default backbone (it ships pickles), so the first load defines it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from degrade.depth.weights import hf_hub_cache
from ssr_core.errors import ConfigError, InputError, MissingAssetError
from ssr_core.io import sha256_file
from ssr_core.tensors import compare_shapes

__all__ = ["DEFAULT_BACKBONE", "EXTRA_HINT", "LR_CHANNELS", "WEIGHTS", "Backbone", "BackboneInfo",
           "check_backbone", "find_backbone", "load_backbone", "require_diffusers",
           "tiny_backbone_models"]

DEFAULT_BACKBONE = "CompVis/ldm-super-resolution-4x-openimages"
EXTRA_HINT = 'pip install "ssr-bench[latent]" (diffusers>=0.30, huggingface_hub, safetensors)'
WEIGHTS = "diffusion_pytorch_model.safetensors"
LR_CHANNELS = 3  # the RGB LR image concatenated to the latent at the UNet's input
_PARTS: dict[str, tuple[str, str | None]] = {  # subfolder: (config file, weight file)
    "vqvae": ("config.json", WEIGHTS),
    "unet": ("config.json", WEIGHTS),
    "scheduler": ("scheduler_config.json", None),
}
_CLASSES = {"vqvae": ("VQModel",), "unet": ("UNet2DModel",)}
_PREDICTIONS = ("epsilon", "v_prediction")


@dataclass(frozen=True)
class BackboneInfo:
    """A checked backbone folder.

    Attributes:
        backbone: what was asked for (hub id or folder), as given.
        folder: the pipeline folder found.
        source: "folder" or "hf-cache". revision: the hub commit (hf-cache), else None.
        configs: {"vqvae", "unet", "scheduler"}: the parsed JSON configs.
        sha256: {"vqvae/diffusion_pytorch_model.safetensors": hex, "unet/...": hex}.
    """

    backbone: str
    folder: Path
    source: str
    revision: str | None
    configs: dict[str, dict[str, Any]]
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def latent_channels(self) -> int:
        return int(self.configs["vqvae"].get("latent_channels", 3))

    @property
    def vq_factor(self) -> int:
        """Return the VQ autoencoder's downsampling factor (HR px per latent px), 2^(levels-1)."""
        return 2 ** (len(self.configs["vqvae"].get("block_out_channels", (64,))) - 1)


def require_diffusers() -> None:
    """Raise ConfigError naming the install command if diffusers or safetensors is missing."""
    import importlib.util

    for name in ("diffusers", "safetensors"):
        if importlib.util.find_spec(name) is None:
            raise ConfigError(f"ssr-latent needs the optional extra: {EXTRA_HINT}")
    # diffusers imports bitsandbytes when it is installed, whose CPU backend logs a warning about
    # a kernel hub it may not contact: noise in every command's output, nothing we use.
    import logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def _hub_url(backbone: str) -> str:
    return f"https://huggingface.co/{backbone}" if _is_hub_id(backbone) else \
        f"https://huggingface.co/{DEFAULT_BACKBONE}"


def _is_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not Path(text).expanduser().exists()


def find_backbone(backbone: str) -> tuple[Path, str, str | None]:
    """Return (folder, source, revision) of ``backbone`` (a folder, or a hub id in the HF cache).

    Raises:
        MissingAssetError: a hub id that is not in the cache (names the folder and the
            download command) or a folder that does not exist.
    """
    path = Path(backbone).expanduser()
    if path.is_dir():
        return path, "folder", None
    if not _is_hub_id(backbone):
        raise MissingAssetError(f"backbone folder {backbone}", path, url=_hub_url(backbone),
                                hint=f"give a folder in the diffusers pipeline layout (vqvae/, "
                                     f"unet/, scheduler/) or a hub id such as {DEFAULT_BACKBONE}")
    org, name = backbone.split("/")
    repo = hf_hub_cache() / f"models--{org}--{name}"
    try:
        commit = (repo / "refs" / "main").read_text().strip()
    except OSError:
        commit = None
    folder = repo / "snapshots" / commit if commit else None
    if folder is None or not folder.is_dir():
        dest = Path("DIR") / f"{org}--{name}"
        raise MissingAssetError(
            f"backbone {backbone} (vqvae/, unet/, scheduler/)", repo / "snapshots",
            url=_hub_url(backbone),
            hint=(f"not in the Hugging Face cache; on a connected machine run `hf download "
                  f"{backbone} --local-dir {dest}`, keep or convert the weights to "
                  f"{WEIGHTS} (safetensors only: pickled .bin files are never loaded) and pass "
                  f"`--backbone {dest}`"))
    return folder, "hf-cache", commit


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable backbone config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a backbone config must be a JSON object")
    return data


def _missing(backbone: str, folder: Path, sub: str, name: str) -> MissingAssetError:
    hint = "the diffusers pipeline layout is vqvae/, unet/, scheduler/ with config + safetensors"
    if name == WEIGHTS and (folder / sub / "diffusion_pytorch_model.bin").is_file():
        hint = (f"{folder / sub} holds diffusion_pytorch_model.bin, a pickle, which is never "
                f"loaded (it could run code): convert it to {WEIGHTS} on a machine you trust "
                "(safetensors.torch.save_file of torch.load(..., weights_only=True)); " + hint)
    return MissingAssetError(f"backbone {backbone} file {sub}/{name}", folder / sub,
                             url=_hub_url(backbone), hint=hint)


def _check_configs(folder: Path, configs: dict[str, dict[str, Any]]) -> None:
    for sub, names in _CLASSES.items():
        got = configs[sub].get("_class_name")
        if got not in names:
            raise ConfigError(f"{folder / sub / 'config.json'}: _class_name {got!r}, expected "
                              f"{' or '.join(names)}")
    vq, unet, sched = configs["vqvae"], configs["unet"], configs["scheduler"]
    latent = int(vq.get("latent_channels", 3))
    want_in = latent + LR_CHANNELS
    for key, want in (("in_channels", want_in), ("out_channels", latent)):
        got = unet.get(key)
        if got != want:
            raise ConfigError(f"{folder / 'unet' / 'config.json'}: {key} {got}, expected {want} "
                              f"(latent {latent} channels{' + RGB LR 3' if key == 'in_channels' else ''}"
                              ": the LR-concatenated latent SR layout)")
    if unet.get("time_embedding_type", "positional") == "fourier" or unet.get("class_embed_type"):
        raise ConfigError(f"{folder / 'unet' / 'config.json'}: fourier time embeddings and class "
                          "embeddings are not supported (a latent SR UNet has neither)")
    pred = sched.get("prediction_type", "epsilon")
    if pred not in _PREDICTIONS:
        raise ConfigError(f"{folder / 'scheduler' / 'scheduler_config.json'}: prediction_type "
                          f"{pred!r}; supported: {', '.join(_PREDICTIONS)}")
    import diffusers

    name = sched.get("_class_name")
    if not isinstance(name, str) or not hasattr(diffusers, name) or not hasattr(
            getattr(diffusers, name), "add_noise"):
        raise ConfigError(f"{folder / 'scheduler' / 'scheduler_config.json'}: _class_name "
                          f"{name!r} is not a diffusers noise scheduler")


def _check_tensors(path: Path, model: Any) -> None:
    """Compare the safetensors header of ``path`` with ``model``'s state dict (names, shapes)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own SafetensorError on a bad header
        raise InputError(path, f"not a readable safetensors file ({exc})") from None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    differs = compare_shapes(stored, want)
    if differs is not None:
        raise ConfigError(f"{path}: does not match its config.json: {differs}")


def check_backbone(backbone: str, expect_sha256: dict[str, str] | None = None) -> BackboneInfo:
    """Find and check ``backbone`` (see the module docstring); return what was found.

    Args:
        backbone: a pipeline folder or a hub id (HF cache).
        expect_sha256: the sha256 a run recorded per weight file; other bytes are refused.

    Raises:
        ConfigError: diffusers missing, a config of the wrong class or layout, or weights whose
            sha256 differs from ``expect_sha256`` (names the file and both hashes).
        MissingAssetError: the folder or one of its files is absent.
    """
    require_diffusers()
    folder, source, revision = find_backbone(backbone)
    configs: dict[str, dict[str, Any]] = {}
    for sub, (config_name, weights) in _PARTS.items():
        for name in (config_name, weights):
            if name is not None and not (folder / sub / name).is_file():
                raise _missing(backbone, folder, sub, name)
        configs[sub] = _read_json(folder / sub / config_name)
    _check_configs(folder, configs)
    sha = {f"{sub}/{w}": sha256_file(folder / sub / w) for sub, (_, w) in _PARTS.items() if w}
    for name, want in (expect_sha256 or {}).items():
        if sha.get(name) != want:
            raise ConfigError(f"{folder / name}: sha256 {sha.get(name)} differs from the run's "
                              f"recorded {want}: this is not the backbone the run was trained on")
    return BackboneInfo(backbone, folder, source, revision, configs, sha)


@dataclass
class Backbone:
    """The loaded backbone: frozen VQ autoencoder, UNet and the scheduler config (train noise)."""

    vqvae: Any
    unet: Any
    scheduler_config: dict[str, Any]
    info: BackboneInfo


def load_backbone(backbone: str, expect_sha256: dict[str, str] | None = None) -> Backbone:
    """Check ``backbone`` and load its VQModel and UNet2DModel from safetensors (strict).

    The models are built from their config.json with diffusers' ``from_config`` and the
    safetensors state dicts loaded with ``strict=True`` after :func:`_check_tensors`: no
    weight is silently left at its random initialisation.
    """
    info = check_backbone(backbone, expect_sha256)
    from diffusers import UNet2DModel, VQModel
    from safetensors.torch import load_file

    models = {}
    for sub, cls in (("vqvae", VQModel), ("unet", UNet2DModel)):
        config = {k: v for k, v in info.configs[sub].items() if not k.startswith("_")}
        model = cls.from_config(config)
        path = info.folder / sub / WEIGHTS
        _check_tensors(path, model)
        model.load_state_dict(load_file(str(path)), strict=True)
        models[sub] = model.eval().requires_grad_(False)
    return Backbone(models["vqvae"], models["unet"], dict(info.configs["scheduler"]), info)


def tiny_backbone_models(width: int, num_codes: int, seed: int = 0) -> tuple[Any, Any, Any]:
    """Return a fresh tiny backbone in the default's architecture: (VQModel, UNet2DModel, DDIM).

    VQ-f4 (three encoder levels of ``width`` channels, 3 latent channels, ``num_codes`` codes)
    and a two-level latent SR UNet (``width``, ``2 * width``; input = latent + LR, epsilon
    output), with the CompVis LDM-SR schedule. What the tests save with ``save_pretrained`` and
    what ``bench/learning.py`` fits on its training split; weights drawn from ``seed``.
    """
    require_diffusers()
    import torch
    from diffusers import DDIMScheduler, UNet2DModel, VQModel

    torch.manual_seed(seed)
    vq = VQModel(in_channels=3, out_channels=3, latent_channels=3, num_vq_embeddings=num_codes,
                 block_out_channels=(width,) * 3, layers_per_block=1, norm_num_groups=8,
                 down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3)
    unet = UNet2DModel(in_channels=3 + LR_CHANNELS, out_channels=3,
                       block_out_channels=(width, 2 * width), layers_per_block=1,
                       norm_num_groups=8, attention_head_dim=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                          beta_start=0.0015, beta_end=0.0155, clip_sample=False)
    return vq, unet, sched

