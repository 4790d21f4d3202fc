"""The web dashboard over the store: Pareto fronts, plans and their sample images."""
