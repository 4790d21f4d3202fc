"""Search orchestration: the registered search methods (`methods.py`; the DiTFastAttn greedy and
the DeepCache grid baselines, Optuna), one strategy each (`strategies/`), and the Ray workers that
evaluate their proposals (`driver.py`, `tasks.py`). The only package that imports Ray."""
