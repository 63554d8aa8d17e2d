"""Issue 10 #2: opening a run folder never runs code from it.

The attack: a planted ``RUN/kernel/last.pt`` whose pickle calls ``exec`` and writes a marker
file. It must be refused, with the file named, by every path that opens a run folder
(``ssr-infer --checkpoint``, ``ssr-train --resume``, the table methods of ``ssr-eval run``),
and the marker must never appear. The payload is first shown to work with an unsafe load, so
the tests would fail on the old ``weights_only=False`` code.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from eval.tables.methods import parse_method
from ssr_core.errors import InputError
from ssr_models.checkpoint import (
    CKPT_FORMAT,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from ssr_models.infer_cli import main as infer_main
from ssr_models.train_cli import main as train_main
from tests.eval.test_tables_methods import make_image, make_set
from tests.ssr_models.test_infer import STAGE_MODELS, write_stage


class _Payload:
    """Unpickles by calling exec: creates ``marker`` (what a real attack would do anything with)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _plant(path: Path, marker: Path) -> None:
    torch.save({"format": CKPT_FORMAT, "version": 2, "step": 1, "model": _Payload(marker)}, path)


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """(run folder whose every last.pt is a planted pickle, marker path)."""
    run, marker = tmp_path / "run", tmp_path / "marker.txt"
    for stage in ("kernel", "nbsr"):
        write_stage(run / stage, stage, STAGE_MODELS[stage])
        _plant(run / stage / "last.pt", marker)
    return run, marker


def test_payload_runs_when_unpickled(tmp_path: Path) -> None:
    # The attack is real: an unsafe load (the code before the fix) executes it.
    marker = tmp_path / "marker.txt"
    _plant(tmp_path / "x.pt", marker)
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert marker.read_text() == "ran"


def test_load_checkpoint_refuses_pickle(planted: tuple[Path, Path]) -> None:
    run, marker = planted
    with pytest.raises(InputError, match=r"kernel/last.pt: refused: loading it needs pickle"):
        load_checkpoint(run / "kernel" / "last.pt")
    assert not marker.exists()


def test_ssr_infer_refuses_planted_checkpoint(planted: tuple[Path, Path], tmp_path: Path) -> None:
    run, marker = planted
    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(tmp_path / "in" / "a.png")
    result = CliRunner().invoke(infer_main, ["--checkpoint", str(run), "--input",
                                             str(tmp_path / "in"), "--out", str(tmp_path / "sr"),
                                             "--method", "nbsr-dkenet"])
    assert result.exit_code == 1, result.output
    assert "last.pt: refused" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_ssr_train_resume_refuses_planted_checkpoint(planted: tuple[Path, Path]) -> None:
    run, marker = planted
    result = CliRunner().invoke(train_main, ["--shards", str(run), "--stage", "kernel",
                                             "--out", str(run), "--resume"])
    assert result.exit_code == 1, result.output
    assert f"{run / 'kernel' / 'last.pt'}: refused" in result.output
    assert "convert-checkpoint" in result.output and not marker.exists()


def test_eval_ssr_method_refuses_planted_checkpoint(planted: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    run, marker = planted
    image = make_image("a", "a")
    method = parse_method(f"SSR={run}")
    with pytest.raises(InputError, match="last.pt: refused"):
        method.super_resolve(image, make_set(tmp_path / "set", [image]))
    assert not marker.exists()


def test_convert_checkpoint_upgrades_a_trusted_format1_file(tmp_path: Path) -> None:
    # A format-1 file as the old Trainer wrote it: numpy/python RNG states as pickled objects.
    np.random.seed(3)
    random.seed(4)
    old_rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
               "python": random.getstate()}
    weights = {"w": torch.arange(4.0)}
    torch.save({"format": CKPT_FORMAT, "version": 1, "step": 7, "model": weights, "ema": weights,
                "per_rank": [{"rng": old_rng, "data": None}], "world_size": 1,
                "config": {"steps": 7}}, tmp_path / "last.pt")
    with pytest.raises(InputError, match="ssr-train convert-checkpoint"):
        load_checkpoint(tmp_path / "last.pt")
    result = CliRunner().invoke(train_main, ["convert-checkpoint", str(tmp_path)])
    assert result.exit_code == 0 and "converted: " in result.output
    again = CliRunner().invoke(train_main, ["convert-checkpoint", str(tmp_path / "last.pt")])
    assert again.exit_code == 0 and "already format 2, kept" in again.output
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 7 and "config" not in ckpt and torch.equal(ckpt["model"]["w"],
                                                                      weights["w"])
    # The converted RNG states restore the generators exactly as the original objects do.
    set_rng_state(ckpt["per_rank"][0]["rng"])
    got = (np.random.random(), random.random())
    np.random.set_state(old_rng["numpy"])
    random.setstate(old_rng["python"])
    assert got == (np.random.random(), random.random())


def test_convert_checkpoint_refuses_a_planted_file(planted: tuple[Path, Path]) -> None:
    # The conversion of old files must not be a way in either: no unpickling beyond numpy arrays.
    run, marker = planted
    result = CliRunner().invoke(train_main, ["convert-checkpoint", str(run)])
    assert result.exit_code == 1, result.output
    assert "last.pt: refused" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_rng_state_round_trips_through_a_safe_file(tmp_path: Path) -> None:
    np.random.seed(1)
    random.seed(2)
    torch.manual_seed(3)
    torch.save({"rng": rng_state()}, tmp_path / "s.pt")
    want = (np.random.random(), random.random(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert (np.random.random(), random.random(), torch.rand(1).item()) == want
