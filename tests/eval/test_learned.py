"""Tests for the pyiqa metrics (lpips, musiq, clipiqa): weight checks, errors, offline scoring.

No network (sockets refuse to connect) and no published weights: every weight file is a random
stand-in with the published keys and shapes, written once per session under a temporary
``$TORCH_HOME`` layout by :mod:`tests.eval.fake_weights`. Values are therefore checked only for
properties (finite, LPIPS(x, x) = 0, symmetry, range), never against published numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import logging
import math
import os
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyiqa")
pytest.importorskip("torchvision")

import torch  # noqa: E402

from eval.metrics import learned, weights  # noqa: E402
from eval.metrics.learned import CLIPIQA, LPIPS, MUSIQ, import_clip  # noqa: E402
from eval.metrics.registry import create_metric, get_metric  # noqa: E402
from eval.metrics.weights import (  # noqa: E402
    ALEXNET,
    CLIP_RN50,
    FILES,
    LPIPS_ALEX,
    MUSIQ_KONIQ,
    hub_dir,
    verify_files,
)
from ssr_core.errors import ConfigError, MissingAssetError  # noqa: E402
from tests.eval import fake_weights as fw  # noqa: E402

CLASSES = {"lpips": LPIPS, "musiq": MUSIQ, "clipiqa": CLIPIQA}


@pytest.fixture(scope="session")
def fake_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A $TORCH_HOME-like folder holding stand-ins for every file of the three metrics."""
    root = tmp_path_factory.mktemp("torch-home")
    fw.write_all(root)
    return root


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to reach the network fail loudly."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r} {kwargs!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _home_with(tmp_path: Path, fake_home: Path, metric: str) -> Path:
    """Return a new $TORCH_HOME under tmp_path linking the good files of ``metric``."""
    home = tmp_path / "home"
    for f in FILES[metric]:
        dest = fw.path_in(home, f)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(fw.path_in(fake_home, f), dest)
    return home


def _replace(home: Path, file: weights.WeightFile, state: object) -> Path:
    """Overwrite ``file`` in ``home`` (a symlink until now) with ``state``."""
    path = fw.path_in(home, file)
    path.unlink()
    torch.save(state, path)
    return path


def _ran() -> None:
    raise AssertionError("pickled code was run")


class _Evil:
    """Unpickles by calling a function: a weights_only load must refuse it."""

    def __reduce__(self) -> tuple:
        return (_ran, ())


def _images(seed: int = 0, size: tuple[int, int] = (64, 64)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (*size, 3), dtype=np.uint8),
            rng.integers(0, 256, (*size, 3), dtype=np.uint8))


# --- the file table agrees with pyiqa / torchvision / CLIP themselves ------------------------


def test_file_table_matches_the_libraries() -> None:
    from pyiqa.archs import clip_model, lpips_arch, musiq_arch
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    from torchvision.models import AlexNet_Weights

    assert lpips_arch.default_model_urls["0.1_alex"] == LPIPS_ALEX.url
    assert musiq_arch.default_model_urls["koniq10k"] == MUSIQ_KONIQ.url
    assert AlexNet_Weights.IMAGENET1K_V1.url == ALEXNET.url
    assert clip_model._MODELS["RN50"] == CLIP_RN50.url
    for f in (LPIPS_ALEX, ALEXNET, MUSIQ_KONIQ, CLIP_RN50):
        assert f.url.endswith("/" + f.name)
        # torch.hub names carry the leading sha256 digits; CLIP's URL the whole digest
        assert f.sha256[:8] in f.url
    for name, cls in CLASSES.items():
        assert DEFAULT_CONFIGS[name]["metric_opts"] == cls.pyiqa_opts, name
        assert FILES[name]


def test_registry_factories_take_device_and_weights_dir(fake_home: Path) -> None:
    for name, cls in CLASSES.items():
        params = inspect.signature(cls).parameters
        assert "device" in params and "weights_dir" in params and "crop_border" not in params
        metric = create_metric(name, device="cpu", weights_dir=str(fake_home))
        assert isinstance(metric, cls) and metric.spec is get_metric(name)


def test_bad_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="device must be a torch device"):
        LPIPS(get_metric("lpips"), device="not-a-device")


# --- check(): good files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLASSES))
def test_check_accepts_files_with_the_right_keys_and_shapes(
        name: str, fake_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    metric = CLASSES[name](get_metric(name), weights_dir=str(fake_home))
    with caplog.at_level(logging.WARNING, logger=learned.__name__):
        metric.check()
    conv = metric.conventions()
    assert conv["pyiqa_metric"] == name and conv["pyiqa_version"]
    assert list(conv["weights"]) == [f.name for f in FILES[name]]
    for f in FILES[name]:
        record = conv["weights"][f.name]
        assert record["sha256"] == hashlib.sha256(fw.path_in(fake_home, f).read_bytes()).hexdigest()
        assert record["published"] is False and record["url"] == f.url
        assert f.name in caplog.text  # "not the published file" is logged
    assert "not the published file" in caplog.text


def test_published_sha256_is_accepted_without_loading(
        fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digests = {f.name: hashlib.sha256(fw.path_in(fake_home, f).read_bytes()).hexdigest()
               for f in FILES["lpips"]}
    published = tuple(dataclasses.replace(f, sha256=digests[f.name][:8]) for f in FILES["lpips"])
    monkeypatch.setitem(weights.FILES, "lpips", published)

    def no_load(*_: object) -> None:
        raise AssertionError("a file with the published sha256 must not be loaded")

    monkeypatch.setattr(weights, "_state_dict_problem", no_load)
    out = verify_files("lpips", fake_home)
    assert [v.published for v in out] == [True, True]
    assert [v.sha256 for v in out] == [digests[f.name] for f in FILES["lpips"]]


def test_default_location_is_torch_home(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # no set_dir: $TORCH_HOME decides
    monkeypatch.setenv("TORCH_HOME", str(fake_home))
    assert hub_dir(None) == fake_home / "hub"
    MUSIQ(get_metric("musiq")).check()
    monkeypatch.setenv("TORCH_HOME", str(fake_home / "elsewhere"))
    with pytest.raises(MissingAssetError, match="elsewhere"):
        MUSIQ(get_metric("musiq")).check()


# --- check(): missing and wrong files --------------------------------------------------------


@pytest.mark.parametrize("name", list(CLASSES))
def test_missing_file_names_file_folder_url_and_fetch_command(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def heavy(*_: object, **__: object) -> None:
        raise AssertionError("nothing may be built or loaded when a file is missing")

    monkeypatch.setattr(weights, "reference_shapes", heavy)
    monkeypatch.setattr(weights, "sha256_file", heavy)
    first = FILES[name][0]
    with pytest.raises(MissingAssetError) as info:
        CLASSES[name](get_metric(name), weights_dir=str(tmp_path)).check()
    err, text = info.value, str(info.value)
    assert err.file == first.name and err.url == first.url
    assert err.folder == str(tmp_path / "hub" / first.subdir)
    assert f"curl -L --create-dirs -o {tmp_path / 'hub' / first.subdir / first.name} {first.url}" in text
    assert f"TORCH_HOME={tmp_path} python -c" in text and f"create_metric('{name}'" in text


def test_lpips_missing_both_files_names_both(tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError, match="also missing: alexnet-owt-7be5be79.pth") as info:
        LPIPS(get_metric("lpips"), weights_dir=str(tmp_path)).check()
    assert "pip download lpips==0.1.4" in str(info.value)  # the lin layers also ship on PyPI


def test_lpips_missing_only_the_trunk(tmp_path: Path, fake_home: Path) -> None:
    home = _home_with(tmp_path, fake_home, "lpips")
    fw.path_in(home, ALEXNET).unlink()
    with pytest.raises(MissingAssetError, match="missing alexnet-owt-7be5be79.pth") as info:
        LPIPS(get_metric("lpips"), weights_dir=str(home)).check()
    assert info.value.folder == str(home / "hub" / "checkpoints") and ALEXNET.url in str(info.value)


def test_pyiqa_alone_accepts_an_empty_lpips_file(tmp_path: Path, fake_home: Path) -> None:
    """The trap the check exists for: pyiqa loads the LPIPS layers with strict=False."""
    from pyiqa.archs.lpips_arch import LPIPS as PyiqaLPIPS

    empty = tmp_path / "empty.pth"
    torch.save({}, empty)
    with learned._torch_hub_dir(fake_home / "hub"):
        PyiqaLPIPS(pretrained_model_path=str(empty))  # no error: random layers, garbage scores


@pytest.mark.parametrize("state, expected", [
    ({}, "5 missing key"),
    ("alexnet", "unexpected key"),  # another model's state dict (the AlexNet trunk's)
    ({**fw.lpips_lin_state(), "lin0.model.1.weight": torch.zeros(1, 32, 1, 1)},
     r"shape mismatch.*'lin0.model.1.weight': \(1, 32, 1, 1\) instead of \(1, 64, 1, 1\)"),
    ({"module." + k: v for k, v in fw.lpips_lin_state().items()}, None),  # DataParallel prefix: fine
], ids=["empty", "other-model", "wrong-shape", "module-prefix"])
def test_lpips_file_with_wrong_keys_or_shapes_is_refused(
        state: object, expected: str | None, tmp_path: Path, fake_home: Path) -> None:
    home = _home_with(tmp_path, fake_home, "lpips")
    if state == "alexnet":
        state = fw.alexnet_state()
    path = _replace(home, LPIPS_ALEX, state)
    metric = LPIPS(get_metric("lpips"), weights_dir=str(home))
    if expected is None:
        metric.check()
        return
    with pytest.raises(MissingAssetError, match=expected) as info:
        metric.check()
    text = str(info.value)
    assert f"the file at {path} is not the expected one" in text
    assert LPIPS_ALEX.url in text and LPIPS_ALEX.sha256 in text and "curl" in text


@pytest.mark.parametrize("content, expected", [
    (b"not a checkpoint", "cannot be read as a state dict"),
    ("object", "cannot be read as a state dict"),  # pickled code: weights_only refuses it
    ("list", "holds a list, not a state dict"),
], ids=["garbage", "pickled-object", "list"])
def test_unreadable_files_are_refused_without_running_them(
        content: object, expected: str, tmp_path: Path, fake_home: Path) -> None:
    home = _home_with(tmp_path, fake_home, "musiq")
    path = fw.path_in(home, MUSIQ_KONIQ)
    path.unlink()
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "object":
        torch.save({"w": _Evil()}, path)
    else:
        torch.save([torch.zeros(1)], path)
    with pytest.raises(MissingAssetError, match=expected):
        MUSIQ(get_metric("musiq"), weights_dir=str(home)).check()


def test_musiq_file_of_another_model_is_refused(tmp_path: Path, fake_home: Path) -> None:
    home = _home_with(tmp_path, fake_home, "musiq")
    _replace(home, MUSIQ_KONIQ, fw.lpips_lin_state())
    with pytest.raises(MissingAssetError, match=r"missing key.*unexpected key.*lin0"):
        MUSIQ(get_metric("musiq"), weights_dir=str(home)).check()


def test_clip_file_of_a_smaller_clip_is_refused(tmp_path: Path, fake_home: Path) -> None:
    # A reduced CLIP (ResNet width 32, one block per stage, 2 text layers of width 128): cheap to
    # build, the same key families as RN50, so the check must catch the shapes and the layer count.
    small = (256, 64, (1, 1, 1, 1), 32, None, 77, 49408, 128, 2, 2)
    home = _home_with(tmp_path, fake_home, "clipiqa")
    fw.path_in(home, CLIP_RN50).unlink()
    fw.save_torchscript(fw.clip_state(config=small), home, CLIP_RN50)
    with pytest.raises(MissingAssetError, match=r"missing key.*shape mismatch.*RN50.pt") as info:
        CLIPIQA(get_metric("clipiqa"), weights_dir=str(home)).check()
    assert CLIP_RN50.sha256 in str(info.value)


def test_clip_file_that_is_not_torchscript_is_refused(tmp_path: Path, fake_home: Path) -> None:
    home = _home_with(tmp_path, fake_home, "clipiqa")
    _replace(home, CLIP_RN50, {"logit_scale": torch.zeros(())})
    with pytest.raises(MissingAssetError, match="not a TorchScript archive"):
        CLIPIQA(get_metric("clipiqa"), weights_dir=str(home)).check()


def test_missing_pyiqa_names_the_extra(monkeypatch: pytest.MonkeyPatch, fake_home: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # find_spec -> None, import -> ImportError
    metric = LPIPS(get_metric("lpips"), weights_dir=str(fake_home))
    with pytest.raises(ImportError, match=r'pip install "ssr-bench\[metrics\]".*torchvision'):
        metric.check()
    with pytest.raises(ImportError, match="pyiqa not installed"):
        learned.import_pyiqa()


# --- the pkg_resources stand-in ---------------------------------------------------------------


@pytest.mark.parametrize("blocked", [True, False], ids=["blocked", "absent"])
def test_clip_imports_without_pkg_resources(blocked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in [m for m in sys.modules if m == "clip" or m.startswith("clip.")]:
        monkeypatch.delitem(sys.modules, mod)
    if blocked:
        monkeypatch.setitem(sys.modules, "pkg_resources", None)
    else:
        monkeypatch.delitem(sys.modules, "pkg_resources", raising=False)
        if importlib.util.find_spec("pkg_resources") is not None:
            pytest.skip("this setuptools still provides pkg_resources")
    clip = import_clip()
    assert clip.tokenize(["a photo"]).shape == (1, 77)
    assert sys.modules["clip.clip"].packaging.version.parse("1.10") > \
        sys.modules["clip.clip"].packaging.version.parse("1.9")
    # the stand-in is gone again: other code still sees pkg_resources as before
    if blocked:
        assert sys.modules["pkg_resources"] is None
    else:
        assert "pkg_resources" not in sys.modules


# --- scoring with the stand-in weights -------------------------------------------------------


@pytest.fixture(scope="module")
def lpips_metric(fake_home: Path) -> LPIPS:
    return LPIPS(get_metric("lpips"), weights_dir=str(fake_home))


def test_lpips_scores_end_to_end(lpips_metric: LPIPS, capsys: pytest.CaptureFixture[str]) -> None:
    import torch.hub

    before = torch.hub._hub_dir
    a, b = _images()
    ab, ba = lpips_metric(a, b), lpips_metric(b, a)
    assert torch.hub._hub_dir == before  # the hub dir set for the build is restored
    assert capsys.readouterr().out == ""  # pyiqa's "Loading pretrained model" kept off stdout
    assert math.isfinite(ab) and ab > 0
    assert ab == pytest.approx(ba, abs=1e-6)
    assert abs(lpips_metric(a, a)) <= 1e-6
    # float tensor (3, H, W) and float numpy in [0, 1] give the uint8 image's value
    a_t = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    assert lpips_metric(a_t, b.astype(np.float64) / 255) == pytest.approx(ab, abs=1e-6)
    assert lpips_metric._model is not None and not lpips_metric._model.training


def test_lpips_input_errors(lpips_metric: LPIPS) -> None:
    a, b = _images()
    with pytest.raises(ConfigError, match="full-reference metric: pass gt"):
        lpips_metric(a)
    with pytest.raises(ConfigError, match=r"differ in size: gt \(32, 64\)"):
        lpips_metric(a, b[:32])
    with pytest.raises(ConfigError, match=r"values in \[0, 1\]"):
        lpips_metric(a.astype(np.float32), b)


def test_musiq_scores_end_to_end(fake_home: Path) -> None:
    metric = MUSIQ(get_metric("musiq"), weights_dir=str(fake_home))
    a, _ = _images(1, (64, 48))
    first = metric(a)
    assert math.isfinite(first)
    assert metric(a, None) == first  # deterministic, gt ignored by a no-reference metric


def test_clipiqa_scores_end_to_end(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # as with setuptools 82+
    for mod in [m for m in sys.modules if m == "clip" or m.startswith("clip.")]:
        monkeypatch.delitem(sys.modules, mod)  # so that the stand-in is really needed here
    metric = CLIPIQA(get_metric("clipiqa"), weights_dir=str(fake_home))
    a, _ = _images(2)
    value = metric(a)
    assert math.isfinite(value) and 0.0 <= value <= 1.0  # mean of softmax probabilities


def test_weights_dir_is_any_folder_with_the_layout(tmp_path: Path, fake_home: Path) -> None:
    home = tmp_path / "copied"  # a Path works as well as a str
    dest = fw.path_in(home, MUSIQ_KONIQ)
    dest.parent.mkdir(parents=True)
    shutil.copyfile(fw.path_in(fake_home, MUSIQ_KONIQ), dest)
    MUSIQ(get_metric("musiq"), weights_dir=home).check()
