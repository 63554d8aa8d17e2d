"""Zoomed-crop figures for the HTML report, in the style of the paper's Fig. 5-7.

For a group's preview image, :func:`choose_crops` picks the non-overlapping square windows with
the most HR gradient energy (where SR methods differ most: edges and texture), deterministically.
Each crop is shown for HR, for LR (nearest-upsampled to the HR grid, so it lines up) and for each
method's output, all enlarged by pixel repetition (nearest neighbour, never smoothed), beside a
thumbnail of the HR image with the boxes drawn in the colours that frame the crops. Images are
embedded as base64 PNG so that the report is one self-contained file.
"""

from __future__ import annotations

import base64
from html import escape

import cv2
import numpy as np

from eval.metrics.registry import get_metric
from ssr_core.errors import InputError
from ssr_datasets.imageio import encode_png

from ..result import GroupResult, Preview
from .layout import fmt_value

Box = tuple[int, int, int, int]  # (y, x, height, width) in HR pixels
BOX_COLORS: tuple[tuple[int, int, int], ...] = ((230, 25, 75), (60, 180, 75), (0, 130, 200))
TILE_PX = 160  # displayed crop size
THUMB_PX = 320  # thumbnail width


def gradient_energy(image: np.ndarray) -> np.ndarray:
    """Return the squared forward-difference gradient of the luma (BT.601 weights), float64 (H, W)."""
    if image.ndim not in (2, 3):
        raise InputError("<array>", f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    grey = image.astype(np.float64)
    if grey.ndim == 3:
        grey = grey[..., :3] @ np.array([0.299, 0.587, 0.114])[: grey.shape[2]]
    energy = np.zeros_like(grey)
    energy[:, :-1] += np.diff(grey, axis=1) ** 2
    energy[:-1, :] += np.diff(grey, axis=0) ** 2
    return energy


def choose_crops(image: np.ndarray, size: int, count: int = 3, step: int | None = None,
                 gap: int | None = None) -> list[Box]:
    """Return up to ``count`` ``size`` x ``size`` windows, most gradient energy first, ``gap`` px apart.

    Windows start on a grid of ``step`` pixels (default ``size // 4``); ties go to the first
    window in row-major order, so the choice depends on the pixels only. Chosen windows are at
    least ``gap`` px apart (default ``size``) along x or y: blur varies with depth, so crops
    spread over the image show more of it than three neighbours on one texture would.

    Raises:
        InputError: ``size`` outside [1, min(H, W)], or ``count``/``step`` below 1.

    >>> img = np.zeros((32, 32), np.uint8); img[20:28, 4:12:2] = 255
    >>> choose_crops(img, 8, count=1)
    [(20, 4, 8, 8)]
    """
    h, w = image.shape[:2]
    step = max(1, size // 4) if step is None else step
    apart = size + (size if gap is None else max(0, gap))
    if not 1 <= size <= min(h, w) or count < 1 or step < 1:
        raise InputError("<array>", f"crop size must be in [1, {min(h, w)}] for a {w}x{h} image and "
                                    f"count, step >= 1; got size {size}, count {count}, step {step}")
    integral = np.pad(gradient_energy(image).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys, xs = np.arange(0, h - size + 1, step), np.arange(0, w - size + 1, step)
    y0, x0 = ys[:, None], xs[None, :]
    sums = (integral[y0 + size, x0 + size] - integral[y0, x0 + size]
            - integral[y0 + size, x0] + integral[y0, x0])
    chosen: list[Box] = []
    for flat in np.argsort(-sums, axis=None, kind="stable"):
        y, x = int(ys[flat // len(xs)]), int(xs[flat % len(xs)])
        if all(abs(y - cy) >= apart or abs(x - cx) >= apart for cy, cx, _, _ in chosen):
            chosen.append((y, x, size, size))
            if len(chosen) == count:
                break
    return chosen


def crop_size(hr_shape: tuple[int, ...], scale: int) -> int:
    """Return the crop side for an HR image: a sixth of its short side in [16, 128], a multiple of s."""
    side = min(max(min(hr_shape[:2]) // 6, 16), 128, min(hr_shape[:2]))
    return max(scale, side // scale * scale)


def lr_on_hr_grid(lr: np.ndarray, box: Box, scale: int) -> np.ndarray:
    """Return the LR pixels under an HR box, nearest-upsampled by ``scale`` (HR pixel i <- LR i // s)."""
    y, x, h, w = box
    rows = np.minimum(np.arange(y, y + h) // scale, lr.shape[0] - 1)
    cols = np.minimum(np.arange(x, x + w) // scale, lr.shape[1] - 1)
    return lr[rows][:, cols]


def enlarge(image: np.ndarray, target: int = TILE_PX) -> np.ndarray:
    """Return the image enlarged by the integer factor that brings its height nearest ``target``."""
    factor = max(1, round(target / image.shape[0]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def thumbnail(hr: np.ndarray, boxes: list[Box], width: int = THUMB_PX) -> np.ndarray:
    """Return a small copy of HR (uint8 RGB) with the boxes drawn in :data:`BOX_COLORS`."""
    f = min(1.0, width / hr.shape[1])
    size = (max(1, round(hr.shape[1] * f)), max(1, round(hr.shape[0] * f)))
    thumb = np.ascontiguousarray(cv2.resize(hr, size, interpolation=cv2.INTER_AREA) if f < 1 else hr.copy())
    for i, (y, x, h, w) in enumerate(boxes):
        color = BOX_COLORS[i % len(BOX_COLORS)]
        cv2.rectangle(thumb, (round(x * f), round(y * f)), (round((x + w) * f) - 1, round((y + h) * f) - 1),
                      color, 2)
    return thumb


def png_data_uri(image: np.ndarray) -> str:
    """Return a ``data:image/png;base64,...`` URI of a uint8 RGB or grey image."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def preview_figure(group: GroupResult, scale: int, count: int = 3,
                   titles: list[str] | None = None) -> str:
    """Return the HTML ``<figure>`` of a group's preview (empty when the group has none).

    ``titles``: the groups the figure stands for (default: this group's title), named in the caption.
    """
    p = group.preview
    if p is None:
        return ""
    size = crop_size(p.hr.shape, scale)
    boxes = choose_crops(p.hr, size, count, step=max(scale, size // 4 // scale * scale))
    columns = _columns(group, p, scale)
    head = "".join(f"<th>{escape(label)}</th>" for label, _ in columns)
    rows = []
    for i, box in enumerate(boxes):
        color = "rgb({},{},{})".format(*BOX_COLORS[i % len(BOX_COLORS)])
        cells = [f'<td class="crop-id" style="color:{color}">{i + 1}</td>']
        for _, image in columns:
            cells.append(_tile(image, box, p, scale, color))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    where = ", ".join(f"{i} at (y={y}, x={x})" for i, (y, x, _, _) in enumerate(boxes, 1))
    names = ", ".join(titles or [group.spec.title])
    caption = (f"{escape(names)}: image {escape(p.key)}; {size}x{size} HR px crops where the "
               f"HR gradient energy is highest: {where}; tiles enlarged by pixel repetition")
    return (f'<figure class="preview"><figcaption>{caption}</figcaption>'
            f'<img class="thumb" alt="HR with crop boxes" src="{png_data_uri(thumbnail(p.hr, boxes))}">'
            f'<table class="crops"><tr><th></th>{head}</tr>{"".join(rows)}</table></figure>')


def _columns(group: GroupResult, p: Preview, scale: int) -> list[tuple[str, np.ndarray | str]]:
    """Return (label, image or "lr") per figure column: HR, LR, then the rows' outputs in order."""
    columns: list[tuple[str, np.ndarray | str]] = [("HR", p.hr), (f"LR (nearest \u00d7{scale})", "lr")]
    labels = {r.spec.id: r for r in group.rows}
    order = [r.spec.id for r in group.rows if r.spec.id in p.outputs]
    order += sorted(k for k in p.outputs if k not in labels)
    for row_id in order:
        row = labels.get(row_id)
        label = row.spec.title if row is not None else row_id
        values = row.per_image.get(p.key, {}) if row is not None else {}
        first = next(iter(values.items()), None)
        if first is not None:
            label += f" ({get_metric(first[0]).title} {fmt_value(first[1])})"
        columns.append((label, p.outputs[row_id]))
    return columns


def _tile(image: np.ndarray | str, box: Box, p: Preview, scale: int, color: str) -> str:
    if isinstance(image, str):
        crop = lr_on_hr_grid(p.lr, box, scale)
    elif image.shape != p.hr.shape:
        return f"<td>output is {image.shape[1]}x{image.shape[0]}, HR {p.hr.shape[1]}x{p.hr.shape[0]}</td>"
    else:
        y, x, h, w = box
        crop = image[y:y + h, x:x + w]
    return (f'<td><img class="tile" style="border-color:{color}" alt="crop" '
            f'src="{png_data_uri(enlarge(np.ascontiguousarray(crop)))}"></td>')
