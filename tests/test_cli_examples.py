"""Every `degrade` and `ssr-eval` example, in the `--help` texts and the README, runs as written.

The examples are extracted from the help of every command and subcommand (the lines of its
description that start with a program name: "Examples:", "Quick start:") and from the README's
``bash`` blocks, so that a new example is checked as soon as it is written.
Each one is either run here, as written (in a temporary folder that is also ``$HOME``, so ``~``
paths resolve there, with ``$SSR_BENCH_CACHE`` inside it), or listed in ``NOT_RUN`` with the
reason: it needs the network, a real data set, learned weights, trained runs, or it is the same
command that another, named test runs. An example in neither list fails the test, and so does a
stale entry. `ssr-train` and `ssr-infer` examples are checked by their own tests.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import degrade.cli as degrade_cli
import eval.cli as eval_cli
from tests.shell_lines import shell_commands

PROGRAMS: dict[str, click.Group] = {"degrade": degrade_cli.main, "ssr-eval": eval_cli.main}
README = Path(__file__).resolve().parents[1] / "README.md"

#: Examples run here, as written, in the order given (later ones may read earlier outputs).
RUN = (
    "degrade verify out/sample",
    "degrade info out/sample",
    "degrade datasets list",
    "degrade build --recipe cmos-defocus --depth gt --out out/cmos",
    "degrade build --crop 64 64 --samples-per-image 8 --no-noise --no-jpeg --out out/train",
    "ssr-eval score --pred out/sample --metrics niqe",
    "ssr-eval run --table 1 --paper-only",
    "ssr-eval tables",
)
_NET = "downloads from the data set's servers (no network in tests; tests/datasets/test_download.py"
_DATA = "needs a real data set under the example's folder"
#: Examples not run here, with the reason (and, where one exists, the test that covers them).
NOT_RUN = {
    "degrade build --out out/sample": "run with the installed script by tests/degrade/test_cli.py::"
                                      "test_readme_default_command_with_the_installed_script",
    "degrade build --source folder --root ~/photos --recipe ssr --crop 256 256 "
    "--samples-per-image 4 --workers 2 --out out/photos":
        "~8 s (two worker processes); the same options are built by tests/degrade/test_cli.py and "
        "tests/degrade/test_pipeline.py",
    "degrade build --source div2k --root ~/data --split valid --depth midas "
    "--depth-weights ~/weights --out out/div2k-valid": f"{_DATA} (DIV2K) and MiDaS weights",
    "degrade build --source div2k --root ~/data --split valid --depth midas "
    "--out out/div2k-valid": f"{_DATA} (DIV2K) and MiDaS weights",
    "degrade build --source nyuv2 --root ~/data/nyu --split test --recipe cmos-defocus "
    "--depth gt --out out/nyu-test": f"{_DATA} (NYU Depth v2, 2.8 GB)",
    "ssr-eval kernels --set div2krk:x2 --dataset-root div2krk=~/data/div2krk --method "
    "KernelGAN=kgan/": f"{_DATA} (DIV2KRK) and KernelGAN's estimates; tests/eval/"
                                  "test_kernels_div2krk.py runs the same command on a miniature",
    "degrade build --depth midas --depth-weights ~/weights --device cuda --out out/sample-midas":
        "needs MiDaS weights and a GPU",
    "degrade datasets download div2k --root data/div2k --split valid": f"{_NET} fakes a server)",
    "degrade datasets download div2k --root ~/data": f"{_NET} fakes a server)",
    "degrade datasets download nyuv2 --root data/nyuv2": f"{_NET} fakes a server)",
    "degrade datasets download div2k --root data/div2k --mirror https://my.mirror/div2k":
        f"{_NET} fakes a mirror)",
    "degrade datasets verify div2k --root data/div2k": f"{_DATA} (DIV2K)",
    "degrade datasets verify set14 --root data/benchmarks --strict": f"{_DATA} (Set14)",
    "degrade datasets verify set5 --root data/benchmarks --strict": f"{_DATA} (Set5)",
    "ssr-eval score --gt data/Set5/HR --pred results/Set5 --crop-border 4":
        f"{_DATA} (Set5) and a method's outputs",
    "ssr-eval score --gt out/sample --pred results/sample": "needs a method's outputs",
    "ssr-eval score --gt HR --pred SR --crop-border 4 --metrics psnr,ssim --json scores.json":
        "HR and SR stand for the user's folders",
    "ssr-eval score --gt out/sample --pred sr/sample --csv scores.csv":
        "needs ssr-infer's outputs (its own tests run it)",
    "ssr-eval score --pred out/sample --metrics niqe,musiq":
        "MUSIQ needs its weights (tests/eval/test_learned.py scores it with stand-in weights)",
    "ssr-eval score --gt out/hr --pred results/mymethod --metrics psnr,ssim,lpips,musiq,clipiqa,"
    "niqe --crop-border 4 --json scores.json --csv scores.csv":
        "needs a method's outputs and the learned metrics' weights",
    "ssr-eval run --table 1 --stand-in sample":
        "~15 s; tests/eval/test_tables_run.py::test_cli_stand_in_runs_each_table runs it on one "
        "image per group",
    "ssr-eval run --table 1 --data-root /data --method SSR=runs/ssr "
    "--method SwinIR=weights/SwinIR-M_x4.pth --method DAN=results/DAN/":
        f"{_DATA} (DIV2K, BSDS100, Urban100, DRealSR), trained runs and weights",
    "ssr-eval run --table 1 --data-root /data --method SSR=runs/ssr "
    "--method SwinIR=weights/001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth "
    "--method DAN=results/DAN/ --out table1.html":
        f"{_DATA} (DIV2K, BSDS100, Urban100, DRealSR), trained runs and weights",
    "ssr-eval run --table 2 --method ssr-no-svkr=runs/no-svkr --format markdown":
        "needs a trained ablation run",
    "ssr-eval run --table 2 --method ssr-no-svkr=runs/no-svkr --method SSR=runs/ssr "
    "--format markdown": "needs trained runs",
    "ssr-eval run --table 3 --data-root /data --out table3.html": f"{_DATA} (DIV2K)",
    "ssr-eval run --table 3 --data-root /data --format latex": f"{_DATA} (DIV2K)",
    "ssr-eval kernels --set out/sample --maps out/kernel-maps":
        "~25 s on 2 cores (five full photos); tests/eval/test_kernels.py::"
        "test_cli_scores_a_set_and_prints_the_table runs it on a two-crop set",
    "ssr-eval kernels --set out/sample --method DKENet=runs/tiny --method mean=mean:out/train":
        "needs a trained run; tests/eval/test_kernels.py::"
        "test_dkenet_run_folder_and_baselines_with_cache_and_maps scores a DKENet run folder",
    "ssr-eval kernels --set div2k-clean --data-root /data --method KernelGAN=results/kgan/":
        f"{_DATA} (DIV2K) and a method's estimates",
    "ssr-eval kernels --stand-in sample --maps maps/ --out kernels.html":
        "~60 s (builds two stand-in sets); tests/eval/test_kernels.py::"
        "test_cli_scores_a_set_and_prints_the_table runs the command on a shard set",
}


def _commands(lines: list[str]) -> Iterator[str]:
    """Yield the commands of our programs in shell ``lines`` (see :func:`shell_commands`)."""
    return (c for c in shell_commands(lines) if c.split(" ", 1)[0] in PROGRAMS)


def help_examples() -> dict[str, str]:
    """Return example -> the command whose ``--help`` shows it, for every (sub)command."""
    found: dict[str, str] = {}

    def walk(cmd: click.Command, path: list[str]) -> None:
        text = cmd.get_help(click.Context(cmd, info_name=" ".join(path)))
        description = text.split("\nOptions:", 1)[0].splitlines()[1:]  # not the Usage line
        for command in _commands(description):
            found.setdefault(command, " ".join(path) + " --help")
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])

    for name, group in PROGRAMS.items():
        walk(group, [name])
    return found


def readme_examples() -> dict[str, str]:
    """Return example -> "README.md" for the commands in the README's ``bash`` blocks."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    return {c: "README.md" for block in blocks for c in _commands(block.splitlines())}


def all_examples() -> dict[str, str]:
    return {**readme_examples(), **help_examples()}


def test_every_example_is_run_or_says_why_not() -> None:
    examples = all_examples()
    unknown = {c: where for c, where in examples.items() if c not in RUN and c not in NOT_RUN}
    assert not unknown, f"classify these examples (RUN, or NOT_RUN with a reason): {unknown}"
    stale = [c for c in (*RUN, *NOT_RUN) if c not in examples]
    assert not stale, f"no longer in any --help or the README: {stale}"


def test_readme_commands_pin_one_torch_pair() -> None:
    text = README.read_text(encoding="utf-8")
    first, second = text.split("# 1. ", 1)[1].split("# 2. ", 1)
    pins = [set(re.findall(r"\btorch(?:vision)?==[\d.]+", part)) for part in (first, second)]
    assert pins[0] == pins[1] == {"torch==2.14.1", "torchvision==0.29.1"}, pins


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder that is also $HOME, holding the one-image shard set the examples read."""
    root = tmp_path_factory.mktemp("examples")
    saved = {k: os.environ.get(k) for k in ("HOME", "SSR_BENCH_CACHE", "SSR_BENCH_DATA")}
    cwd = Path.cwd()
    os.environ.update(HOME=str(root), SSR_BENCH_CACHE=str(root / "cache"))
    os.environ.pop("SSR_BENCH_DATA", None)
    os.chdir(root)
    try:
        res = CliRunner().invoke(degrade_cli.main, ["build", "--out", "out/sample",
                                                    "--max-images", "1", "--no-preview"])
        assert res.exit_code == 0, res.output
        yield root
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.parametrize("command", RUN)
def test_example_runs_as_written(workspace: Path, command: str) -> None:
    program, *args = shlex.split(command)
    args = [os.path.expanduser(a) if a.startswith("~") else a for a in args]  # as the shell does
    res = CliRunner().invoke(PROGRAMS[program], args)
    assert res.exit_code == 0, f"{command}\n{res.output}"
