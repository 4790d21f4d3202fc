"""The search methods' registry: names, families, the baseline of each family, and what the
driver and the CLI read from it."""

from __future__ import annotations

import pytest

from evaluators.spec import EvalSpec
from search.config import SearchConfig, check_config, resolve_methods
from search.errors import SearchError
from search.methods import (
    BASELINE,
    SearchMethod,
    baseline_for,
    method_rank,
    register,
    search_method,
    search_methods,
)
from search.strategies import Strategy


def config(*methods: str) -> SearchConfig:
    return SearchConfig(study="s", model="digits-unet", spec=EvalSpec(), methods=methods)


def test_every_registered_method_names_a_strategy_of_its_own_name():
    names = [m.name for m in search_methods()]
    assert names == ["greedy", "deepcache-grid", "library-default", "optuna"]  # baselines first
    for method in search_methods():
        cls = method.strategy_class()
        assert issubclass(cls, Strategy) and cls.method == method.name and method.help


def test_each_family_has_its_baseline():
    assert baseline_for("transformer").name == "greedy"
    assert baseline_for("unet").name == "deepcache-grid"
    assert baseline_for("library-cache").name == "library-default"  # FLUX, SD3, Qwen, Wan
    with pytest.raises(KeyError, match="no baseline"):
        baseline_for("flow")
    assert method_rank("greedy") == method_rank("deepcache-grid") == 0
    assert method_rank("optuna") == 1 and method_rank("manual") == 2


def test_baseline_resolves_per_family_and_a_method_of_another_family_is_refused():
    assert resolve_methods(config(BASELINE, "optuna"), "unet") == ("deepcache-grid", "optuna")
    assert resolve_methods(config("optuna", BASELINE), "transformer") == ("greedy", "optuna")
    assert resolve_methods(config("optuna", "optuna"), "unet") == ("optuna",)
    with pytest.raises(SearchError, match="greedy applies to transformer models, but digits-unet "
                                          "is a unet: use --method deepcache-grid"):
        resolve_methods(config("greedy"), "unet")


def test_unknown_methods_are_refused_before_anything_runs():
    with pytest.raises(SearchError, match="unknown search method annealing: choose greedy, "
                                          "deepcache-grid, library-default, optuna, baseline"):
        check_config(config("annealing"))
    with pytest.raises(KeyError, match="unknown search method 'annealing'"):
        search_method("annealing")


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="registered already"):
        register(SearchMethod("optuna", "search.strategies.optuna_search:OptunaStrategy", "again"))
    with pytest.raises(ValueError, match="registered already"):
        register(SearchMethod(BASELINE, "x:y", "the word baseline is taken"))
