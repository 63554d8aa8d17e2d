"""Decode input images robustly and encode/decode the PNG members of a shard.

Input decoding uses Pillow because its ``load()`` raises on truncated data, whereas
``cv2.imread`` may hand back a half-decoded image. Pillow reduces 16-bit colour to
8 bits by taking the high byte (truncation), so 16-bit colour files are decoded a
second time with OpenCV, which keeps all 16 bits, and rounded to 8 bits here.

Shard members are encoded with OpenCV's fast PNG settings (zlib level 1, run-length
strategy, the SUB filter on every row: what ``cv2.imwrite`` does by default, written out
so that a new OpenCV default cannot change our bytes), which is deterministic for identical
pixels. An 8-bit RGB PNG input can be carried over as it is (:func:`minimal_png`).
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ssr_core.errors import InputError

from .formats import DEFAULT_MAX_PIXELS

#: Pillow format names accepted as inputs (MPO is how Pillow names many camera JPEGs).
_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "BMP": "bmp", "TIFF": "tiff",
            "WEBP": "webp"}

#: 8-bit Pillow modes converted to RGB, and the note recorded for each.
_MODE_NOTES = {
    "RGB": None,
    "L": "grayscale->rgb",
    "1": "1-bit->rgb",
    "P": "palette->rgb",
    "PA": "palette->rgb (alpha dropped)",
    "LA": "grayscale->rgb (alpha dropped)",
    "La": "grayscale->rgb (alpha dropped)",
    "RGBA": "rgba->rgb (alpha dropped)",
    "RGBa": "rgba->rgb (alpha dropped)",
    "RGBX": "rgbx->rgb",
    "CMYK": "cmyk->rgb",
    "YCbCr": "ycbcr->rgb",
    "LAB": "lab->rgb",
    "HSV": "hsv->rgb",
}

# About 2x faster than level 1 with libpng's adaptive filters (the schema v1 setting) for 9%
# larger files on photographs (bench/build.py); the same bytes as cv2.imwrite's defaults.
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
               cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True, eq=False)  # arrays make field-wise == ambiguous
class DecodedImage:
    """An input image as uint8 RGB plus notes on every conversion applied.

    Attributes:
        rgb: uint8 array (H, W, 3), C-contiguous, RGB order.
        conversions: Human-readable notes such as ``"grayscale->rgb"``; empty when
            the file already held 8-bit RGB.
        source_png: The file's bytes when it is a PNG decoded without any conversion
            (candidates for :func:`minimal_png`), else None.
    """

    rgb: np.ndarray
    conversions: tuple[str, ...]
    source_png: bytes | None = None


def check_pixel_count(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise if the image header of ``path`` declares more than ``max_pixels`` (W x H) pixels.

    Only the header is read (Pillow opens lazily), so a tiny file claiming a huge image is
    refused before it costs memory. A file Pillow cannot identify is let through: the
    decoder that reads it says what is wrong (``.mat``/``.pfm`` inputs are not images here).

    Raises:
        InputError: Too many pixels; the reason gives the size and the limit.
    """
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: the check below is ours
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit (179 MP)
        raise InputError(path, f"too many pixels ({exc}); the limit is --max-pixels "
                               f"{max_pixels}") from exc
    except Exception:  # noqa: BLE001 - not an image Pillow knows: not this check's to judge
        return
    if width * height > max_pixels:
        raise InputError(path, f"{width}x{height} = {width * height} pixels, over --max-pixels "
                               f"{max_pixels}; raise --max-pixels to use it")


def read_image(path: str | Path) -> DecodedImage:
    """Decode a png/jpeg/bmp/tiff/webp file to uint8 RGB (H, W, 3).

    Grayscale, palette, alpha, CMYK and 16-bit inputs are converted and the
    conversion is recorded. Alpha is dropped, not composited. EXIF orientation is
    not applied (a depth map beside the image is stored unrotated too); a non-trivial
    orientation is recorded as ignored.

    Args:
        path: Image file.

    Returns:
        The decoded image and its conversion notes.

    Raises:
        InputError: The file cannot be read, is empty, is not a supported image,
            is truncated or corrupt, or has zero width or height.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise InputError(path, "empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "unknown"
            if fmt not in _FORMATS:
                raise InputError(path, f"unsupported image format {fmt}; expected one of "
                                       "png, jpeg, bmp, tiff, webp")
            notes = _pre_load_notes(im)
            bits16 = _is_16bit(im, data)
            im.load()
            width, height = im.size
            if width == 0 or height == 0:
                raise InputError(path, f"zero-size image ({width}x{height})")
            if fmt == "PNG":
                _check_png_complete(path, data)
            rgb, more = _to_rgb(path, im, data, bits16)
    except InputError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise InputError(path, "not a recognised image (expected png, jpeg, bmp, tiff or "
                               "webp data)") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad file
        raise InputError(path, f"corrupt or truncated image: {exc}") from exc
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(path, f"zero-size image ({rgb.shape[1]}x{rgb.shape[0]})")
    conversions = tuple(notes + more)
    return DecodedImage(rgb=np.ascontiguousarray(rgb, dtype=np.uint8), conversions=conversions,
                        source_png=data if fmt == "PNG" and not conversions else None)


def _pre_load_notes(im: Image.Image) -> list[str]:
    """Return notes on frames and EXIF orientation, which must be read before load()."""
    notes = []
    n_frames = int(getattr(im, "n_frames", 1) or 1)
    if n_frames > 1:
        notes.append(f"multi-frame file: used frame 0 of {n_frames}")
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject the pixels
        orientation = 1
    if orientation not in (None, 1):
        notes.append(f"exif orientation {orientation} ignored (pixels kept as stored)")
    return notes


def _is_16bit(im: Image.Image, data: bytes) -> bool:
    """Tell whether the file stores 16 bits per sample (Pillow may hide it)."""
    if im.mode.startswith("I;16"):
        return True
    if im.format == "PNG" and len(data) > 24:
        # IHDR bit depth sits at a fixed offset: signature 8 + length 4 + type 4 + w 4 + h 4.
        return data[24] == 16
    if im.format == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258, ())
        bits = bits if isinstance(bits, tuple) else (bits,)
        return any(b == 16 for b in bits)
    return False


def _check_png_complete(path: str | Path, data: bytes) -> None:
    """Raise if the PNG chunk structure is cut short (Pillow's load() misses a lost IEND)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"corrupt or truncated PNG: {exc}") from exc
    end = data.rfind(b"IEND")
    if end < 0 or len(data) < end + 8:
        raise InputError(path, "truncated PNG: IEND chunk missing or cut short")


def _to_rgb(
    path: str | Path, im: Image.Image, data: bytes, bits16: bool
) -> tuple[np.ndarray, list[str]]:
    """Convert a loaded Pillow image to uint8 RGB (H, W, 3) with conversion notes."""
    mode = im.mode
    if bits16 or mode == "I":
        return _sixteen_to_rgb(path, im, data)
    if mode not in _MODE_NOTES:
        raise InputError(path, f"unsupported pixel mode {mode!r}; expected 8/16-bit gray, "
                               "palette, RGB(A) or CMYK")
    notes = []
    note = _MODE_NOTES[mode]
    if note:
        if mode == "P" and "transparency" in im.info:
            note = "palette->rgb (transparency dropped)"
        notes.append(note)
    rgb = np.asarray(im if mode == "RGB" else im.convert("RGB"))
    return rgb, notes


def _sixteen_to_rgb(path: str | Path, im: Image.Image, data: bytes) -> tuple[np.ndarray, list]:
    """Decode a 16-bit file with OpenCV (keeps all bits) and round to uint8 RGB."""
    notes = ["16-bit->8-bit (rounded)"]
    if im.mode.startswith("I;16") or im.mode == "I":
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise InputError(path, f"32-bit integer pixels outside 0..65535 "
                                   f"(got {arr.min()}..{arr.max()})")
    else:
        if data[:8] == PNG_SIGNATURE:  # a damaged PNG: a clear error, no raw libpng line
            try:
                check_png_chunks(data)
            except InputError as exc:
                raise InputError(path, exc.reason) from None
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise InputError(path, "corrupt 16-bit image (OpenCV could not decode it)")
        if arr.ndim == 3:
            arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]] if arr.shape[2] >= 3 else arr
    arr = arr.astype(np.uint32)
    if arr.ndim == 3 and arr.shape[2] == 4:
        notes.append("rgba->rgb (alpha dropped)")
        arr = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[2] == 2:
        notes.append("grayscale->rgb (alpha dropped)")
        arr = arr[..., 0]
    if arr.ndim == 2:
        notes.append("grayscale->rgb")
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.max(initial=0) > 65535:
        raise InputError(path, "16-bit decode produced values above 65535")
    # round(v * 255 / 65535) in exact integer arithmetic (half rounds up).
    rgb = ((arr * 255 + 32767) // 65535).astype(np.uint8)
    return rgb, notes


def pixel_sha256(rgb: np.ndarray) -> str:
    """Hash decoded pixels with their dtype and shape (different shapes never collide).

    Args:
        rgb: Any numpy array, typically uint8 (H, W, 3).

    Returns:
        Lower-case hex sha256 of ``"<dtype>|<shape>|"`` followed by the C-order bytes.

    Raises:
        InputError: ``rgb`` is not a numpy array.
    """
    if not isinstance(rgb, np.ndarray):
        raise InputError("<array>", f"expected a numpy array, got {type(rgb).__name__}")
    h = hashlib.sha256()
    h.update(f"{rgb.dtype.str}|{tuple(rgb.shape)}|".encode("ascii"))
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def encode_png(img: np.ndarray) -> bytes:
    """Encode uint8 RGB (H, W, 3), uint8 (H, W) or uint16 (H, W) as PNG bytes.

    Encoding is deterministic (OpenCV, zlib level 1, RLE strategy, SUB filter); colour is
    given in RGB order and swapped to OpenCV's BGR internally.

    Raises:
        InputError: Unsupported dtype or shape, or an empty image.
    """
    if not isinstance(img, np.ndarray):
        raise InputError("<array>", f"expected a numpy array, got {type(img).__name__}")
    ok_shape = (img.dtype == np.uint8 and (img.ndim == 2 or (img.ndim == 3
                                                              and img.shape[2] == 3))) or (
        img.dtype == np.uint16 and img.ndim == 2)
    if not ok_shape:
        raise InputError("<array>", "expected uint8 (H,W,3), uint8 (H,W) or uint16 (H,W), "
                                    f"got {img.dtype} {tuple(img.shape)}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError("<array>", f"cannot encode an empty image {tuple(img.shape)}")
    arr = img[..., ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), _PNG_PARAMS)
    if not ok:
        raise InputError("<array>", f"OpenCV failed to encode {img.dtype} {tuple(img.shape)}")
    return buf.tobytes()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png_chunks(data: bytes) -> None:
    """Walk a PNG's chunks up to IEND, checking each length and CRC (about 2% of a decode).

    libpng, as OpenCV uses it, writes a raw ``libpng error: ...`` line to the process's stderr
    when it meets a corrupt or truncated file, and does not check CRCs: checked here first, the
    damage becomes a one-line InputError that names the chunk and byte offset.

    Raises:
        InputError: not a PNG signature, a chunk past the end, a CRC mismatch, or no IEND.
    """
    if data[:8] != PNG_SIGNATURE:
        raise InputError("<png bytes>", f"not a PNG (no PNG signature; {len(data)} bytes)")
    view, pos, n = memoryview(data), 8, len(data)
    while pos + 12 <= n:
        length, kind = struct.unpack(">I4s", view[pos:pos + 8])
        end = pos + 12 + length
        name = kind.decode("latin-1")
        if end > n:
            raise InputError("<png bytes>", f"truncated PNG: chunk {name!r} at byte {pos} needs "
                                            f"{length + 12} bytes, {n - pos} left ({n} in all)")
        if zlib.crc32(view[pos + 4:end - 4]) != struct.unpack(">I", view[end - 4:end])[0]:
            raise InputError("<png bytes>", f"corrupt PNG: chunk {name!r} at byte {pos} fails "
                                            f"its CRC ({n} bytes)")
        if kind == b"IEND":
            return
        pos = end
    raise InputError("<png bytes>", f"truncated PNG: no IEND chunk ({n} bytes)")


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes keeping the bit depth: uint8/uint16, (H, W) or RGB(A) (H, W, C).

    Raises:
        InputError: The bytes are not a decodable PNG.
    """
    if not data:
        raise InputError("<png bytes>", "empty PNG data (0 bytes)")
    check_png_chunks(data)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError("<png bytes>", f"corrupt or truncated PNG ({len(data)} bytes)")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[..., ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., [2, 1, 0, 3]]
    return np.ascontiguousarray(arr)


# Ancillary chunks that change no decoded pixel of an 8-bit RGB image: dropped by minimal_png.
# Anything else (tRNS makes a colour transparent, APNG frames, unknown chunks) keeps the file
# from being carried over.
_DROPPABLE_CHUNKS = {b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs", b"tEXt", b"zTXt",
                     b"iTXt", b"tIME", b"bKGD", b"eXIf", b"hIST", b"sPLT", b"PLTE"}


def minimal_png(data: bytes, shape: tuple[int, int]) -> bytes | None:
    """Return an 8-bit RGB PNG reduced to IHDR, IDAT and IEND, or None if it cannot be reused.

    Same IHDR and compressed pixels, so any decoder gives exactly the pixels of ``data``;
    chunks that change no pixel (colour hints, text, EXIF) are dropped. Only for non-interlaced
    8-bit RGB of ``shape`` (H, W) whose CRCs hold and whose zlib stream inflates completely
    (Adler-32 checked) to H rows of a valid filter byte and 3W bytes. Costs one inflate
    (~26 ms for 2040x1356 on a busy machine) against ~45-80 ms to encode the pixels again.
    """
    if data[:8] != PNG_SIGNATURE:
        return None
    view, pos, n = memoryview(data), 8, len(data)
    ihdr, idat, ok = None, [], False
    while pos + 12 <= n:
        length, kind = struct.unpack(">I4s", view[pos:pos + 8])
        end = pos + 12 + length
        if end > n or zlib.crc32(view[pos + 4:end - 4]) != struct.unpack(">I", view[end - 4:end])[0]:
            return None
        if kind == b"IHDR" and ihdr is None and length == 13:
            ihdr = view[pos:end]
        elif kind == b"IDAT" and ihdr is not None:
            idat.append(view[pos:end])
        elif kind == b"IEND":
            ok = True
            break
        elif kind not in _DROPPABLE_CHUNKS:
            return None
        pos = end
    if not ok or ihdr is None or not idat:
        return None
    w, h, depth, colour, compression, filt, interlace = struct.unpack(">IIBBBBB", ihdr[8:21])
    if (h, w) != tuple(shape) or (depth, colour, compression, filt, interlace) != (8, 2, 0, 0, 0):
        return None
    stream = zlib.decompressobj()
    row = 1 + 3 * w
    try:  # one call: at most one byte more than the image holds, to see any excess
        raw = stream.decompress(b"".join(c[8:-4] for c in idat), row * h + 1)
    except zlib.error:
        return None
    if len(raw) != row * h or stream.unconsumed_tail or not stream.eof or stream.unused_data:
        return None
    if max(raw[::row]) > 4:  # the filter byte of every row: 0..4
        return None
    return b"".join([PNG_SIGNATURE, ihdr, *idat, b"\x00\x00\x00\x00IEND\xaeB`\x82"])
