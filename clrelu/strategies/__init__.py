"""Continual-learning strategies: one file a strategy, each overriding the hooks of base.Strategy it needs."""
