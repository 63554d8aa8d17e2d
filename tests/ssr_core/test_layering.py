"""Dependencies point down (DESIGN section 2): ssr_core imports no other project package, the
pure ops (degrade/ops) import only ssr_core among them, every package imports only the layers
below it, degrade imports ssr_datasets only in its build pipeline, and nothing imports eval. An
ast scan, so lazy imports inside functions count too."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {"ssr_core", "ssr_datasets", "ssr_manifests", "degrade", "ssr_models", "eval"}


def project_imports(folder: Path, package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Map each .py file under ``folder`` (dotted package ``package``) to the project packages it
    imports; relative imports are resolved against the file's own package."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        parts = [*package.split("."), *path.relative_to(folder).with_suffix("").parts]
        here = parts[:-1]  # the file's package (an __init__.py is its own package)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    names.add(".".join([*base, *([node.module] if node.module else [])]))
                else:
                    names.add(node.module or "")
        found[str(path.relative_to(root))] = {n for n in names if n.split(".")[0] in PROJECT}
    return found


def test_scan_resolves_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "ops"
    pkg.mkdir()
    (pkg / "a.py").write_text("from . import b\nfrom ..fields import x\nimport numpy\n"
                              "def f():\n    from ssr_datasets.shards import y\n")
    assert project_imports(pkg, "degrade.ops", tmp_path) == {
        "ops/a.py": {"degrade.ops", "degrade.fields", "ssr_datasets.shards"}}


def test_ssr_core_imports_no_other_project_package() -> None:
    imports = project_imports(ROOT / "ssr_core", "ssr_core")
    assert "ssr_core/registry.py" in imports  # the scan saw the package
    bad = {f: sorted(n for n in names if not n.startswith("ssr_core"))
           for f, names in imports.items()}
    assert {f: n for f, n in bad.items() if n} == {}


def test_pure_ops_import_only_ssr_core_among_project_packages() -> None:
    imports = project_imports(ROOT / "degrade" / "ops", "degrade.ops")
    assert "degrade/ops/blur.py" in imports
    allowed = ("ssr_core", "degrade.ops")
    bad = {f: sorted(n for n in names if not n.startswith(allowed)) for f, names in imports.items()}
    assert {f: n for f, n in bad.items() if n} == {}


# Each package's folder, its import name, and the project packages it may import besides itself
# (DESIGN section 2: ssr_core <- ssr_datasets <- degrade <- ssr_models <- eval; ssr_manifests is
# data, importable from every layer above ssr_core; nothing imports eval).
LAYERS: dict[str, tuple[str, set[str]]] = {
    "ssr_core": ("ssr_core", set()),
    "manifests": ("ssr_manifests", set()),
    "datasets": ("ssr_datasets", {"ssr_core", "ssr_manifests"}),
    "degrade": ("degrade", {"ssr_core", "ssr_manifests", "ssr_datasets"}),
    "ssr_models": ("ssr_models", {"ssr_core", "ssr_manifests", "ssr_datasets", "degrade"}),
    "eval": ("eval", {"ssr_core", "ssr_manifests", "ssr_datasets", "degrade", "ssr_models"}),
}

# degrade imports ssr_datasets only in its build pipeline: build/, the `degrade` CLI that drives
# it (and its `datasets` command group, thin over ssr_datasets), the shard preview the build writes
# (it reads the shards back), and the depth cache, whose maps use the shard format's uint16
# nearness quantization (ssr_datasets.schema.nearness_to_u16).
DEGRADE_DATA_USERS = ("degrade/build/", "degrade/cli.py", "degrade/cli_datasets.py",
                      "degrade/preview.py", "degrade/depth/cache.py")


@functools.cache  # one scan of the tree for the tests below (they only read it)
def _all_imports() -> dict[str, tuple[str, set[str]]]:
    """Map every package file to (its folder in LAYERS, the other project packages it imports)."""
    out: dict[str, tuple[str, set[str]]] = {}
    for folder, (package, _) in LAYERS.items():
        for path, names in project_imports(ROOT / folder, package).items():
            out[path] = (folder, {n.split(".")[0] for n in names} - {package})
    return out


def test_dependencies_point_down_only() -> None:
    imports = _all_imports()
    assert {"eval/cli.py", "ssr_models/trainer.py", "datasets/shards.py"} <= imports.keys()
    bad = {f: sorted(tops - LAYERS[folder][1]) for f, (folder, tops) in imports.items()}
    assert {f: n for f, n in bad.items() if n} == {}


def test_nothing_imports_eval() -> None:
    assert sorted(f for f, (_, tops) in _all_imports().items() if "eval" in tops) == []


def test_degrade_imports_ssr_datasets_only_in_its_build_pipeline() -> None:
    users = sorted(f for f, (folder, tops) in _all_imports().items()
                   if folder == "degrade" and "ssr_datasets" in tops)
    assert any(f.startswith("degrade/build/") for f in users)  # the scan sees the pipeline
    assert [f for f in users if not f.startswith(DEGRADE_DATA_USERS)] == []
