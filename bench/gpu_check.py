"""One check of every CUDA path of ssr-bench, in under 5 minutes on one GPU (issue 12, item 6).

Sections, each in its own process with its own time limit (a failure, a hang or a poisoned CUDA
context in one cannot hide the others; the table shows the last lines of each error):

  a  engine     fused Triton kernel vs the CPU backend (max error, 0-255) and vs one invariant
                21x21 depthwise F.conv2d (ratio, img/s at batch 1/8/32): bench/engine.py
  b  build      ``degrade build --source sample --device DEV`` twice (exit code, time, shards
                byte-identical) and, without JPEG, against a CPU build (LR levels that differ)
  c  train      ``ssr-train --config tiny --stage all`` on DEV from b's shards, 100 steps a
                stage (validation and a checkpoint at step 100)
  d  online     ``ssr-train --config tiny --stage all --online --source sample`` (50 steps each)
  e  infer      ``ssr-infer --device DEV`` with c's run: SVKR and diffusion on b's shards
  f  eval       ``ssr-eval run --table 1 --stand-in sample --method SSR=RUN --device DEV``
  g  wait       the paper config's step time and data-wait share with online degradation
                (bench/train.py ``online_report``)
  h  precision  the paper config's step time in fp32, fp16 and bf16 autocast, synthetic batch
                (bench/step_timing.py)
  i  compile    bf16 step time with ``compile: true`` (the networks' forward) and without,
                compile time apart (paid once per run): the kernel stage, then nbsr if time allows
  j  latent     ssr-latent-tiny on a tiny saved diffusers backbone: SSR == backbone at init,
                bf16 training steps, fp16 sampling vs float32 (needs diffusers: the ``latent`` extra)

    pip install --no-deps --no-build-isolation -e .   # optional first: builds the C CPU backend
    python bench/gpu_check.py --out gpu_check.md            # [--device cuda:1] [--only a,b]
    python bench/gpu_check.py --smoke --device cpu          # the plumbing on a CPU (tests run it)

Nothing is installed and nothing is downloaded (the install line above needs setuptools >= 77
on the machine; without ``--no-build-isolation`` pip would fetch it). Without the install, the
script maps ``ssr_datasets``/``ssr_manifests`` (package-dir names in pyproject.toml) to
``datasets/`` and ``manifests/`` through symlinks in its work folder and puts the repository on
PYTHONPATH; the C backend is then absent (CPU references use the torch backend; the table says
which).
CLIs run as ``python -m <module>`` (no console scripts needed).

Third-party packages the script and the CLIs it runs import (the table's last line lists what a
run actually imported, optional imports of present packages included): torch, numpy, triton
(section a; the ``gpu`` extra), opencv-python-headless (cv2), scikit-image (with its lazy-loader,
pillow), scipy, webdataset (with braceexpand), click, PyYAML, tqdm (the pyproject dependencies;
h5py and fsspec are imported only by the nyuv2 source and remote URLs, which no section uses),
pytest (with pluggy, iniconfig: bench/train.py imports tests/helpers.py; section g
only), kornia only when a config's ``online_jpeg`` is ``kornia`` (the built-ins say ``cpu``),
diffusers and safetensors (section j; the ``latent`` extra).
transformers, timm, pyiqa, spandrel: not needed.

``--smoke`` (tiny sizes, one or two steps) checks the plumbing: on a CPU, section a runs the
kernel under Triton's interpreter, b compares two CPU builds, c-f run on the CPU, g uses the
tiny config, h runs fp32 only and i traces the tiny kernel stage with dynamo's eager backend
(autocast and inductor figures are GPU-only).
Its figures are not measurements.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from gpu_check_sections import PROJECT, RUNNERS, Ctx  # bench/ is sys.path[0] for its scripts

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
SECTIONS: dict[str, tuple[str, int]] = {  # key -> (title, time limit in s on a GPU)
    "a": ("engine: fused kernel vs CPU backend and conv2d", 60),
    "b": ("degrade build --device DEV", 60),
    "c": ("ssr-train --config tiny, shards", 75),
    "d": ("ssr-train --config tiny --online", 50),
    "e": ("ssr-infer --device DEV", 45),
    "f": ("ssr-eval run --table 1 --stand-in sample", 60),
    "g": ("paper config, online: step time, data wait", 60),
    "h": ("paper config, fp32/fp16/bf16 step time", 45),
    # inductor compiles a paper network's forward and backward in 30-90 s on an H200: the kernel
    # stage fits; nbsr runs only if the time left allows it (the section knows its deadline)
    "i": ("paper config, torch.compile on/off", 150),
    "j": ("ssr-latent: identity, bf16 training, fp16 sampling", 45),
}
NEEDS = {"e": "c", "f": "c"}  # these use section c's run

# ---- the runner -------------------------------------------------------------------------------

def _child_env(work: Path, smoke: bool, device: str) -> tuple[dict[str, str], str]:
    """Environment for sections and CLIs; maps the package-dir names when not installed."""
    env = dict(os.environ)
    paths = [str(REPO), str(BENCH)]
    mode = "installed"
    if importlib.util.find_spec("ssr_datasets") is None:
        shim = work / "_packages"
        shim.mkdir(exist_ok=True)
        for name, folder in (("ssr_datasets", "datasets"), ("ssr_manifests", "manifests")):
            if not (shim / name).exists():
                (shim / name).symlink_to(REPO / folder, target_is_directory=True)
        paths.insert(0, str(shim))
        mode = "not installed: package-dir symlinks"
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    if smoke and not device.startswith("cuda"):
        env["TRITON_INTERPRET"] = "1"  # section a on CPU: the kernel under Triton's interpreter
    return env, mode


def run_section(key: str, ctx: Ctx, result: Path | None) -> dict[str, Any]:
    """Run one section; return its result (errors included) and write it to ``result``."""
    t0 = time.perf_counter()
    try:
        out = {"status": "ok", **RUNNERS[key](ctx)}
    except BaseException as exc:  # SystemExit from bench helpers too: report, never hide
        where = traceback.extract_tb(exc.__traceback__)[-1]
        what = "".join(traceback.format_exception_only(exc)).strip().splitlines()
        out = {"status": "FAIL", "error": "\n".join(
            [f"{Path(where.filename).name}:{where.lineno} in {where.name}", *what[-6:]])}
    out["seconds"] = time.perf_counter() - t0
    out["modules"] = sorted(ctx.modules | {m.split(".")[0] for m in list(sys.modules)})
    if result is None:
        return out
    from ssr_core.io import atomic_file

    with atomic_file(result) as f:
        f.write(json.dumps(out, default=str).encode())
    return out


def _spawn(key: str, args: argparse.Namespace, work: Path, env: dict[str, str],
           limit: float) -> dict[str, Any]:
    result = work / "results" / f"{key}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--section", key, "--device",
           args.device, "--work", str(work), "--deadline", str(time.time() + limit)] + (
        ["--smoke"] if args.smoke else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=limit)
    except BaseException as exc:  # over time, or Ctrl-C: no section keeps the GPU after us
        os.killpg(proc.pid, signal.SIGKILL)  # the section and every CLI it started
        log, _ = proc.communicate()
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        return {"status": "TIMEOUT", "seconds": time.perf_counter() - t0,
                "error": f"over its {limit:.0f} s limit; last output:\n" + "\n".join(
                    log.splitlines()[-5:])}
    if not result.exists():
        return {"status": "FAIL", "seconds": time.perf_counter() - t0,
                "error": f"exit {proc.returncode}:\n" + "\n".join(log.splitlines()[-6:])}
    return json.loads(result.read_text())


def _header(mode: str, device: str) -> dict[str, Any]:
    import torch

    info = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "import_mode": mode}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    spec = importlib.util.find_spec("triton")
    info["triton"] = "present" if spec else "absent"
    try:
        from degrade.ops.blur import _svblur
        info["c_backend"] = "built" if _svblur is not None else "absent (torch backend on CPU)"
    except ImportError as exc:
        info["c_backend"] = f"unknown ({exc})"
    return info


def _third_party(modules: set[str]) -> list[str]:
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    names = {m for m in modules if m not in sys.stdlib_module_names and m not in PROJECT}
    return sorted({d for m in names for d in dists.get(m, [])})  # no distribution: built in


def render(report: dict[str, Any]) -> str:
    """Return the summary table (markdown) of a report."""
    h = report["header"]
    lines = [f"gpu_check ({'smoke, ' if report['smoke'] else ''}{h['device']}"
             f"{', ' + h['gpu'] if 'gpu' in h else ''}; torch {h['torch']}, CUDA {h['cuda']}, "
             f"triton {h['triton']}, C backend {h['c_backend']}; {h['import_mode']}); "
             f"total {report['seconds']:.0f} s", "",
             "| | section | status | s | result |", "|---|---|---|---|---|"]
    for key, r in report["sections"].items():
        text = r.get("summary") or r.get("error", "")
        text = text.replace("|", "/").replace("\n", " <br> ")
        lines.append(f"| {key} | {SECTIONS[key][0]} | {r['status']} | {r.get('seconds', 0):.0f} "
                     f"| {text} |")
    lines += ["", "third-party packages imported: " + ", ".join(report["third_party"])]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu with --smoke")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: the plumbing, not figures")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, e.g. a,b,c")
    parser.add_argument("--out", type=Path, help="write the report: .md = the table, else JSON")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for all sections")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                        help="one process per section (default: yes, except with --smoke)")
    parser.add_argument("--section", help=argparse.SUPPRESS)  # child process: one section
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)  # its time.time() limit
    args = parser.parse_args()
    if args.section:
        env, _ = _child_env(args.work, args.smoke, args.device)
        run_section(args.section, Ctx(args.device, args.smoke, args.work, env, args.deadline),
                    args.work / "results" / f"{args.section}.json")
        return 0
    if not args.device.startswith("cuda") and not args.smoke:
        parser.error("--device cpu only with --smoke (the figures need a GPU)")
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        (work / "results").mkdir(parents=True, exist_ok=True)
        env, mode = _child_env(work, args.smoke, args.device)
        os.environ.update(env)  # before any project import (TRITON_INTERPRET, the package map)
        sys.path[:0] = [p for p in env["PYTHONPATH"].split(os.pathsep) if p not in sys.path]
        t0 = time.perf_counter()
        sections: dict[str, Any] = {}
        for key in keys:
            left = args.budget - (time.perf_counter() - t0)
            need = NEEDS.get(key)
            if need and need in sections and sections[need]["status"] != "ok":
                sections[key] = {"status": "skipped", "error": f"needs section {need}'s run"}
            elif left < 5:
                sections[key] = {"status": "skipped", "error": "the --budget is spent"}
            else:
                limit = left if args.smoke else min(SECTIONS[key][1], left)
                print(f"[{key}] {SECTIONS[key][0]} (limit {limit:.0f} s) ...", flush=True)
                isolate = not args.smoke if args.isolate is None else args.isolate
                sections[key] = (_spawn(key, args, work, env, limit) if isolate else
                                 run_section(key, Ctx(args.device, args.smoke, work, env,
                                                      time.time() + limit), None))
            print(f"[{key}] {sections[key]['status']}: "
                  f"{sections[key].get('summary') or sections[key].get('error')}", flush=True)
        modules = {m for r in sections.values() for m in r.get("modules", [])}
        report = {"smoke": args.smoke, "header": _header(mode, args.device),
                  "seconds": time.perf_counter() - t0, "sections": sections,
                  "third_party": _third_party(modules)}
        table = render(report)
        print(table)
        if args.out:
            from ssr_core.io import atomic_file

            text = table + "\n" if args.out.suffix == ".md" else json.dumps(report, indent=1,
                                                                          default=str)
            with atomic_file(args.out) as f:
                f.write(text.encode())
    return 0 if all(r["status"] in ("ok", "skipped") for r in sections.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
