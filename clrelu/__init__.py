"""clrelu: a command-line runner for continual-learning experiments about ReLU networks.

From Python: `clrelu.run(["model=pnn", "stream=split_mnist"])` runs one experiment exactly as `clrelu run` does
and returns its RunResult; `clrelu.load(paths)` reads runs into pandas DataFrames (Results).
"""

__version__ = "0.1.0"

__all__ = ["Results", "RunResult", "__version__", "load", "run"]

_API = ("Results", "RunResult", "load", "run")  # in clrelu/api.py, imported on first use (it imports pandas)


def __getattr__(name: str):
    if name in _API:
        from clrelu import api

        return getattr(api, name)
    raise AttributeError(f"module 'clrelu' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
