"""The kernel track as a table: sets x methods x kernel metrics, rendered like ``ssr-eval run``.

A run scores every method on every set and returns a :class:`eval.tables.result.TableResult`,
so the tables' renderers (terminal, markdown, csv, json, latex, html) print it unchanged, with
the same provenance (test sets, methods, metric conventions, versions, command). Sets are:

- ``DIR``: a shard set (``degrade build`` folder), scored as it is;
- ``GROUP``: a group of the kernel table spec (``manifests/tables/kernels.yaml``: ``div2k``,
  ``div2k-clean``), or ``TABLE:GROUP`` (``table1:bsds100``): that table's test set, found under
  the data roots (or replaced by ``--stand-in``) and built/reused exactly as ``ssr-eval run``
  does (:func:`eval.tables.runner.testset_for`); real-pair groups have no true kernels (n/a),
  except a source that releases them (DIV2KRK: :mod:`eval.kernels.released`);
- ``SOURCE`` or ``SOURCE:SPLIT`` of such a source (``div2krk:x2``): the released set, found
  under the data roots like a group (``--dataset-root div2krk=DIR``) and read in place.

Rows: the spec's built-in baselines, then the methods given (a method named like a row replaces
it). No paper prints these numbers: the "paper" and delta columns stay empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.tables.result import Cell, GroupResult, RowResult, TableResult
from eval.tables.runner import RunOptions, environment, testset_for
from eval.tables.spec import GroupSpec, RowSpec, TableSpec, load_table, table_path
from eval.tables.testsets import find_items
from ssr_core.errors import ConfigError
from ssr_datasets.sources import SOURCE_NAMES, splits_of

from .methods import KernelMethod, builtin_kernel_method
from .released import has_true_kernels, released_kernel_set
from .run import KernelSet, MethodScores, score_kernel_set, shard_kernel_set

KERNEL_TABLE = "kernels"


def load_kernel_table(name_or_path: str | Path = KERNEL_TABLE) -> TableSpec:
    """Load the kernel track's table spec (built-in ``kernels`` or a YAML file).

    Raises:
        ConfigError: a spec whose metrics are not all kernel-track metrics.
    """
    from eval.metrics.registry import get_metric

    path = table_path(KERNEL_TABLE) if str(name_or_path) == KERNEL_TABLE else Path(name_or_path)
    spec = load_table(path)
    image = [m for m in spec.metrics if get_metric(m).target != "kernel"]
    if image:
        raise ConfigError(f"table {spec.name}: {', '.join(image)} score SR images, not kernel "
                          "estimates (ssr-eval run scores those tables)")
    return spec


@dataclass
class ResolvedSet:
    """One ``--set``: its group (for the table) and its kernel set, or why it has none."""

    group: GroupSpec
    kset: KernelSet | None
    stand_in: str | None = None
    reason: str | None = None


def resolve_set(text: str, spec: TableSpec, options: RunOptions) -> ResolvedSet:
    """Turn one ``--set`` value into a set (module docstring).

    Raises:
        ConfigError: neither a shard folder nor a known group; DatasetNotFound (from the tables)
            when a group's data set is absent.
    """
    path = Path(text).expanduser()
    if (path / "manifest.json").is_file():
        kset = shard_kernel_set(path.resolve())
        group = GroupSpec(id=path.name or "set", label=str(path), source=str(kset.info.get("recipe")))
        return ResolvedSet(group, kset)
    table_name, sep, group_id = text.partition(":")
    if path.exists():
        raise ConfigError(f"--set {text}: {path} is not a shard set (no manifest.json)")
    if table_name in SOURCE_NAMES and has_true_kernels(table_name):
        split = splits_of(table_name)[0] if not sep else group_id
        if split not in splits_of(table_name):
            raise ConfigError(f"--set {text}: {table_name} has no split {split!r}; choose one of: "
                              f"{', '.join(splits_of(table_name))}")
        group = GroupSpec(id=f"{table_name}-{split}", label=f"{table_name.upper()} {split} (released)",
                          source=table_name, split=split)
        return _released(group, options)
    table = spec if not sep else load_table(table_name)
    group = table.group(group_id if sep else text)
    if group.recipe is None and options.stand_in is None:
        if has_true_kernels(group.source):
            return _released(group, options)
        return ResolvedSet(group, None, reason=f"{group.label} holds real pairs: no true kernel field")
    testset, stand_in = testset_for(group, table, options)
    kset = shard_kernel_set(testset.path, name=testset.name)
    return ResolvedSet(group, kset, stand_in)


def _released(group: GroupSpec, options: RunOptions) -> ResolvedSet:
    """Find a released set (DIV2KRK) under the data roots; it has no stand-in."""
    if options.stand_in is not None:
        raise ConfigError(f"--set {group.id} is a released data set, read as it is: --stand-in "
                          "does not apply to it (leave one of them out)")
    root, items = find_items(group, options.roots)
    kset = released_kernel_set(group.source, group.split, root, items, options.max_images)
    return ResolvedSet(group, kset)


def table_rows(spec: TableSpec, methods: list[KernelMethod]) -> tuple[list[RowSpec], list[KernelMethod]]:
    """Return the rows (spec baselines, then added methods) and the method filling each row."""
    given = {m.name.lower(): m for m in methods}
    if len(given) != len(methods):
        raise ConfigError("two --method options share a name; give each row once")
    rows: list[RowSpec] = []
    fill: list[KernelMethod] = []
    for row in spec.rows:
        method = given.pop(row.id.lower(), None)
        if method is None and row.builtin is not None:
            method = builtin_kernel_method(row.builtin, row.id)
        if method is not None:
            if method.kind == "mean":  # say what the mean is of: a training set or the test set
                label = f"{row.label} ({getattr(method, 'source_label', '')})"
                row = RowSpec(**{**row.__dict__, "label": label})
            rows.append(row)
            fill.append(method)
    for method in methods:
        if method.name.lower() in given:
            rows.append(RowSpec(id=method.name, label=method.name))
            fill.append(method)
    return rows, fill


def run_kernel_table(spec: TableSpec, sets: list[str], methods: list[KernelMethod],
                     options: RunOptions, map_images: int = 0
                     ) -> tuple[TableResult, list[tuple[KernelSet, list[MethodScores]]]]:
    """Score every method on every set; return the table and the per-set scores (for maps).

    Args:
        sets: ``--set`` values; none = every group of ``spec``.
        options: The tables' run options (roots, stand-in, work dir, cache, progress, command).
        map_images: Keep the maps of the first N images of each set (0: none).
    """
    rows, fill = table_rows(spec, methods)
    footnotes: list[str] = []

    def note(text: str) -> int:
        if text not in footnotes:
            footnotes.append(text)
        return footnotes.index(text) + 1

    groups: list[GroupResult] = []
    scored: list[tuple[KernelSet, list[MethodScores]]] = []
    provenance: dict[str, Any] = {"testsets": {}, "methods": {}, "metrics": {}}
    timings = {"build": 0.0, "infer": 0.0, "score": 0.0}
    computed = cached = 0
    for text in sets or [g.id for g in spec.groups]:
        t0 = time.perf_counter()
        resolved = resolve_set(text, spec, options)
        timings["build"] += time.perf_counter() - t0
        if resolved.kset is None:
            n = note(f"{resolved.group.label}: {resolved.reason}")
            groups.append(GroupResult(resolved.group, "ok", [
                RowResult(r, None, {m: Cell(None, None, "na", n) for m in spec.metrics}, note=n)
                for r in rows], reason=resolved.reason))
            continue
        kset = resolved.kset
        provenance["testsets"][resolved.group.id] = kset.info
        t0 = time.perf_counter()
        results = score_kernel_set(kset, fill, cache=options.cache,
                                   map_keys=set(kset.keys[:map_images]), progress=options.progress)
        timings["score"] += time.perf_counter() - t0
        scored.append((kset, results))
        row_results = []
        for row, scores in zip(rows, results, strict=True):
            computed += scores.computed
            cached += scores.cached
            provenance["methods"].setdefault(row.id, {})[resolved.group.id] = {
                **scores.describe, "conversions": list(scores.conversions)}
            row_results.append(_row(row, scores, spec, note, added=spec.row(row.id) is None))
        groups.append(GroupResult(resolved.group, "stand-in" if resolved.stand_in else "ok",
                                  row_results, kset.info, stand_in=resolved.stand_in))
    from eval.metrics.registry import get_metric

    for m in spec.metrics:
        s = get_metric(m)
        provenance["metrics"][m] = {"version": s.version, "convention": s.convention, "unit": s.unit}
    provenance.update(environment(options, spec))
    result = TableResult(spec, groups, footnotes, {}, provenance, timings, computed, cached,
                         stand_in=options.stand_in)
    return result, scored


def _row(row: RowSpec, scores: MethodScores, spec: TableSpec, note: Any, added: bool) -> RowResult:
    if scores.unsupported is not None:
        n = note(f"{row.id}: {scores.unsupported}")
        cells = {m: Cell(None, None, "na", n) for m in spec.metrics}
        return RowResult(row, scores.describe, cells, note=n, added=added)
    cells = {}
    for m in spec.metrics:
        value = scores.mean(m)
        if value is None:
            why = scores.why_na.get(m, "no value")  # one footnote per reason, not per cell
            cells[m] = Cell(None, None, "na", note(why if m == "redeg_psnr" else f"{row.id}: {why}"))
        else:
            cells[m] = Cell(value, None, "ok")
    return RowResult(row, scores.describe, cells, scores.per_image, len(scores.per_image),
                     added=added)
