"""Read PFM (Portable Float Map) files, the format of Middlebury's disparity maps.

Format: a text header of three whitespace-separated tokens, ``PF`` (3 channels) or ``Pf``
(1 channel), then ``width height``, then a scale whose sign gives the byte order (negative:
little-endian, positive: big-endian); after one whitespace byte, float32 samples follow,
rows stored from the BOTTOM of the image to the top. Middlebury writes +inf for unknown
disparity.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ssr_core.errors import InputError

_HEADER = re.compile(rb"^(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s")


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file as float32, top row first: (H, W) for ``Pf``, (H, W, 3) for ``PF``.

    Raises:
        InputError: Unreadable file, bad header, zero scale or size, or too few bytes.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read PFM: {exc.strerror or exc}") from exc
    match = _HEADER.match(data[:256])
    if match is None:
        raise InputError(path, "not a PFM file: expected a header 'PF' or 'Pf', width height, "
                               f"scale; got {data[:24]!r}")
    kind, width, height = match.group(1), int(match.group(2)), int(match.group(3))
    try:
        scale = float(match.group(4))
    except ValueError as exc:
        raise InputError(path, f"bad PFM scale {match.group(4)!r}") from exc
    if scale == 0 or width == 0 or height == 0:
        raise InputError(path, f"bad PFM header: {width}x{height}, scale {scale}")
    channels = 3 if kind == b"PF" else 1
    count = width * height * channels
    offset = match.end()
    if len(data) - offset < 4 * count:
        raise InputError(path, f"truncated PFM: {width}x{height}x{channels} needs {4 * count} "
                               f"bytes of samples, found {len(data) - offset}")
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    samples = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    shape = (height, width, channels) if channels == 3 else (height, width)
    # Rows are stored bottom-to-top: flip to the usual top-to-bottom order.
    return np.ascontiguousarray(samples.reshape(shape)[::-1], dtype=np.float32)
