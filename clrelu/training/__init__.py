"""Building a run from its config and the loop over tasks: experiment, trainer, evaluation schedule."""
