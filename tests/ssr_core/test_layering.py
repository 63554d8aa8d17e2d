"""Dependencies point down (DESIGN section 2): ssr_core imports no other project package, and the
pure ops (degrade/ops) import only ssr_core among them. An ast scan, so lazy imports inside
functions count too."""

from __future__ import annotations

import ast
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
