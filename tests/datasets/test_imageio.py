"""Tests for ssr_datasets.imageio: every input kind, every bad file, PNG members."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ssr_core.errors import InputError
from ssr_datasets.imageio import decode_png, encode_png, minimal_png, pixel_sha256, read_image


@pytest.fixture
def rgb() -> np.ndarray:
    """A small random RGB image (uint8, 10 x 14 x 3)."""
    return np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)


def _save(path: Path, img: Image.Image, fmt: str, **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


def _cv2_reference(path: Path) -> np.ndarray:
    """Independent decode: OpenCV's own reader, BGR -> RGB."""
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


@pytest.mark.parametrize("fmt,suffix,kw", [
    ("PNG", "png", {}), ("BMP", "bmp", {}), ("TIFF", "tif", {}),
    ("WEBP", "webp", {"lossless": True}),
])
def test_lossless_formats_round_trip(tmp_path, rgb, fmt, suffix, kw):
    path = _save(tmp_path / f"a.{suffix}", Image.fromarray(rgb), fmt, **kw)
    out = read_image(path)
    assert out.rgb.dtype == np.uint8 and out.rgb.flags.c_contiguous
    np.testing.assert_array_equal(out.rgb, rgb)
    assert out.conversions == ()


def test_jpeg_matches_opencv_decoder(tmp_path, rgb):
    path = _save(tmp_path / "a.JPG", Image.fromarray(rgb), "JPEG", quality=95)
    out = read_image(path)
    # Two libjpeg builds may differ by an IDCT rounding step; 3 levels is generous.
    diff = np.abs(out.rgb.astype(int) - _cv2_reference(path).astype(int))
    assert out.rgb.shape == rgb.shape and diff.max() <= 3


def test_grayscale_becomes_three_equal_channels(tmp_path, rgb):
    gray = rgb[..., 0]
    out = read_image(_save(tmp_path / "g.png", Image.fromarray(gray), "PNG"))
    for c in range(3):
        np.testing.assert_array_equal(out.rgb[..., c], gray)
    assert out.conversions == ("grayscale->rgb",)


def test_rgba_drops_alpha(tmp_path, rgb):
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    out = read_image(_save(tmp_path / "a.png", Image.fromarray(rgba), "PNG"))
    np.testing.assert_array_equal(out.rgb, rgb)
    assert out.conversions == ("rgba->rgb (alpha dropped)",)


def test_16bit_rgb_png_is_rounded_not_truncated(tmp_path):
    rng = np.random.default_rng(1)
    rgb16 = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    rgb16[0, 0] = (128, 383, 65535)  # 128/257 = 0.498 -> 0, 383/257 = 1.49 -> 1
    path = tmp_path / "a16.png"
    cv2.imwrite(str(path), rgb16[..., ::-1])
    out = read_image(path)
    expected = np.round(rgb16 / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out.rgb, expected)
    assert "16-bit->8-bit (rounded)" in out.conversions


def test_16bit_gray_png_and_tiff(tmp_path):
    gray16 = np.arange(0, 65535, 65535 // 29, dtype=np.uint16)[:30].reshape(5, 6)
    expected = np.round(gray16 / 257.0).astype(np.uint8)
    for suffix in ("png", "tif"):
        path = tmp_path / f"g16.{suffix}"
        cv2.imwrite(str(path), gray16)
        out = read_image(path)
        np.testing.assert_array_equal(out.rgb, np.repeat(expected[..., None], 3, axis=2))
        assert out.conversions == ("16-bit->8-bit (rounded)", "grayscale->rgb")


def test_16bit_rgb_tiff(tmp_path):
    rgb16 = np.random.default_rng(2).integers(0, 65536, (4, 7, 3), dtype=np.uint16)
    path = tmp_path / "a16.tiff"
    cv2.imwrite(str(path), rgb16[..., ::-1])
    np.testing.assert_array_equal(read_image(path).rgb, np.round(rgb16 / 257.0).astype(np.uint8))


def test_cmyk_jpeg(tmp_path):
    path = _save(tmp_path / "c.jpg", Image.new("CMYK", (9, 7), (10, 200, 30, 40)), "JPEG",
                 quality=100)
    out = read_image(path)
    assert out.rgb.shape == (7, 9, 3)
    assert out.conversions == ("cmyk->rgb",)
    # OpenCV converts CMYK JPEGs itself; an independent colour path within 4 levels.
    assert np.abs(out.rgb.astype(int) - _cv2_reference(path).astype(int)).max() <= 4


def test_palette_png_matches_libpng_expansion(tmp_path, rgb):
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = _save(tmp_path / "p.png", pal, "PNG")
    out = read_image(path)
    np.testing.assert_array_equal(out.rgb, _cv2_reference(path))
    assert out.conversions == ("palette->rgb",)


def test_palette_with_transparency_is_noted(tmp_path, rgb):
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    path = _save(tmp_path / "p.png", pal, "PNG", transparency=0)
    assert read_image(path).conversions == ("palette->rgb (transparency dropped)",)


def _png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("kind,cut", [
    ("png", 0.5), ("png", -6), ("png", -1), ("jpeg", 0.5), ("jpeg", -2), ("jpeg", -1)])
def test_truncated_files_are_rejected(tmp_path, rgb, kind, cut):
    data = _png_bytes(rgb) if kind == "png" else _jpeg_bytes(rgb)
    n = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut
    path = tmp_path / f"t.{kind}"
    path.write_bytes(data[:n])
    with pytest.raises(InputError, match="truncated") as info:
        read_image(path)
    assert info.value.path == str(path)


def test_empty_file(tmp_path):
    path = tmp_path / "e.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty file \(0 bytes\)"):
        read_image(path)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "g.jpg"
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(InputError, match="not a recognised image"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read file"):
        read_image(tmp_path / "nope.png")


def test_zero_size_png(tmp_path):
    # A hand-made PNG whose IHDR says width 0 (libpng and Pillow must not accept it).
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", 0, 4, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))
    path = tmp_path / "z.png"
    path.write_bytes(data)
    with pytest.raises(InputError, match="zero-size|corrupt|not a recognised"):
        read_image(path)


def test_unsupported_format(tmp_path, rgb):
    path = _save(tmp_path / "a.gif", Image.fromarray(rgb).convert("P"), "GIF")
    with pytest.raises(InputError, match="unsupported image format GIF"):
        read_image(path)


def test_pixel_sha256_includes_shape_and_dtype(rgb):
    ref = hashlib.sha256(b"|u1|(10, 14, 3)|" + rgb.tobytes()).hexdigest()
    assert pixel_sha256(rgb) == ref
    assert pixel_sha256(rgb.reshape(14, 10, 3)) != ref
    assert pixel_sha256(rgb.view(np.int8)) != ref
    assert pixel_sha256(np.asfortranarray(rgb)) == ref  # layout is not content


@pytest.mark.parametrize("dtype,shape", [
    (np.uint8, (5, 7, 3)), (np.uint8, (5, 7)), (np.uint16, (5, 7))])
def test_png_round_trip_is_exact_and_deterministic(dtype, shape):
    img = np.random.default_rng(3).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    data = encode_png(img)
    assert data == encode_png(img.copy())
    out = decode_png(data)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, img)


def test_encode_png_writes_rgb_order(rgb):
    # Pillow is an independent decoder that knows nothing of OpenCV's BGR.
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encode_png(rgb)))), rgb)


@pytest.mark.parametrize("img", [
    np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.uint16), np.zeros((4, 4, 4), np.uint8),
    np.zeros((0, 4, 3), np.uint8)])
def test_encode_png_rejects_unsupported_arrays(img):
    with pytest.raises(InputError, match="expected uint8|empty image"):
        encode_png(img)


def test_decode_png_rejects_garbage():
    with pytest.raises(InputError, match="not a PNG"):
        decode_png(b"\x89PNG garbage")
    with pytest.raises(InputError, match="empty PNG data"):
        decode_png(b"")


def test_damaged_png_member_is_one_line_without_raw_libpng_output(capfd, rgb):
    # `degrade verify` on a shard with a damaged lr.png printed libpng's own "libpng error: ..."
    # line (from C, straight to fd 2) above its report; now the damage is found first.
    good = encode_png(np.tile(rgb, (8, 8, 1)))
    idat = good.index(b"IDAT") - 4
    flipped = bytearray(good)
    flipped[idat + 20:idat + 28] = bytes(b ^ 0xFF for b in flipped[idat + 20:idat + 28])
    cv2.imdecode(np.frombuffer(bytes(flipped), np.uint8), cv2.IMREAD_UNCHANGED)  # the old path
    assert "libpng error" in capfd.readouterr().err
    with pytest.raises(InputError, match=f"corrupt PNG: chunk 'IDAT' at byte {idat} fails its CRC "
                                         f"\\({len(good)} bytes\\)$"):
        decode_png(bytes(flipped))
    with pytest.raises(InputError, match=f"truncated PNG: chunk 'IDAT' at byte {idat} needs"):
        decode_png(good[:idat + 30])
    with pytest.raises(InputError, match="truncated PNG: no IEND chunk"):
        decode_png(good[:-12])
    np.testing.assert_array_equal(decode_png(good)[:10, :14], rgb)
    assert "libpng" not in capfd.readouterr().err


# ---------------------------------------------------------------- minimal_png (hr.png reuse)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(rgb: np.ndarray, extra: tuple[bytes, ...] = (), interlace: int = 0,
         adler_ok: bool = True) -> bytes:
    """Write an 8-bit RGB PNG by hand (filter 0 rows, one IDAT) with extra chunks before IDAT."""
    h, w = rgb.shape[:2]
    stream = zlib.compress(b"".join(b"\0" + rgb[y].tobytes() for y in range(h)))
    if not adler_ok:
        stream = stream[:-1] + bytes([stream[-1] ^ 1])
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + b"".join(extra)
            + _chunk(b"IDAT", stream) + _chunk(b"IEND", b""))


def _chunk_names(data: bytes) -> list[bytes]:
    names, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        names.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return names


def test_minimal_png_keeps_the_pixels_and_drops_metadata(rgb):
    text = _chunk(b"tEXt", b"Author\0someone")
    gamma = _chunk(b"gAMA", struct.pack(">I", 45455))
    data = _png(rgb, (text, gamma))
    assert np.array_equal(read_image_bytes(data), rgb)  # Pillow, as the loader decodes it
    out = minimal_png(data, rgb.shape[:2])
    assert out is not None and _chunk_names(out) == [b"IHDR", b"IDAT", b"IEND"]
    assert np.array_equal(decode_png(out), rgb)  # libpng, as the shard reader decodes it
    assert np.asarray(Image.open(io.BytesIO(out))).tobytes() == rgb.tobytes()


@pytest.mark.parametrize("case", ["transparency", "interlaced", "bad adler", "bad crc",
                                  "other shape", "16-bit", "gray", "truncated", "not png"])
def test_minimal_png_refuses_what_it_cannot_carry_over(rgb, case):
    data, shape = _png(rgb), rgb.shape[:2]
    if case == "transparency":  # tRNS makes a colour transparent: decoders may add alpha
        data = _png(rgb, (_chunk(b"tRNS", b"\0\0\0\0\0\0"),))
    elif case == "interlaced":
        data = _png(rgb, interlace=1)
    elif case == "bad adler":
        data = _png(rgb, adler_ok=False)
    elif case == "bad crc":
        data = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]
    elif case == "other shape":
        shape = (shape[0], shape[1] + 1)
    elif case == "16-bit":
        data = cv2.imencode(".png", rgb.astype(np.uint16) * 257)[1].tobytes()
    elif case == "gray":
        data = cv2.imencode(".png", rgb[..., 0])[1].tobytes()
    elif case == "truncated":
        data = data[:-12]
    else:
        data = b"GIF89a" + data[6:]
    assert minimal_png(data, shape) is None


def read_image_bytes(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))
