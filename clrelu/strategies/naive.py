"""Naive: plain fine-tuning on each task in turn, the lower bound every strategy is judged against."""

from clrelu.strategies.base import Strategy


class Naive(Strategy):
    """Train on each task's data only, with no protection of what earlier tasks learned."""
