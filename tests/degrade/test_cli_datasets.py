"""The `degrade datasets` commands: output text and exit codes (loopback server only)."""

from __future__ import annotations

import functools
import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from degrade.cli import main
from ssr_datasets.catalog import DATASET_NAMES

TIMEOUT = 5.0


class _Quiet(SimpleHTTPRequestHandler):
    timeout = TIMEOUT

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve a fresh folder on 127.0.0.1 (ephemeral port); yield (base URL, folder)."""
    folder = tmp_path / "www"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


def _manifest(tmp_path: Path, base: str, folder: Path, sha256: str | None = "auto") -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Tiny/0001.txt", b"pixels")
    data = buf.getvalue()
    (folder / "tiny.zip").write_bytes(data)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "description": "a test set", "homepage": base, "license": "test",
        "citation": "none", "splits": ["train"], "manual": None,
        "files": [{"name": "tiny.zip", "urls": [f"{base}/tiny.zip"], "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest() if sha256 == "auto" else sha256,
                   "checksum_source": "the test", "extract": True, "provides": "Tiny/"}]}))
    return path


def test_list_shows_every_dataset() -> None:
    res = CliRunner().invoke(main, ["datasets", "list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:4] == ["name", "splits", "size", "get"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == sorted(DATASET_NAMES)
    assert "train,valid" in rows["div2k"] and "4.0 GB" in rows["div2k"]
    assert "download" in rows["div2k"] and "manual" in rows["cityscapes"]


def test_group_is_registered_with_examples() -> None:
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "datasets" in res.output
    res = CliRunner().invoke(main, ["datasets", "download", "--help"])
    assert res.exit_code == 0 and "degrade datasets download div2k --root" in res.output


def test_download_then_verify_then_rerun(served: tuple[str, Path], tmp_path: Path) -> None:
    base, folder = served
    manifest = _manifest(tmp_path, base, folder)
    root = tmp_path / "data"
    runner = CliRunner()
    res = runner.invoke(main, ["datasets", "download", str(manifest), "--root", str(root),
                               "--timeout", "5"])
    assert res.exit_code == 0, res.output
    assert "tiny.zip: downloaded, sha256 verified, extracted" in res.output
    assert (root / "Tiny" / "0001.txt").read_bytes() == b"pixels"
    res = runner.invoke(main, ["datasets", "download", str(manifest), "--root", str(root)])
    assert res.exit_code == 0 and "skipped (already extracted)" in res.output
    res = runner.invoke(main, ["datasets", "verify", str(manifest), "--root", str(root)])
    assert res.exit_code == 0, res.output
    assert "file   tiny.zip: sha256 verified" in res.output and "OK: tiny" in res.output


def test_verify_fails_with_exit_1_on_a_bad_archive(served: tuple[str, Path], tmp_path: Path) -> None:
    base, folder = served
    manifest = _manifest(tmp_path, base, folder)
    root = tmp_path / "data"
    root.mkdir()
    (root / "tiny.zip").write_bytes(b"not the archive")
    res = CliRunner().invoke(main, ["datasets", "verify", str(manifest), "--root", str(root)])
    assert res.exit_code == 1
    assert "size mismatch" in res.output and "FAILED" in res.output


def test_download_checksum_error_is_a_clean_click_error(served: tuple[str, Path],
                                                       tmp_path: Path) -> None:
    base, folder = served
    manifest = _manifest(tmp_path, base, folder, sha256="1" * 64)
    res = CliRunner().invoke(main, ["datasets", "download", str(manifest), "--root",
                                    str(tmp_path / "data"), "--timeout", "5"])
    assert res.exit_code == 1 and "Error: tiny.zip: sha256 mismatch: expected 1111" in res.output
    assert not (tmp_path / "data" / "tiny.zip").exists()


@pytest.mark.parametrize("args, text", [
    (["download", "div2", "--root", "X"], "did you mean 'div2k'"),
    (["download", "cityscapes", "--root", "X"], "register at https://www.cityscapes-dataset.com/"),
    (["download", "div2k", "--root", "X", "--split", "test"], "choose one of: train, valid"),
    (["verify", "set5", "--root", "does-not-exist"], "not a folder"),
])
def test_errors_exit_1_with_a_message(tmp_path: Path, args: list[str], text: str) -> None:
    args = [str(tmp_path / a) if a in ("X", "does-not-exist") else a for a in args]
    res = CliRunner().invoke(main, ["datasets", *args])
    assert res.exit_code == 1 and text in res.output, res.output
