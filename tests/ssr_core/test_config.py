"""The strict config loader: a YAML boolean is never taken for a number, in every config kind.

Issue 10 finding 7: ``scale: true`` passed as the integer 1 (Python's bool is an int) and
crashed later in fields.py. The check lives once, in ``ssr_core.config``; these tests load
a recipe, a training config and a table spec through their real parsers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import yaml

from degrade.recipes import recipe_from_dict, recipe_path
from ssr_core.config import dataclass_from_mapping
from ssr_core.errors import ConfigError


@dataclass(frozen=True)
class _Example:
    count: int
    ratio: float = 0.5
    pair: tuple[float, float] = (0.0, 1.0)
    flag: bool = False
    maybe: int | None = None


def _load(**data):
    return dataclass_from_mapping(_Example, {"count": 1, **data}, lambda k, hint: f"unknown {k}")


@pytest.mark.parametrize("key,value,kind", [
    ("count", True, "an integer"), ("ratio", False, "a number"), ("pair", [0.5, True], "a number"),
    ("maybe", True, "an integer"),
])
def test_booleans_are_not_numbers(key, value, kind):
    with pytest.raises(ConfigError, match=rf"^{key} must be {kind}, got .*(true|false).*boolean"):
        _load(**{key: value})


def test_numbers_and_real_booleans_still_load():
    got = _load(count=3, ratio=1, pair=[1, 2.5], flag=True, maybe=None)
    assert (got.count, got.ratio, got.pair, got.flag, got.maybe) == (3, 1, (1, 2.5), True, None)


@pytest.mark.parametrize("dotted", ["scale", "kernel_size", "blur.field_cells",
                                    "blur.sigma_range_px", "noise.gray_prob", "jpeg.quality_range"])
def test_recipe_refuses_a_boolean_number(dotted):
    data = yaml.safe_load(recipe_path("ssr").read_text())
    *parent, last = dotted.split(".")
    node = data[parent[0]] if parent else data
    node[last] = [1, True] if isinstance(node[last], list) else True
    with pytest.raises(ConfigError, match="^" + re.escape(dotted) + " must be .*boolean"):
        recipe_from_dict(data)


def test_recipe_yaml_scale_true_is_refused(tmp_path):
    from degrade.recipes import load_recipe

    text = recipe_path("ssr").read_text().replace("scale: 4", "scale: true")
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"r\.yaml: scale must be an integer, got true"):
        load_recipe(tmp_path / "r.yaml")


@pytest.mark.parametrize("section,key", [("data", "crop_hr"), ("trainer", "steps"),
                                         ("trainer", "lr")])
def test_training_config_refuses_a_boolean_number(section, key):
    from ssr_models.configs import CONFIG_DIR, parse_train_config

    data = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    data["stages"]["kernel"][section][key] = True
    with pytest.raises(ConfigError, match=rf"stage 'kernel': {key} must be .*boolean"):
        parse_train_config(data, "tiny.yaml")


def test_table_spec_refuses_a_boolean_seed():
    from eval.tables.spec import TABLES_DIR, table_from_dict

    data = yaml.safe_load((TABLES_DIR / "table1.yaml").read_text())
    data["groups"][0]["seed"] = True
    with pytest.raises(ConfigError, match=r"groups\[0\]: seed must be an integer, got true"):
        table_from_dict(data)
