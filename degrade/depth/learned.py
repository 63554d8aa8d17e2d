"""Learned monocular depth (MiDaS v3 DPT, Depth Anything V2) through ``transformers``.

Both families predict relative inverse depth (disparity-like: larger = nearer, unknown scale and
shift), which is what nearness needs: thin-lens defocus is linear in inverse depth (DESIGN.md
section 3). :func:`relative_to_nearness` maps a prediction to [0, 1] with robust percentiles.

Choices:

- Each image goes through the checkpoint's own image processor (its input resolution, resize
  rule and normalization), always with the PIL backend so that the result does not depend on
  whether torchvision is installed. Images whose processed sizes agree are batched together.
- The prediction is interpolated back to the image's HR size (bicubic, align_corners=False,
  as transformers' ``post_process_depth_estimation`` does) before normalization.
- Weights load only from disk (``local_files_only=True``) unless ``allow_download=True`` and
  ``HF_HUB_OFFLINE`` is unset; see :mod:`degrade.depth.weights` for where they are looked for.
- ``check()`` fails before any image is processed, without importing transformers' models.

Needs the optional extra: ``pip install "ssr-bench[depth]"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ssr_core.errors import ConfigError, InputError

from .weights import (
    MODEL_TYPES,
    WeightsLocation,
    check_model_type,
    default_weights_dir,
    find_weights,
    hf_hub_cache,
    hf_offline,
    missing_weights_error,
    read_config,
    require_transformers,
)

LO_PCT, HI_PCT = 2.0, 98.0  # robust range of the prediction mapped to [0, 1]


def normalization_tag(lo_pct: float = LO_PCT, hi_pct: float = HI_PCT) -> str:
    """Describe the mapping of :func:`relative_to_nearness` (recorded, and part of cache keys)."""
    return f"relative inverse depth, percentiles {lo_pct:g}/{hi_pct:g} -> [0, 1], clipped"


def relative_to_nearness(pred: np.ndarray, lo_pct: float = LO_PCT, hi_pct: float = HI_PCT) -> np.ndarray:
    """Map relative inverse depth (H, W) to nearness (H, W) float32 in [0, 1], 1 = nearest.

    ``n = clip((pred - p_lo) / (p_hi - p_lo), 0, 1)`` with p_lo, p_hi the lo_pct-th and hi_pct-th
    percentiles (numpy's linear interpolation) over the finite pixels, so that a few outliers do
    not squash the range. A flat prediction (p_hi - p_lo < 1e-12 relative) gives 0.5 everywhere;
    non-finite pixels become 0 (far).

    Args:
        pred: (H, W) real array, larger = nearer.
        lo_pct: lower percentile in [0, 100).
        hi_pct: upper percentile in (lo_pct, 100].

    Returns:
        (H, W) float32 nearness in [0, 1].

    Raises:
        ConfigError: bad percentiles, or pred not a 2-D real array.

    Example:
        >>> relative_to_nearness(np.array([[0.0, 1.0, 2.0, 3.0, 4.0]]), 25, 75).tolist()
        [[0.0, 0.0, 0.5, 1.0, 1.0]]
    """
    if not 0.0 <= lo_pct < hi_pct <= 100.0:
        raise ConfigError(f"need 0 <= lo_pct < hi_pct <= 100, got lo_pct={lo_pct}, hi_pct={hi_pct}")
    if not isinstance(pred, np.ndarray) or pred.ndim != 2 or pred.dtype.kind not in "fiu":
        got = f"{pred.dtype} {pred.shape}" if isinstance(pred, np.ndarray) else type(pred).__name__
        raise ConfigError(f"pred must be a (H, W) real array, got {got}")
    p = pred.astype(np.float64)
    finite = np.isfinite(p)
    if not finite.any():
        return np.full(p.shape, 0.5, dtype=np.float32)
    lo, hi = np.percentile(p[finite], [lo_pct, hi_pct])
    if hi - lo <= 1e-12 * max(1.0, abs(hi), abs(lo)):
        return np.full(p.shape, 0.5, dtype=np.float32)
    near = np.where(finite, (p - lo) / (hi - lo), 0.0)
    return np.clip(near, 0.0, 1.0).astype(np.float32)


class LearnedDepth:
    """A depth model loaded from local weights; predicts relative inverse depth per image.

    Args:
        model_id: hub id, e.g. "Intel/dpt-hybrid-midas" or "depth-anything/Depth-Anything-V2-Small-hf".
        weights_dir: folder with the checkpoint (see :mod:`degrade.depth.weights`); None means
            ``$SSR_BENCH_DEPTH_WEIGHTS`` and then the Hugging Face cache.
        device: torch device string ("cpu", "cuda", "cuda:1", ...).
        batch_size: images per forward pass (>= 1).
        provider: "midas" or "depth-anything" to check the checkpoint's model type, or None.
        allow_download: fetch from the hub if absent locally (never when HF_HUB_OFFLINE is set).
    """

    def __init__(self, model_id: str, weights_dir: str | None = None, device: str = "cpu",
                 batch_size: int = 4, *, provider: str | None = None,
                 allow_download: bool = False) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if provider is not None and provider not in MODEL_TYPES:
            raise ConfigError(f"unknown learned depth provider {provider!r}; choose one of "
                              f"{list(MODEL_TYPES)}")
        self.model_id, self.weights_dir, self.batch_size = model_id, weights_dir, batch_size
        self.device = torch.device(device)  # raises on a malformed string, before any work
        self.provider, self.allow_download = provider, allow_download
        self._location: WeightsLocation | None = None
        self._checked = False
        self._revision: str | None = None
        self._weights_sha256: str | None = None
        self._model: Any = None
        self._processor: Any = None
        self.forward_calls = 0  # forward passes run (tests and benchmarks read it)

    def check(self) -> None:
        """Fail fast: transformers installed, weights present and of the right model type.

        Raises:
            ConfigError: transformers missing (names ``pip install "ssr-bench[depth]"``), or a
                checkpoint of the wrong model type / a metric-depth checkpoint.
            MissingAssetError: no weights locally (names the model, every place looked in and
                the command that fetches them) and downloading is not allowed.
        """
        if self._checked:
            return
        require_transformers()
        location, looked = find_weights(self.model_id, self.weights_dir)
        if location is None and (not self.allow_download or hf_offline()):
            raise missing_weights_error(self.model_id, looked, self.weights_dir)
        if location is not None and self.provider is not None:
            check_model_type(self.provider, location)
        self._location = location
        self._revision = location.revision if location is not None else None
        self._checked = True

    @property
    def identity(self) -> dict[str, str | None]:
        """Return {"model", "revision", "weights_sha256"}: what produced the outputs.

        The commit hash when known; otherwise the sha256 of the weight files (computed once).
        """
        self.check()
        if self._location is None:  # download mode: the hub tells the commit on load
            self._load()
        if self._revision is None and self._weights_sha256 is None and self._location is not None:
            self._weights_sha256 = self._location.weights_sha256()
        return {"model": self.model_id, "revision": self._revision,
                "weights_sha256": self._weights_sha256}

    @property
    def model_tag(self) -> str:
        """Return ``model_id@revision/device-type``: the model part of cache keys.

        The device type is part of it because GPU and CPU kernels round differently, and a map
        cached on one must not stand in for the other (shards would depend on cache state).
        """
        ident = self.identity
        rev = ident["revision"] or f"sha256:{(ident['weights_sha256'] or '')[:16]}"
        return f"{self.model_id}@{rev}/{self.device.type}"

    def _load(self) -> None:
        if self._model is not None:
            return
        self.check()
        import transformers
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        src = str(self._location.folder) if self._location is not None else self.model_id
        local_only = self._location is not None or not self.allow_download or hf_offline()
        # PIL backend everywhere (transformers 5: backend="pil"; 4.x: the slow processor), so the
        # preprocessing does not change with torchvision being installed or not.
        proc_kw: dict[str, Any] = ({"backend": "pil"} if int(transformers.__version__.split(".")[0]) >= 5
                                   else {"use_fast": False})
        from transformers.utils import logging as hf_logging

        # Library code shows no progress bars (the CLI owns them): silence the loading bar.
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self._processor = AutoImageProcessor.from_pretrained(src, local_files_only=local_only,
                                                                 **proc_kw)
            model = AutoModelForDepthEstimation.from_pretrained(src, local_files_only=local_only)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(src, f"cannot load depth model {self.model_id}: {exc}") from exc
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        if self._location is None:
            self._revision = getattr(model.config, "_commit_hash", None)
            model_type = getattr(model.config, "model_type", None)
            if self.provider is not None and model_type not in MODEL_TYPES[self.provider]:
                raise ConfigError(f"depth provider {self.provider!r} expects a "
                                  f"{MODEL_TYPES[self.provider]} checkpoint, {self.model_id} is "
                                  f"{model_type!r}")
        self._model = model.to(self.device).eval()

    def predict(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        """Predict relative inverse depth for each image, at its own (H, W), larger = nearer.

        Args:
            rgbs: list of (H, W, 3) uint8 RGB images; sizes may differ.

        Returns:
            list of (H, W) float32 arrays, one per image, in input order.

        Raises:
            ConfigError: an image that is not (H, W, 3) uint8 (checked before the model loads).
        """
        for i, rgb in enumerate(rgbs):
            if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
                    and rgb.shape[2] == 3):
                got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
                raise ConfigError(f"rgbs[{i}] must be (H, W, 3) uint8, got {got}")
        if not rgbs:
            return []
        self._load()
        pixels = [self._processor(images=[rgb], return_tensors="pt",
                                  input_data_format="channels_last")["pixel_values"] for rgb in rgbs]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, pv in enumerate(pixels):
            groups.setdefault(tuple(pv.shape[1:]), []).append(i)
        out: list[np.ndarray | None] = [None] * len(rgbs)
        with torch.inference_mode():
            for idxs in groups.values():
                for start in range(0, len(idxs), self.batch_size):
                    chunk = idxs[start:start + self.batch_size]
                    batch = torch.cat([pixels[i] for i in chunk]).to(self.device)
                    pred = self._model(pixel_values=batch).predicted_depth.float()
                    self.forward_calls += 1
                    for j, i in enumerate(chunk):
                        h, w = rgbs[i].shape[:2]
                        up = torch.nn.functional.interpolate(pred[j][None, None], size=(h, w),
                                                             mode="bicubic", align_corners=False)
                        out[i] = up[0, 0].cpu().numpy().astype(np.float32, copy=False)
        return out  # type: ignore[return-value]

    def info(self, lo_pct: float = LO_PCT, hi_pct: float = HI_PCT) -> dict[str, Any]:
        """Return the json-serializable provenance recorded with every nearness map.

        Identical whether the map was computed or read from the cache (shards must not depend on
        cache state), so it holds no timing or path; the device type is recorded (it is part of
        the cache key too).
        """
        config = read_config(self._location.folder) if self._location is not None else {}
        model_type = config.get("model_type") or getattr(getattr(self._model, "config", None),
                                                         "model_type", None)
        return {**self.identity, "model_type": model_type, "device_type": self.device.type,
                "z_min_m": None, "z_max_m": None, "relative": True,
                "normalization": normalization_tag(lo_pct, hi_pct),
                "preprocessing": "checkpoint's image processor (PIL backend); prediction resized "
                                 "to HR bicubic; nearness quantized to uint16"}


_SHARED: dict[tuple, LearnedDepth] = {}


def shared_model(model_id: str, weights_dir: str | None, device: str, batch_size: int,
                 provider: str | None, allow_download: bool = False) -> LearnedDepth:
    """Return a LearnedDepth reused across calls in this process (at most one model is kept)."""
    # The environment is part of the key: it decides where weights are found.
    key = (model_id, weights_dir, default_weights_dir(), str(hf_hub_cache()), str(device),
           batch_size, provider, allow_download)
    if key not in _SHARED:
        _SHARED.clear()  # weights are large: keep only the most recent model
        _SHARED[key] = LearnedDepth(model_id, weights_dir, device, batch_size, provider=provider,
                                    allow_download=allow_download)
    return _SHARED[key]
