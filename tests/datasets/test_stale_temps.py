"""Issue 10, finding 10: temps of killed runs are removed by the next run (dead pid, this host).

The dead writers are real: a subprocess is SIGKILLed inside ``atomic_file``, or has simply
exited; the live writer is this test process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import degrade.cli as cli
from ssr_core.io import atomic_file, writer_tag
from ssr_datasets.storage import remove_stale_temps
from tests.faults import dead_pid, temp_of
from tests.helpers import write_folder

_KILLED_WRITER = """
import sys, time
from pathlib import Path
from ssr_core.io import atomic_file
with atomic_file(Path(sys.argv[1])) as f:
    f.write(b"half a shard")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def test_only_dead_writers_temps_are_removed(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path / "a.tar")],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert proc.stdout.readline() == "writing\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    [killed] = [p for p in tmp_path.iterdir() if p.name.startswith(".a.tar.")]
    assert killed.name.startswith(f".a.tar.{proc.pid}-")  # the temp name carries its writer
    gone = dead_pid()
    extract_dir = temp_of(tmp_path, "ds.zip", gone, ".extract")
    (extract_dir / "DS").mkdir(parents=True)
    (extract_dir / "DS" / "a.txt").write_text("half an archive")
    host = writer_tag().split("-")[1]
    other_host = tmp_path / f".c.tar.{gone}-{'0' if host != '0' * 8 else '1'}{'0' * 7}.x.tmp"
    keep = [other_host, tmp_path / ".d.tar.k3j2h1.tmp", tmp_path / "train-000000.tar"]
    for path in keep:
        path.write_bytes(b"x")
    with atomic_file(tmp_path / "b.tar") as f:  # a live writer: this process
        f.write(b"in progress")
        [live] = [p for p in tmp_path.iterdir() if p.name.startswith(".b.tar.")]
        removed = remove_stale_temps(tmp_path)
        assert live.exists()
    assert [(t.path, t.pid) for t in removed] == sorted([(killed, proc.pid),
                                                         (extract_dir, gone)])
    assert str(removed[0]).startswith(f"removed {removed[0].path}: left by process ")
    assert sorted(tmp_path.iterdir()) == sorted([*keep, tmp_path / "b.tar"])
    assert (tmp_path / "b.tar").read_bytes() == b"in progress"


def test_download_command_says_what_it_removed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "DS").mkdir(parents=True)  # already extracted: nothing to download
    manifest = tmp_path / "tiny.yaml"
    manifest.write_text("name: tiny\ndescription: t\nhomepage: http://x\nlicense: t\n"
                        "citation: t\nsplits: [train]\nfiles:\n  - name: ds.zip\n"
                        "    urls: [http://127.0.0.1:9/ds.zip]\n    extract: true\n"
                        "    provides: DS/\n")
    stale = temp_of(root, "ds.zip", dead_pid(), ".extract")
    (stale / "DS").mkdir(parents=True)
    live = temp_of(root, "ds.zip", os.getpid(), ".extract")
    live.mkdir()
    res = CliRunner().invoke(cli.main, ["datasets", "download", str(manifest), "--root",
                                        str(root)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"removed {stale}: left by process ")
    assert not stale.exists() and live.is_dir()


def test_build_command_says_what_it_removed(tmp_path: Path) -> None:
    write_folder(tmp_path / "images", names=("a",))
    out = tmp_path / "out"
    args = ["build", "--source", "folder", "--root", str(tmp_path / "images"), "--no-preview",
            "--out", str(out)]
    assert CliRunner().invoke(cli.main, args).exit_code == 0
    stale = temp_of(out, "train-000000.tar", dead_pid())  # a killed rerun's shard
    live = temp_of(out, "manifest.json", os.getpid())  # someone's write in progress
    stale.write_bytes(b"half a shard")
    live.write_bytes(b"{")
    res = CliRunner().invoke(cli.main, args)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"removed {stale}: left by process ")
    assert "(1 shard(s) reused)" in res.stdout
    assert not stale.exists() and live.exists()
