"""The Optuna strategy on its RDB storage: budget, seeds, and trials a stopped run left RUNNING."""

from __future__ import annotations

import optuna
import pytest

from evaluators.plan import full_plan
from evaluators.runtime import model_ref
from evaluators.zoo import load_model
from search.baselines import deepcache_grid
from search.space import make_space, model_facts
from search.strategies import ProposalOutcome as Outcome
from search.strategies.optuna_search import OptunaStrategy


@pytest.fixture(scope="module")
def unet_space():
    model = load_model("digits-unet")
    facts = model_facts(model)
    base = full_plan(model_ref(model, "digits-unet"), 10, 1.5)
    return facts, base, make_space(facts, base)


def _strategy(tmp_path, space, base, budget=3, **kw) -> OptunaStrategy:
    return OptunaStrategy(f"sqlite:///{tmp_path / 'o.db'}", "s", space, budget,
                          full_hash=base.content_hash(), **kw)


def test_running_trial_continues_under_its_number(tmp_path, unet_space) -> None:
    facts, base, space = unet_space
    first = _strategy(tmp_path, space, base)
    done = first.ask()
    first.tell(done, Outcome(macs=1.0, fid=2.0))
    cut = first.optuna.ask()  # stopped after drawing one parameter of its plan
    cut.suggest_categorical("branch", space.choices()["branch"])
    resumed = _strategy(tmp_path, space, base)
    proposal = resumed.ask()
    assert proposal.trial == cut.number and proposal.plan is not None
    trial = resumed.optuna.get_trials()[cut.number]
    assert trial.params["branch"] == cut.params["branch"]
    assert set(trial.params) == set(space.choices())  # the rest drawn now
    assert trial.user_attrs["plan_hash"] == proposal.plan.content_hash()
    resumed.tell(proposal, Outcome(macs=1.0, fid=3.0))
    third = resumed.ask()
    assert third.trial == 2
    resumed.tell(third, Outcome(failed=True))
    assert resumed.ask() is None and resumed.done == 3 == resumed.total
    states = [t.state for t in resumed.optuna.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL]


def test_seeds_are_asked_first_and_never_past_the_budget(tmp_path, unet_space) -> None:
    facts, base, space = unet_space
    grid = [plan for _, plan in deepcache_grid(facts, base)]
    strategy = _strategy(tmp_path, space, base, budget=2, max_seeds=5)
    strategy.seed_with(base)  # the uncompressed plan teaches nothing: not enqueued
    for plan in grid[:4]:
        strategy.seed_with(plan)
    waiting = strategy.optuna.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 2  # the budget is 2: a third seed would be left waiting
    first = strategy.ask()
    assert first.plan.content_hash() == grid[0].content_hash()
    second = strategy.ask()
    assert second.plan.content_hash() == grid[1].content_hash()
    assert strategy.ask() is None
