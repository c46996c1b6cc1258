"""The memory a config needs, estimated from the config before anything is built, so that a run this machine
cannot hold is refused in one line naming the key that makes it large.

The estimate is a lower bound made of the two terms that grow without limit with a config value:

- the run's record: the T x T accuracy matrix (float64) and its mask of evaluated entries (bool), 9 T^2
  bytes for T = `stream.n_tasks`;
- the model's weights and their gradients (float32, 8 bytes a weight), counting only the weights between
  consecutive widths of `model.hidden` and from one input and to one output (a lower bound for every
  model that has hidden layers).

What a run holds besides (the dataset, optimizer state, activations) only adds to this, so a config is
refused only when it certainly cannot fit: when the lower bound exceeds the machine's whole memory.
Building a stream or a model that still asks for more than the machine can give is refused too, naming
the config group (`refuse_out_of_memory`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from omegaconf import DictConfig, ListConfig

from clrelu.errors import ConfigError
from clrelu.machine import memory, memory_text, size_text


def _record_bytes(n_tasks: int) -> int:
    return 9 * n_tasks * n_tasks


def _weight_count(hidden: list[int]) -> int:
    widths = [1, *hidden, 1]
    return sum(a * b for a, b in zip(widths, widths[1:]))


def _integers(value) -> list[int] | None:
    if isinstance(value, (list, ListConfig)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [int(v) for v in value]
    return None


def estimate(cfg: DictConfig) -> list[tuple[str, int, str]]:
    """The terms of the lower bound: (key=value, bytes, what they hold)."""
    terms = []
    n_tasks = cfg.get("stream", {}).get("n_tasks")
    if isinstance(n_tasks, int) and not isinstance(n_tasks, bool) and n_tasks > 0:
        terms.append((f"stream.n_tasks={n_tasks}", _record_bytes(n_tasks),
                      f"its {n_tasks} x {n_tasks} accuracy matrix"))
    hidden = _integers(cfg.get("model", {}).get("hidden"))
    if hidden:
        weights = _weight_count(hidden)
        terms.append((f"model.hidden={hidden}", 8 * weights, f"{weights:,} weights or more, with their gradients"))
    return terms


def check_fits(cfg: DictConfig) -> None:
    """Refuse a config whose memory, at the least, exceeds this machine's (naming its largest term's key)."""
    terms = estimate(cfg)
    if not terms:
        return
    total = sum(size for _, size, _ in terms)
    if total <= memory()[0]:
        return
    key, size, what = max(terms, key=lambda term: term[1])
    raise ConfigError(f"{key}: a run would take at least {size_text(total)} of memory ({what}: {size_text(size)}); "
                      f"this machine has {memory_text()}")


@contextlib.contextmanager
def refuse_out_of_memory(group: str) -> Iterator[None]:
    """Turn the allocator's failure while building a config group into one line naming the group."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        text = str(exc)
        if not isinstance(exc, MemoryError) and "allocate" not in text:
            raise
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise ConfigError(f"{group}: building it takes more memory than this machine can give ({first}); this "
                          f"machine has {memory_text()}") from None
