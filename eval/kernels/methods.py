"""Kernel estimators to score: a DKENet run, folders of estimates, and built-in baselines.

``--method NAME=SOURCE`` (:func:`parse_kernel_method`), SOURCE one of:

- a DKENet run: an ``ssr-train`` run folder holding ``kernel/`` or the ``kernel`` stage folder
  itself (``run.json``); ``best.pt`` is loaded when the stage has one, else ``last.pt`` (EMA
  weights). It gets the set's LR and nearness. A param head gives Gaussian parameters; a kernel
  head gives taps at the run's (K, delta), converted to the set's (``eval.kernels.estimates``).
- a folder of ``{key}.npy`` files (numpy format, loaded without pickle): per image either
  (3, h, w) Gaussian parameters, (K*K, h, w) or (h, w, K, K) taps, or one (K, K) invariant kernel
  (KernelGAN, DAN, DCLS). An optional ``conventions.json`` says how they were made:
  ``{"sigma": "std" | "variance", "delta": number | "centered" | "topleft"}``; the defaults are
  the set's own (standard deviations, the set's delta).
- a built-in baseline (:data:`BASELINES`): ``true`` (the set's own field: error 0, kernel PSNR
  +inf, a sanity row), ``oracle`` (per image, the single Gaussian closest to the true field in
  tap MSE: what any spatially invariant estimator can at best reach), ``mean`` (one kernel for
  every pixel of every image: the mean of the true taps over the pixels of a training shard set
  given as ``mean:SHARDS``, or of the test set itself with bare ``mean``, which the provenance
  and the row's label then say).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from ssr_core.errors import ConfigError, InputError
from ssr_core.registry import Registry

from .estimates import (
    Estimate,
    Geometry,
    invariant_estimate,
    mean_kernel,
    params_estimate,
    taps_estimate,
)

KernelMethodKind = Literal["dkenet", "folder", "true", "oracle", "mean"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


#: The built-in baselines (what the user types after ``NAME=``; ``--help`` and the table spec's
#: ``builtin:`` read it): name -> factory ``(row name, argument after ':') -> method``; the
#: metadata is the line of help. Registered below, once the classes exist.
BASELINES: Registry[Callable[[str, str], KernelMethod], str] = Registry("baseline")


@dataclass(frozen=True, eq=False)
class KernelImage:
    """What an estimator sees of one test image (uint8 LR/HR, float nearness, the truth).

    The truth is ``kernel_field`` (3, h, w) (s1, s2, theta) of a shard set, or, on a released
    set (DIV2KRK), ``true_kernel``: its one float64 (K, K) kernel on the set's grid, with
    ``kernel_field`` None.
    """

    key: str
    lr: np.ndarray
    hr: np.ndarray
    nearness: np.ndarray | None
    kernel_field: np.ndarray | None
    true_kernel: np.ndarray | None = None


class KernelMethod(Protocol):
    """An estimator the kernel track scores."""

    name: str
    kind: KernelMethodKind

    def fingerprint(self) -> str:
        """Return a sha256 hex that changes whenever an estimate can change."""
        ...

    def describe(self) -> dict[str, Any]:
        """Return JSON-able provenance (kind, path, weights sha256, conventions)."""
        ...

    def prepare(self, fields: list[np.ndarray], geometry: Geometry) -> None:
        """See the test set's truths once before estimating (the ``mean`` baseline): (3, h, w)
        fields, or (K, K) kernels of a released set."""
        ...

    def missing(self, keys: list[str]) -> list[str]:
        """Return the keys it has no estimate for (a folder lacking files)."""
        ...

    def estimate(self, image: KernelImage, geometry: Geometry) -> Estimate:
        """Return the image's estimate on the set's grid."""
        ...


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sha256_of(path: Path) -> str:
    """Return the sha256 hex of a file's bytes."""
    from ssr_core.io import sha256_file

    return sha256_file(path)


class _Base:
    kind: KernelMethodKind

    def __init__(self, name: str) -> None:
        self.name = name

    def prepare(self, fields: list[np.ndarray], geometry: Geometry) -> None:
        return None

    def missing(self, keys: list[str]) -> list[str]:
        return []

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def fingerprint(self) -> str:
        return _digest({"describe": self.describe(), "version": 1})


class TrueField(_Base):
    """The set's own kernel field (a sanity row)."""

    kind: KernelMethodKind = "true"

    def estimate(self, image: KernelImage, geometry: Geometry) -> Estimate:
        if image.kernel_field is None:
            return Estimate("invariant", _true_kernel(image), ("the released kernel as it is",))
        return Estimate("params", image.kernel_field.astype(np.float64))


def _true_kernel(image: KernelImage) -> np.ndarray:
    if image.true_kernel is None:
        raise ConfigError(f"{image.key}: the image carries neither a true field nor a true kernel")
    return image.true_kernel


class InvariantOracle(_Base):
    """Per image, the Gaussian (s1, s2, theta) minimizing the tap MSE to the true field.

    ``sum_ij |k - k_ij|^2 = N |k - m|^2 + const`` with ``m`` the image's mean true kernel, so the
    fit is to ``m`` alone: L-BFGS in float64 over (log s1, log s2, theta) from three starts (the
    mean field's moments, and that shape turned by +-pi/4); the best wins. On a released set,
    ``m`` is the image's true kernel and the starts come from its second moments.
    """

    kind: KernelMethodKind = "oracle"

    def estimate(self, image: KernelImage, geometry: Geometry) -> Estimate:
        from degrade.ops.kernels import gaussian_kernels

        if image.kernel_field is None:
            m = torch.from_numpy(np.asarray(_true_kernel(image), np.float64))
            start = moment_gaussian(m.numpy(), geometry)
        else:
            m = torch.from_numpy(mean_kernel([image.kernel_field], geometry))
            start = field_start(image.kernel_field)
        p = fit_gaussian(m, start, geometry)
        kernel = gaussian_kernels(torch.tensor(p, dtype=torch.float64), geometry.kernel_size,
                                  geometry.delta).numpy()
        return Estimate("invariant", kernel, ("one Gaussian per image fitted to the true kernels",),
                        gaussian=p, lr_shape=tuple(image.lr.shape[:2]))


def field_start(field: np.ndarray) -> tuple[float, float, float]:
    """Return the median canonical (s1, s2, theta) of a (3, h, w) field: the fit's start."""
    f = field.reshape(3, -1).astype(np.float64)
    return (float(np.median(np.maximum(f[0], f[1]))), float(np.median(np.minimum(f[0], f[1]))),
            float(np.median(f[2])))


def moment_gaussian(kernel: np.ndarray, geometry: Geometry) -> tuple[float, float, float]:
    """Return (s1, s2, theta) of the Gaussian with a (K, K) kernel's second central moments.

    theta is the major axis in (dx, dy) = (column, row) offsets (DESIGN.md section 3), in
    [0, pi); standard deviations are floored at 0.1 px so that a start is always valid.
    """
    k = np.asarray(kernel, np.float64)
    k = k / k.sum()
    d = np.arange(geometry.kernel_size, dtype=np.float64)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    my, mx = float((k * dy).sum()), float((k * dx).sum())
    cxx = float((k * (dx - mx) ** 2).sum())
    cyy = float((k * (dy - my) ** 2).sum())
    cxy = float((k * (dx - mx) * (dy - my)).sum())
    values, vectors = np.linalg.eigh(np.array([[cxx, cxy], [cxy, cyy]]))
    major = vectors[:, 1]  # eigh sorts ascending: the last is the major axis (dx, dy)
    theta = math.atan2(major[1], major[0]) % math.pi
    s1, s2 = (math.sqrt(max(v, 0.01)) for v in values[::-1])
    return s1, s2, theta


def fit_gaussian(target: torch.Tensor, start: tuple[float, float, float], geometry: Geometry
                 ) -> tuple[float, float, float]:
    """Return (s1, s2, theta) of the Gaussian closest to ``target`` (K, K) taps in L2.

    ``start``: (s1, s2, theta) to begin from; it is also tried turned by +-pi/4.
    """
    from degrade.ops.kernels import gaussian_kernels

    s1, s2, th = start

    def error(x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([x[0].exp(), x[1].exp(), x[2]])
        return ((gaussian_kernels(p, geometry.kernel_size, geometry.delta) - target) ** 2).sum()

    best: tuple[float, tuple[float, float, float]] = (math.inf, (s1, s2, th))
    for turn in (0.0, math.pi / 4, -math.pi / 4):
        x = torch.tensor([math.log(s1), math.log(s2), th + turn], dtype=torch.float64,
                         requires_grad=True)
        _lbfgs(x, error)
        x = x.detach()
        loss = float(error(x))
        if loss < best[0]:
            best = (loss, (math.exp(float(x[0])), math.exp(float(x[1])), float(x[2]) % math.pi))
    return best[1]


def _lbfgs(x: torch.Tensor, error: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Minimize ``error(x)`` over ``x`` in place (L-BFGS, strong Wolfe line search)."""
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=100, tolerance_grad=1e-14,
                            tolerance_change=1e-16, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = error(x)
        loss.backward()
        return loss

    opt.step(closure)


class MeanField(_Base):
    """One mean kernel (K, K) for every pixel: of a training shard set, or of the test set."""

    kind: KernelMethodKind = "mean"

    def __init__(self, name: str, shards: Path | None = None) -> None:
        super().__init__(name)
        self.shards = shards
        self.kernel: np.ndarray | None = None
        self._source = "the test set itself (no training shards given)" if shards is None else \
            f"training shard set {shards}"
        self.source_label = "of the test set" if shards is None else f"of {shards.name}"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "averaged_over": self._source}
        if self.shards is not None:
            from ssr_datasets.manifest import read_manifest

            out["shards_config_hash"] = read_manifest(self.shards).get("config_hash")
        return out

    def prepare(self, fields: list[np.ndarray], geometry: Geometry) -> None:
        if self.shards is None:
            kernels = [f for f in fields if f.ndim == 2]  # a released set's true kernels
            if kernels and len(kernels) != len(fields):
                raise ConfigError(f"{self.name}: a test set mixes true fields and true kernels")
            self.kernel = (np.mean(np.stack(kernels), 0) if kernels
                           else mean_kernel(fields, geometry))
            return
        from ssr_datasets.manifest import manifest_shards, read_manifest
        from ssr_datasets.shards import iter_shard

        manifest = read_manifest(self.shards)
        train = [s.kernel_field for info in manifest_shards(self.shards, manifest)
                 for s in iter_shard(self.shards / info.name)]
        self.kernel = mean_kernel(train, geometry)

    def estimate(self, image: KernelImage, geometry: Geometry) -> Estimate:
        if self.kernel is None:
            raise ConfigError(f"{self.name}: prepare() was not called")
        return Estimate("invariant", self.kernel, (f"mean true kernel of {self._source}",))


class DKENetRun(_Base):
    """A trained DKENet (``ssr-train`` kernel stage) run on the set's LR and nearness."""

    kind: KernelMethodKind = "dkenet"

    def __init__(self, name: str, stage: Path, device: str = "cpu") -> None:
        from ssr_models.run import read_run

        super().__init__(name)
        self.stage = stage
        self.run = read_run(stage)
        if self.run.get("stage") != "kernel":
            raise ConfigError(f"--method {name}={stage}: stage {self.run.get('stage')!r} is not a "
                              "kernel estimator (give the run's kernel/ folder)")
        from ssr_models.run import stage_checkpoint

        self.checkpoint = stage_checkpoint(stage, "auto")  # best.pt when present, else last.pt
        if not self.checkpoint.is_file():
            raise InputError(str(self.checkpoint), "no best.pt or last.pt: the stage has not "
                                                   "checkpointed yet")
        self.device = device
        self._model: torch.nn.Module | None = None
        self.note = ""
        self._sha = sha256_of(self.checkpoint)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.stage), "checkpoint": self.checkpoint.name,
                "sha256": self._sha, "model": self.run["model"],
                "head": self.run["model_config"].get("head", "kernel"),
                "kernel_size": self.run["kernel_size"], "delta": self.run["delta"],
                "scale": self.run["scale"], "weights": "ema", "loaded": self.note}

    def fingerprint(self) -> str:
        return _digest({"describe": {**self.describe(), "loaded": ""}, "version": 1})

    def _net(self) -> torch.nn.Module:
        if self._model is None:
            from ssr_models.run import load_stage

            which = "best" if self.checkpoint.name == "best.pt" else "last"
            self._model, self.note = load_stage(self.stage, map_location=self.device, which=which)
        return self._model

    def estimate(self, image: KernelImage, geometry: Geometry) -> Estimate:
        if self.run["scale"] != geometry.scale:
            raise ConfigError(f"{self.name}: trained at x{self.run['scale']}, the set is x{geometry.scale}")
        if image.nearness is None:
            raise ConfigError(f"{self.name}: DKENet needs the set's depth; {image.key} has none")
        lr = torch.from_numpy(image.lr).permute(2, 0, 1)[None].float().div(255.0).to(self.device)
        near = torch.from_numpy(np.ascontiguousarray(image.nearness, np.float32))[None, None]
        with torch.no_grad():
            est = self._net()(lr, near.to(self.device), geometry.delta)
        if est.kernel_field is not None:
            return params_estimate(est.kernel_field[0].double().cpu().numpy(), image.lr.shape[:2],
                                   where=self.name)
        kernels = est.kernel_taps[0].double().cpu()  # (K_m^2, h, w)
        km = math.isqrt(kernels.shape[0])
        taps = kernels.permute(1, 2, 0).reshape(*kernels.shape[1:], km, km).numpy()
        return taps_estimate(taps, km, float(self.run["delta"]), geometry, where=self.name)


@dataclass(frozen=True)
class FolderConventions:
    """``conventions.json`` of a folder of estimates (all optional)."""

    sigma: Literal["std", "variance"] = "std"
    delta: float | str | None = None  # None: the set's own


class FolderEstimates(_Base):
    """Estimates computed elsewhere: ``DIR/{key}.npy`` (see the module docstring)."""

    kind: KernelMethodKind = "folder"

    def __init__(self, name: str, folder: Path) -> None:
        super().__init__(name)
        self.folder = folder
        self.conventions = _read_conventions(folder)
        self._shas: dict[str, str] = {}

    def describe(self) -> dict[str, Any]:
        c = self.conventions
        return {"kind": self.kind, "path": str(self.folder), "sigma": c.sigma,
                "delta": "the set's" if c.delta is None else c.delta}

    def fingerprint(self) -> str:
        files = sorted(p.name for p in self.folder.glob("*.npy"))
        return _digest({"describe": self.describe(), "files": {n: self._sha(n) for n in files}})

    def _sha(self, name: str) -> str:
        if name not in self._shas:
            self._shas[name] = sha256_of(self.folder / name)
        return self._shas[name]

    def missing(self, keys: list[str]) -> list[str]:
        return [k for k in keys if not (self.folder / f"{k}.npy").is_file()]

    def _delta(self, geometry: Geometry) -> float:
        d = self.conventions.delta
        if d is None or d == "centered":
            return geometry.delta if d is None else (geometry.scale - 1) / 2
        if d == "topleft":
            return 0.0
        return float(d)

    def estimate(self, image: KernelImage, geometry: Geometry) -> Estimate:
        path = self.folder / f"{image.key}.npy"
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(str(path), f"not a readable .npy array without pickle: {exc}") from None
        if not np.issubdtype(arr.dtype, np.floating):
            raise InputError(str(path), f"expected a float array, got {arr.dtype}")
        h, w = image.lr.shape[:2]
        where = str(path)
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1]:
            return invariant_estimate(arr, geometry, where=where)
        if arr.ndim == 3 and arr.shape == (3, h, w):
            return params_estimate(arr, (h, w), variance=self.conventions.sigma == "variance",
                                   where=where)
        km = math.isqrt(arr.shape[0]) if arr.ndim == 3 else 0
        if arr.ndim == 3 and arr.shape[1:] == (h, w) and km * km == arr.shape[0] and km % 2 == 1:
            taps = np.moveaxis(arr, 0, -1).reshape(h, w, km, km)
            return taps_estimate(taps, km, self._delta(geometry), geometry, where=where)
        if arr.ndim == 4 and arr.shape[:2] == (h, w) and arr.shape[2] == arr.shape[3]:
            return taps_estimate(arr, arr.shape[2], self._delta(geometry), geometry, where=where)
        raise InputError(str(path), f"expected (3, {h}, {w}) Gaussian parameters, (K*K, {h}, {w}) or "
                                    f"({h}, {w}, K, K) taps (K odd), or one (K, K) kernel; got "
                                    f"{arr.shape}")


def _read_conventions(folder: Path) -> FolderConventions:
    from ssr_core.config import dataclass_at

    path = folder / "conventions.json"
    if not path.is_file():
        return FolderConventions()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"unreadable JSON: {exc}") from None
    conv = dataclass_at(FolderConventions, data, str(path))
    if conv.sigma not in ("std", "variance"):
        raise ConfigError(f"{path}: sigma must be 'std' or 'variance', got {conv.sigma!r}")
    if isinstance(conv.delta, str) and conv.delta not in ("centered", "topleft"):
        raise ConfigError(f"{path}: delta must be a number, 'centered' or 'topleft', got {conv.delta!r}")
    return conv


def baselines_help() -> str:
    """Return one line per built-in baseline (for ``--method``'s help)."""
    return "; ".join(f"{name}: {BASELINES.meta(name)}" for name in BASELINES.names())


def _mean(name: str, arg: str) -> KernelMethod:
    if not arg:
        return MeanField(name)
    shards = Path(arg).expanduser()
    if not (shards / "manifest.json").is_file():
        raise ConfigError(f"mean:{arg}: {shards} is not a shard set (no manifest.json); give the "
                          "--out folder of a `degrade build`")
    return MeanField(name, shards.resolve())


def _no_argument(cls: Callable[[str], KernelMethod]) -> Callable[[str, str], KernelMethod]:
    def make(name: str, arg: str) -> KernelMethod:
        if arg:
            raise ConfigError(f"baseline {cls.kind!r} takes no ':{arg}'")  # type: ignore[attr-defined]
        return cls(name)

    return make


BASELINES.register("true", _no_argument(TrueField),
                   meta="the set's own field (error 0, kernel PSNR inf): a sanity row")
BASELINES.register("oracle", _no_argument(InvariantOracle),
                   meta="per image, the best single Gaussian (least tap MSE): the invariant oracle")
BASELINES.register("mean", _mean,
                   meta="one mean kernel for every pixel: mean:SHARDS averages a training shard "
                        "set, bare mean the test set itself")


def builtin_kernel_method(spec: str, name: str) -> KernelMethod:
    """Return a built-in baseline from ``true``, ``oracle``, ``mean`` or ``mean:SHARDS``.

    Raises:
        ConfigError: unknown baseline (with "did you mean"), an argument where none is taken,
            or a ``mean:`` folder that is not a shard set.
    """
    base, _, arg = spec.partition(":")
    return BASELINES.get(base)(name, arg)


def parse_kernel_method(text: str, device: str = "cpu") -> KernelMethod:
    """Turn one ``--method NAME=SOURCE`` (or a bare baseline name) into a method (docstring).

    Raises:
        ConfigError: malformed text, bad NAME, unknown baseline, missing path, a folder that is
            neither a run nor a folder of .npy estimates.
    """
    name, sep, spec = text.partition("=")
    if not sep:  # a bare baseline names its own row: ``oracle``, ``mean:SHARDS`` -> mean
        name, spec = text.partition(":")[0], text
    if not _NAME.match(name):
        raise ConfigError(f"--method {text!r}: NAME {name!r} must start with a letter or digit and "
                          "hold only letters, digits and _ . + -")
    if not spec:
        raise ConfigError(f"--method {text!r}: nothing after '='")
    if spec.partition(":")[0] in BASELINES:
        return builtin_kernel_method(spec, name)
    path = Path(spec).expanduser()
    if not path.exists():
        close = difflib.get_close_matches(spec, list(BASELINES.names()), n=1)
        hint = f" (did you mean the baseline {close[0]!r}?)" if close else ""
        raise ConfigError(f"--method {text!r}: no such folder {path}{hint}; SOURCE is a DKENet run "
                          "folder, a folder of .npy estimates, or a baseline "
                          f"({', '.join(BASELINES.names())})")
    path = path.resolve()
    if not path.is_dir():
        raise ConfigError(f"--method {text!r}: {path} is a file; give a run folder or a folder of "
                          "{key}.npy estimates")
    if (path / "run.json").is_file():
        return DKENetRun(name, path, device)
    if (path / "kernel" / "run.json").is_file():
        return DKENetRun(name, path / "kernel", device)
    if not any(path.glob("*.npy")):
        raise ConfigError(f"--method {text!r}: {path} holds no run.json, kernel/run.json or .npy "
                          "files: not a DKENet run nor a folder of estimates")
    return FolderEstimates(name, path)
