"""Trainer checkpoints: the file format, safe loading, atomic writes, and the RNG state they carry.

Format 2 (``CKPT_VERSION``): a ``.pt`` file holding only tensors and plain containers (dict,
list, tuple, str, int, float, bool, None), so it loads with ``torch.load(weights_only=True)``,
which refuses anything that would run code while unpickling. Keys: ``format``, ``version``,
``step``, ``world_size``, ``model``, ``ema``, ``optimizer``, ``scheduler``, ``scaler`` (state
dicts) and ``per_rank`` (each rank's RNG states as tensors, see :func:`rng_state`, and its
data-stream position). Settings and run metadata are JSON beside the checkpoint
(``config.json`` from the Trainer, ``run.json`` from ``ssr-train``), never inside it.

A file that needs pickle (a planted one, or a format-1 checkpoint of this project, which
stored numpy RNG arrays and the config) is refused with an ``InputError`` naming it. Format-1
files are converted once by ``ssr-train convert-checkpoint PATH`` (:func:`convert_checkpoint`),
which still runs no code: it loads them with ``weights_only=True`` plus an allowlist of exactly
the numpy pieces format 1 held (``ndarray`` reconstruction and its dtype), so a planted file is
refused there too.

Files are written to a temp name and renamed (``ssr_core.io.atomic_file``); ``last.pt``
is a hard link to the newest one, swapped in by rename (``ssr_core.io.link_atomic``), so it
never names a partial file.
"""

from __future__ import annotations

import json
import pickle
import random
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssr_core.errors import ConfigError, InputError
from ssr_core.io import atomic_file

__all__ = ["CKPT_FORMAT", "CKPT_VERSION", "RESUME_MAY_CHANGE", "config_changes",
           "convert_checkpoint", "load_checkpoint", "refuse_resume_changes",
           "rng_state", "save_atomic", "saved_settings", "seed_all", "set_rng_state"]

CKPT_FORMAT = "ssr-bench-checkpoint"
CKPT_VERSION = 2
CONVERT_HINT = "ssr-train convert-checkpoint"
# What a format-1 checkpoint pickled besides tensors and plain containers: np.random.get_state()'s
# uint32 key array. Written under numpy 1 as numpy.core.*, under numpy 2 as numpy._core.*.
_FORMAT1_GLOBALS: list[Any] = [
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32)),
]
# Settings (dotted keys of config.json / run.json) that a resume may change; nothing else may.
# The time budget and retention change neither the weights nor the batches of a step.
RESUME_MAY_CHANGE: tuple[str, ...] = ("trainer.steps", "trainer.out_dir", "trainer.max_minutes",
                                      "trainer.keep_last")


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save ``obj`` to ``path`` through a temp file and a rename (never a partial file)."""
    with atomic_file(path) as f:
        torch.save(obj, f)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a Trainer checkpoint (``model``, ``ema``, ``step``, ... keys) without running code.

    Raises:
        InputError: The file needs pickle to load (it could run code; nothing of it ran), or
            cannot be read.
        ConfigError: The file is not a Trainer checkpoint of the version this code reads.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(str(path), "refused: loading it needs pickle, which can run code "
                         f"(torch.load weights_only=True said: {first}). ssr-bench checkpoints "
                         "hold only tensors and plain containers. If this is an older ssr-bench "
                         f"checkpoint, convert it once with `{CONVERT_HINT} {path}` (which runs "
                         "no code either)") from None
    except (OSError, RuntimeError, EOFError) as exc:
        raise InputError(str(path), f"unreadable checkpoint: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise ConfigError(f"{path}: not an ssr-bench Trainer checkpoint")
    if ckpt.get("version") != CKPT_VERSION:
        raise ConfigError(f"{path}: checkpoint version {ckpt.get('version')}, this code reads "
                          f"{CKPT_VERSION}" + (f"; convert it once with `{CONVERT_HINT} {path}`"
                                               if ckpt.get("version") == 1 else ""))
    return ckpt


def _numpy_state_tensors(state: tuple[Any, ...]) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = state
    return {"bit_generator": str(name), "keys": torch.from_numpy(np.asarray(keys, np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _python_state_tensors(state: tuple[Any, ...]) -> dict[str, Any]:
    version, internal, gauss_next = state
    # Mersenne Twister words are < 2**32 and the index <= 624: exact in int64.
    return {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next}


def rng_state() -> dict[str, Any]:
    """Return the torch, numpy, python (and CUDA) RNG states as tensors and plain values."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(),
                             "numpy": _numpy_state_tensors(np.random.get_state()),
                             "python": _python_state_tensors(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states returned by :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state((npst["bit_generator"], npst["keys"].cpu().numpy().astype(np.uint32),
                         npst["pos"], npst["has_gauss"], npst["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()),
                     py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_all(seed: int) -> None:
    """Seed torch, numpy and python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def convert_checkpoint(path: str | Path) -> bool:
    """Rewrite a format-1 checkpoint of this project as format 2, in place, running no code.

    Returns False for a file that already loads safely as format 2 (left untouched), True for
    a converted one. Format 1 differs only by pickled numpy RNG arrays and an embedded config,
    so it is read with ``weights_only=True`` and an allowlist of the numpy array reconstruction
    (:data:`_FORMAT1_GLOBALS`); anything else a file asks for (a planted ``__reduce__``) is
    refused by torch's restricted unpickler. The RNG states become tensors, the config is
    dropped (it is in ``config.json`` beside the file) and the result is written atomically.

    Raises:
        InputError: The file needs more than the allowlist (not a format-1 file of ours).
        ConfigError: Not a Trainer checkpoint, or of an unknown version.
    """
    path = Path(path)
    try:
        load_checkpoint(path)
        return False  # already format 2
    except (InputError, ConfigError):
        pass
    try:
        with torch.serialization.safe_globals(_FORMAT1_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(str(path), "refused: it needs more than a format-1 ssr-bench checkpoint "
                         f"holds, so it was not unpickled ({first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise ConfigError(f"{path}: not an ssr-bench Trainer checkpoint")
    if ckpt.get("version") != 1:
        raise ConfigError(f"{path}: checkpoint version {ckpt.get('version')} is unknown")
    ckpt.pop("config", None)
    for rank in ckpt.get("per_rank", []):
        rng = rank["rng"]
        if isinstance(rng.get("numpy"), tuple):
            rng["numpy"] = _numpy_state_tensors(rng["numpy"])
        if isinstance(rng.get("python"), tuple):
            rng["python"] = _python_state_tensors(rng["python"])
    ckpt["version"] = CKPT_VERSION
    save_atomic(ckpt, path)
    return True


def _plain(value: Any) -> Any:
    """JSON's view of a value (tuples become lists), so saved and live configs compare equal."""
    return json.loads(json.dumps(value))


def config_changes(saved: Mapping[str, Any], now: Mapping[str, Any],
                   ignore: Collection[str] = (), prefix: str = "") -> list[str]:
    """Return ``"key: saved -> now"`` for each differing leaf (dotted keys), skipping ``ignore``.

    Keys that ``saved`` lacks (written by an older version) are not compared.
    """
    changes: list[str] = []
    for key in sorted(set(saved) | set(now)):
        name = f"{prefix}{key}"
        if name in ignore or key not in saved:
            continue
        old, new = _plain(saved.get(key)), _plain(now.get(key))
        if isinstance(old, dict) and isinstance(new, dict):
            changes += config_changes(old, new, ignore, f"{name}.")
        elif old != new:
            changes.append(f"{name}: {old!r} -> {new!r}")
    return changes


def refuse_resume_changes(what: str | Path, saved: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Refuse to resume ``what`` when ``now`` differs from ``saved`` but in RESUME_MAY_CHANGE.

    Raises:
        ConfigError: Naming every differing key with its saved and new value.
    """
    changes = config_changes(saved, now, ignore=RESUME_MAY_CHANGE)
    if changes:
        raise ConfigError(f"cannot resume {what}: settings differ from the run's (only the step "
                          "count --steps, --max-minutes and --keep-last may change): "
                          f"{'; '.join(changes)}. Resume with the run's settings, or train "
                          "into a new --out")


def saved_settings(path: str | Path) -> dict[str, Any]:
    """Return the ``config.json`` beside checkpoint ``path`` (the settings it was trained with).

    Raises:
        ConfigError: It is missing or unreadable, so a resume cannot be checked.
    """
    saved_path = Path(path).parent / "config.json"
    try:
        return dict(json.loads(saved_path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{saved_path}: cannot read the settings of the checkpointed run "
                          f"({exc}), so the resume cannot be checked") from None
