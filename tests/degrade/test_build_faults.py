"""`degrade build` under faults (issue 10 findings 3, 4, 6, 12): killed parents, two builds
into one folder, a recipe that would break the manifest, nothing usable, non-UTF-8 names.

Each test reproduces the fault with real processes or real files and fails without the fix.
The process tests read /proc (Linux, where CI runs) to find every process a build started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import degrade.cli as cli
from degrade.build import PARTIAL_NAME, build
from ssr_core.errors import ConfigError
from ssr_datasets.folder_lock import LOCK_NAME
from ssr_datasets.manifest import MANIFEST_NAME, verify_shard_set
from ssr_datasets.shards import iter_shard
from ssr_datasets.sources.base import name_bytes
from tests.helpers import make_config, write_folder

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args))


def build_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["build", "--source", "folder", "--root", str(root), "--no-preview", "--out", str(out),
            *extra]


# ---------------------------------------------------------------- 3: no orphaned workers


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of all its threads, recursively), from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan's zombie waits for init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _pool(pids: list[int]) -> list[int]:
    """The forkserver and the workers forked from it (they share its command line)."""
    return [p for p in pids if "multiprocessing.forkserver" in _cmdline(p)]


def _recorded_shards(out: Path) -> list[dict]:
    try:  # written temp-then-rename: never half a file
        return json.loads((out / PARTIAL_NAME).read_text())["shards"]
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_build_leaves_no_process_and_resumes(tmp_path: Path, sig: signal.Signals) -> None:
    # Before the fix both workers, the Manager and the resource tracker lived on for 90 s+,
    # still writing shards, and SIGTERM skipped the clean stop that Ctrl-C makes.
    root, out = tmp_path / "in", tmp_path / "out"
    write_folder(root, [f"im{i}" for i in range(5)], h=96, w=96)
    # Sorted first, two larger images go to the two workers (about 0.4 s of CPU each) while
    # the build process runs small ones itself until the workers have started, so the kill
    # lands mid-build, with both workers busy, however fast the machine.
    write_folder(root, ["a_big0", "a_big1"], seed=1, h=1024, w=1024)
    args = build_args(root, out, "--shard-size", "1")
    proc = subprocess.Popen([sys.executable, "-m", "degrade.cli", *args, "--workers", "2"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        # mid-build: one shard done, the workers (forked from the forkserver) on others
        while not _recorded_shards(out) or len(_pool(_descendants(proc.pid))) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no shard and no workers within 120 s"
            time.sleep(0.02)
        started = _descendants(proc.pid)
        assert proc.poll() is None, "the build ended before it could be killed"
    except BaseException:
        proc.kill()
        raise
    assert len(_pool(started)) == 3, [_cmdline(p) for p in started]  # server + 2 workers
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    gone_by = time.monotonic() + 5
    while any(_running(p) for p in started) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert [(p, _cmdline(p)) for p in started if _running(p)] == []
    if sig == signal.SIGTERM:  # like Ctrl-C: a clean stop that says how to resume
        assert proc.returncode == 1
        assert "interrupted by signal SIGTERM" in stderr.decode()
        assert "rerun the same command to resume" in stderr.decode()
        assert not (out / LOCK_NAME).exists()  # released on the way out
    else:
        assert proc.returncode == -signal.SIGKILL
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == proc.pid

    rerun = invoke(*args)  # one worker: the config (and so the bytes) do not depend on it
    assert rerun.exit_code == 0, rerun.output
    assert "0 shard(s) reused" not in rerun.output
    assert ("took over the lock" in rerun.stderr) == (sig == signal.SIGKILL)
    report = verify_shard_set(out)
    assert report.ok and report.samples == 7, report.problems
    assert not (out / LOCK_NAME).exists()


# ---------------------------------------------------------------- 4: one build per folder


def test_second_build_into_a_busy_folder_is_refused(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    write_folder(root, ["a", "b"])
    out.mkdir()
    # Another process holds the lock as a build does: flock on the file, its record inside.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, json, os, socket, sys, time\n"
         f"fd = os.open({str(out / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), "
         "'started': time.time()}).encode())\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = invoke(*build_args(root, out))
        assert res.exit_code == 1
        message = res.stderr.strip()
        assert "\n" not in message
        assert f"{out} is in use by another build (pid {holder.pid} on " in message
        assert f"{socket.gethostname()} since " in message
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing else touched
    finally:
        holder.communicate("", timeout=30)
    assert invoke(*build_args(root, out)).exit_code == 0  # free again once the holder is gone


def test_lock_of_a_dead_build_is_taken_over_with_a_message(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    write_folder(root, ["a", "b"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                             "started": time.time() - 60}))
    res = invoke(*build_args(root, out))
    assert res.exit_code == 0, res.output
    assert f"warning: took over the lock of a build that is gone (pid {dead.pid} on " \
        in res.stderr
    assert verify_shard_set(out).ok and not (out / LOCK_NAME).exists()


def test_live_holder_recorded_in_an_unlocked_file_is_still_refused(tmp_path: Path) -> None:
    # A filesystem whose flock does nothing: the record of a live process of this host counts.
    root, out = tmp_path / "in", tmp_path / "out"
    write_folder(root, ["a"])
    out.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                          stdin=subprocess.PIPE) as alive:
        (out / LOCK_NAME).write_text(json.dumps({"pid": alive.pid,
                                                 "host": socket.gethostname()}))
        with pytest.raises(ConfigError, match=f"in use by another build \\(pid {alive.pid} "):
            build(make_config(root), out, command="t", preview=False)
        alive.communicate("")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


# ---------------------------------------------------------------- 6: nothing written on a bad recipe


def test_inf_recipe_fails_before_anything_is_written(tmp_path: Path) -> None:
    # Before the fix: one shard written, then a crash on the manifest's JSON, and the folder
    # was refused as "a different build" without --overwrite.
    root, out = tmp_path / "in", tmp_path / "out"
    write_folder(root, ["a", "b"])
    text = (REPO / "manifests" / "recipes" / "ssr.yaml").read_text()
    recipe = tmp_path / "inf.yaml"
    recipe.write_text(text.replace("sigma_range_px: [0.6, 3.5]", "sigma_range_px: [0.6, .inf]"))
    res = invoke(*build_args(root, out, "--recipe", str(recipe)))
    assert res.exit_code == 1
    assert "blur.sigma_range_px must satisfy 0.05 <= low <= high <= 50 (finite numbers), " \
           "got [0.6, inf]" in res.stderr
    assert not out.exists()


def test_unwritable_manifest_fails_before_the_first_shard(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Any value the manifest cannot hold (here NaN in the recorded versions) fails the build
    # before a shard exists, so the folder never looks like another build.
    import degrade.build.state as state

    root, out = tmp_path / "in", tmp_path / "out"
    write_folder(root, ["a", "b"])
    real = state.versions
    monkeypatch.setattr(state, "versions", lambda *a, **kw: {**real(*a, **kw), "bad": float("nan")})
    with pytest.raises(ValueError, match="not JSON compliant"):
        build(make_config(root), out, command="t", preview=False)
    assert list(out.glob("*.tar")) == []
    monkeypatch.undo()
    assert build(make_config(root), out, command="t", preview=False).built_shards == 1


# ---------------------------------------------------------------- 12: nothing usable; odd names


def test_build_with_every_input_skipped_fails_listing_each_reason(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    (root / "empty.png").write_bytes(b"")
    (root / "text.jpg").write_text("not an image")
    for _attempt in range(2):  # the rerun resumes the recorded skips and fails the same way
        res = invoke(*build_args(root, out))
        assert res.exit_code == 1, res.output
        err = res.stderr[res.stderr.index("Error: "):]  # after the progress bar
        lines = err.strip().splitlines()
        assert lines[0].startswith("Error: no sample was built: all 2 input(s) were skipped")
        assert lines[1:] == ["  empty.png: empty file (0 bytes)",
                             "  text.jpg: not a recognised image (expected png, jpeg, bmp, "
                             "tiff or webp data)"]
        assert not (out / MANIFEST_NAME).exists()
        partial = json.loads((out / PARTIAL_NAME).read_text())
        assert [s["path"] for s in partial["skipped"]] == ["empty.png", "text.jpg"]


def test_non_utf8_file_name_is_recorded_escaped_and_recoverable(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    write_folder(root, ["a"])
    odd = os.fsencode(root) + b"/b\xff 5%.png"  # byte 0xff is not UTF-8 on its own
    os.rename(root / "a.png", os.fsdecode(odd))
    # a second one, unreadable: recorded as a skip
    Path(os.fsdecode(os.fsencode(root) + b"/c\xfe.png")).write_bytes(b"")
    res = invoke(*build_args(root, out))
    assert res.exit_code == 0, res.output
    raw = (out / MANIFEST_NAME).read_bytes()
    manifest = json.loads(raw.decode("utf-8"))
    assert b"\\udc" not in raw  # no lone-surrogate escapes anywhere
    assert [s["path"] for s in manifest["skipped"]] == ["c%FE.png"]
    assert name_bytes(manifest["skipped"][0]["path"]) == b"c\xfe.png"
    (sample,) = iter_shard(out / manifest["shards"][0]["name"])
    assert sample.key == "folder-b_5-000"
    recorded = sample.meta["input"]["path"]
    assert recorded == "b%FF 5%25.png"
    assert recorded.encode("utf-8")  # valid UTF-8 (a lone surrogate would raise here)
    assert os.fsencode(root) + b"/" + name_bytes(recorded) == odd
