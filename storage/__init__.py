"""The SQL store of studies, candidate plans, evaluations and exports (SQLAlchemy); no torch."""
