"""bench/gpu_check.py's plumbing on a CPU (--smoke): sections, isolation, failures, the report.

The GPU figures themselves come from running the script on a GPU (see its docstring); here the
build, shard training, inference and step-timing sections run for real at tiny sizes on the CPU,
and a failing section must neither stop the others nor lose its error.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_check.py"


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str]:
    """Run the script's ``main()`` in this process; return (exit code, stdout).

    In this process rather than a child: the script's own work is the same (with --smoke its
    sections and CLIs run in-process anyway, and --isolate still starts a child per section),
    without a second import of torch and the project. What ``main()`` changes in the process
    (environment, sys.path, argv, cwd) is put back afterwards.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--smoke", "--device", "cpu", *args])
    monkeypatch.setattr(sys, "path", [str(REPO / "bench"), *sys.path])
    for name in ("PYTHONPATH", "TRITON_INTERPRET"):  # main() sets them: restore them after
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # --isolate's children: one thread, as here
    gpu_check = importlib.import_module("gpu_check")
    try:
        code = gpu_check.main()
    finally:
        torch.set_flush_denormal(False)  # step_timing sets it for the whole process, as ssr-train
    return code, capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package:RuntimeWarning")
def test_smoke_sections_run_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    code, stdout = run(tmp_path, monkeypatch, capsys, "--only", "b,c,d,e,g,h,i",
                       "--work", str(tmp_path / "w"), "--out", str(out))
    assert code == 0, stdout
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert [k for k, r in sections.items() if r["status"] == "ok"] == ["b", "c", "d", "e", "g", "h",
                                                                       "i"]
    compiled = sections["i"]["figures"]["kernel"]  # dynamo's eager backend on a CPU
    assert compiled["compiled_ms"] > 0 and compiled["compile_s"] >= 0
    assert sections["b"]["figures"]["byte_identical"] is True  # two builds, same bytes
    assert sections["e"]["summary"].startswith("1 image(s)")
    assert set(sections["h"]["figures"]["kernel"]) == {"fp32"}  # autocast variants: GPU only
    online = sections["g"]["figures"]["kernel"]
    assert 0 <= online["data_wait_fraction"] <= 1 and online["prefetch"] == 1  # thread path
    for run_dir in ("run/kernel", "run/nbsr", "run/diffusion", "run-online/kernel"):
        assert (tmp_path / "w" / run_dir / "last.pt").is_file()  # the CLIs really trained
    # the CLIs' own imports are in the package list the lead carries wheels for
    assert {"torch", "click", "webdataset", "numpy"} <= set(report["third_party"])
    assert "| b | degrade build --device DEV | ok |" in stdout


def test_a_failing_section_is_reported_and_the_others_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Section f needs section c's run; alone, in its own process (--isolate), its CLI exits 1:
    the report keeps the command's last lines, b still runs, and the exit code says so."""
    out = tmp_path / "report.md"
    code, stdout = run(tmp_path, monkeypatch, capsys, "--only", "f,b", "--isolate", "--out", str(out))
    assert code == 1, stdout
    table = out.read_text()
    row_f = next(line for line in table.splitlines() if line.startswith("| f |"))
    assert "| FAIL |" in row_f and "-> exit 1:" in row_f
    assert "Error: --method 'SSR=" in row_f and "no such file or folder" in row_f
    assert "| b | degrade build --device DEV | ok |" in table


def test_compile_section_times_later_stages_only_if_its_deadline_allows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Section i ran past its limit on an H200 (inductor compiles each paper network for tens of
    seconds): the first stage always runs; a later one only with 1.5x the first's time left, so
    the section reports what it timed instead of timing out. The timing itself is stubbed here
    (each variant "takes" 1 s); the smoke run above times the real tiny stage."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        timing = importlib.import_module("step_timing")
    finally:
        sys.path.remove(str(REPO / "bench"))
        torch.set_flush_denormal(False)  # step_timing sets it for the whole process, as ssr-train
    clock = [1000.0]

    def variant(stage: str, *args: Any, **kw: Any) -> tuple[float, float]:
        clock[0] += 1.0
        return (10.0, 1.0) if kw.get("compile") else (20.0, 0.5)

    monkeypatch.setattr(timing, "_time_variant", variant)
    monkeypatch.setattr(timing, "time", SimpleNamespace(time=lambda: clock[0]))  # its module only
    lines: list[str] = []
    late = timing.compile_times("cpu", deadline=1002.5, progress=lines.append)  # 0.5 s < 1.5 x 2 s
    assert list(late) == ["kernel"]
    assert lines[-1] == "nbsr: not timed (0 s left, the last stage took 2 s)"
    assert late["kernel"] == {"eager_ms": 20.0, "compiled_ms": 10.0, "speedup": 2.0,
                              "first_step_s": 1.0, "compile_s": 0.5, "stage_s": 2.0}
    clock[0] = 1000.0
    both = timing.compile_times("cpu", deadline=1005.0, progress=lines.append)  # 3 s = 1.5 x 2 s
    assert list(both) == ["kernel", "nbsr"]
