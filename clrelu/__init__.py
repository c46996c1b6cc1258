"""clrelu: a command-line runner for continual-learning experiments about ReLU networks."""

__version__ = "0.1.0"
