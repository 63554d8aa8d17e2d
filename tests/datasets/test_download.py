"""Downloads, safe extraction, checksum lock and dataset manifests, against a loopback server.

Nothing here reaches the network: a ThreadingHTTPServer on 127.0.0.1 (ephemeral port) serves
archives the tests build, with modes that drop the connection part-way or ignore Range.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import ssr_datasets.sources as sources
from ssr_core.errors import ConfigError, DownloadError, InputError, MissingAssetError
from ssr_datasets.archive import extract, marker_path
from ssr_datasets.catalog import (
    DATASET_NAMES,
    DatasetSpec,
    dataset_from_dict,
    load_dataset,
    lock_path,
    read_lock,
)
from ssr_datasets.dataset_verify import verify_dataset
from ssr_datasets.download import download_dataset, fetch
from ssr_datasets.imageio import pixel_sha256, read_image
from ssr_datasets.sources import SourceItem
from ssr_manifests import ROOT as MANIFESTS_ROOT
from tests.datafiles import DATA, REAL_IMAGES
from tests.datasets.loopback import TIMEOUT, Loopback


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def payload_zip() -> bytes:
    """A zip of ``DS/a.txt`` and 20 kB of random bytes in ``DS/b.bin``."""
    rng = np.random.default_rng(0)
    return make_zip({"DS/a.txt": b"hello\n", "DS/b.bin": rng.bytes(20_000)})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec_for(server: Loopback, name: str, data: bytes | None, *, sha256: str | None = "auto",
             urls: list[str] | None = None, **file_kw: object) -> DatasetSpec:
    """A one-archive dataset served by the loopback server."""
    f = {"name": name, "urls": urls if urls is not None else [server.url(name)],
         "bytes": None if data is None else len(data),
         "sha256": sha(data) if sha256 == "auto" and data is not None else
         (None if sha256 == "auto" else sha256),
         "extract": True, "provides": "DS/", **file_kw}
    return dataset_from_dict({"name": "tiny", "description": "test", "homepage": "http://x",
                              "license": "test", "citation": "test", "splits": ["train"],
                              "files": [f]})


# ------------------------------------------------------------------------ fetch
def test_interrupted_download_resumes_with_range(server: Loopback, tmp_path: Path) -> None:
    data = payload_zip()
    server.files["a.zip"] = data
    server.drop_after = 7000
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match="7000 of"):
        fetch([server.url("a.zip")], dest, len(data), sha(data), timeout=TIMEOUT, retries=0)
    assert not dest.exists()
    assert (tmp_path / "a.zip.part").stat().st_size == 7000
    res = fetch([server.url("a.zip")], dest, len(data), sha(data), timeout=TIMEOUT)
    assert dest.read_bytes() == data and res.resumed_from == 7000 and res.verified
    assert server.requests == [("a.zip", None), ("a.zip", "bytes=7000-")]
    assert not (tmp_path / "a.zip.part").exists()


def test_interruption_is_resumed_within_one_call(server: Loopback, tmp_path: Path) -> None:
    data = payload_zip()
    server.files["a.zip"], server.drop_after = data, 100
    seen: list[int] = []
    fetch([server.url("a.zip")], tmp_path / "a.zip", None, sha(data),
          progress=lambda name, done, total: seen.append(done), timeout=TIMEOUT)
    assert (tmp_path / "a.zip").read_bytes() == data
    assert server.requests[-1] == ("a.zip", "bytes=100-") and seen[-1] == len(data)


def test_server_ignoring_range_restarts_cleanly(server: Loopback, tmp_path: Path) -> None:
    data = payload_zip()
    server.files["a.zip"], server.ignore_range = data, True
    (tmp_path / "a.zip.part").write_bytes(b"stale bytes from another file")
    res = fetch([server.url("a.zip")], tmp_path / "a.zip", len(data), sha(data), timeout=TIMEOUT)
    assert (tmp_path / "a.zip").read_bytes() == data and res.resumed_from == 0
    assert server.requests[0][1] is not None  # a resume was asked for and refused


@pytest.mark.parametrize("wrong", ["sha256", "bytes"])
def test_wrong_checksum_or_size_leaves_nothing(server: Loopback, tmp_path: Path,
                                               wrong: str) -> None:
    data = payload_zip()
    server.files["a.zip"] = data
    size, digest = len(data), sha(data)
    if wrong == "sha256":
        digest = "0" * 64
    else:
        size += 1
    with pytest.raises(DownloadError, match=f"a.zip: {'sha256' if wrong == 'sha256' else 'size'} "
                                            "mismatch: expected"):
        fetch([server.url("a.zip")], tmp_path / "a.zip", size, digest, timeout=TIMEOUT)
    assert sorted(os.listdir(tmp_path)) == []


def test_mirror_fallback_after_404(server: Loopback, tmp_path: Path) -> None:
    data = payload_zip()
    server.files["good/a.zip"] = data
    res = fetch([server.url("gone/a.zip"), server.url("good/a.zip")], tmp_path / "a.zip",
                len(data), sha(data), timeout=TIMEOUT)
    assert res.url.endswith("good/a.zip") and (tmp_path / "a.zip").read_bytes() == data
    assert [r[0] for r in server.requests] == ["gone/a.zip", "good/a.zip"]


def test_every_url_failing_lists_each(server: Loopback, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"(?s)HTTP 404.*HTTP 404"):
        fetch([server.url("x.zip"), server.url("y.zip")], tmp_path / "x.zip", None, None,
              timeout=TIMEOUT)
    assert not (tmp_path / "x.zip").exists()


# ------------------------------------------------------------------------ extract
def _zip_with(name: str, data: bytes = b"evil", symlink_to: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("good/ok.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if symlink_to is not None:
            info.external_attr = (0o120777 << 16)
            data = symlink_to.encode()
        zf.writestr(info, data)
    return buf.getvalue()


def _tar_with(member: tarfile.TarInfo, gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        ok = tarfile.TarInfo("good/ok.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        tf.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)
    return buf.getvalue()


def _tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, link
    m.size = 4 if kind == tarfile.REGTYPE else 0
    return m


def _zip_chain() -> bytes:
    """The escape of issue 10: ``p -> .``, ``p/p/p/q -> ../../..``, then the file ``q/x``.

    Checked as text, ``p/p/p/../../..`` is ``.``; on disk ``p/p/p`` is the folder itself, so
    ``q`` points three levels up and ``q/x`` lands outside the destination.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, target in (("p", "."), ("p/p/p/q", "../../..")):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # S_IFLNK: how Info-ZIP stores a symlink
            zf.writestr(info, target)
        zf.writestr("q/x", b"escaped")
    return buf.getvalue()


def _tar_chain() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(_tar_member("p", tarfile.SYMTYPE, "."))
        tf.addfile(_tar_member("p/p/p/q", tarfile.SYMTYPE, "../../.."))
        tf.addfile(_tar_member("q/x"), io.BytesIO(b"evil"))
    return buf.getvalue()


UNSAFE = {
    "zip-dotdot": ("evil.zip", lambda: _zip_with("../evil"), "'..'"),
    "zip-absolute": ("evil.zip", lambda: _zip_with("/tmp/evil"), "absolute"),
    "zip-symlink-out": ("evil.zip", lambda: _zip_with("good/link", symlink_to="../../outside"),
                        "'good/link': symbolic link; links in archives are refused"),
    "zip-symlink-inside": ("evil.zip", lambda: _zip_with("good/link", symlink_to="ok.txt"),
                           "'good/link': symbolic link"),
    "zip-symlink-chain": ("evil.zip", _zip_chain, "'p': symbolic link"),
    "tar-dotdot": ("evil.tar", lambda: _tar_with(_tar_member("a/../../evil")), "'..'"),
    "tar-absolute": ("evil.tar.gz", lambda: _tar_with(_tar_member("/etc/evil"), gz=True),
                     "absolute"),
    "tar-symlink-out": ("evil.tar", lambda: _tar_with(_tar_member("good/l", tarfile.SYMTYPE,
                                                                  "../../x")), "symbolic link"),
    "tar-symlink-abs": ("evil.tar", lambda: _tar_with(_tar_member("good/l", tarfile.SYMTYPE,
                                                                  "/etc/passwd")), "symbolic link"),
    "tar-symlink-inside": ("evil.tar", lambda: _tar_with(_tar_member("good/l", tarfile.SYMTYPE,
                                                                     "ok.txt")), "symbolic link"),
    "tar-symlink-chain": ("evil.tar", _tar_chain, "'p': symbolic link"),
    "tar-hardlink-out": ("evil.tar", lambda: _tar_with(_tar_member("good/h", tarfile.LNKTYPE,
                                                                   "../x")), "hard link"),
    "tar-hardlink-inside": ("evil.tar", lambda: _tar_with(_tar_member("good/h", tarfile.LNKTYPE,
                                                                      "good/ok.txt")), "hard link"),
    "tar-device": ("evil.tar", lambda: _tar_with(_tar_member("good/dev", tarfile.CHRTYPE)),
                   "device"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_rejected_without_output(tmp_path: Path, case: str) -> None:
    name, build, why = UNSAFE[case]
    archive = tmp_path / "in" / name
    archive.parent.mkdir()
    archive.write_bytes(build())
    dest = tmp_path / "a" / "b" / "dest"  # the chain's q/x would land in tmp_path/a
    with pytest.raises(InputError, match=why) as info:
        extract(archive, dest)
    assert str(archive) in str(info.value)  # the message names the archive and the member
    assert list(dest.iterdir()) == []  # not even good/ok.txt, no temp folder
    # Nothing anywhere outside the destination: only the archive and the folders above dest.
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "a", "a/b", "a/b/dest", "in", f"in/{name}"]


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_safe_archive_extracts_whole_with_marker(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / f"ok.{kind}"
    if kind == "zip":
        archive.write_bytes(payload_zip())
    else:
        archive.write_bytes(_tar_with(_tar_member("good/inner"), gz=kind == "tar.gz"))
    dest = tmp_path / "dest"
    res = extract(archive, dest)
    top = "DS" if kind == "zip" else "good"
    assert res.entries == (top,) and (dest / top).is_dir()
    assert marker_path(dest, archive.name).is_file()
    if kind != "zip":
        assert (dest / "good" / "inner").read_bytes() == b"evil"
    assert sorted(p.name for p in dest.iterdir()) == [".ssr-bench", top]


# ------------------------------------------------------------------------ dataset level
def test_download_dataset_then_rerun_skips(server: Loopback, tmp_path: Path) -> None:
    data = payload_zip()
    server.files["ds.zip"] = data
    spec = spec_for(server, "ds.zip", data)
    first = download_dataset(spec, tmp_path, timeout=TIMEOUT)
    assert [(o.action, o.checksum, o.extracted) for o in first] == [("downloaded", "verified", True)]
    assert (tmp_path / "DS" / "a.txt").read_bytes() == b"hello\n"
    again = download_dataset(spec, tmp_path, timeout=TIMEOUT)
    assert again[0].action == "already-extracted" and "DS/ exists" in again[0].detail
    assert len(server.requests) == 1


def test_extracted_folder_is_recognised_without_download(server: Loopback, tmp_path: Path) -> None:
    (tmp_path / "DS").mkdir()
    out = download_dataset(spec_for(server, "ds.zip", payload_zip()), tmp_path, timeout=TIMEOUT)
    assert out[0].action == "already-extracted" and server.requests == []


def test_present_archive_with_matching_checksum_is_not_refetched(server: Loopback,
                                                                tmp_path: Path) -> None:
    data = payload_zip()
    (tmp_path / "ds.zip").write_bytes(data)
    out = download_dataset(spec_for(server, "ds.zip", data), tmp_path, timeout=TIMEOUT)
    assert (out[0].action, out[0].checksum, out[0].extracted) == ("archive-present", "verified", True)
    assert server.requests == []


def test_mirror_option_is_tried_first(server: Loopback, tmp_path: Path) -> None:
    data = payload_zip()
    server.files["m/ds.zip"] = data
    spec = spec_for(server, "ds.zip", data)  # the manifest's own URL would 404
    download_dataset(spec, tmp_path, mirror=server.url("m"), timeout=TIMEOUT)
    assert server.requests == [("m/ds.zip", None)]


def test_null_sha256_is_recorded_and_then_enforced(server: Loopback, tmp_path: Path) -> None:
    data = payload_zip()
    server.files["ds.zip"] = data
    spec = spec_for(server, "ds.zip", None, sha256=None)
    out = download_dataset(spec, tmp_path, timeout=TIMEOUT)
    assert out[0].checksum == "recorded" and "recorded in" in out[0].detail
    assert read_lock(tmp_path)["ds.zip"]["sha256"] == sha(data)
    assert lock_path(tmp_path) == tmp_path / ".ssr-bench" / "checksums.json"
    assert verify_dataset(spec, tmp_path).files == [("ds.zip", "sha256 verified")]
    # A tampered copy on disk is caught by verify and by download.
    (tmp_path / "ds.zip").write_bytes(make_zip({"DS/a.txt": b"tampered"}))
    report = verify_dataset(spec, tmp_path)
    assert not report.ok and "sha256 mismatch" in report.problems[0]
    assert "recorded" in report.problems[0]
    import shutil

    shutil.rmtree(tmp_path / "DS")
    with pytest.raises(InputError, match="sha256 mismatch"):
        download_dataset(spec, tmp_path, timeout=TIMEOUT)
    # A changed upstream file is refused too, and nothing is left under the final name.
    (tmp_path / "ds.zip").unlink()
    server.files["ds.zip"] = make_zip({"DS/a.txt": b"upstream changed"})
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_dataset(spec, tmp_path, timeout=TIMEOUT)
    assert not (tmp_path / "ds.zip").exists() and not (tmp_path / "DS").exists()


def test_manual_dataset_names_files_folder_and_instructions(tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError) as info:
        download_dataset("cityscapes", tmp_path)
    msg = str(info.value)
    for part in ("leftImg8bit_trainvaltest.zip", "disparity_trainvaltest.zip",
                 "camera_trainvaltest.zip", str(tmp_path), "https://www.cityscapes-dataset.com/"):
        assert part in msg


def test_unknown_split_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="choose one of: train, valid"):
        download_dataset("div2k", tmp_path, split="test")


# ------------------------------------------------------------------------ verify
def test_verify_reports_pixel_matches_differences_and_missing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(4)]
    import cv2

    entries = []
    for i, rgb in enumerate(imgs):
        entries.append({"path": f"Set/img_{i}.png", "shape": list(rgb.shape),
                        "pixel_sha256": pixel_sha256(rgb)})
    (tmp_path / "Set").mkdir()
    (tmp_path / "renamed").mkdir()
    cv2.imwrite(str(tmp_path / "Set/img_0.png"), imgs[0][..., ::-1])            # match
    changed = imgs[1].copy()
    changed[0, 0, 0] ^= 1
    cv2.imwrite(str(tmp_path / "Set/img_1.png"), changed[..., ::-1])            # differs
    cv2.imwrite(str(tmp_path / "renamed/baby.png"), imgs[2][..., ::-1])         # other name
    assert pixel_sha256(read_image(tmp_path / "renamed/baby.png").rgb) == entries[2]["pixel_sha256"]
    spec = dataset_from_dict({"name": "tinyset", "description": "t", "homepage": "h",
                              "license": "l", "citation": "c", "splits": ["test"], "files": [],
                              "manual": "by hand", "pixel_sha256_source": "the test's arrays",
                              "images": entries})
    report = verify_dataset(spec, tmp_path)
    assert [(c.status, c.found) for c in report.images] == [
        ("match", "Set/img_0.png"), ("differs", "Set/img_1.png"),
        ("match", "renamed/baby.png"), ("missing", None)]
    assert report.ok and len(report.warnings) == 2
    assert not verify_dataset(spec, tmp_path, strict=True).ok


def test_verify_layout_calls_the_source_per_split(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "DIV2K_valid_HR").mkdir()
    calls = []

    def fake_list_items(name: str, root: Path, split: str | None = None) -> list[SourceItem]:
        calls.append((name, split))
        if split == "train":
            raise MissingAssetError("DIV2K HR images 0001..0800", root)
        path = root / "DIV2K_valid_HR" / "0801.png"
        return [SourceItem("div2k", "0801", str(path), None, "DIV2K_valid_HR/0801.png")]

    monkeypatch.setattr(sources, "list_items", fake_list_items)
    monkeypatch.setattr(sources, "splits_of", lambda name: ("train", "valid"), raising=False)
    monkeypatch.setattr(sources, "SOURCE_NAMES", ("div2k",))
    report = verify_dataset("div2k", tmp_path)
    assert calls == [("div2k", "train"), ("div2k", "valid")]
    assert report.splits == [("train", "layout error"), ("valid", "1 item(s)")]
    assert report.files == [("DIV2K_train_HR.zip", "absent"),
                            ("DIV2K_valid_HR.zip", "archive not kept; DIV2K_valid_HR/ present")]
    assert not report.ok and any("DIV2K_train_HR.zip" in p for p in report.problems)


# ------------------------------------------------------------------------ manifests
def _minimal() -> dict:
    return {"name": "x", "description": "d", "homepage": "h", "license": "l", "citation": "c",
            "splits": ["train"], "files": [{"name": "a.zip", "urls": ["https://e/a.zip"],
                                            "bytes": 1, "sha256": None}]}


@pytest.mark.parametrize("where, key, hint", [
    ("top", "licence", "license"),
    ("file", "sha265", "sha256"),
])
def test_unknown_keys_are_rejected_with_a_suggestion(where: str, key: str, hint: str) -> None:
    data = _minimal()
    (data if where == "top" else data["files"][0])[key] = "x"
    with pytest.raises(ConfigError, match=f"unknown key '{key}' \\(did you mean '{hint}'\\?\\)"):
        dataset_from_dict(data)


@pytest.mark.parametrize("field_, value, msg", [
    ("sha256", "ABC", "64 lower-case hex"),
    ("bytes", "12", "expected int or null"),
    ("name", "sub/a.zip", "plain file name"),
    ("urls", ["ftp://e/a.zip"], "http\\(s\\) URLs"),
    ("splits", ["test"], "not among the dataset's splits"),
])
def test_bad_file_fields_are_rejected(field_: str, value: object, msg: str) -> None:
    data = _minimal()
    data["files"][0][field_] = value
    with pytest.raises(ConfigError, match=msg):
        dataset_from_dict(data)


def test_every_manifest_loads_and_every_name_has_a_file() -> None:
    stems = sorted(p.stem for p in (MANIFESTS_ROOT / "datasets").glob("*.yaml"))
    assert stems == sorted(DATASET_NAMES)
    for name in DATASET_NAMES:
        spec = load_dataset(name)
        assert spec.name == name
        # Every manifest yaml is a plain mapping that round-trips through the validator.
        assert isinstance(yaml.safe_load((MANIFESTS_ROOT / "datasets" / f"{name}.yaml")
                                         .read_text()), dict)
        assert spec.availability == "manual" or all(f.urls for f in spec.files)
        assert spec.manual or spec.availability == "download"


def test_unknown_dataset_suggests_a_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'div2k'"):
        load_dataset("div2")


def test_div2k_manifest_carries_the_published_checksums() -> None:
    # Independent source: TensorFlow Datasets' url_checksums/div2k.txt.
    files = {f.name: f for f in load_dataset("div2k").files}
    assert files["DIV2K_valid_HR.zip"].bytes == 448993893
    assert files["DIV2K_valid_HR.zip"].sha256 == (
        "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc")
    assert files["DIV2K_train_HR.zip"].bytes == 3530603713
    assert files["DIV2K_train_HR.zip"].sha256 == (
        "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335")


def test_benchmark_manifests_match_the_test_copies_regression() -> None:
    # Regression, not a golden value: the hashes were recorded from the bench-data copy that
    # tests/data's images come from (byte for byte; see tests/data/README.md).
    for set_name, dataset in (("set5", "set5"), ("set14", "set14"), ("bsd100", "bsds100")):
        recorded = {Path(img.path).name: img for img in load_dataset(dataset).images}
        for i in REAL_IMAGES[set_name]:
            name = f"img_{i:03d}.png"
            rgb = read_image(DATA / set_name / name).rgb
            img = recorded[name]
            assert pixel_sha256(rgb) == img.pixel_sha256 and list(rgb.shape) == list(img.shape)
