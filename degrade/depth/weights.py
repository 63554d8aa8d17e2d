"""Where learned depth weights live: find them locally without importing torch or transformers.

A checkpoint is a folder holding ``config.json``, ``preprocessor_config.json`` and the weights
(``model.safetensors``, ``pytorch_model.bin`` or a sharded index of either), as written by
``save_pretrained`` or ``hf download``. Places looked in, in this order:

1. ``weights_dir`` (the ``--depth-weights DIR`` option; default ``$SSR_BENCH_DEPTH_WEIGHTS``):
   either the checkpoint folder itself (it holds ``config.json``), or a folder holding
   ``<org>--<name>/`` (e.g. ``Intel--dpt-hybrid-midas/``) or ``<name>/`` (``dpt-hybrid-midas/``).
2. The Hugging Face cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``, layout ``models--<org>--<name>/snapshots/<commit>/`` with the
   commit read from ``refs/main``.

Nothing here downloads anything. The commit hash of the checkpoint is recorded when it is known
(HF cache snapshot, or the ``.cache/huggingface/download/*.metadata`` files that ``hf download
--local-dir`` leaves behind); otherwise the sha256 of the weight files identifies it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ssr_core.errors import ConfigError, MissingAssetError

WEIGHTS_ENV = "SSR_BENCH_DEPTH_WEIGHTS"  # default for weights_dir
TRANSFORMERS_MIN = (4, 45)
EXTRA_HINT = 'pip install "ssr-bench[depth]" (transformers>=4.45, huggingface_hub, safetensors)'

DEFAULT_MODELS: dict[str, str] = {
    "midas": "Intel/dpt-hybrid-midas",  # MiDaS v3.0 DPT-Hybrid
    "depth-anything": "depth-anything/Depth-Anything-V2-Small-hf",
}
# Short names a user may type instead of the full model id.
MODEL_ALIASES: dict[str, dict[str, str]] = {
    "midas": {"dpt-hybrid": "Intel/dpt-hybrid-midas", "dpt-large": "Intel/dpt-large"},
    "depth-anything": {
        "small": "depth-anything/Depth-Anything-V2-Small-hf",
        "base": "depth-anything/Depth-Anything-V2-Base-hf",
        "large": "depth-anything/Depth-Anything-V2-Large-hf",
    },
}
# config.json "model_type" each provider accepts: any DPT checkpoint for midas.
MODEL_TYPES: dict[str, tuple[str, ...]] = {"midas": ("dpt",), "depth-anything": ("depth_anything",)}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
NEEDED_FILES = ("config.json", "preprocessor_config.json")


@dataclass(frozen=True)
class WeightsLocation:
    """A checkpoint found on disk.

    Attributes:
        model_id: hub id, e.g. "Intel/dpt-hybrid-midas".
        folder: the checkpoint folder (holds config.json).
        source: "weights-dir" or "hf-cache".
        revision: the hub commit hash when known, else None.
    """

    model_id: str
    folder: Path
    source: str
    revision: str | None

    def weights_sha256(self) -> str:
        """Return the sha256 (hex) over the weight files' names and bytes (reads them: ~1 s/GB)."""
        digest = hashlib.sha256()
        for name in WEIGHT_FILES:
            path = self.folder / name
            if path.is_file():
                digest.update(name.encode() + b"\0")
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 22), b""):
                        digest.update(block)
        return digest.hexdigest()


def resolve_model_id(provider: str, model: str | None) -> str:
    """Return the hub id for a provider's model argument: None -> default, alias -> id, id as is.

    Example:
        >>> resolve_model_id("depth-anything", "base")
        'depth-anything/Depth-Anything-V2-Base-hf'
    """
    if provider not in DEFAULT_MODELS:
        raise ConfigError(f"{provider!r} is not a learned depth provider; choose one of "
                          f"{list(DEFAULT_MODELS)}")
    if model is None:
        return DEFAULT_MODELS[provider]
    aliases = MODEL_ALIASES[provider]
    if model in aliases:
        return aliases[model]
    if model.count("/") != 1 or not all(model.split("/")):
        raise ConfigError(f"depth model {model!r} for {provider!r}: give a hub id 'org/name' "
                          f"or one of {list(aliases)}")
    return model


def default_weights_dir() -> str | None:
    """Return ``$SSR_BENCH_DEPTH_WEIGHTS`` if set and non-empty, else None."""
    return os.environ.get(WEIGHTS_ENV) or None


def hf_hub_cache() -> Path:
    """Return the Hugging Face hub cache folder, read from the environment at call time."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hf_offline() -> bool:
    """Return True if ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def is_complete(folder: Path) -> bool:
    """Return True if ``folder`` holds config.json, preprocessor_config.json and a weight file."""
    return (all((folder / f).is_file() for f in NEEDED_FILES)
            and any((folder / f).is_file() for f in WEIGHT_FILES))


def _local_dir_revision(folder: Path) -> str | None:
    # `hf download --local-dir` writes .cache/huggingface/download/<file>.metadata whose first
    # line is the commit hash.
    meta = folder / ".cache" / "huggingface" / "download" / "config.json.metadata"
    try:
        first = meta.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return first if len(first) == 40 and all(c in "0123456789abcdef" for c in first) else None


def _candidates(model_id: str, weights_dir: str | None) -> list[tuple[Path, str, str | None]]:
    """Return (folder, source, revision) in lookup order; folders need not exist."""
    org, name = model_id.split("/")
    out: list[tuple[Path, str, str | None]] = []
    if weights_dir:
        root = Path(weights_dir).expanduser()
        for folder in (root, root / f"{org}--{name}", root / name):
            out.append((folder, "weights-dir", None))
    repo = hf_hub_cache() / f"models--{org}--{name}"
    try:
        commit = (repo / "refs" / "main").read_text().strip()
    except OSError:
        commit = None
    out.append((repo / "snapshots" / (commit or "<refs/main>"), "hf-cache", commit))
    return out


def find_weights(model_id: str, weights_dir: str | None = None) -> tuple[WeightsLocation | None,
                                                                         list[str]]:
    """Look for a checkpoint locally; return (location or None, the places looked in).

    ``weights_dir`` None means ``$SSR_BENCH_DEPTH_WEIGHTS`` (if set).

    A ``weights_dir`` that is itself a checkpoint is taken only if its ``config.json`` names a
    model type; the caller checks that the type fits the provider.
    """
    if weights_dir is None:
        weights_dir = default_weights_dir()
    looked: list[str] = []
    for folder, source, revision in _candidates(model_id, weights_dir):
        looked.append(str(folder))
        if is_complete(folder):
            if source == "weights-dir":
                revision = _local_dir_revision(folder)
            return WeightsLocation(model_id, folder, source, revision), looked
    return None, looked


def read_config(folder: Path) -> dict:
    """Return the checkpoint's config.json as a dict ({} if unreadable)."""
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def check_model_type(provider: str, location: WeightsLocation) -> None:
    """Raise ConfigError if the checkpoint's model type or depth type does not fit the provider."""
    config = read_config(location.folder)
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES[provider]:
        raise ConfigError(f"depth provider {provider!r} expects a {MODEL_TYPES[provider]} "
                          f"checkpoint, but {location.folder / 'config.json'} has model_type "
                          f"{model_type!r}")
    if config.get("depth_estimation_type", "relative") != "relative":
        raise ConfigError(f"{location.model_id} predicts metric depth "
                          f"(depth_estimation_type={config['depth_estimation_type']!r}); only "
                          "relative (inverse-depth) checkpoints are supported")


def require_transformers() -> None:
    """Raise ConfigError naming the install command if transformers (>= 4.45) is missing."""
    if importlib.util.find_spec("transformers") is None:
        raise ConfigError(f"learned depth needs the optional extra: {EXTRA_HINT}")
    from importlib.metadata import version

    parts = version("transformers").split(".")
    found = tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts[:2])
    if found < TRANSFORMERS_MIN:
        raise ConfigError(f"learned depth needs transformers>=4.45, found {version('transformers')}; "
                          f"{EXTRA_HINT}")


def missing_files(folder: Path) -> list[str]:
    """Return the checkpoint files absent from ``folder`` (a weight file counts as one, named
    ``model.safetensors``); all of them when the folder does not exist."""
    absent = [f for f in NEEDED_FILES if not (folder / f).is_file()]
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        absent.append(WEIGHT_FILES[0])
    return absent


def missing_weights_error(model_id: str, looked: list[str], weights_dir: str | None) -> MissingAssetError:
    """Build the error for absent weights: model id, every place looked in, fetch command.

    A folder looked in that holds part of a checkpoint is named with only its missing files
    (an interrupted copy), instead of calling every file missing.
    """
    org, name = model_id.split("/")
    weights_dir = weights_dir if weights_dir is not None else default_weights_dir()
    target = Path(weights_dir).expanduser() if weights_dir else Path("DIR")
    dest = target / f"{org}--{name}"
    partial = next((Path(p) for p in looked if Path(p).is_dir()
                    and len(missing_files(Path(p))) < len(NEEDED_FILES) + 1), None)
    absent = missing_files(partial if partial is not None else dest)
    hint = (f"looked in: {'; '.join(looked)}. On a connected machine run "
            f"`hf download {model_id} --local-dir {dest}` (older huggingface_hub: "
            f"`huggingface-cli download {model_id} --local-dir {dest}`), copy {target} here and "
            f"pass `--depth-weights {target}` (or set {WEIGHTS_ENV}={target}); or let the "
            "command fetch it into the Hugging Face cache: --allow-download (degrade build, "
            "ssr-eval run, ssr-infer)")
    if partial is not None:
        present = [f for f in (*NEEDED_FILES, WEIGHT_FILES[0]) if f not in absent]
        hint = f"{partial} holds {', '.join(present)} already; " + hint
    if hf_offline():
        hint += "; HF_HUB_OFFLINE is set, so nothing is downloaded"
    return MissingAssetError(f"depth model {model_id} ({', '.join(absent)})",
                             partial if partial is not None else dest,
                             url=f"https://huggingface.co/{model_id}", hint=hint)
