"""Registry[T, M]: explicit and lazy entries, duplicates refused, unknown names with the choices."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ssr_core.errors import ConfigError, SsrError
from ssr_core.registry import Registry


@dataclass(frozen=True)
class Info:
    higher_is_better: bool
    low: float


def test_eager_and_decorator_entries_in_registration_order() -> None:
    reg: Registry[object, Info] = Registry("metric")

    @reg.register("ssim", meta=Info(True, 0.0))
    def ssim() -> str:
        return "ssim"

    value = object()
    assert reg.register("psnr", value, meta=Info(True, 0.0)) is value
    assert ssim() == "ssim" and reg.get("ssim") is ssim  # the decorator keeps the function
    assert reg.get("psnr") is value
    assert reg.names() == ("ssim", "psnr") and list(reg) == ["ssim", "psnr"] and len(reg) == 2
    assert reg.meta("psnr") == Info(True, 0.0)
    assert "psnr" in reg and "niqe" not in reg and ["unhashable"] not in reg


def test_duplicates_are_refused_eager_or_lazy() -> None:
    reg: Registry[int, None] = Registry("source")
    reg.register("div2k", 1)
    with pytest.raises(ConfigError, match="source 'div2k' is registered twice"):
        reg.register("div2k", 2)
    with pytest.raises(ConfigError, match="source 'div2k' is registered twice"):
        reg.register_lazy("div2k", "json:dumps")
    assert reg.get("div2k") == 1  # the first registration stands


@pytest.mark.parametrize("name", ["", " padded", 3])
def test_names_must_be_stripped_non_empty_strings(name: object) -> None:
    with pytest.raises(ConfigError, match="name must be a non-empty string"):
        Registry("model").register(name, 1)  # type: ignore[arg-type]


def test_unknown_name_lists_choices_with_did_you_mean() -> None:
    reg: Registry[int, None] = Registry("metric")
    for i, name in enumerate(("psnr", "ssim", "niqe")):
        reg.register(name, i)
    with pytest.raises(ConfigError, match=r"^unknown metric 'ssimm' \(did you mean 'ssim'\?\); "
                                          r"choose one of: psnr, ssim, niqe$") as exc:
        reg.get("ssimm")
    assert isinstance(exc.value, SsrError) and isinstance(exc.value, ValueError)
    with pytest.raises(ConfigError, match=r"^unknown metric 'zzz'; choose one of: psnr, ssim, niqe$"):
        reg.meta("zzz")
    with pytest.raises(ConfigError, match="unknown metric"):
        reg.check("lpips")
    with pytest.raises(ConfigError, match="unknown metric"):
        reg.get(["unhashable"])  # type: ignore[arg-type]
    assert reg.check("niqe") == "niqe"


def test_lazy_module_attr_is_imported_on_first_get_only(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "lazy_reg_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "heavy.py").write_text("class Holder:\n    class Model:\n        pass\nLOADS = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("lazy_reg_pkg", "lazy_reg_pkg.heavy"):
        monkeypatch.delitem(sys.modules, mod, raising=False)

    reg: Registry[type, str] = Registry("model", package="lazy_reg_pkg")
    reg.register_lazy("abs", "lazy_reg_pkg.heavy:Holder.Model", meta="absolute, dotted attr")
    reg.register_lazy("rel", ".heavy:LOADS", meta="relative to package")
    # names, metadata and checks never import the module: what keeps `--help` fast
    assert reg.names() == ("abs", "rel") and reg.meta("rel") == "relative to package"
    assert reg.check("abs") == "abs" and not reg.is_loaded("abs")
    assert "lazy_reg_pkg.heavy" not in sys.modules
    model = reg.get("abs")
    assert "lazy_reg_pkg.heavy" in sys.modules and reg.is_loaded("abs")
    assert model is sys.modules["lazy_reg_pkg.heavy"].Holder.Model
    assert reg.get("rel") == 1 and reg.get("abs") is model


def test_lazy_loader_runs_once() -> None:
    calls: list[int] = []

    def load() -> list[int]:
        calls.append(1)
        return calls

    reg: Registry[list[int], None] = Registry("depth provider")
    reg.register_lazy("gt", load)
    assert calls == [] and reg.get("gt") is calls and reg.get("gt") is calls
    assert calls == [1]


def test_lazy_import_errors_are_raised_not_swallowed() -> None:
    reg: Registry[object, None] = Registry("method")
    reg.register_lazy("missing", "ssr_no_such_module_xyz:THING")
    reg.register_lazy("noattr", "json:no_such_attribute")
    with pytest.raises(ModuleNotFoundError, match="ssr_no_such_module_xyz"):
        reg.get("missing")
    with pytest.raises(AttributeError, match="no_such_attribute"):
        reg.get("noattr")
    assert not reg.is_loaded("missing")  # a later get tries again (e.g. after an install)


@pytest.mark.parametrize("target", ["json", "json:", ":dumps", 42])
def test_malformed_lazy_targets_are_refused(target: object) -> None:
    with pytest.raises(ConfigError, match="lazy target"):
        Registry("source").register_lazy("x", target)  # type: ignore[arg-type]


def test_scoped_changes_are_undone_in_order_and_unknown_removal_fails() -> None:
    reg: Registry[int, None] = Registry("metric")
    for i, name in enumerate(["psnr", "ssim", "niqe"]):
        reg.register(name, i)
    with reg.scoped():
        reg.unregister("ssim")
        reg.register("ssim", 10)  # re-registered: now last
        reg.register("fake", 3)
        assert reg.names() == ("psnr", "niqe", "ssim", "fake") and reg["ssim"] == 10
        with pytest.raises(ConfigError, match=r"unknown metric 'sim' \(did you mean 'ssim'\?\)"):
            reg.unregister("sim")
    assert reg.items() == [("psnr", 0), ("ssim", 1), ("niqe", 2)]
    with pytest.raises(ConfigError, match="unknown metric 'fake'"):
        reg["fake"]
