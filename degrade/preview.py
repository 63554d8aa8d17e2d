"""Contact sheet of degraded samples for a person to look at: HR, nearness, blur field, LR.

One row per sample, four square cells per row (each image letterboxed into a ``tile`` x ``tile``
box, all four at the same size so that pixels line up across the row):

1. HR image.
2. Nearness (viridis, 0 = far is dark, 1 = near is yellow).
3. Blur size sqrt(s1 * s2) in HR pixels (inferno, fixed range 0..``BLUR_MAX_PX`` so that rows and
   sheets compare), with orientation ticks: on a coarse grid, a segment along the kernel's major
   axis (theta for s1 >= s2, theta + pi/2 otherwise; theta from +x toward +y, i.e. downward),
   its length proportional to the anisotropy 1 - min(s1, s2) / max(s1, s2). Isotropic kernels
   get no tick.
4. LR image, enlarged with nearest-neighbour interpolation so that its pixels stay visible.

Above each row: the sample key, the HR size and scale, and what made the sample
(:func:`describe_sample`: depth source, focus plane, noise sigma, JPEG quality).

Colour bars with their ranges sit under the column titles. Rendering is deterministic (no
randomness, fixed fonts), so the same rows give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ssr_core.errors import ConfigError
from ssr_core.io import atomic_file

__all__ = ["BLUR_MAX_PX", "PreviewRow", "colorize", "describe_sample", "render_preview",
           "with_colour_bar", "write_preview"]

BLUR_MAX_PX = 5.0  # top of the blur colour scale, HR px (the ssr-wide recipe's largest sigma)
_BG = (32, 32, 32)  # sheet background, RGB
_FG = (235, 235, 235)  # text colour, RGB
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_ENCODINGS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}


@dataclass(frozen=True)
class PreviewRow:
    """One sample of the sheet.

    Attributes:
        key: sample key, printed above the row.
        hr: (H, W, 3) uint8 RGB.
        nearness: (H, W) float32 in [0, 1], 1 = nearest.
        kernel_field: (3, H/s, W/s) float32: s1, s2 (std devs, HR px), theta (radians in [0, pi), from
            +x (column) toward +y (row, downward)).
        lr: (H/s, W/s, 3) uint8 RGB.
        caption: what made the sample, printed after the key (see :func:`describe_sample`).
    """

    key: str
    hr: np.ndarray
    nearness: np.ndarray
    kernel_field: np.ndarray
    lr: np.ndarray
    caption: str = ""


def describe_sample(meta: Mapping) -> str:
    """Return a one-line ASCII summary of a sample's json: depth source, focus, noise, JPEG.

    ASCII only: OpenCV's Hershey font has no sigma or middle dot.

    >>> describe_sample({"depth": {"provider": "gt"}, "blur": {"focus": 0.25},
    ...                  "noise": {"sigma_255": 3.5, "channels": "rgb"}, "jpeg": None})
    'depth gt | focus nearness 0.25 | noise sigma 3.50/255 rgb | no JPEG'
    """
    depth = meta.get("depth") or {}
    parts = [f"depth {depth.get('provider', '?')}"
             + (f" ({depth['model']})" if depth.get("model") else "")]
    focus = (meta.get("blur") or {}).get("focus")
    if focus is not None:  # the nearness that is in focus (the defocus and thin-lens models)
        parts.append(f"focus nearness {focus:.2f}")
    noise = meta.get("noise")
    parts.append("no noise" if not noise else
                 f"noise sigma {noise['sigma_255']:.2f}/255 {noise.get('channels', '')}".rstrip())
    jpeg = meta.get("jpeg")
    parts.append("no JPEG" if not jpeg else f"JPEG q{jpeg['quality']}")
    return " | ".join(parts)


def _check_row(row: PreviewRow) -> int:
    """Validate one row's shapes and dtypes; return its integer scale s."""
    hr, lr, kernel, near = row.hr, row.lr, row.kernel_field, row.nearness
    if hr.ndim != 3 or hr.shape[2] != 3 or hr.dtype != np.uint8:
        raise ConfigError(f"{row.key}: hr must be (H, W, 3) uint8, got {hr.shape} {hr.dtype}")
    if lr.ndim != 3 or lr.shape[2] != 3 or lr.dtype != np.uint8:
        raise ConfigError(f"{row.key}: lr must be (h, w, 3) uint8, got {lr.shape} {lr.dtype}")
    (h_hr, w_hr), (h_lr, w_lr) = hr.shape[:2], lr.shape[:2]
    scale = h_hr // h_lr if h_lr else 0
    if scale < 1 or (h_lr * scale, w_lr * scale) != (h_hr, w_hr):
        raise ConfigError(
            f"{row.key}: HR {h_hr}x{w_hr} must be an integer multiple s of LR, got LR {h_lr}x{w_lr}"
        )
    if near.shape != (h_hr, w_hr):
        raise ConfigError(f"{row.key}: nearness must be {(h_hr, w_hr)}, got {near.shape}")
    if kernel.shape != (3, h_lr, w_lr):
        raise ConfigError(f"{row.key}: kernel must be {(3, h_lr, w_lr)}, got {kernel.shape}")
    return scale


def _fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize img to size (w, h): area averaging when shrinking, nearest when enlarging."""
    w, h = size
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    shrink = w < img.shape[1] and h < img.shape[0]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_NEAREST
    return cv2.resize(img, (w, h), interpolation=interp)


def _fitted_size(hw: tuple[int, int], tile: int) -> tuple[int, int]:
    """Return (w, h) of an (H, W) image scaled to fit a tile x tile box, keeping its aspect."""
    h, w = hw
    f = min(tile / h, tile / w)
    return max(1, min(tile, round(w * f))), max(1, min(tile, round(h * f)))


def colorize(values: np.ndarray, vmax: float, cmap: int) -> np.ndarray:
    """Map float values in [0, vmax] to RGB uint8 (H, W, 3) with an OpenCV colour map (NaN -> 0)."""
    level = np.clip(np.nan_to_num(values) / vmax, 0.0, 1.0)
    bgr = cv2.applyColorMap(np.round(level * 255.0).astype(np.uint8), cmap)
    return np.ascontiguousarray(bgr[..., ::-1])


def _draw_ticks(tile: np.ndarray, kernel: np.ndarray, spacing: int, thickness: int) -> None:
    """Draw major-axis ticks of the (3, h, w) kernel field in place on the fitted tile."""
    th, tw = tile.shape[:2]
    _, h_lr, w_lr = kernel.shape
    half_max = 0.45 * spacing
    for cy in range(spacing // 2, th, spacing):
        for cx in range(spacing // 2, tw, spacing):
            i, j = min(h_lr - 1, cy * h_lr // th), min(w_lr - 1, cx * w_lr // tw)
            s1, s2, theta = (float(v) for v in kernel[:, i, j])
            major, minor = max(s1, s2), min(s1, s2)
            if not major > 0:
                continue
            half = half_max * (1.0 - minor / major)
            if half < 1.0:
                continue
            phi = theta if s1 >= s2 else theta + math.pi / 2
            # image coordinates: x to the right, y downward, as theta's convention
            dx, dy = half * math.cos(phi), half * math.sin(phi)
            p0 = (round(cx - dx), round(cy - dy))
            p1 = (round(cx + dx), round(cy + dy))
            cv2.line(tile, p0, p1, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.line(tile, p0, p1, (255, 255, 255), thickness, cv2.LINE_AA)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, max_w: int) -> None:
    """Write text with its baseline at org, shrinking (then truncating) it to fit max_w px."""
    while scale > 0.25 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > max_w:
        scale *= 0.9
    while len(text) > 4 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > max_w:
        text = text[:-4] + "..."
    cv2.putText(img, text, org, _FONT, scale, _FG, 1, cv2.LINE_AA)


def _colour_bar(
    sheet: np.ndarray,
    x: int,
    y: int,
    width: int,
    bar_h: int,
    cmap: int,
    labels: tuple[str, str],
    scale: float,
) -> None:
    """Draw a horizontal colour bar with a label on each side, centred in a cell of ``width``."""
    (lw, _), _ = cv2.getTextSize(labels[0], _FONT, scale, 1)
    (rw, _), _ = cv2.getTextSize(labels[1], _FONT, scale, 1)
    gap = max(3, bar_h // 2)
    bar_w = max(8, width - lw - rw - 4 * gap)
    x0 = x + (width - bar_w - lw - rw - 2 * gap) // 2
    ramp = np.linspace(0.0, 1.0, bar_w, dtype=np.float32)[None, :].repeat(bar_h, axis=0)
    sheet[y : y + bar_h, x0 + lw + gap : x0 + lw + gap + bar_w] = colorize(ramp, 1.0, cmap)
    base = y + bar_h
    cv2.putText(sheet, labels[0], (x0, base), _FONT, scale, _FG, 1, cv2.LINE_AA)
    cv2.putText(
        sheet, labels[1], (x0 + lw + 2 * gap + bar_w, base), _FONT, scale, _FG, 1, cv2.LINE_AA
    )


def with_colour_bar(image: np.ndarray, cmap: int, labels: tuple[str, str], title: str,
                    min_width: int = 256) -> np.ndarray:
    """Return a heat map (H, W, 3) uint8 with a legend strip below it: ``title``, then the bar.

    The bar runs the colour map from its first to its last colour with ``labels`` at its ends
    (the values and units of those colours). The map keeps its pixels at rows 0..H-1, columns
    0..W-1, so it stays aligned with the image it describes; the sheet is ``max(W, min_width)``
    wide (background to the right of a narrow map) so that the legend stays legible.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ConfigError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    width, pad, line_h, bar_h, scale = max(w, min_width), 6, 16, 10, 0.4
    sheet = np.full((h + 2 * pad + line_h + bar_h + 4, width, 3), _BG, np.uint8)
    sheet[:h, :w] = image
    _text(sheet, title, (pad, h + pad + line_h - 4), scale, width - 2 * pad)
    _colour_bar(sheet, pad, h + pad + line_h, width - 2 * pad, bar_h, cmap, labels, scale)
    return sheet


def render_preview(rows: Sequence[PreviewRow], tile: int = 256) -> np.ndarray:
    """Render rows as a contact sheet (sheet_h, sheet_w, 3) uint8 RGB, 4 cells of tile px each.

    Args:
        rows: samples to show, one sheet row each, in the given order.
        tile: side in pixels of each square cell (>= 32); images are letterboxed into it.

    Returns:
        (sheet_h, sheet_w, 3) uint8 RGB array with sheet_w = 4 * tile + 5 * pad,
        pad = max(4, tile // 32); each row is as tall as its HR image fitted into the tile box,
        plus a line for its key.

    Raises:
        ConfigError: no rows, a tile below 32 px, or a row whose shapes disagree.
    """
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 32:
        raise ConfigError(f"tile must be an int >= 32 (px), got {tile!r}")
    if len(rows) == 0:
        raise ConfigError("render_preview needs at least one row, got 0")
    scales = [_check_row(r) for r in rows]
    pad = max(4, tile // 32)
    font = max(0.3, 0.45 * tile / 256)
    line_h = cv2.getTextSize("Hg", _FONT, font, 1)[0][1] + max(4, tile // 40)
    bar_h = max(5, tile // 28)
    header_h = pad + 2 * line_h + bar_h + 2 * pad
    # each image is fitted into a tile x tile box; a row is as tall as its fitted images, so wide
    # photographs leave no empty band between their key and their pixels
    sizes = [_fitted_size(r.hr.shape[:2], tile) for r in rows]
    row_tops = np.cumsum([header_h] + [line_h + h + pad for _, h in sizes]).tolist()
    sheet_w = 4 * tile + 5 * pad
    sheet = np.empty((row_tops[-1], sheet_w, 3), dtype=np.uint8)
    sheet[:] = _BG

    lr_title = f"LR x{scales[0]}" if len(set(scales)) == 1 else "LR (x s, see keys)"
    titles = [
        ("HR", ""),
        ("nearness", "(1 = near)"),
        ("blur sqrt(s1*s2) [HR px]", "+ major axis"),
        (lr_title, "(nearest upscale)"),
    ]
    for c, lines in enumerate(titles):
        x = pad + c * (tile + pad)
        for k, line in enumerate(lines):
            if line:
                width = cv2.getTextSize(line, _FONT, font, 1)[0][0]
                _text(
                    sheet,
                    line,
                    (x + max(0, (tile - width) // 2), pad + (k + 1) * line_h - 4),
                    font,
                    tile,
                )
    bar_y = pad + 2 * line_h + pad // 2
    small = font * 0.85
    _colour_bar(
        sheet,
        pad + tile + pad,
        bar_y,
        tile,
        bar_h,
        cv2.COLORMAP_VIRIDIS,
        ("far 0", "1 near"),
        small,
    )
    _colour_bar(
        sheet,
        pad + 2 * (tile + pad),
        bar_y,
        tile,
        bar_h,
        cv2.COLORMAP_INFERNO,
        ("0", f"{BLUR_MAX_PX:g} px"),
        small,
    )

    spacing = max(10, tile // 12)
    thickness = max(1, tile // 256)
    for row, s, size, top in zip(rows, scales, sizes, row_tops[:-1], strict=True):
        h_hr, w_hr = row.hr.shape[:2]
        _text(
            sheet,
            f"{row.key}   {w_hr}x{h_hr} HR, x{s}" + (f"   {row.caption}" if row.caption else ""),
            (pad, top + line_h - 4),
            font,
            sheet_w - 2 * pad,
        )
        blur = np.sqrt(np.clip(row.kernel_field[0], 0, None) * np.clip(row.kernel_field[1], 0, None))
        heat = colorize(_fit(blur.astype(np.float32), size), BLUR_MAX_PX, cv2.COLORMAP_INFERNO)
        _draw_ticks(heat, row.kernel_field, spacing, thickness)
        near = _fit(row.nearness.astype(np.float32), size)
        cells = [
            _fit(row.hr, size),
            colorize(near, 1.0, cv2.COLORMAP_VIRIDIS),
            heat,
            cv2.resize(row.lr, size, interpolation=cv2.INTER_NEAREST),
        ]
        y0 = top + line_h
        for c, cell in enumerate(cells):
            x0 = pad + c * (tile + pad) + (tile - size[0]) // 2
            sheet[y0 : y0 + size[1], x0 : x0 + size[0]] = cell
    return sheet


def write_preview(rows: Sequence[PreviewRow], path: Path, tile: int = 256) -> None:
    """Render rows (see render_preview) and write the sheet atomically to path (.png or .jpg).

    The image is encoded in memory, written to a temporary file in the same folder and renamed
    over ``path``, so a reader never sees a partial file.

    Raises:
        ConfigError: an unsupported suffix, or anything render_preview rejects.
    """
    path = Path(path)
    ext = _ENCODINGS.get(path.suffix.lower())
    if ext is None:
        raise ConfigError(f"preview path must end in one of {sorted(_ENCODINGS)}, got {path.name}")
    sheet = render_preview(rows, tile)
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(sheet[..., ::-1]))
    if not ok:
        raise ConfigError(f"OpenCV could not encode the preview as {ext}")
    with atomic_file(path) as fh:  # the one temp-then-rename helper (pid-tagged temp name)
        fh.write(buf.tobytes())


def shard_preview_rows(shard: Path, rows: int) -> list[PreviewRow]:
    """Return the first ``rows`` samples of a shard as preview rows, captioned from their json."""
    from ssr_datasets.schema import nearness_from_u16
    from ssr_datasets.shards import iter_shard

    picked = []
    for sample in iter_shard(shard):
        picked.append(PreviewRow(sample.key, sample.hr, nearness_from_u16(sample.nearness),
                                 sample.kernel_field, sample.lr, describe_sample(sample.meta)))
        if len(picked) == rows:
            break
    return picked


def write_shard_preview(shard: Path, path: Path, rows: int = 8, tile: int = 256) -> None:
    """Write a contact sheet of the first ``rows`` samples of a shard (atomic)."""
    write_preview(shard_preview_rows(shard, rows), path, tile)
