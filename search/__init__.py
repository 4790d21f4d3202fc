"""Search orchestration: strategies that propose plans (the DiTFastAttn greedy baseline, Optuna) and
the Ray workers that evaluate them. The only package that imports Ray."""
