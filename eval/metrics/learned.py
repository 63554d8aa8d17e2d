"""LPIPS, MUSIQ and CLIP-IQA as pyiqa computes them by default, offline (DESIGN.md section 7).

The diffusion-SR papers (SSR's Table 1 among them) report pyiqa's defaults, so these metrics run
pyiqa itself with its default configs: ``lpips`` (AlexNet, v0.1), ``musiq`` (trained on
KonIQ-10k) and ``clipiqa`` (CLIP RN50, ten antonym prompt pairs). pyiqa is an optional extra
(``pip install "ssr-bench[metrics]"``, PolyForm Noncommercial licence) and is imported only
when a model is built, never when this module is imported.

Choices made where pyiqa would act on its own:

- **No downloads.** Every weight file must already be on disk, see :mod:`eval.metrics.weights`
  for the list, the folders and the URLs. ``check()`` finds a missing or wrong file before any
  model is built and raises one ``MissingAssetError`` that says how to fetch it.
- **Explicit paths, not pyiqa's cache.** pyiqa freezes its cache folder
  (``$TORCH_HOME/hub/pyiqa``) when ``pyiqa.utils.download_util`` is first imported, so a
  ``TORCH_HOME`` set later would be ignored. We pass each verified file's path instead
  (``pretrained_model_path`` for LPIPS and MUSIQ, ``backbone=<path of RN50.pt>`` for CLIP-IQA,
  which CLIP's ``load`` accepts in place of the name "RN50"), so pyiqa never looks at its cache.
  Only torchvision's AlexNet (the LPIPS trunk) is found through ``torch.hub.get_dir()``, which
  torch resolves at each call: while a model is built, the hub dir is set to the one the files
  were checked in and restored afterwards (not thread-safe with other ``torch.hub`` users).
- **pkg_resources.** pyiqa's CLIP-IQA tokenizes with OpenAI's ``clip`` package, whose
  ``clip/clip.py`` does ``from pkg_resources import packaging`` and calls only
  ``packaging.version.parse`` (two torch version checks). Recent setuptools (82+) no longer ship
  ``pkg_resources``; when it is absent, :func:`import_clip` puts a one-attribute stand-in
  (``packaging``, the real ``packaging`` package) in ``sys.modules`` while ``clip`` is imported
  and removes it afterwards, so no other code sees a fake ``pkg_resources``.
- **Quiet.** pyiqa prints "Loading pretrained model ..." to stdout; that is sent to the debug
  log instead, so the CLI's stdout stays machine-readable.

Inputs follow :func:`eval.metrics.color.to_float255` (uint8 ``(H, W, 3)`` RGB, float numpy
``(H, W, 3)`` or torch ``(3, H, W)`` / ``(1, 3, H, W)`` in [0, 1]) and reach pyiqa as float32
``(1, 3, H, W)`` RGB in [0, 1] (uint8 divided by 255, as pyiqa's own image reader does).
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import logging
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eval.metrics.color import to_float255
from eval.metrics.weights import VerifiedFile, quiet_jit_load, verify_files
from ssr_core.errors import ConfigError

log = logging.getLogger(__name__)

EXTRA_HINT = 'pip install "ssr-bench[metrics]"'
INPUT_CONVENTION = "RGB float32 (1, 3, H, W) in [0, 1]; uint8 images divided by 255"


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _missing_pyiqa_message(what: str) -> str:
    return (f"{what}: LPIPS, MUSIQ and CLIP-IQA need pyiqa (PolyForm Noncommercial licence): "
            f"{EXTRA_HINT}. pyiqa needs torchvision, whose build must match torch "
            f"{_torch_version()}: install the matching pair first (see pytorch.org)")


def require_pyiqa() -> None:
    """Raise ImportError naming the fix unless pyiqa and torchvision are installed (imports nothing)."""
    absent = [m for m in ("pyiqa", "torchvision") if importlib.util.find_spec(m) is None]
    if absent:
        raise ImportError(_missing_pyiqa_message(f"{' and '.join(absent)} not installed"))


def import_pyiqa() -> types.ModuleType:
    """Import and return pyiqa; any import failure becomes an ImportError that names the fix.

    A torchvision built for another torch fails at import with a RuntimeError or
    AttributeError (e.g. "operator torchvision::nms does not exist"), hence the broad catch.
    """
    require_pyiqa()
    try:
        return importlib.import_module("pyiqa")
    except Exception as exc:  # ImportError, or RuntimeError/AttributeError from a torch mismatch
        raise ImportError(_missing_pyiqa_message(f"cannot import pyiqa ({type(exc).__name__}: "
                                                 f"{exc})")) from exc


def import_clip() -> types.ModuleType:
    """Import OpenAI's ``clip`` package, with a temporary ``pkg_resources`` stand-in if needed.

    ``clip`` uses ``pkg_resources`` only as ``pkg_resources.packaging.version.parse``. When
    ``pkg_resources`` cannot be imported (setuptools 82+, or ``sys.modules["pkg_resources"]``
    is None), a module holding just ``packaging`` is placed in ``sys.modules`` for the import
    and the previous entry (or its absence) is restored afterwards.
    """
    if sys.modules.get("clip") is not None:
        return sys.modules["clip"]
    if importlib.util.find_spec("pkg_resources") is not None:
        with warnings.catch_warnings():  # as pyiqa's clip_imports: the real one warns on import
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated as an API")
            return importlib.import_module("clip")
    try:
        import packaging.version  # noqa: F401 - makes packaging.version an attribute of packaging
    except ImportError as exc:
        raise ImportError("CLIP-IQA's clip package needs pkg_resources (setuptools < 82) or the "
                          "packaging package: pip install packaging") from exc

    shim = types.ModuleType("pkg_resources", "ssr-bench stand-in: only 'packaging', for clip")
    shim.packaging = sys.modules["packaging"]  # type: ignore[attr-defined]
    absent = object()
    before = sys.modules.get("pkg_resources", absent)
    sys.modules["pkg_resources"] = shim
    try:
        return importlib.import_module("clip")
    finally:
        if before is absent:
            sys.modules.pop("pkg_resources", None)
        else:
            sys.modules["pkg_resources"] = before  # type: ignore[assignment]


@contextlib.contextmanager
def _torch_hub_dir(hub: Path) -> Iterator[None]:
    """Point ``torch.hub.get_dir()`` at ``hub`` for the block, then restore the previous setting.

    torch has no public way to go back to "not set" (``$TORCH_HOME`` decides then), so the
    private ``torch.hub._hub_dir`` is saved and restored as it was.
    """
    hub_mod = importlib.import_module("torch.hub")
    before = getattr(hub_mod, "_hub_dir", None)
    hub_mod.set_dir(str(hub))
    try:
        yield
    finally:
        hub_mod._hub_dir = before


def to_batch(img: Any, device: Any) -> Any:
    """Return an image as a float32 ``(1, 3, H, W)`` RGB tensor in [0, 1] on ``device``.

    Args:
        img: uint8 ``(H, W, 3)`` RGB, or float in [0, 1] (numpy ``(H, W, 3)``, torch
            ``(3, H, W)`` or ``(1, 3, H, W)``); see :func:`eval.metrics.color.to_float255`.
        device: a ``torch.device``.

    Raises:
        ConfigError: another type, dtype or shape, or float values outside [0, 1].
    """
    torch = importlib.import_module("torch")
    arr = to_float255(img)  # checks type, shape and range; float64 on [0, 255], exact for float32
    if isinstance(img, np.ndarray) and img.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float32).div_(255.0)  # as ToTensor
    else:
        t = torch.from_numpy(arr / 255.0).to(torch.float32)
    return t.permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


class _PyiqaMetric(abc.ABC):
    """A pyiqa metric with verified local weights: ``check()``, ``__call__``, ``conventions()``.

    The model is built on the first call (once per instance), in eval mode, and run without
    gradients on ``device``.
    """

    name: ClassVar[str]  # registered name == pyiqa's metric name
    pyiqa_opts: ClassVar[dict[str, Any]]  # pyiqa's DEFAULT_CONFIGS[name]["metric_opts"]
    full_reference: ClassVar[bool] = False

    def __init__(self, spec: Any, device: str = "cpu", weights_dir: str | None = None, **_: Any) -> None:
        torch = importlib.import_module("torch")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"device must be a torch device such as 'cpu' or 'cuda:0', got "
                              f"{device!r}") from exc
        self.spec = spec
        self.weights_dir = None if weights_dir is None else str(weights_dir)
        self._files: list[VerifiedFile] | None = None
        self._model: Any = None

    def check(self) -> None:
        """Raise unless this metric can run: pyiqa installed, every weight file present and right.

        Raises:
            ImportError: pyiqa or torchvision is not installed (the message names the extra).
            MissingAssetError: a weight file is missing or is not the expected one.
        """
        self._verify()

    def _verify(self) -> list[VerifiedFile]:
        require_pyiqa()
        files = verify_files(self.name, self.weights_dir)
        for f in files:
            if not f.published:
                log.warning("%s: %s is not the published file (sha256 %s); its keys and shapes fit, "
                            "so it is used", self.name, f.path, f.sha256[:12])
        self._files = files
        return files

    def _verified(self) -> list[VerifiedFile]:
        return self._files if self._files is not None else self._verify()

    def conventions(self) -> dict[str, Any]:
        """Return what exactly is computed: pyiqa version and config, and the weights' sha256."""
        files = self._verified()
        return {
            "implementation": "pyiqa (PolyForm Noncommercial)",
            "pyiqa_version": importlib.metadata.version("pyiqa"),
            "pyiqa_metric": self.name,
            "pyiqa_metric_opts": dict(self.pyiqa_opts),
            "input": INPUT_CONVENTION,
            "weights": {f.file.name: {"sha256": f.sha256, "published": f.published, "url": f.file.url}
                        for f in files},
        }

    def __call__(self, pred: Any, gt: Any = None) -> float:
        """Score ``pred`` (and ``gt`` for full-reference metrics); see the module docstring.

        Raises:
            ConfigError: bad inputs, a missing ``gt``, or images of different sizes.
            MissingAssetError, ImportError: as :meth:`check` (run on first use).
        """
        torch = importlib.import_module("torch")
        x = to_batch(pred, self.device)
        args = [x]
        if self.full_reference:
            if gt is None:
                raise ConfigError(f"{self.name} is a full-reference metric: pass gt")
            y = to_batch(gt, self.device)
            if y.shape != x.shape:
                raise ConfigError(f"gt and pred differ in size: gt {tuple(y.shape[2:])} (H, W), "
                                  f"pred {tuple(x.shape[2:])}")
            args.append(y)
        model = self._load()
        with torch.no_grad():
            out = model(*args)
        if out.numel() != 1:
            raise RuntimeError(f"pyiqa {self.name} returned shape {tuple(out.shape)}, expected one value")
        return float(out.reshape(-1)[0])

    def _load(self) -> Any:
        """Return the pyiqa model, building it on first use from the verified files."""
        if self._model is not None:
            return self._model
        files = self._verified()
        paths = {f.file.name: str(f.path) for f in files}
        hub = files[0].path.parents[1]  # <hub>/<subdir>/<name>: the hub dir the check used
        pyiqa = self._import()
        captured = io.StringIO()
        with _torch_hub_dir(hub), contextlib.redirect_stdout(captured), quiet_jit_load():
            model = pyiqa.create_metric(self.name, device=self.device, **self._overrides(paths))
        if captured.getvalue().strip():
            log.debug("pyiqa: %s", captured.getvalue().strip())
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._model = model
        return model

    def _import(self) -> types.ModuleType:
        return import_pyiqa()

    @abc.abstractmethod
    def _overrides(self, paths: dict[str, str]) -> dict[str, Any]:
        """Return the create_metric options that point pyiqa at the local files."""


class LPIPS(_PyiqaMetric):
    """LPIPS v0.1 with AlexNet (pyiqa "lpips"); lower is better, 0 for identical images."""

    name = "lpips"
    pyiqa_opts: ClassVar[dict[str, Any]] = {"type": "LPIPS", "net": "alex", "version": "0.1"}
    full_reference = True

    def _overrides(self, paths: dict[str, str]) -> dict[str, Any]:
        # The trunk (alexnet-owt-7be5be79.pth) is found by torchvision in the hub dir.
        return {"pretrained_model_path": paths["LPIPS_v0.1_alex-df73285e.pth"]}


class MUSIQ(_PyiqaMetric):
    """MUSIQ trained on KonIQ-10k (pyiqa "musiq"); higher is better, about 0-100."""

    name = "musiq"
    pyiqa_opts: ClassVar[dict[str, Any]] = {"type": "MUSIQ", "pretrained": "koniq10k"}

    def _overrides(self, paths: dict[str, str]) -> dict[str, Any]:
        # With a path, MUSIQ keeps num_class=1, the KonIQ head (pretrained="koniq10k" stays set).
        return {"pretrained_model_path": paths["musiq_koniq_ckpt-e95806b9.pth"]}


class CLIPIQA(_PyiqaMetric):
    """CLIP-IQA with CLIP RN50 and pyiqa's ten prompt pairs (pyiqa "clipiqa"); higher is better, 0-1."""

    name = "clipiqa"
    pyiqa_opts: ClassVar[dict[str, Any]] = {"type": "CLIPIQA"}

    def _import(self) -> types.ModuleType:
        import_clip()  # before pyiqa's clip_imports does "import clip" itself
        return import_pyiqa()

    def _overrides(self, paths: dict[str, str]) -> dict[str, Any]:
        # CLIP's load() takes a file path where it would take "RN50"; model_type stays "clipiqa".
        return {"backbone": paths["RN50.pt"]}
