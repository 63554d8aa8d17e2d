"""ssr-train as a user meets it (issue 10 #11/#12, issue 11): the --help quick start as written,
live progress, validation beside bicubic, small sets, resume rules, Ctrl-C, ablations.

The shard set is the session's ``shard_dir`` (6 samples of 48 x 64 px, recipe ssr x4) except for
the quick start, which builds the real sample set as its first command does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import click
import pytest
import torch
import yaml
from click.testing import CliRunner

from degrade.cli import main as degrade_main
from eval.cli import main as eval_main
from ssr_models.checkpoint import load_checkpoint
from ssr_models.configs import CONFIG_DIR, load_train_config
from ssr_models.run import read_run
from ssr_models.train_cli import main
from ssr_models.train_events import TrainEvent
from ssr_models.train_progress import TrainProgress
from tests.shell_lines import shell_commands

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fast_config(folder: Path, **trainer: object) -> Path:
    """The tiny config at 16-32 px crops, batch 2, one crop per image, no TensorBoard."""
    cfg = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    for name, stage in cfg["stages"].items():
        stage["data"].update(crop_hr=32 if name == "kernel" else 16, batch_size=2,
                             crops_per_image=1)
        stage["trainer"].update(tensorboard=False, **trainer)
    path = folder / "fast.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


# ---- the examples of --help and the README -----------------------------------------------------
#: ssr-train examples (in `ssr-train --help` or the README) that are not run as written here, and why.
NOT_RUN = {
    "ssr-train --shards SHARDS --stage all --config paper --ablation no-svkr --out runs/no-svkr":
        "a template (SHARDS) at paper scale; test_ablation_sets_the_diffusion_flags runs --ablation",
    "ssr-train --shards out/train --stage all --config tiny --out runs/tiny":
        "the --help quick start's command on other shards of the same photos (run here)",
    "ssr-train --online --source div2k --root ~/data --recipe ssr --depth prior --stage all "
    "--config paper --out runs/paper-online --device cuda": "needs DIV2K and a GPU",
    "ssr-train --shards SHARDS --stage all --model ssr-latent --backbone DIR --out runs/latent":
        "a template (SHARDS, DIR); tests/ssr_models/test_latent.py runs it with a tiny backbone",
}


def _train_commands(lines: list[str]) -> list[str]:
    """Return the ssr-train commands in shell ``lines`` (see :func:`shell_commands`)."""
    return [c for c in shell_commands(lines) if c.startswith("ssr-train ")]


def _examples() -> dict[str, str]:
    """Return ssr-train example -> where it is shown (--help texts and README bash blocks)."""
    found: dict[str, str] = {}
    ctx = click.Context(main)
    for name in ("", *main.list_commands(ctx)):
        cmd = main.get_command(ctx, name) if name else main
        info = f"ssr-train {name}".strip()
        text = cmd.get_help(click.Context(cmd, info_name=info))
        for command in _train_commands(text.split("\nOptions:", 1)[0].splitlines()[1:]):
            found.setdefault(command, f"{info} --help")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"^```bash\n(.*?)^```", readme, re.M | re.S):
        for command in _train_commands(block.splitlines()):
            found.setdefault(command, "README.md")
    return found


def test_help_quick_start_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    help_text = CliRunner().invoke(main, ["--help"]).output
    block = help_text.split("Quick start")[1].split("\n\n")[0].splitlines()[1:]
    commands = [shlex.split(line) for line in block]
    assert [c[0] for c in commands] == ["degrade", "ssr-train", "ssr-train"], block
    # Every other ssr-train example is run by a test of this file or says why not.
    shown = {" ".join(c) for c in commands}
    others = {c: where for c, where in _examples().items()
              if c.startswith("ssr-train") and c not in shown}
    assert set(others) == set(NOT_RUN), others
    monkeypatch.chdir(tmp_path)
    outputs = []
    for cmd in commands:
        cli = degrade_main if cmd[0] == "degrade" else main
        result = CliRunner().invoke(cli, cmd[1:])
        assert result.exit_code == 0, result.output
        outputs.append(result)
    tiny = load_train_config("tiny")
    err = outputs[1].stderr
    for stage in ("kernel", "nbsr", "diffusion"):
        steps = tiny.stage(stage).trainer["steps"]
        assert load_checkpoint(Path("runs/tiny") / stage / "last.pt")["step"] == steps
        assert f"{stage}  step {steps}/{steps}  loss " in err and "ETA" in err  # live lines
        assert f"{stage}: trained to step {steps} in " in outputs[1].stdout  # the summary
        rows = [json.loads(x) for x in (Path("runs/tiny") / stage / "metrics.jsonl").open()]
        shares = [r["train/data_wait_share"] for r in rows if "train/data_wait_share" in r]
        assert shares and all(0 <= s <= 1 for s in shares)
        assert any((Path("runs/tiny") / stage / "tb").iterdir())  # TensorBoard is on in tiny
    assert load_checkpoint(Path("runs/online/kernel/last.pt"))["step"] == tiny.stage(
        "kernel").trainer["steps"]


# ---- progress, validation beside bicubic --------------------------------------------------------
def test_progress_and_validation_beside_bicubic(shard_dir: Path, tmp_path: Path) -> None:
    cfg = fast_config(tmp_path, log_every=2, val_every=2, warmup_steps=1)
    code, out, err = invoke("--shards", str(shard_dir), "--stage", "nbsr", "--config", str(cfg),
                            "--out", str(tmp_path / "run"), "--steps", "4",
                            "--val-shards", str(shard_dir))
    assert code == 0, err
    assert "nbsr  step 2/4  loss " in err and "data-wait " in err
    rows = [json.loads(x) for x in (tmp_path / "run" / "nbsr" / "metrics.jsonl").open()]
    val = [r for r in rows if "val/psnr" in r]
    assert [r["step"] for r in val] == [2, 4]
    last = val[-1]
    shown = f"PSNR {last['val/psnr']:.2f} dB vs bicubic {last['val/psnr_bicubic']:.2f} dB"
    assert f"nbsr  step 4  validation: {shown}" in err  # as it comes
    assert f"  validation: {shown}" in out  # and in the summary
    below = last["val/psnr"] < last["val/psnr_bicubic"]
    assert ("warning: nbsr validates below bicubic" in err) == below


def test_progress_bar_on_a_terminal() -> None:
    out = StringIO()
    bar = TrainProgress("kernel", file=out, tty=True)
    bar(TrainEvent("start", {"step": 0, "steps": 3, "log_every": 1, "note": None}))
    for k in (1, 2, 3):
        bar(TrainEvent("step", {"step": k, "steps": 3, "loss": 0.5, "lr": 1e-3,
                                "data_wait_s": 0.01, "step_s": 0.04}))
    assert bar.bar.n == 3 and "loss 0.5 lr 1.0e-03 data-wait 25%" in bar.bar.postfix
    bar.close()
    assert out.getvalue().startswith("\rkernel:") and bar.bar is None


# ---- small sets, missing shards -----------------------------------------------------------------
def test_small_set_trains_with_a_warning(shard_dir: Path, tmp_path: Path) -> None:
    cfg = yaml.safe_load(fast_config(tmp_path).read_text())
    cfg["stages"]["nbsr"]["data"]["batch_size"] = 8  # the set has 6 samples
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(cfg))
    code, out, err = invoke("--shards", str(shard_dir), "--stage", "nbsr", "--config",
                            str(tmp_path / "big.yaml"), "--out", str(tmp_path / "run"),
                            "--steps", "1")
    assert code == 0, err
    assert f"warning: {shard_dir} holds 6 sample(s), fewer than one batch of 8" in err
    assert "repeats them 2x" in err
    assert read_run(tmp_path / "run" / "nbsr")["data"]["epoch_samples"] == 12


def test_missing_shards_names_the_path(tmp_path: Path) -> None:
    code, out, err = invoke("--shards", str(tmp_path / "missing") + "/", "--stage", "kernel",
                            "--out", str(tmp_path / "run"))
    assert code == 1 and "<shard>" not in err
    assert f"{tmp_path / 'missing'}/: no such shard folder or .tar file" in err
    assert "degrade build --out DIR" in err


# ---- resume rules -------------------------------------------------------------------------------
def test_resume_refuses_changed_settings_and_extends_steps(shard_dir: Path,
                                                           tmp_path: Path) -> None:
    cfg = fast_config(tmp_path)
    common = ["--shards", str(shard_dir), "--stage", "kernel", "--out", str(tmp_path / "run")]
    assert invoke(*common, "--config", str(cfg), "--steps", "2")[0] == 0
    before = (tmp_path / "run" / "kernel" / "run.json").read_bytes()
    other = yaml.safe_load(cfg.read_text())
    other["stages"]["kernel"]["trainer"]["lr"] = 0.01
    other["stages"]["kernel"]["data"]["crop_hr"] = 16
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    code, _, err = invoke(*common, "--config", str(tmp_path / "other.yaml"), "--steps", "4",
                          "--seed", "1", "--resume")
    assert code == 1
    assert ("settings differ from the run's (only the step count --steps, --max-minutes and "
            "--keep-last may change)") in err
    for change in ("data.crop_hr: 32 -> 16", "trainer.lr: 0.002 -> 0.01", "trainer.seed: 0 -> 1"):
        assert change in err
    assert (tmp_path / "run" / "kernel" / "run.json").read_bytes() == before
    code, out, err = invoke(*common, "--config", str(cfg), "--steps", "4", "--resume")
    assert code == 0 and "kernel: trained to step 4" in out, err


def test_budget_accumulation_retention_and_best_metric_options(shard_dir: Path,
                                                               tmp_path: Path) -> None:
    cfg = fast_config(tmp_path, val_every=1, ckpt_every=0)
    common = ["--shards", str(shard_dir), "--stage", "kernel", "--config", str(cfg), "--out",
              str(tmp_path / "run"), "--steps", "50", "--val", str(shard_dir)]
    code, _, err = invoke(*common, "--best-metric", "sharpness")
    assert code == 1 and "best_metric 'sharpness' has no known direction" in err
    habits = ["--accum-steps", "2", "--keep-last", "1", "--best-metric", "kernel_l1:min"]
    code, out, err = invoke(*common, *habits, "--max-minutes", "1e-9")
    assert code == 0, err
    assert "time budget of 1e-09 min spent: stopped at step 1 of 50 (--resume continues)" in out
    folder = tmp_path / "run" / "kernel"
    assert "best: val kernel_l1 " in out and f"at step 1 -> {folder / 'best.pt'}" in out
    saved = json.loads((folder / "config.json").read_text())["trainer"]
    assert (saved["max_minutes"], saved["accum_steps"], saved["keep_last"],
            saved["best_metric"]) == (1e-9, 2, 1, "kernel_l1:min")
    assert load_checkpoint(folder / "last.pt")["per_rank"][0]["data"]["batch"] == 2  # 2 per step
    # a resume may change the budget and retention, nothing else
    code, out, err = invoke(*common, *habits, "--max-minutes", "2e-9", "--resume")
    assert code == 0 and "stopped at step 2 of 50" in out, err
    assert sorted(p.name for p in folder.glob("ckpt-*.pt")) == ["ckpt-0000002.pt"]


# ---- Ctrl-C and SIGTERM -------------------------------------------------------------------------
def test_ctrl_c_saves_and_prints_the_resume_command(shard_dir: Path, tmp_path: Path) -> None:
    # As a terminal's Ctrl-C: SIGINT to the whole process group, DataLoader worker included.
    cfg = fast_config(tmp_path, log_every=1, ckpt_every=0, val_every=0)
    text = yaml.safe_load(cfg.read_text())
    text["stages"]["kernel"]["data"]["num_workers"] = 1
    cfg.write_text(yaml.safe_dump(text))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ssr_models.train_cli", "--shards", str(shard_dir), "--stage",
           "kernel", "--config", str(cfg), "--out", str(out), "--steps", "30"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = out / "kernel" / "metrics.jsonl"
    deadline = time.monotonic() + 90
    try:
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no training step within 90 s"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Aborted!" not in stderr and "Traceback" not in stderr
    step = load_checkpoint(out / "kernel" / "last.pt")["step"]
    assert 2 <= step < 30
    assert (f"interrupted by SIGINT in stage kernel; last checkpoint: "
            f"{out / 'kernel' / 'last.pt'} (step {step})") in stderr
    resume = stderr.split("resume with:\n")[1].strip()
    assert shlex.split(resume) == ["ssr-train", *cmd[3:], "--resume"]
    code, stdout, err = invoke(*shlex.split(resume)[1:])  # the printed command, as printed
    assert code == 0 and "kernel: trained to step 30" in stdout, err


def test_sigterm_checkpoints_the_finished_step(shard_dir: Path, tmp_path: Path) -> None:
    from ssr_models.data import TrainingStream
    from ssr_models.trainer import Trainer, TrainerConfig, TrainingInterrupted
    from tests.ssr_models.test_trainer import model

    def kill_at_3(event: TrainEvent) -> None:
        if event.kind == "step" and event.data["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    trainer = Trainer(model(), TrainerConfig(steps=20, ckpt_every=0, out_dir=str(tmp_path),
                                             tensorboard=False),
                      TrainingStream(shard_dir, 16, 2, seed=0))
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at step 3") as info:
        trainer.fit(callback=kill_at_3)
    assert info.value.checkpoint == tmp_path / "last.pt"
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


# ---- Table 2 ablations --------------------------------------------------------------------------
def test_ablation_sets_the_diffusion_flags(shard_dir: Path, tmp_path: Path) -> None:
    cfg = fast_config(tmp_path)
    code, out, err = invoke("--shards", str(shard_dir), "--stage", "diffusion", "--config",
                            str(cfg), "--ablation", "depth-only", "--out", str(tmp_path / "r"),
                            "--steps", "1")
    assert code == 0, err
    flags = read_run(tmp_path / "r" / "diffusion")["model_config"]["amf"]
    assert (flags["use_kernel"], flags["use_depth"], flags["use_svkr"]) == (False, True, False)
    code, _, err = invoke("--shards", str(shard_dir), "--stage", "kernel", "--ablation",
                          "no-svkr", "--out", str(tmp_path / "k"))
    assert code == 2 and "--ablation changes the diffusion stage" in err


def test_eval_tables_lists_the_training_command_of_each_row() -> None:
    text = CliRunner().invoke(eval_main, ["tables"]).output
    rows = {"ssr-di-kernel-only": "--ablation di-kernel-only --out runs/di-kernel-only",
            "ssr-depth-only": "--ablation depth-only --out runs/depth-only",
            "ssr-no-svkr": "--ablation no-svkr --out runs/no-svkr",
            "SSR": "--config paper --out runs/ssr"}
    lines = text.split("\ntable2:")[1].split("\ntable3:")[0].splitlines()
    for row, tail in rows.items():
        i = next(i for i, line in enumerate(lines) if line.split()[:2] == ["row", row])
        assert lines[i + 1].strip().startswith("train: ssr-train --shards ")
        assert lines[i + 1].endswith(tail), lines[i + 1]
