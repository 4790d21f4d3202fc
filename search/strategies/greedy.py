"""The transformer paper baseline: the DiTFastAttn greedy (`search.greedy.greedy_plan`) at each
threshold δ of a sweep; each plan is calibrated on a worker (`prepare_plan`) before it is
measured, and seeds Optuna as soon as it is known."""

from __future__ import annotations

from typing import Any

from evaluators.plan import Plan
from search.errors import SearchError
from search.strategies import Proposal, StrategyContext
from search.strategies.fixed import FixedListStrategy


class GreedyStrategy(FixedListStrategy):
    """One proposal per threshold δ (`SearchConfig.deltas`, or the published sweep without δ = 0:
    that is the uncompressed plan, which every study measures already as method "full")."""

    method = "greedy"

    def __init__(self, context: StrategyContext) -> None:
        from search.greedy import DEFAULT_DELTAS

        self._options = dict(context.config.greedy)
        deltas = context.config.deltas or tuple(d for d in DEFAULT_DELTAS if d > 0)
        items = [Proposal(self.method, f"δ={delta:g}",
                          prepare={"delta": float(delta), **self._options}) for delta in deltas]
        super().__init__(context, items)

    def check_resumed(self, context: StrategyContext, plan: Plan) -> None:
        """A resumed greedy must calibrate as before: plans of other calibration settings would mix."""
        from search.greedy import DEFAULT_CALIBRATION_SAMPLES, DEFAULT_CALIBRATION_SEED

        greedy = self._options
        wanted = {"n_calib": greedy.get("n_calib", DEFAULT_CALIBRATION_SAMPLES),
                  "seed": greedy.get("seed", DEFAULT_CALIBRATION_SEED)}
        if greedy.get("window") is not None:
            wanted["window"] = greedy["window"]
        for key, value in wanted.items():
            if key in plan.notes and plan.notes[key] != value:
                option = {"n_calib": "--calib-samples", "seed": "--calib-seed",
                          "window": "--window"}[key]
                raise SearchError(f"study '{context.study.name}' calibrated its greedy plans with "
                                  f"{key}={plan.notes[key]}, not {value}: rerun with {option} "
                                  f"{plan.notes[key]} or pass another --study")

    @classmethod
    def prepare_plan(cls, evaluator: Any, **options: Any) -> Plan:
        """The greedy's calibration for one threshold, with the evaluator's model and spec."""
        from search.greedy import greedy_plan

        conditions = None
        if evaluator.subject.conditioning == "prompt":
            conditions = evaluator.subject.conditions(evaluator.spec, options.get("n_calib", 8))
        return greedy_plan(evaluator.subject, evaluator.full_plan, conditions=conditions, **options)
