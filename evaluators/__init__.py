"""The runtime side of edgediff: models and data (`zoo`, `data`), sampling, and quality metrics.

A plan in, measurements out: this package knows nothing of Optuna, Ray or SQL.
"""
