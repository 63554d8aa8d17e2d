"""The shared ``--device`` option in all four CLIs: cuda:N accepted, a clean error without CUDA."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from degrade.cli import main as degrade_main
from degrade.cli_support import device_option
from eval.cli import main as eval_main
from ssr_models.infer_cli import main as infer_main
from ssr_models.train_cli import main as train_main
from tests.datasets.test_devices import fake_cuda

# (CLI, the arguments before --device): each misses a required option on purpose, so a device
# that parses is followed by that "Missing option" error and nothing runs.
COMMANDS = {
    "degrade build": (degrade_main, ["build"]),
    "ssr-train": (train_main, []),
    "ssr-infer": (infer_main, []),
    "ssr-eval run": (eval_main, ["run"]),
    "ssr-eval score": (eval_main, ["score"]),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_cuda_index_parses_in_every_cli(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 2)
    cli, args = COMMANDS[name]
    result = CliRunner().invoke(cli, [*args, "--device", "cuda:1"])
    assert result.exit_code == 2 and "Missing" in result.output, result.output
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
