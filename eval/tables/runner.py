"""Run a table: test sets, methods, scores, beside the paper's numbers.

For each row group the test set is found (``--data-root``, per-data-set roots) and built or
reused (:mod:`eval.tables.testsets`), or replaced by a stand-in source, or marked not found
(the paper's numbers stay, with "not found under PATH"). Each row is filled by the method the
user gave for it (``--method NAME=...``), by its built-in method (``bicubic``), or by nothing
(paper numbers only). A method that cannot run on a set (a x2 model on a x4 table, no ground-
truth kernels in real pairs, outputs missing from a folder) gets "n/a" with the reason.

Caching, so that adding one method reruns only its column:
- SR outputs of methods that compute them are PNGs in
  ``WORK/outputs/<test set>/<kind>-<fingerprint[:16]>/{key}.png`` (written atomically); the
  fingerprint covers the weights' bytes and the options, so another checkpoint never reads them.
- Scores are cached per image, metric and options by :class:`eval.metrics.cache.ScoreCache`.

Stages are timed separately (``build``, ``infer``, ``score``): ``bench/tables.py`` reads them.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ssr_core.errors import ConfigError
from ssr_core.io import write_bytes_atomic
from ssr_datasets.imageio import encode_png, read_image

from .result import Cell, GroupResult, Preview, RowResult, TableResult
from .spec import GroupSpec, RowSpec, StandIn, TableSpec
from .testsets import DatasetNotFound, Roots, TestSet, find_items, real_pair_testset, synthetic_testset

if TYPE_CHECKING:
    from eval.metrics.cache import ScoreCache

    from .methods import Method

#: The reason every group of a ``paper_only`` run shows (its footnote).
PAPER_ONLY_REASON = "paper's numbers only (--paper-only: no data looked for, nothing run)"
#: (description, total) -> an update function taking how many items were just done.
Progress = Callable[[str, int], Callable[[int], None]]


@dataclass
class RunOptions:
    """How to run a table (none of these change a printed paper value).

    Attributes:
        roots: Where data sets are found.
        work_dir: Test sets, LR exports and SR outputs are kept here.
        methods: Methods the user gave (``--method``), matched to rows by name.
        metrics: Subset of the table's metrics (None: all).
        stand_in: Run every group on this source instead (labelled in every output).
        max_images: First N images of each test set (recorded; a different test set).
        depth: Depth provider overriding the groups' (recorded; a different test set).
        device, weights_dir: For learned metrics (and methods, which carry their own device).
        cache: Score cache, or None to compute everything.
        previews: Keep one image per group for the HTML report.
        progress: Progress callback (the CLI passes tqdm bars).
        command: The command line, recorded in the provenance.
        paper_only: Look for no data and run nothing: every group shows the paper's numbers.
        allow_download: A learned depth provider (``depth``) may fetch absent weights.
    """

    roots: Roots
    work_dir: Path
    methods: list[Method] = field(default_factory=list)
    metrics: tuple[str, ...] | None = None
    stand_in: StandIn | None = None
    max_images: int | None = None
    depth: str | None = None
    device: str = "cpu"
    weights_dir: str | None = None
    cache: ScoreCache | None = None
    previews: bool = True
    progress: Progress | None = None
    command: str = ""
    paper_only: bool = False
    allow_download: bool = False


class _Footnotes:
    """Numbered, de-duplicated footnote texts."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, text: str) -> int:
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


def assign_rows(spec: TableSpec, methods: list[Method]) -> tuple[list[RowSpec], dict[str, Method]]:
    """Return the table's rows (+ rows for methods the table does not print) and row id -> method.

    Raises:
        ConfigError: two methods for one row, or a method that cannot fill its row (Table 2's
            ablation flags).
    """
    from .methods import builtin_method

    rows = list(spec.rows)
    chosen: dict[str, Method] = {}
    for method in methods:
        row = spec.row(method.name)
        if row is None:
            row = RowSpec(id=method.name, label=method.name)
            rows.append(row)
        if row.id in chosen:
            raise ConfigError(f"two --method options fill the row {row.id!r}; give one")
        method.check_row(row)
        chosen[row.id] = method
    for row in rows:
        if row.id not in chosen and row.builtin is not None:
            chosen[row.id] = builtin_method(row.builtin, name=row.id)
    return rows, chosen


def run_table(spec: TableSpec, options: RunOptions) -> TableResult:
    """Rebuild one table: every group, every row, every metric; see the module docstring.

    Raises:
        ConfigError: bad options (unknown metric, a method for two rows, ...).
    """
    from eval.metrics.registry import get_metric

    metrics = list(options.metrics or spec.metrics)
    for m in metrics:
        get_metric(m)
    unknown = [m for m in metrics if m not in spec.metrics]
    if unknown:
        raise ConfigError(f"table {spec.name} has no column {', '.join(unknown)}; its metrics: "
                          f"{', '.join(spec.metrics)}")
    rows, chosen = assign_rows(spec, options.methods)
    notes = _Footnotes()
    timings = {"build": 0.0, "infer": 0.0, "score": 0.0}
    groups: list[GroupResult] = []
    provenance: dict[str, Any] = {"testsets": {}, "methods": {}, "metrics": {}}
    counts = {"computed": 0, "cached": 0}
    unavailable: dict[str, set[str]] = {}
    for group in spec.groups:
        if options.paper_only:
            groups.append(_not_found(group, rows, spec, metrics, PAPER_ONLY_REASON))
            continue
        t0 = time.perf_counter()
        try:
            testset, stand_in = testset_for(group, spec, options)
        except DatasetNotFound as exc:
            groups.append(_not_found(group, rows, spec, metrics, str(exc)))
            continue
        finally:
            timings["build"] += time.perf_counter() - t0
        provenance["testsets"][group.id] = testset.info
        result = GroupResult(group, "stand-in" if stand_in else "ok", [], testset.info,
                             stand_in=stand_in)
        for row in rows:
            method = chosen.get(row.id)
            if method is None:
                result.rows.append(_paper_only(row, spec, group, metrics, notes, spec.row(row.id) is None))
                continue
            row_result = _run_row(row, method, testset, spec, metrics, options, notes, timings,
                                  counts, provenance, unavailable)
            row_result.added = spec.row(row.id) is None
            result.rows.append(row_result)
        if options.previews:
            result.preview = _preview(testset, result.rows, chosen, options)
        groups.append(result)
    provenance.update(environment(options, spec))
    whole = _unavailable_everywhere(groups, unavailable, notes)
    return TableResult(spec, groups, notes.texts, whole, provenance, timings,
                       counts["computed"], counts["cached"],
                       stand_in=options.stand_in)


def groups_without_data(spec: TableSpec, roots: Roots) -> dict[str, str]:
    """Return group id -> why its data set was not found under ``roots`` (only lists files).

    The CLI calls this before a run, so that a user learns up front which groups will show the
    paper's numbers only, and where they were looked for.
    """
    missing = {}
    for group in spec.groups:
        try:
            find_items(group, roots)
        except DatasetNotFound as exc:
            missing[group.id] = str(exc)
    return missing


def _unavailable_everywhere(groups: list[GroupResult], reasons: dict[str, set[str]],
                            notes: _Footnotes) -> dict[str, str]:
    """Return metric -> reason for metrics that got no value anywhere, for one stated reason.

    Their cell footnotes are shortened to point at that reason (printed once, under
    "unavailable"), instead of repeating a long fetch hint per footnote.
    """
    scored = {m for g in groups for r in g.rows for m, c in r.cells.items() if c.status == "ok"}
    whole = {m: next(iter(r)) for m, r in reasons.items() if len(r) == 1 and m not in scored}
    for m, why in whole.items():
        index = notes.texts.index(f"{m}: {why}")
        notes.texts[index] = f"{m}: unavailable on this machine (the reason is given once, below)"
    return whole


def testset_for(group: GroupSpec, spec: TableSpec, options: RunOptions) -> tuple[TestSet, str | None]:
    """Return the group's test set (found and built, or a stand-in) and, for a stand-in, its label.

    Also used by the kernel track (``eval.kernels.table``), so both tracks build the same sets.
    """
    from degrade.build import BuildConfig
    from degrade.recipes import load_recipe

    depth = options.depth or group.depth
    recipe_name = group.recipe or "ssr"
    if options.stand_in is not None:
        config = BuildConfig(recipe=load_recipe(recipe_name), source=options.stand_in, depth=depth,
                             seed=group.seed, max_images=options.max_images)
        label = f"{options.stand_in} (recipe {recipe_name}, seed {group.seed}, depth {depth})"
        if group.recipe is None:
            label += f" instead of {group.label}'s real pairs"
        return _build(group, config, spec, options), label
    root, items = find_items(group, options.roots)
    if group.recipe is None:
        return real_pair_testset(group, root, items, spec.scale, options.max_images), None
    config = BuildConfig(recipe=load_recipe(recipe_name), source=group.source, root=str(root),
                         depth=depth, seed=group.seed, split=group.split,
                         max_images=options.max_images)
    return _build(group, config, spec, options), None


def _build(group: GroupSpec, config: Any, spec: TableSpec, options: RunOptions) -> TestSet:
    if config.recipe.scale != spec.scale:
        raise ConfigError(f"group {group.id}: recipe {config.recipe.name} is x{config.recipe.scale} "
                          f"but table {spec.name} is x{spec.scale}")
    progress = options.progress
    if progress is None:
        return synthetic_testset(group, config, options.work_dir,
                                 allow_download=options.allow_download)
    state: dict[str, Any] = {"done": 0, "bar": None}

    def update(done: int, total: int) -> None:
        if state["bar"] is None:  # the total is known only once the build has planned its shards
            state["bar"] = progress(f"build {group.id}", total)
        state["bar"](done - state["done"])
        state["done"] = done

    return synthetic_testset(group, config, options.work_dir, on_progress=update,
                             allow_download=options.allow_download)


def _not_found(group: GroupSpec, rows: list[RowSpec], spec: TableSpec, metrics: list[str],
               reason: str) -> GroupResult:
    out = []
    for row in rows:
        cells = {m: Cell(None, _paper(row, spec, group, m), "no-data") for m in metrics}
        out.append(RowResult(row, None, cells, added=spec.row(row.id) is None))
    return GroupResult(group, "not-found", out, reason=reason)


def _paper(row: RowSpec, spec: TableSpec, group: GroupSpec, metric: str) -> float | None:
    return row.paper_value(group.id, spec.metrics.index(metric))


def _paper_only(row: RowSpec, spec: TableSpec, group: GroupSpec, metrics: list[str],
                notes: _Footnotes, added: bool) -> RowResult:
    why = row.hint or ("paper numbers only: no local weights or outputs; add them with --method "
                       "NAME=PATH (a checkpoint that spandrel loads, a training run folder, or a "
                       "folder of SR outputs)")
    note = notes.add(why)
    cells = {m: Cell(None, _paper(row, spec, group, m), "paper-only") for m in metrics}
    return RowResult(row, None, cells, added=added, note=note)


def _run_row(row: RowSpec, method: Method, testset: TestSet, spec: TableSpec, metrics: list[str],
             options: RunOptions, notes: _Footnotes, timings: dict[str, float],
             counts: dict[str, int], provenance: dict[str, Any],
             unavailable: dict[str, set[str]]) -> RowResult:
    """Run one method on one test set and score it; n/a cells carry their reason."""
    from eval.metrics.scoring import ImagePair, score

    group = spec.group(testset.group)
    described = {**method.describe(), "fingerprint": method.fingerprint_for(testset)}
    provenance["methods"].setdefault(row.id, {})[group.id] = described
    reason = method.unsupported(testset)
    if reason is not None:
        note = notes.add(f"{row.id} on {group.label}: {reason}")
        cells = {m: Cell(None, _paper(row, spec, group, m), "na", note) for m in metrics}
        return RowResult(row, described, cells, note=note)
    t0 = time.perf_counter()
    outputs = _outputs(method, testset, options)
    timings["infer"] += time.perf_counter() - t0

    def pairs() -> Iterator[ImagePair]:
        for image in testset.images():
            sr = outputs(image)
            if sr.shape != image.hr.shape:
                raise ConfigError(f"{row.id} gave a {sr.shape[1]}x{sr.shape[0]} output for "
                                  f"{image.key}, but its HR is {image.hr.shape[1]}x{image.hr.shape[0]}")
            yield ImagePair.of(image.key, sr, image.hr, pred_name=f"{row.id}:{image.key}",
                               gt_name=f"{testset.name}:{image.key}")

    t0 = time.perf_counter()
    bar = options.progress(f"score {group.id}/{row.id}", len(testset.keys)) if options.progress else None
    done = [0]

    def step(n: int) -> None:
        if bar is not None:
            bar(n - done[0])
        done[0] = n

    scored = score(metrics, pairs(), crop_border=spec.scale, device=options.device,
                   weights_dir=options.weights_dir, cache=options.cache, progress=step)
    timings["score"] += time.perf_counter() - t0
    counts["computed"] += scored.computed
    counts["cached"] += scored.cached
    for name, conv in scored.conventions["metrics"].items():
        provenance["metrics"].setdefault(name, conv)
    provenance.setdefault("scoring", {k: v for k, v in scored.conventions.items() if k != "metrics"})
    cells = {}
    for m in metrics:
        if m in scored.mean:
            cells[m] = Cell(scored.mean[m], _paper(row, spec, group, m), "ok")
        else:
            why = scored.unavailable.get(m, "not computed")
            unavailable.setdefault(m, set()).add(why)
            cells[m] = Cell(None, _paper(row, spec, group, m), "na", notes.add(f"{m}: {why}"))
    return RowResult(row, described, cells, scored.per_image, len(scored.per_image))


def _outputs(method: Method, testset: TestSet, options: RunOptions) -> Callable[[Any], np.ndarray]:
    """Compute (or find) every SR output now; return key -> SR reader for the scoring pass."""
    if not method.caches_outputs:
        return lambda image: method.super_resolve(image, testset)
    folder = output_dir(method, testset, options.work_dir)
    todo = [k for k in testset.keys if not (folder / f"{k}.png").is_file()]
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        wanted = set(todo)
        bar = None
        if options.progress is not None:
            bar = options.progress(f"infer {testset.group}/{method.name}", len(todo))
        for image in testset.images():
            if image.key in wanted:
                sr = method.super_resolve(image, testset)
                write_bytes_atomic(folder / f"{image.key}.png", encode_png(sr))
                if bar is not None:
                    bar(1)
    return lambda image: read_image(folder / f"{image.key}.png").rgb


def output_dir(method: Method, testset: TestSet, work_dir: Path) -> Path:
    """Return the folder of a method's cached SR outputs on a test set."""
    return (work_dir / "outputs" / Path(testset.path).name
            / f"{method.kind}-{method.fingerprint_for(testset)[:16]}")


def _preview(testset: TestSet, rows: list[RowResult], chosen: dict[str, Method],
             options: RunOptions) -> Preview | None:
    """Keep the first image of the set with every row's output, for the HTML report."""
    first = next(iter(testset.images()), None)
    if first is None:
        return None
    outputs = {}
    for r in rows:
        if r.n_images and r.spec.id in chosen:
            method = chosen[r.spec.id]
            if method.caches_outputs:
                outputs[r.spec.id] = read_image(output_dir(method, testset, options.work_dir)
                                                / f"{first.key}.png").rgb
            else:
                outputs[r.spec.id] = method.super_resolve(first, testset)
    return Preview(first.key, first.hr, first.lr, outputs)


def environment(options: RunOptions, spec: TableSpec) -> dict[str, Any]:
    """Return what a reader needs to tell whether two tables are comparable."""
    from eval.metrics.scoring import package_versions

    return {
        "table": {"name": spec.name, "paper": spec.paper, "scale": spec.scale},
        "command": options.command,
        "stand_in": options.stand_in,
        "max_images": options.max_images,
        "depth_override": options.depth,
        "data_root": None if options.roots.data_root is None else str(options.roots.data_root),
        "dataset_roots": {k: str(v) for k, v in options.roots.per_dataset.items()},
        "versions": {**package_versions(), "python": platform.python_version()},
        "device": options.device,
    }
