"""What ``run_table`` returns: one table's cells, footnotes, previews and provenance.

This is the one data model every output format renders (``eval.tables.render``,
``eval.tables.render.html``). Cell states:

- ``ok``: ``ours`` is the mean over ``n_images`` images (+inf possible for PSNR).
- ``na``: the method ran (or should have) but this metric has no value; ``note`` says why.
- ``paper-only``: nothing local fills the row (no weights, outputs or checkpoint).
- ``no-data``: the group's test set is absent here (``GroupResult.reason`` names the folder).

``note`` is a 1-based index into ``TableResult.footnotes``; one reason is one footnote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .spec import GroupSpec, RowSpec, TableSpec

CellStatus = Literal["ok", "na", "paper-only", "no-data"]
GroupStatus = Literal["ok", "not-found", "stand-in"]


@dataclass
class Cell:
    """One (group, row, metric) cell: our mean beside the paper's printed value."""

    ours: float | None
    paper: float | None
    status: CellStatus
    note: int | None = None  # 1-based footnote index

    @property
    def diff(self) -> float | None:
        """Return ours - paper when both exist and are finite, else None."""
        if self.ours is None or self.paper is None or not math.isfinite(self.ours):
            return None
        return self.ours - self.paper


@dataclass
class RowResult:
    """One method row within one group.

    Attributes:
        spec: The row (paper rows, local baselines, or a row added by ``--method``).
        method: Provenance of the method that filled it (kind, path, sha256, ...), or None.
        cells: metric -> Cell, for every metric of the table.
        per_image: image key -> metric -> value (ok metrics only).
        n_images: Images scored.
        added: True for a row that the table does not print (added by ``--method``).
        note: Footnote index for the whole row (why it is paper-only or n/a), or None.
    """

    spec: RowSpec
    method: dict[str, Any] | None
    cells: dict[str, Cell]
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    n_images: int = 0
    added: bool = False
    note: int | None = None


@dataclass
class Preview:
    """One image of a group for the HTML report: HR, LR and each row's SR (uint8 RGB)."""

    key: str
    hr: np.ndarray
    lr: np.ndarray
    outputs: dict[str, np.ndarray]  # row id -> SR, same size as hr


@dataclass
class GroupResult:
    """One row group: its test set (or why it is absent) and its rows.

    Attributes:
        spec: The group as the table specifies it.
        status: ``ok``; ``stand-in`` (rows computed on another source, see ``stand_in``);
            ``not-found`` (paper numbers only; ``reason`` says where it was looked for).
        testset: Provenance of the test set (path, fingerprint, recipe, seed, count, ...).
        stand_in: What replaced the test set, e.g. "sample (recipe ssr, seed 0)".
        preview: One image for the HTML report, or None.
    """

    spec: GroupSpec
    status: GroupStatus
    rows: list[RowResult]
    testset: dict[str, Any] | None = None
    reason: str | None = None
    stand_in: str | None = None
    preview: Preview | None = None

    @property
    def comparable(self) -> bool:
        """Whether ours and the paper's values come from the same test set (not a stand-in)."""
        return self.status != "stand-in"

    def diff(self, cell: Cell) -> float | None:
        """Return the cell's ours - paper, or None on a stand-in (the difference means nothing)."""
        return cell.diff if self.comparable else None


@dataclass
class TableResult:
    """A whole table; see the module docstring.

    Attributes:
        spec: The table specification.
        groups: In the table's order.
        footnotes: Texts referenced by ``Cell.note`` / ``RowResult.note`` (1-based).
        unavailable: metric -> why it has no values anywhere here (extra or weights missing).
        provenance: Test sets, methods, metric conventions, versions, command, stand-in.
        timings: Seconds spent in "build", "infer" and "score".
        computed: Per-image metric values computed in this run; ``cached``: read from the cache.
    """

    spec: TableSpec
    groups: list[GroupResult]
    footnotes: list[str]
    unavailable: dict[str, str]
    provenance: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    computed: int = 0
    cached: int = 0
    stand_in: str | None = None

    def best(self, group: GroupResult, metric: str, which: Literal["ours", "paper"]) -> float | None:
        """Return the best value of a column within a group (direction from the metric), or None."""
        from eval.metrics.registry import get_metric

        values = [getattr(r.cells[metric], which) for r in group.rows]
        values = [v for v in values if v is not None and not math.isnan(v)]
        if not values:
            return None
        return max(values) if get_metric(metric).higher_is_better else min(values)
