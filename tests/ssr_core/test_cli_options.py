"""The shared options of the four CLIs (ssr_core.cli): --device parses cuda:N everywhere and
fails cleanly without CUDA; --tile has one minimum; --weights-dir is one option."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from degrade.cli import main as degrade_main
from eval.cli import main as eval_main
from ssr_core.cli import MIN_TILE, DeviceType, device_option
from ssr_models.infer_cli import main as infer_main
from ssr_models.train_cli import main as train_main
from tests.ssr_core.test_devices import fake_cuda

# (CLI, the arguments before --device): each misses a required option on purpose, so a device
# that parses is followed by that "Missing option" error and nothing runs.
COMMANDS = {
    "degrade build": (degrade_main, ["build"]),
    "ssr-train": (train_main, []),
    "ssr-infer": (infer_main, []),
    "ssr-eval run": (eval_main, ["run"]),
    "ssr-eval score": (eval_main, ["score"]),
    "ssr-eval kernels": (eval_main, ["kernels", "--set", "no-such-group"]),
}
#: What a command does once --device has parsed: (exit code, text); default a missing option.
AFTER_PARSE = {"ssr-eval kernels": (1, "table kernels has no group 'no-such-group'")}


@pytest.mark.parametrize("name", COMMANDS)
def test_cuda_index_parses_in_every_cli(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 2)
    cli, args = COMMANDS[name]
    result = CliRunner().invoke(cli, [*args, "--device", "cuda:1"])
    code, text = AFTER_PARSE.get(name, (2, "Missing"))
    assert result.exit_code == code and text in result.output, result.output
    assert "--device" not in result.output
    result = CliRunner().invoke(cli, [*args, "--device", "cuda:2"])
    assert result.exit_code == 2
    assert "Invalid value for '--device': device 'cuda:2' does not exist" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_cuda_without_a_gpu_is_one_clean_line(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 0)
    cli, args = COMMANDS[name]
    result = CliRunner().invoke(cli, [*args, "--device", "cuda:0"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: Invalid value for '--device': device 'cuda:0' needs CUDA, but "
                      "torch.cuda.is_available() is False here (no NVIDIA GPU or driver, or a "
                      "CPU-only torch build); use cpu"]
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, [*args, "--device", "gpu"])
    assert result.exit_code == 2 and "unknown device 'gpu': expected cpu, cuda, cuda:N or auto" \
        in result.output


def test_auto_is_resolved_before_the_command_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    @click.command()
    @device_option(default="auto")
    def show(device: str) -> None:
        seen.append(device)

    for count, want in ((0, "cpu"), (1, "cuda")):
        fake_cuda(monkeypatch, count)
        assert CliRunner().invoke(show, []).exit_code == 0
        assert seen[-1] == want
    assert CliRunner().invoke(show, ["--device", "CPU"]).exit_code == 0 and seen[-1] == "cpu"


def _commands() -> dict[str, click.Command]:
    """Every command of the four CLIs by its full name ("ssr-eval run", "ssr-infer", ...)."""
    found: dict[str, click.Command] = {}

    def walk(name: str, cmd: click.Command) -> None:
        found[name] = cmd
        if isinstance(cmd, click.Group):
            for sub_name, sub in cmd.commands.items():
                walk(f"{name} {sub_name}", sub)

    for name, cli in (("degrade", degrade_main), ("ssr-train", train_main),
                      ("ssr-infer", infer_main), ("ssr-eval", eval_main)):
        walk(name, cli)
    return found


def _options(flag: str) -> dict[str, click.Option]:
    return {name: p for name, cmd in _commands().items() for p in cmd.params
            if isinstance(p, click.Option) and flag in p.opts}


def test_every_device_option_is_the_shared_one() -> None:
    devices = _options("--device")
    assert set(devices) == {"degrade build", "ssr-train", "ssr-infer", "ssr-eval run", "ssr-eval score",
                            "ssr-eval kernels"}
    assert set(devices) == set(COMMANDS)  # the parse tests above cover every one of them
    assert all(isinstance(p.type, DeviceType) for p in devices.values())


def test_tile_has_one_minimum_in_every_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    tiles, overlaps = _options("--tile"), _options("--overlap")
    assert set(tiles) == set(overlaps) == {"ssr-infer", "ssr-eval run"}
    assert {p.type.min for p in tiles.values()} == {MIN_TILE}
    assert {(p.type.min, p.default) for p in overlaps.values()} == {(0, 16)}
    fake_cuda(monkeypatch, 0)
    for name in tiles:
        cli, args = COMMANDS[name]
        below = CliRunner().invoke(cli, [*args, "--tile", str(MIN_TILE - 1)])
        assert below.exit_code == 2 and f"{MIN_TILE - 1} is not in the range x>={MIN_TILE}" in below.output
        at = CliRunner().invoke(cli, [*args, "--tile", str(MIN_TILE)])
        assert at.exit_code == 2 and "Missing" in at.output and "--tile" not in at.output


def test_weights_dir_is_one_option() -> None:
    dirs = _options("--weights-dir")
    assert set(dirs) == {"ssr-eval score", "ssr-eval run"}
    assert all(isinstance(p.type, click.Path) and not p.type.file_okay and p.default is None
               for p in dirs.values())


def test_depth_cache_is_one_option() -> None:
    caches = _options("--depth-cache")
    assert set(caches) == {"degrade build", "ssr-train"}
    assert all(isinstance(p.type, click.Path) and not p.type.file_okay and p.default is None
               and "$SSR_BENCH_CACHE/depth" in p.help for p in caches.values())
