"""Issue 10, findings 1 and 9: hostile or corrupt archives served over loopback HTTP.

The archives are built here; the ``server`` fixture (tests/datasets/loopback.py) serves them on
127.0.0.1 with Range support, as a mirror would.
"""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import degrade.cli as cli
from ssr_core.errors import InputError
from ssr_datasets.catalog import read_lock
from ssr_datasets.download import download_dataset
from tests.datasets.loopback import TIMEOUT, Loopback
from tests.datasets.test_download import payload_zip, sha, spec_for


def chain_zip(top: str) -> bytes:
    """``p -> .``, ``p/p/p/q -> ../../..``, the file ``q/x``, and a harmless ``{top}/im0.png``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{top}/im0.png", b"not really a png")
        for name, target in (("p", "."), ("p/p/p/q", "../../..")):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # S_IFLNK, as Info-ZIP stores symlinks
            zf.writestr(info, target)
        zf.writestr("q/x", b"escaped")
    return buf.getvalue()


def test_zip_symlink_chain_through_download_command_is_refused(server: Loopback,
                                                               tmp_path: Path) -> None:
    # Middlebury's zips publish no sha256, so a first download trusts whatever the mirror sends.
    server.files["m/Adirondack-perfect.zip"] = chain_zip("Adirondack-perfect")
    root = tmp_path / "a" / "b" / "root"  # q/x would land in tmp_path/a
    res = CliRunner().invoke(cli.main, ["datasets", "download", "middlebury", "--root", str(root),
                                        "--split", "perfect", "--mirror", server.url("m"),
                                        "--timeout", str(TIMEOUT)])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert re.search(r"Adirondack-perfect\.zip: unsafe member 'p': symbolic link", res.output)
    assert server.requests == [("m/Adirondack-perfect.zip", None)]  # stopped at the first file
    assert not list(tmp_path.rglob("x")) and not list(tmp_path.rglob("q"))
    assert sorted(p.name for p in root.iterdir()) == ["Adirondack-perfect.zip"]  # nothing else
    assert read_lock(root) == {}  # the refused archive's hash is not trusted either


def payload_tar() -> bytes:
    """An uncompressed tar of ``DS/a.txt`` and 20 kB of random bytes in ``DS/b.bin``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("DS/a.txt", b"hello\n"),
                           ("DS/b.bin", np.random.default_rng(0).bytes(20_000))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("name", ["ds.zip", "ds.tar"])
def test_resumed_download_with_corrupt_tail_is_never_recorded(server: Loopback, tmp_path: Path,
                                                              name: str) -> None:
    good = payload_zip() if name.endswith(".zip") else payload_tar()
    cut = len(good) // 2
    # The first half came from an earlier, interrupted transfer; the server now sends garbage
    # after it (a changed or broken upstream file). No sha256 is published for it.
    (tmp_path / f"{name}.part").write_bytes(good[:cut])
    server.files[name] = good[:cut] + np.random.default_rng(1).bytes(len(good) - cut)
    spec = spec_for(server, name, None, sha256=None)
    path = tmp_path / name
    tell = rf"sha256 was not recorded: delete {re.escape(str(path))} and rerun"
    with pytest.raises(InputError, match=tell):
        download_dataset(spec, tmp_path, timeout=TIMEOUT)
    assert server.requests == [(name, f"bytes={cut}-")]  # it was a resumed transfer
    assert name not in read_lock(tmp_path)
    assert not (tmp_path / "DS").exists()
    # A rerun that finds the corrupt file in place does not trust it either.
    with pytest.raises(InputError, match=tell):
        download_dataset(spec, tmp_path, timeout=TIMEOUT)
    assert name not in read_lock(tmp_path)
    # Doing what the message says gets the good file, recorded.
    path.unlink()
    server.files[name] = good
    out = download_dataset(spec, tmp_path, timeout=TIMEOUT)
    assert (out[0].checksum, out[0].extracted) == ("recorded", True)
    assert read_lock(tmp_path)[name]["sha256"] == sha(good)
    assert (tmp_path / "DS" / "a.txt").read_bytes() == b"hello\n"
