"""The config of the latent SSR model (:class:`ssr_models.latent.LatentSSR`), composed with AMF's.

``LatentConfig.amf`` is an :class:`ssr_models.amf.AMFConfig` (encoder widths, MLP width, Eq. 5
lambdas, the Table 2 ablation flags); :meth:`LatentConfig.with_overrides` routes AMF's keys
there, so ``use_depth=False`` (an ``--ablation``) or ``lambda_lr=...`` work as flat overrides,
and ``to_dict``/``from_dict`` round-trip the nested form that run.json records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ssr_core.config import did_you_mean
from ssr_core.errors import ConfigError
from ssr_models.amf import AMFConfig
from ssr_models.latent_backbone import DEFAULT_BACKBONE
from ssr_models.latent_sampling import AMP_DTYPES, SAMPLERS, SampleAmp, Sampler
from ssr_models.layers import config_from_dict

__all__ = ["LatentConfig"]


@dataclass(frozen=True)
class LatentConfig:
    """Backbone, encoders, AMF and sampling settings of :class:`LatentSSR` (see module doc).

    Attributes:
        backbone: a diffusers pipeline folder or a hub id found in the HF cache.
        backbone_sha256: {file: sha256} of the weight files; filled at load, checked on reload.
        scale: SR factor = the VQ's downsampling factor (HR px per latent px).
        lr_base_channels: half-UNet width at level 0 (``base * min(2^l, 4)`` below).
        train_backbone_blocks: UNet submodule names to unfreeze ("up_blocks.3", "conv_out").
        kernel_pca_components: P > 0 adds the kernel field's PCA code (K = 21) to the kernel
            encoder's input; 0 = the field alone.
        sampler, sample_steps, sample_amp: default sampling (see module doc).
        tile, tile_overlap: latent tiling in latent px (tile 0 = never).
        val_steps, val_seed: the validation sampling.
        amf: encoder widths (lr_channels, small_channels), MLP width, Eq. 5 lambdas, ablations.
    """

    backbone: str = DEFAULT_BACKBONE
    backbone_sha256: dict[str, str] | None = None
    scale: int = 4
    lr_base_channels: int = 64
    train_backbone_blocks: tuple[str, ...] = ()
    kernel_pca_components: int = 0
    sampler: Sampler = "ddim"
    sample_steps: int = 50
    sample_amp: SampleAmp = "fp16"
    tile: int = 128
    tile_overlap: int = 16
    val_steps: int = 10
    val_seed: int = 0
    amf: AMFConfig = field(default_factory=AMFConfig)

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.sample_amp not in AMP_DTYPES:
            raise ConfigError(f"sample_amp must be one of {', '.join(AMP_DTYPES)}, got {self.sample_amp!r}")
        for name in ("scale", "lr_base_channels", "sample_steps", "val_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_pca_components < 0 or self.tile < 0:
            raise ConfigError("kernel_pca_components and tile must be >= 0")
        if self.tile and not 0 <= self.tile_overlap < self.tile:
            raise ConfigError(f"need 0 <= tile_overlap < tile, got {self.tile_overlap}, {self.tile}")

    # the flags the inference pipeline and the Table 2 ablations read
    use_kernel = property(lambda self: self.amf.use_kernel)
    use_depth = property(lambda self: self.amf.use_depth)
    use_svkr = property(lambda self: self.amf.use_svkr)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentConfig:
        data = dict(data)
        if isinstance(data.get("amf"), dict):
            data["amf"] = AMFConfig.from_dict(data["amf"])
        return config_from_dict(cls, data)

    def with_overrides(self, **overrides: Any) -> LatentConfig:
        """Return a copy with ``overrides``; ``amf`` (a mapping or AMFConfig) and AMFConfig's own
        keys given flat (use_depth, lambda_lr, ...) update ``amf`` key by key.

        Raises:
            ConfigError: an unknown key (with "did you mean"), also inside ``amf``.
        """
        own = {f.name for f in dataclasses.fields(self)}
        amf_keys = {f.name for f in dataclasses.fields(AMFConfig)}
        top: dict[str, Any] = {}
        amf = dataclasses.asdict(self.amf)
        given = overrides.get("amf", {})
        amf.update(dataclasses.asdict(given) if isinstance(given, AMFConfig) else dict(given))
        for key, value in overrides.items():
            if key == "amf":
                continue
            if key in own:
                top[key] = value
            elif key in amf_keys:
                amf[key] = value
            else:
                hint = did_you_mean(key, own | amf_keys)
                raise ConfigError(f"unknown ssr-latent key {key!r}{hint} (keys: "
                                  f"{', '.join(sorted(own | amf_keys))})")
        return LatentConfig.from_dict({**self.to_dict(), **top, "amf": amf})
