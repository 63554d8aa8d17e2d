"""Heat maps of kernel errors you can look at: PNG files and one HTML page beside them.

Layout under the output folder ``OUT``::

    OUT/index.html                          every set, image and method on one page
    OUT/<set>/<key>/true_size.png           the true blur size sqrt(s1 s2) (HR px)
    OUT/<set>/<key>/<method>-<map>.png      est_size, kernel_l1, size_err, theta_err, redeg_err

Maps live on the LR grid and are enlarged by pixel repetition to at least 256 px wide. Colours
are OpenCV's viridis; every map of one quantity on one image shares one range across methods
(sizes: 0 to the largest size shown; errors: 0 to the largest error shown), printed beside it,
so that colours compare between methods. Every file is written atomically.
"""

from __future__ import annotations

import math
import re
from html import escape
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ssr_core.io import write_bytes_atomic
from ssr_datasets.imageio import encode_png

from .metrics import KERNEL_METRICS, ImageKernelScores
from .run import KernelSet, MethodScores

#: Map name -> (title, unit), in page order.
MAPS: dict[str, tuple[str, str]] = {
    "est_size": ("estimated size sqrt(s1 s2)", "HR px"),
    "kernel_l1": ("kernel L1 per pixel", "in [0, 2]"),
    "size_err": ("|size error|", "HR px"),
    "theta_err": ("axis angle error (unweighted)", "deg"),
    "redeg_err": ("|re-degraded - LR|", "0-255"),
}
_MIN_WIDTH = 256
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def colorize(values: np.ndarray, vmax: float) -> np.ndarray:
    """Return uint8 RGB (h', w', 3) viridis of a float (h, w) map over [0, vmax], enlarged.

    Non-finite values (a per-pixel PSNR of inf) are drawn at the top of the range.
    """
    v = np.where(np.isfinite(values), values, vmax).astype(np.float64)
    scaled = np.clip(v / vmax if vmax > 0 else np.zeros_like(v), 0.0, 1.0)
    gray = np.rint(scaled * 255).astype(np.uint8)
    bgr = cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS)
    rep = max(1, math.ceil(_MIN_WIDTH / max(1, values.shape[1])))
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    return np.repeat(np.repeat(rgb, rep, axis=0), rep, axis=1)


def _safe(name: str) -> str:
    return _SAFE.sub("_", name)


def write_maps(out: Path, sets: list[tuple[KernelSet, list[MethodScores]]]) -> Path:
    """Write the PNG maps and ``OUT/index.html`` of every set's mapped images; return the page."""
    out = Path(out)
    body: list[str] = []
    for kset, results in sets:
        body.append(f"<h2>{escape(kset.name)}</h2>")
        body.append(_set_table(kset, results))
        keys = [k for k in kset.keys if any(k in r.maps for r in results)]
        for key in keys:
            body.append(_image_block(out, kset, key, results))
    page = out / "index.html"
    html = ("<!doctype html><html><head><meta charset='utf-8'><title>Kernel error maps</title>"
            f"<style>{_CSS}</style></head><body><h1>Kernel estimation: error maps</h1>"
            "<p>Maps on the LR grid, enlarged by pixel repetition; each quantity shares one colour "
            "range (viridis, dark = 0) across the methods of an image.</p>"
            + "".join(body) + "</body></html>")
    write_bytes_atomic(page, html.encode("utf-8"))
    return page


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;font-size:.85em}td,th{padding:.2em .5em;"
        "border-bottom:1px solid #ddd;vertical-align:top}td.num{text-align:right}"
        "figure{display:inline-block;margin:.3em}figcaption{font-size:.75em}img{display:block}")


def _set_table(kset: KernelSet, results: list[MethodScores]) -> str:
    head = "".join(f"<th>{escape(m)}</th>" for m in KERNEL_METRICS)
    rows = []
    for r in results:
        cells = []
        for m in KERNEL_METRICS:
            v = r.mean(m)
            cells.append(f"<td class='num'>{'n/a' if v is None else f'{v:.4g}'}</td>")
        rows.append(f"<tr><th>{escape(r.name)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table>"


def _image_block(out: Path, kset: KernelSet, key: str, results: list[MethodScores]) -> str:
    folder = out / _safe(kset.name) / _safe(key)
    mapped = {r.name: r.maps[key] for r in results if key in r.maps}
    first = next(iter(mapped.values()))
    sizes = [s.maps[n] for s in mapped.values() for n in ("true_size", "est_size") if n in s.maps]
    size_max = max(float(np.nanmax(np.where(np.isfinite(a), a, 0))) for a in sizes)
    parts = [f"<h3>{escape(key)}</h3>", "<div>"]
    parts.append(_figure(out, folder / "true_size.png", first.maps["true_size"], size_max,
                         f"true size sqrt(s1 s2), 0-{size_max:.3g} HR px"))
    parts.append("</div>")
    ranges = _ranges(mapped, size_max)
    for name, scores in mapped.items():
        parts.append(f"<div><b>{escape(name)}</b> {_values_text(scores)}<br>")
        for m, (title, unit) in MAPS.items():
            if m in scores.maps:
                parts.append(_figure(out, folder / f"{_safe(name)}-{m}.png", scores.maps[m],
                                     ranges[m], f"{title}, 0-{ranges[m]:.3g} {unit}"))
        parts.append("</div>")
    return "".join(parts)


def _ranges(mapped: dict[str, ImageKernelScores], size_max: float) -> dict[str, float]:
    out: dict[str, float] = {"est_size": size_max}
    for m in MAPS:
        if m == "est_size":
            continue
        vals = [float(np.nanmax(np.where(np.isfinite(s.maps[m]), s.maps[m], 0)))
                for s in mapped.values() if m in s.maps]
        out[m] = max(vals, default=0.0) or 1.0
    return out


def _values_text(scores: ImageKernelScores) -> str:
    return escape(", ".join(f"{m} {v:.4g}" for m, v in scores.values.items()))


def _figure(out: Path, path: Path, values: np.ndarray, vmax: float, caption: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, encode_png(colorize(values, vmax)))
    rel = path.relative_to(out).as_posix()
    return f"<figure><img src='{escape(rel)}' alt='{escape(caption)}'><figcaption>{escape(caption)}" \
           "</figcaption></figure>"


def map_files(page: Path) -> list[Any]:
    """Return the PNG files the page references (tests, summaries)."""
    return sorted(page.parent.rglob("*.png"))
