"""The shard sample schema (DESIGN.md section 4), defined here and nowhere else.

A sample is five tar members ``{key}.hr.png``, ``{key}.lr.png``, ``{key}.depth.png``,
``{key}.kernel.npy`` and ``{key}.json``. ``manifests/schema/sample-v2.json`` describes
the same format for readers in other languages; a test keeps the two in agreement.
Changing anything here is a format change: bump ``SCHEMA_VERSION``.

Versions: 2 changed the bytes, not the format (the same command wrote other bytes): PNG
members are encoded with OpenCV's fast settings (level 1, RLE, SUB filter; about 2x faster,
9% larger on photographs), and ``hr.png`` may be the input PNG's own compressed pixels
(``imageio.minimal_png``). Version 1 shards decode to the same kind of arrays and are read
as they are (``READABLE_SCHEMA_VERSIONS``).
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssr_core.errors import ConfigError, InputError

from .imageio import decode_png, encode_png

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)  # same members; readers accept both
MEMBERS: tuple[str, ...] = ("hr.png", "lr.png", "depth.png", "kernel.npy", "json")
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
REQUIRED_META_KEYS: tuple[str, ...] = ("schema_version", "scale")
NEARNESS_MAX = 65535

#: member -> (encoding, dtype, shape); "H", "W" are HR sizes, "H/scale" the LR ones.
MEMBER_SPECS: dict[str, tuple[str, str, tuple[int | str, ...]]] = {
    "hr.png": ("png", "uint8", ("H", "W", 3)),
    "lr.png": ("png", "uint8", ("H/scale", "W/scale", 3)),
    "depth.png": ("png", "uint16", ("H", "W")),
    "kernel.npy": ("npy", "float32", (3, "H/scale", "W/scale")),
    "json": ("json", "object", ()),
}

_ID_PATTERN = re.compile(r"[A-Za-z0-9_]+")
_KERNEL_CHANNELS = ("s1", "s2", "theta")


class SchemaError(InputError):
    """A sample does not follow the schema; ``path`` names the sample key (and member)."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One shard sample.

    Attributes:
        key: ``{source}-{image_id}-{variant:03d}``, characters ``[A-Za-z0-9_-]``.
        hr: uint8 (H, W, 3) RGB, H and W multiples of ``meta["scale"]``.
        lr: uint8 (H/s, W/s, 3) RGB, the degraded image.
        nearness: uint16 (H, W) normalized inverse depth, 65535 = nearest.
        kernel_field: float32 (3, H/s, W/s): s1, s2 (std devs in HR pixels, > 0) and theta
            (radians in [0, pi)) of the kernel used for each LR pixel.
        meta: JSON-serializable dict with at least ``schema_version`` and ``scale``.
    """

    key: str
    hr: np.ndarray
    lr: np.ndarray
    nearness: np.ndarray
    kernel_field: np.ndarray
    meta: dict[str, Any]

    @property
    def kernel(self) -> np.ndarray:
        """Deprecated name of :attr:`kernel_field` (the field is read from ``kernel.npy``)."""
        warnings.warn("Sample.kernel is deprecated; use Sample.kernel_field", DeprecationWarning,
                      stacklevel=2)
        return self.kernel_field


def make_key(source: str, image_id: str, variant: int) -> str:
    """Build a sample key ``{source}-{image_id}-{variant:03d}``.

    >>> make_key("sample", "astronaut", 2)
    'sample-astronaut-002'

    Raises:
        ConfigError: source or image_id not ``[A-Za-z0-9_]+``, or variant not in 0..999.
    """
    for label, value in (("source", source), ("image_id", image_id)):
        if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
            raise ConfigError(f"{label} must match [A-Za-z0-9_]+, got {value!r}")
    if isinstance(variant, bool) or not isinstance(variant, int) or not 0 <= variant <= 999:
        raise ConfigError(f"variant must be an int in 0..999, got {variant!r}")
    return f"{source}-{image_id}-{variant:03d}"


def nearness_to_u16(n: np.ndarray) -> np.ndarray:
    """Quantize nearness in [0, 1] (H, W) to uint16 by rounding; values outside are clipped.

    >>> nearness_to_u16(np.array([0.0, 0.5, 1.0, 2.0])).tolist()
    [0, 32768, 65535, 65535]

    Raises:
        SchemaError: Non-numeric or non-finite input.
    """
    n = np.asarray(n)
    if not np.issubdtype(n.dtype, np.number) or not np.isfinite(n).all():
        raise SchemaError("<nearness>", f"expected finite float nearness in [0, 1], got "
                                        f"dtype {n.dtype} with non-finite values or non-numbers")
    return np.clip(np.rint(n.astype(np.float64) * NEARNESS_MAX), 0, NEARNESS_MAX).astype(
        np.uint16)


def nearness_from_u16(u: np.ndarray) -> np.ndarray:
    """Map uint16 nearness back to float32 in [0, 1].

    Raises:
        SchemaError: ``u`` is not uint16.
    """
    if not isinstance(u, np.ndarray) or u.dtype != np.uint16:
        raise SchemaError("<nearness>", f"expected uint16, got {getattr(u, 'dtype', type(u))}")
    return u.astype(np.float32) / np.float32(NEARNESS_MAX)


def _fail(sample: Sample, what: str, expected: str, got: object) -> SchemaError:
    return SchemaError(f"sample {sample.key!r}", f"{what}: expected {expected}, got {got}")


def _check_array(sample: Sample, name: str, dtype: type, shape: tuple[int, ...],
                 attr: str | None = None) -> None:
    """Check ``sample.<attr>`` (default ``name``); messages name it ``name`` (the shard member)."""
    arr = getattr(sample, attr or name)
    if not isinstance(arr, np.ndarray):
        raise _fail(sample, name, "numpy array", type(arr).__name__)
    if arr.dtype != dtype:
        raise _fail(sample, f"{name} dtype", np.dtype(dtype).name, arr.dtype)
    if tuple(arr.shape) != shape:
        raise _fail(sample, f"{name} shape", shape, tuple(arr.shape))


def validate_sample(sample: Sample) -> None:
    """Check key, meta, dtypes, shapes and kernel ranges of a sample.

    Raises:
        SchemaError: The first violation found, with expected vs got.
    """
    if not isinstance(sample.key, str) or not KEY_PATTERN.fullmatch(sample.key):
        raise SchemaError(f"sample {sample.key!r}", "key must match [A-Za-z0-9_-]+")
    meta = sample.meta
    if not isinstance(meta, dict):
        raise _fail(sample, "meta", "dict", type(meta).__name__)
    missing = [k for k in REQUIRED_META_KEYS if k not in meta]
    if missing:
        raise _fail(sample, "meta keys", f"{list(REQUIRED_META_KEYS)} present",
                    f"missing {missing}")
    if meta["schema_version"] not in READABLE_SCHEMA_VERSIONS:
        raise _fail(sample, "meta schema_version", f"one of {READABLE_SCHEMA_VERSIONS}",
                    meta["schema_version"])
    scale = meta["scale"]
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise _fail(sample, "meta scale", "int >= 1", repr(scale))
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _fail(sample, "meta", "JSON-serializable without NaN/inf", exc) from exc
    hr = sample.hr
    if not isinstance(hr, np.ndarray) or hr.ndim != 3 or hr.shape[2] != 3:
        raise _fail(sample, "hr shape", "(H, W, 3)", getattr(hr, "shape", type(hr).__name__))
    h, w = hr.shape[:2]
    if h == 0 or w == 0 or h % scale or w % scale:
        raise _fail(sample, "hr size", f"positive multiples of scale {scale}", f"{h}x{w}")
    _check_array(sample, "hr", np.uint8, (h, w, 3))
    _check_array(sample, "lr", np.uint8, (h // scale, w // scale, 3))
    _check_array(sample, "nearness", np.uint16, (h, w))
    _check_array(sample, "kernel", np.float32, (3, h // scale, w // scale), attr="kernel_field")
    s12 = sample.kernel_field[:2]
    if not (np.isfinite(s12).all() and (s12 > 0).all()):
        raise _fail(sample, "kernel s1, s2", "finite and > 0",
                    f"min {np.nanmin(s12) if np.isfinite(s12).any() else 'nan'}")
    theta = sample.kernel_field[2]
    if not (np.isfinite(theta).all() and (theta >= 0).all() and (theta < math.pi).all()):
        raise _fail(sample, "kernel theta", "finite in [0, pi)",
                    f"range {np.min(theta)}..{np.max(theta)}")


def _json_bytes(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=True).encode("ascii")


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype="<f4"), allow_pickle=False)
    return buf.getvalue()


def encode_sample(sample: Sample, encoded: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """Validate and encode a sample to its five members (deterministic bytes).

    Args:
        sample: The sample.
        encoded: PNG members already encoded (``hr.png``, ``depth.png``: the variants of one
            image share them, and ``hr.png`` may be the input's own PNG); the caller
            guarantees that they decode to ``sample.hr`` / ``sample.nearness``.

    Returns:
        Member name (``MEMBERS``, in that order) -> bytes.

    Raises:
        SchemaError: The sample does not validate.
    """
    validate_sample(sample)
    done = encoded or {}
    return {
        "hr.png": done.get("hr.png") or encode_png(sample.hr),
        "lr.png": encode_png(sample.lr),
        "depth.png": done.get("depth.png") or encode_png(sample.nearness),
        "kernel.npy": _npy_bytes(sample.kernel_field),
        "json": _json_bytes(sample.meta),
    }


def decode_sample(key: str, members: Mapping[str, bytes]) -> Sample:
    """Decode and validate a sample from its member bytes.

    Args:
        key: The sample key (the tar name before the first dot).
        members: Member name -> bytes; names starting with ``__`` (WebDataset's own
            fields such as ``__url__``) are ignored.

    Raises:
        SchemaError: A member is missing, unexpected, undecodable, or the decoded
            sample does not validate. The path names the key and member.
    """
    names = {m for m in members if not m.startswith("__")}
    missing = [m for m in MEMBERS if m not in names]
    extra = sorted(names - set(MEMBERS))
    if missing or extra:
        raise SchemaError(f"sample {key!r}", f"members: expected {list(MEMBERS)}, "
                                             f"missing {missing}, unexpected {extra}")
    decoded: dict[str, Any] = {}
    for member in MEMBERS:
        data = members[member]
        try:
            if member.endswith(".png"):
                decoded[member] = decode_png(data)
            elif member == "kernel.npy":
                decoded[member] = np.load(io.BytesIO(data), allow_pickle=False)
            else:
                decoded[member] = json.loads(data.decode("utf-8"))
        except (InputError, ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, InputError) else str(exc)
            raise SchemaError(f"sample {key!r} member {member}",
                              f"cannot decode: {reason}") from exc
    sample = Sample(key=key, hr=decoded["hr.png"], lr=decoded["lr.png"],
                    nearness=decoded["depth.png"], kernel_field=decoded["kernel.npy"],
                    meta=decoded["json"])
    validate_sample(sample)
    return sample


def schema_description() -> dict[str, Any]:
    """Return the schema as data; ``manifests/schema/sample-v2.json`` must agree with it.

    The file adds human descriptions and the tar conventions on top of these fields.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "readable_schema_versions": list(READABLE_SCHEMA_VERSIONS),
        "key_pattern": KEY_PATTERN.pattern,
        "members": [{"name": m, "encoding": MEMBER_SPECS[m][0], "dtype": MEMBER_SPECS[m][1],
                     "shape": list(MEMBER_SPECS[m][2])} for m in MEMBERS],
        "required_json_keys": list(REQUIRED_META_KEYS),
        "nearness_max": NEARNESS_MAX,
        "kernel_channels": list(_KERNEL_CHANNELS),
    }
