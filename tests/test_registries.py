"""Every name a user types comes from its registry: CLI choices, help texts and Literals agree.

The registries are the single source (sources, depth providers, recipes, models, metrics); the
click options and the ``Literal`` types kept for the type checker are checked against them here,
so a name added to a registry and forgotten in a CLI (or the reverse) fails this module.
"""

from __future__ import annotations

import subprocess
import sys
import typing

import click

import ssr_models
from degrade import cli as degrade_cli
from degrade.depth import DEPTH_PROVIDERS, DEPTH_REQUESTS, LEARNED_PROVIDERS, PROVIDERS, DepthRequest
from degrade.recipes import BUILTIN_RECIPES, RECIPES
from eval import cli as eval_cli
from eval import cli_run
from eval.metrics.registry import METRICS
from eval.tables.spec import STAND_INS
from ssr_datasets.sources import SOURCE_NAMES, SOURCES
from ssr_models import ModelInfo, configs, infer_cli, method_choice, train_cli
from ssr_models.configs import ONLINE_DEPTH, STAGE_MODELS, STAGES, OnlineDepth, Stage


def _option(command: click.Command, name: str) -> click.Option:
    """Return ``command``'s option whose Python name is ``name``."""
    found = [p for p in command.params if isinstance(p, click.Option) and p.name == name]
    assert len(found) == 1, f"{command.name} has no option {name!r}"
    return found[0]


def _choices(command: click.Command, name: str) -> tuple[str, ...]:
    option_type = _option(command, name).type
    assert isinstance(option_type, click.Choice), f"--{name} of {command.name} is not a Choice"
    return tuple(option_type.choices)


def test_literals_agree_with_their_registries() -> None:
    assert typing.get_args(DepthRequest) == DEPTH_REQUESTS == ("auto", *PROVIDERS.names())
    assert typing.get_args(method_choice.DepthChoice) == method_choice.DEPTH_CHOICES
    assert method_choice.DEPTH_CHOICES == tuple(r for r in DEPTH_REQUESTS if r != "gt")
    assert typing.get_args(method_choice.Method) == method_choice.METHODS
    assert typing.get_args(OnlineDepth) == ONLINE_DEPTH
    assert typing.get_args(Stage) == STAGES
    # a model's stage (ModelInfo.stage, a Literal of its own) is one of the training stages
    assert typing.get_args(typing.get_type_hints(ModelInfo)["stage"]) == STAGES


def test_derived_name_lists_are_the_registries() -> None:
    assert SOURCE_NAMES == SOURCES.names()
    assert DEPTH_PROVIDERS == PROVIDERS.names()
    assert LEARNED_PROVIDERS == tuple(n for n in PROVIDERS if PROVIDERS.meta(n).learned)
    assert BUILTIN_RECIPES == RECIPES.names()
    # every model is trained by exactly one stage, in registration order
    assert sum(STAGE_MODELS.values(), ()) == tuple(n for s in STAGES for n in ssr_models.MODELS
                                                   if ssr_models.MODELS.meta(n).stage == s)
    assert sorted(sum(STAGE_MODELS.values(), ())) == sorted(ssr_models.MODELS.names())
    assert configs.BACKBONE_MODELS == ("ssr-latent-tiny", "ssr-latent")
    # former names are no choices and point at registered models
    assert not set(ssr_models.ALIASES) & set(ssr_models.MODELS.names())
    assert set(ssr_models.ALIASES.values()) <= set(ssr_models.MODELS.names())


def test_degrade_build_choices_and_help_come_from_the_registries() -> None:
    build = degrade_cli.main.commands["build"]
    assert _choices(build, "source") == SOURCES.names()
    assert _choices(build, "depth") == DEPTH_REQUESTS
    recipe_help = _option(build, "recipe").help or ""
    assert f"({', '.join(RECIPES.names())};" in recipe_help


def test_ssr_train_choices_come_from_the_registries() -> None:
    assert _choices(train_cli.main, "model") == ssr_models.MODELS.names()
    assert _choices(train_cli.main, "source") == SOURCES.names()
    assert _choices(train_cli.main, "stage") == (*STAGES, "all")
    assert _choices(train_cli.main, "depth") == ONLINE_DEPTH
    assert _choices(train_cli.main, "ablation") == tuple(configs.ABLATIONS)
    assert set(configs.ABLATIONS) == set(typing.get_args(configs.Ablation))


def test_ssr_infer_choices_come_from_the_registries() -> None:
    assert _choices(infer_cli.main, "method") == method_choice.METHODS
    assert _choices(infer_cli.main, "depth") == method_choice.DEPTH_CHOICES


def test_ssr_eval_choices_and_help_come_from_the_registries() -> None:
    assert _choices(cli_run.run_cmd, "depth") == DEPTH_REQUESTS
    assert _choices(eval_cli.main.commands["kernels"], "depth") == DEPTH_REQUESTS
    for command in ("run", "kernels"):
        assert _choices(eval_cli.main.commands[command], "stand_in") == STAND_INS
    image = [n for n, s in METRICS.items() if s.target == "image"]
    option = _option(eval_cli.main.commands["score"], "metric_names")
    assert (option.metavar or "").split(",") == image
    listed = (option.help or "").split("Comma-separated metrics from: ")[1].split(".")[0]
    assert listed.split(", ") == image


def test_listing_the_names_imports_no_entry_and_no_torch() -> None:
    # The CLIs build their choices at import: the registries' names must come without loading a
    # single entry (lazy targets), so ``--help`` imports neither torch nor any source module.
    code = (
        "import sys\n"
        "import degrade.cli, ssr_models.infer_cli, ssr_models.train_cli\n"
        "from ssr_datasets.sources import SOURCES\n"
        "from degrade.depth import PROVIDERS\n"
        "from ssr_models import MODELS\n"
        "loaded = [r.kind + ':' + n for r in (SOURCES, PROVIDERS, MODELS) for n in r if r.is_loaded(n)]\n"
        "print(sorted(loaded), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] False"


def test_every_registry_refuses_a_typo_with_one_wording() -> None:
    from degrade.depth import estimate_nearness
    from eval.metrics.registry import get_metric
    from ssr_core.errors import ConfigError
    from ssr_datasets.sources import get_source

    typos = [(lambda: get_source("div2"), "source", "div2", "div2k", SOURCES.names()),
             (lambda: estimate_nearness("midsa", None, None), "depth provider", "midsa", "midas",
              PROVIDERS.names()),
             (lambda: ssr_models.create_model("nbsr-tini"), "model", "nbsr-tini", "nbsr-tiny",
              ssr_models.MODELS.names()),
             (lambda: get_metric("ssimm"), "metric", "ssimm", "ssim", tuple(METRICS))]
    for call, kind, typo, hint, names in typos:
        want = f"unknown {kind} '{typo}' (did you mean '{hint}'?); choose one of: {', '.join(names)}"
        try:
            call()
        except ConfigError as exc:
            assert str(exc) == want
        else:
            raise AssertionError(f"{kind} {typo!r} was accepted")
