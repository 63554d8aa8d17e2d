"""Table specifications: the paper's printed tables as data (``manifests/tables/*.yaml``).

A table has row groups (test sets: a source, split, recipe and seed, or real LR/HR pairs),
rows (methods: the paper's, with their printed values per group, plus local baselines), the
metrics in column order and descriptive columns (Backbone; the ablation ticks). Paper values
are lists in the order of ``metrics``; a value the paper leaves empty is ``null``. Loading is
strict: unknown keys fail with a "did you mean", and every paper value must name a group and
have one number per metric.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from ssr_core.config import dataclass_at, dataclass_from_mapping, named_or_yaml_path
from ssr_core.errors import ConfigError

#: Sources that ``--stand-in`` may put in place of every group's data (labelled in every output).
StandIn = Literal["sample"]
STAND_INS: tuple[str, ...] = get_args(StandIn)

TABLES_DIR = Path(__file__).resolve().parents[2] / "manifests" / "tables"
BUILTIN_TABLES: tuple[str, ...] = ("table1", "table2", "table3")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _tables_dir() -> Path:
    """Return the folder of the built-in tables (source tree or installed ssr_manifests)."""
    if TABLES_DIR.is_dir():
        return TABLES_DIR
    import ssr_manifests

    return Path(ssr_manifests.__file__).resolve().parent / "tables"


@dataclass(frozen=True)
class GroupSpec:
    """One row group: a test set.

    ``recipe``/``seed``/``depth`` describe a synthetic set built by ``degrade build``; a source
    with real LR/HR pairs (``drealsr``) takes none of them.
    """

    id: str
    label: str
    source: str
    ref: str = ""
    split: str | None = None
    recipe: str | None = None
    seed: int = 0
    depth: str = "prior"

    @property
    def title(self) -> str:
        """Return the label with its citation, as the paper prints it."""
        return f"{self.label} {self.ref}".strip()


@dataclass(frozen=True)
class AttributeSpec:
    """A descriptive column (Backbone, DI-Kernel, ...)."""

    key: str
    title: str


@dataclass(frozen=True)
class RowSpec:
    """One method row.

    Attributes:
        paper: group id -> values in the order of the table's metrics (None: not printed).
        builtin: a built-in method that fills the row without ``--method`` (``bicubic``).
        hint: what fills the row, shown when it has neither values nor paper numbers.
        expects: diffusion-config flags a training run must have to fill the row (Table 2).
    """

    id: str
    label: str
    ref: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    paper: dict[str, tuple[float | None, ...]] = field(default_factory=dict)
    builtin: str | None = None
    hint: str = ""
    expects: dict[str, bool] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """Return the label with its citation."""
        return f"{self.label} {self.ref}".strip()

    def paper_value(self, group: str, metric_index: int) -> float | None:
        """Return the printed value for a group and metric position, or None."""
        values = self.paper.get(group)
        return None if values is None else values[metric_index]


@dataclass(frozen=True)
class TableSpec:
    """A whole table; see the module docstring."""

    name: str
    title: str
    paper: str
    scale: int
    metrics: tuple[str, ...]
    group_title: str
    groups: tuple[GroupSpec, ...]
    rows: tuple[RowSpec, ...]
    attributes: tuple[AttributeSpec, ...] = ()
    notes: tuple[str, ...] = ()

    def group(self, group_id: str) -> GroupSpec:
        """Return a group by id."""
        for g in self.groups:
            if g.id == group_id:
                return g
        raise ConfigError(f"table {self.name} has no group {group_id!r}; groups: "
                          f"{', '.join(g.id for g in self.groups)}")

    def row(self, name: str) -> RowSpec | None:
        """Return the row whose id matches ``name`` case-insensitively, or None."""
        for r in self.rows:
            if r.id.lower() == name.lower():
                return r
        return None


def table_path(name: str) -> Path:
    """Return the YAML file of a built-in table."""
    return _tables_dir() / f"{name}.yaml"


def resolve_table_name(text: str) -> str:
    """Map ``1``/``table1``/a path to what :func:`load_table` takes."""
    return f"table{text}" if text.isdigit() else text


def load_table(name_or_path: str | Path) -> TableSpec:
    """Load a built-in table (``1``, ``table1``) or a user's YAML file, strictly validated.

    Raises:
        ConfigError: unknown name, unreadable YAML or an invalid specification (names the file).
    """
    text = resolve_table_name(str(name_or_path))
    path = named_or_yaml_path(text, BUILTIN_TABLES, table_path, "table")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the table specification: {exc}") from exc
    try:
        return table_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def table_from_dict(data: Any) -> TableSpec:
    """Build and validate a TableSpec from parsed YAML.

    Raises:
        ConfigError: the first problem found, naming the key.
    """
    from eval.metrics.registry import get_metric

    if not isinstance(data, dict):
        raise ConfigError(f"a table must be a mapping, got {type(data).__name__}")
    raw = dict(data)
    for key in ("groups", "rows"):
        if not isinstance(raw.get(key), list) or not raw[key]:
            raise ConfigError(f"'{key}' must be a non-empty list")
    groups = tuple(dataclass_at(GroupSpec, g, f"groups[{i}]") for i, g in enumerate(raw.pop("groups")))
    rows_raw = raw.pop("rows")
    attributes = tuple(dataclass_at(AttributeSpec, a, f"attributes[{i}]")
                       for i, a in enumerate(raw.pop("attributes", None) or []))
    spec = dataclass_from_mapping(TableSpec, {**raw, "groups": groups, "rows": (),
                                              "attributes": attributes},
                                  lambda k, hint: f"unknown table key {k!r}{hint}")
    for m in spec.metrics:
        get_metric(m)
    if len(set(spec.metrics)) != len(spec.metrics):
        raise ConfigError(f"a metric is listed twice in {list(spec.metrics)}")
    if not isinstance(spec.scale, int) or spec.scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {spec.scale!r}")
    group_ids = [g.id for g in groups]
    _check_ids(group_ids, "group")
    from ssr_datasets.sources import get_source, resolve_split

    for g in groups:
        source = get_source(g.source)
        if getattr(source, "real_pairs", False):
            if g.recipe is not None:
                raise ConfigError(f"group {g.id}: source {g.source!r} holds real pairs; "
                                  "it takes no recipe")
            split = resolve_split(source, g.split)
            # real pairs are cropped to HR = scale x LR: another scale's LR would be cut silently
            if split is not None and re.fullmatch(r"x\d+", split) and int(split[1:]) != spec.scale:
                raise ConfigError(f"group {g.id}: split {split} of {g.source} holds x{split[1:]} "
                                  f"pairs but table {spec.name} is x{spec.scale}")
        elif g.recipe is None:
            raise ConfigError(f"group {g.id}: a synthetic test set needs a 'recipe'")
    rows = tuple(_row(r, i, spec, group_ids) for i, r in enumerate(rows_raw))
    _check_ids([r.id.lower() for r in rows], "row")
    keys = {a.key for a in attributes}
    for r in rows:
        unknown = sorted(set(r.attributes) - keys)
        if unknown:
            raise ConfigError(f"row {r.id}: attribute(s) {unknown} are not in 'attributes' "
                              f"({sorted(keys)})")
    return TableSpec(**{**spec.__dict__, "rows": rows})


def _row(data: Any, index: int, spec: TableSpec, group_ids: list[str]) -> RowSpec:
    where = f"rows[{index}]"
    row = dataclass_at(RowSpec, data, where)
    paper: dict[str, tuple[float | None, ...]] = {}
    for group, values in dict(row.paper or {}).items():
        if group not in group_ids:
            raise ConfigError(f"{where} ({row.id}): paper values for unknown group {group!r}; "
                              f"groups: {', '.join(group_ids)}")
        values = tuple(values) if isinstance(values, (list, tuple)) else values
        if not isinstance(values, tuple) or len(values) != len(spec.metrics):
            raise ConfigError(f"{where} ({row.id}): paper values for {group} must list "
                              f"{len(spec.metrics)} numbers ({', '.join(spec.metrics)}), got {values!r}")
        for v in values:
            if v is not None and not isinstance(v, (int, float)):
                raise ConfigError(f"{where} ({row.id}): paper value {v!r} for {group} is not a number")
        paper[group] = tuple(None if v is None else float(v) for v in values)
    expects = dict(row.expects or {})
    for k, v in expects.items():
        if not isinstance(v, bool):
            raise ConfigError(f"{where} ({row.id}): expects.{k} must be true or false")
    attributes = {str(k): str(v) for k, v in dict(row.attributes or {}).items()}
    return RowSpec(str(row.id), str(row.label), str(row.ref or ""), attributes, paper,
                   row.builtin, str(row.hint or ""), expects)


def _check_ids(ids: list[str], what: str) -> None:
    for i in ids:
        if not _ID.match(str(i)):
            raise ConfigError(f"{what} id {i!r} must be letters, digits, '_' or '-'")
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"{what} id(s) listed twice: {', '.join(repeated)}")
