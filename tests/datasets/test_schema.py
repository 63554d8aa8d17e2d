"""Tests for ssr_datasets.schema and its agreement with manifests/schema/sample-v2.json."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from ssr_core.errors import ConfigError, InputError
from ssr_datasets.imageio import decode_png
from ssr_datasets.schema import (
    KEY_PATTERN,
    MEMBERS,
    REQUIRED_META_KEYS,
    SCHEMA_VERSION,
    SchemaError,
    decode_sample,
    encode_sample,
    make_key,
    nearness_from_u16,
    nearness_to_u16,
    schema_description,
    validate_sample,
)
from ssr_manifests import SCHEMA_DIR


def test_make_key():
    assert make_key("sample", "astronaut", 7) == "sample-astronaut-007"
    assert KEY_PATTERN.fullmatch(make_key("folder", "a_b_2", 999))


@pytest.mark.parametrize("args,match", [
    (("sam-ple", "x", 0), "source must match"),
    (("sample", "a.b", 0), "image_id must match"),
    (("sample", "", 0), "image_id must match"),
    (("sample", "x", 1000), "variant must be an int in 0..999"),
    (("sample", "x", -1), "variant must be an int"),
    (("sample", "x", True), "variant must be an int"),
])
def test_make_key_rejects_bad_parts(args, match):
    with pytest.raises(ConfigError, match=match):
        make_key(*args)


def test_nearness_quantization():
    n = np.linspace(0, 1, 1001).reshape(7, 143)
    u = nearness_to_u16(n)
    assert u.dtype == np.uint16 and u[0, 0] == 0 and u[-1, -1] == 65535
    assert np.abs(nearness_from_u16(u) - n).max() <= 0.5 / 65535 + 1e-7
    assert nearness_from_u16(u).dtype == np.float32
    np.testing.assert_array_equal(nearness_to_u16(np.array([-0.5, 1.5])), [0, 65535])
    with pytest.raises(SchemaError, match="finite float nearness"):
        nearness_to_u16(np.array([0.5, np.nan]))
    with pytest.raises(SchemaError, match="expected uint16, got uint8"):
        nearness_from_u16(np.zeros(3, np.uint8))


def _assert_same(a, b):
    assert a.key == b.key and a.meta == b.meta
    for name in ("hr", "lr", "nearness", "kernel_field"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_round_trip_is_exact_and_deterministic(make_sample):
    sample = make_sample("sample-astronaut-000")
    members = encode_sample(sample)
    assert list(members) == list(MEMBERS)
    assert encode_sample(make_sample("sample-astronaut-000")) == members
    _assert_same(decode_sample(sample.key, members), sample)
    # JSON is compact with sorted keys so equal metadata always gives equal bytes.
    assert members["json"] == json.dumps(sample.meta, sort_keys=True,
                                         separators=(",", ":")).encode()


def _bad(sample, **changes):
    return dataclasses.replace(sample, **changes)


@pytest.mark.parametrize("change,match", [
    (lambda s: _bad(s, key="a.b-000"), "key must match"),
    (lambda s: _bad(s, meta={"scale": 2}), r"missing \['schema_version'\]"),
    (lambda s: _bad(s, meta={**s.meta, "schema_version": 3}), r"expected one of \(1, 2\), got 3"),
    (lambda s: _bad(s, meta={**s.meta, "scale": 2.0}), "int >= 1"),
    (lambda s: _bad(s, meta={**s.meta, "x": float("nan")}), "without NaN"),
    (lambda s: _bad(s, meta={**s.meta, "x": object()}), "JSON-serializable"),
    (lambda s: _bad(s, hr=s.hr.astype(np.float32)), "hr dtype: expected uint8, got float32"),
    (lambda s: _bad(s, hr=s.hr[:7]), "hr size: expected positive multiples of scale 2"),
    (lambda s: _bad(s, hr=s.hr[..., 0]), r"hr shape: expected \(H, W, 3\)"),
    (lambda s: _bad(s, lr=s.lr[:3]), r"lr shape: expected \(4, 6, 3\), got \(3, 6, 3\)"),
    (lambda s: _bad(s, nearness=s.nearness.astype(np.uint8)), "nearness dtype"),
    (lambda s: _bad(s, kernel_field=s.kernel_field[:2]), "kernel shape: expected"),
    (lambda s: _bad(s, kernel_field=s.kernel_field.astype(np.float64)), "kernel dtype: expected float32"),
    (lambda s: _bad(s, kernel_field=s.kernel_field * np.array([0, 1, 1], np.float32)[:, None, None]),
     "kernel s1, s2: expected finite and > 0"),
    (lambda s: _bad(s, kernel_field=np.concatenate(
        [s.kernel_field[:2], np.full_like(s.kernel_field[2:], math.pi)])), r"theta: expected finite in \[0"),
])
def test_validate_rejects(make_sample, change, match):
    with pytest.raises(SchemaError, match=match):
        validate_sample(change(make_sample("sample-x-000")))


def test_version_1_samples_are_still_read(make_sample):
    # v2 changed the bytes of the PNG members, not the format: v1 shards decode as before.
    sample = make_sample("sample-x-000")
    old = _bad(sample, meta={**sample.meta, "schema_version": 1})
    members = encode_sample(old)
    assert decode_sample("sample-x-000", members).meta["schema_version"] == 1


def test_schema_error_is_an_input_error():
    assert issubclass(SchemaError, InputError)


def test_decode_rejects_missing_extra_and_corrupt_members(make_sample):
    members = encode_sample(make_sample("sample-x-000"))
    with pytest.raises(SchemaError, match=r"missing \['kernel.npy'\]"):
        decode_sample("sample-x-000", {k: v for k, v in members.items() if k != "kernel.npy"})
    with pytest.raises(SchemaError, match=r"unexpected \['extra.txt'\]"):
        decode_sample("sample-x-000", {**members, "extra.txt": b"x"})
    with pytest.raises(SchemaError, match="member lr.png.*cannot decode"):
        decode_sample("sample-x-000", {**members, "lr.png": members["lr.png"][:40]})
    # webdataset's own fields are ignored.
    decode_sample("sample-x-000", {**members, "__url__": "x.tar", "__key__": "sample-x-000"})


# ---------------------------------------------------------------- checked-in schema file

@pytest.fixture(scope="module")
def schema_file() -> dict:
    return json.loads((SCHEMA_DIR / "sample-v2.json").read_text())


def test_schema_file_matches_code_constants(schema_file):
    assert schema_file["schema_version"] == SCHEMA_VERSION == 2
    assert [m["name"] for m in schema_file["members"]] == list(MEMBERS)
    assert schema_file["required_json_keys"] == list(REQUIRED_META_KEYS)
    assert schema_file["key_pattern"] == KEY_PATTERN.pattern
    described = schema_description()
    file_members = [{k: v for k, v in m.items() if k != "description"}
                    for m in schema_file["members"]]
    assert file_members == described.pop("members")
    for field, value in described.items():
        assert schema_file[field] == value, field


def test_encoded_members_have_the_documented_dtypes_and_shapes(schema_file, make_sample):
    h, w, scale = 8, 12, 2
    members = encode_sample(make_sample("sample-x-000", h=h, w=w))
    sizes = {"H": h, "W": w, "H/scale": h // scale, "W/scale": w // scale}
    for spec in schema_file["members"]:
        data = members[spec["name"]]
        if spec["encoding"] == "png":
            arr = decode_png(data)
            # Independent check of the stored bit depth with Pillow.
            mode = Image.open(io.BytesIO(data)).mode
            assert mode == ("I;16" if spec["dtype"] == "uint16" else "RGB")
        elif spec["encoding"] == "npy":
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            meta = json.loads(data)
            assert all(k in meta for k in schema_file["required_json_keys"])
            continue
        assert arr.dtype == np.dtype(spec["dtype"]), spec["name"]
        assert arr.shape == tuple(sizes.get(d, d) for d in spec["shape"]), spec["name"]


def test_sample_kernel_is_a_deprecated_name_of_kernel_field(make_sample):
    sample = make_sample("sample-a-000")
    with pytest.warns(DeprecationWarning, match="use Sample.kernel_field"):
        assert sample.kernel is sample.kernel_field
