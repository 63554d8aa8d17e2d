"""Builds on a Dask cluster (`build(cluster=...)`, `degrade build --cluster`).

One ``LocalCluster`` of two single-threaded worker processes serves the whole module (startup
takes a few seconds); it listens on 127.0.0.1 only and is closed at the end. The contract under
test is DESIGN.md section 5: the cluster path gives the same bytes as a local build, records
each shard as it arrives and stays resumable, also when a shard fails on a worker.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import degrade.cli as cli
from degrade.build import PARTIAL_NAME, ShardsFailedError, build
from degrade.build.executor import CLUSTER_REQUIREMENT, parse_cluster, single_threaded_call
from ssr_core.errors import ConfigError
from ssr_datasets.manifest import MANIFEST_NAME, verify_shard_set
from tests.helpers import make_config, shard_bytes, tmp_files, write_folder

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    # Loopback only; the HTTP server on a free port (None would try 8787, often taken).
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address="127.0.0.1:0", host="127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Six images, three shards, built locally: (input folder, BuildResult)."""
    base = tmp_path_factory.mktemp("cluster-ref")
    write_folder(base / "in")
    return base / "in", build(make_config(base / "in"), base / "local", command="t")


def test_cluster_build_is_byte_identical_to_the_local_build(cluster: Any, reference: Any,
                                                            tmp_path: Path) -> None:
    root, local = reference
    res = build(make_config(root), tmp_path / "c", cluster=cluster.scheduler_address, command="t")
    assert res.built_shards == 3 and res.reused_shards == 0
    assert shard_bytes(res.out_dir) == shard_bytes(local.out_dir)
    assert res.manifest["shards"] == local.manifest["shards"]
    assert res.manifest["config_hash"] == local.manifest["config_hash"]
    assert (res.out_dir / "preview.png").read_bytes() == (local.out_dir / "preview.png").read_bytes()
    assert not (res.out_dir / PARTIAL_NAME).exists() and tmp_files(res.out_dir) == []
    assert verify_shard_set(res.out_dir).ok


def test_cluster_resumes_a_local_build_and_reports_progress(cluster: Any, reference: Any,
                                                            tmp_path: Path) -> None:
    root, local = reference
    out = tmp_path / "o"
    build(make_config(root), out, command="t", preview=False)
    (out / "train-000001.tar").unlink()
    kept = (out / "train-000000.tar").stat().st_mtime_ns
    seen: list[tuple[int, int]] = []
    res = build(make_config(root), out, cluster=cluster.scheduler_address, command="t",
                preview=False, on_progress=lambda done, total: seen.append((done, total)))
    assert (res.reused_shards, res.built_shards) == (2, 1)
    assert seen == [(4, 6), (6, 6)]  # per finished shard on the cluster path
    assert (out / "train-000000.tar").stat().st_mtime_ns == kept
    assert shard_bytes(out) == shard_bytes(local.out_dir)
    assert res.manifest["shards"] == local.manifest["shards"]


def test_a_failing_shard_is_reported_and_the_build_stays_resumable(cluster: Any, reference: Any,
                                                                   tmp_path: Path) -> None:
    root, local = reference
    attempts = tmp_path / "attempts.txt"

    def break_shard(name: str, log: str) -> None:  # runs inside each worker process
        import degrade.build.shard as p

        real = p.ShardWriter

        class Broken(real):  # type: ignore[valid-type, misc]
            def __init__(self, path: Any) -> None:
                if str(path).endswith(name):
                    with open(log, "a") as f:
                        f.write("x\n")
                    raise OSError(f"disk full while writing {name}")
                super().__init__(path)

        Broken.real = real  # type: ignore[attr-defined]
        p.ShardWriter = Broken

    def repair() -> None:
        import degrade.build.shard as p

        p.ShardWriter = getattr(p.ShardWriter, "real", p.ShardWriter)

    out = tmp_path / "o"
    with distributed.Client(cluster) as client:
        client.run(break_shard, "train-000001.tar", str(attempts))
        try:
            with pytest.raises(ShardsFailedError, match="1 shard") as err:
                build(make_config(root), out, cluster=cluster.scheduler_address, command="t",
                      preview=False)
        finally:
            client.run(repair)
    assert list(err.value.failures) == ["train-000001.tar"]
    assert "OSError: disk full while writing train-000001.tar" in str(err.value)
    assert "rerun the same command" in str(err.value)
    assert len(attempts.read_text().split()) == 2  # the first try and one retry
    partial = json.loads((out / PARTIAL_NAME).read_text())
    assert [s["name"] for s in partial["shards"]] == ["train-000000.tar", "train-000002.tar"]
    assert not (out / MANIFEST_NAME).exists() and tmp_files(out) == []

    resumed = build(make_config(root), out, cluster=cluster.scheduler_address, command="t",
                    preview=False)
    assert (resumed.reused_shards, resumed.built_shards) == (2, 1)
    assert shard_bytes(out) == shard_bytes(local.out_dir)
    assert resumed.manifest["shards"] == local.manifest["shards"]


def test_workers_run_one_thread(cluster: Any) -> None:
    def threads() -> tuple[int, int]:
        import cv2
        import torch

        return torch.get_num_threads(), cv2.getNumThreads()

    with distributed.Client(cluster) as client:
        assert client.submit(single_threaded_call, threads, pure=False).result() == (1, 1)


def test_cli_cluster_address_end_to_end(cluster: Any, reference: Any, tmp_path: Path) -> None:
    root, local = reference
    out = tmp_path / "o"
    args = ["build", "--source", "folder", "--root", str(root), "--shard-size", "2",
            "--no-preview", "--out", str(out), "--cluster", cluster.scheduler_address]
    res = CliRunner().invoke(cli.main, args)
    assert res.exit_code == 0, res.output
    assert "6 samples from 6 images in 3 shard(s)" in res.output
    assert shard_bytes(out) == shard_bytes(local.out_dir)
    ok = CliRunner().invoke(cli.main, ["verify", str(out)])
    assert ok.exit_code == 0 and ok.output.startswith("OK: 3 shard(s), 6 sample(s)")


def test_cli_cluster_local_starts_and_stops_its_own_cluster(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_folder(root, ["alpha", "bravo"])
    fresh = build(make_config(root, shard_size=1), tmp_path / "local", command="t",
                  preview=False)
    out = tmp_path / "o"
    res = CliRunner().invoke(cli.main, ["build", "--source", "folder", "--root", str(root),
                                        "--shard-size", "1", "--no-preview", "--out", str(out),
                                        "--cluster", "local:1"])
    assert res.exit_code == 0, res.output
    assert shard_bytes(out) == shard_bytes(fresh.out_dir)


# ---------------------------------------------------------------- option errors (no cluster)


def test_parse_cluster() -> None:
    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster(" tcp://10.0.0.5:8786 ") == ("address", None)
    for bad in ("local:0", "local", "local:x", ""):
        with pytest.raises(ConfigError, match="--cluster"):
            parse_cluster(bad)


def test_cluster_errors_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    write_folder(root, ["alpha"])

    def run(*extra: str) -> Any:
        return CliRunner().invoke(cli.main, ["build", "--source", "folder", "--root", str(root),
                                             "--no-preview", *extra])

    res = run("--out", "memory://ssr-cluster-test/o", "--cluster", "local:1")
    assert res.exit_code == 1 and "memory:// lives inside one process" in res.output
    res = run("--out", str(tmp_path / "o"), "--cluster", "local:0")
    assert res.exit_code == 1 and "N >= 1" in res.output
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    res = run("--out", str(tmp_path / "o"), "--cluster", "local:1")
    assert res.exit_code == 1
    assert "pip install 'ssr-bench[cluster]'" in res.output and CLUSTER_REQUIREMENT in res.output
    assert CLUSTER_REQUIREMENT == "dask[distributed]>=2024.1"
