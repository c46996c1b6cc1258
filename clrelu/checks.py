"""Checks that turn a bad config value into a ConfigError naming the key and the reason."""

from __future__ import annotations

import math
from collections.abc import Iterable

from clrelu.errors import ConfigError, choices_error


def integer(key: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int within [minimum, maximum]; booleans and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value}: must be an integer")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value}: must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}={value}: must be at most {maximum}")
    return value


def seed(key: str, value) -> int:
    """A random seed: an integer in [0, 2**32), the range every generator takes (numpy's is the narrowest)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{key}={value}: must be an integer in [0, 2**32), that is 0 to {2**32 - 1}")
    return value


def number(key: str, value, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, below: float | None = None) -> float:
    """`value` as a finite float within the bounds (`above`/`below` are strict)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}={value}: must be a finite number")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value}: must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}={value}: must be at most {maximum}")
    if above is not None and value <= above:
        raise ConfigError(f"{key}={value}: must be greater than {above}")
    if below is not None and value >= below:
        raise ConfigError(f"{key}={value}: must be less than {below}")
    return float(value)


def choice(key: str, value, valid: Iterable[str]) -> str:
    """`value` if it is one of `valid`."""
    valid = list(valid)
    if value not in valid:
        raise choices_error(key, value, valid)
    return value


def boolean(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value}: must be true or false")
    return value


def optional_limit(key: str, value) -> int | None:
    """A per-task sample limit: null (no limit) or a positive integer."""
    return None if value is None else integer(key, value, minimum=1)


def int_list(key: str, value, minimum: int = 1) -> list[int]:
    """A list of integers, each at least `minimum`."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{key}={value}: must be a list of integers, e.g. [400,400]")
    items = list(value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < minimum:
            raise ConfigError(f"{key}={items}: every entry must be an integer of at least {minimum}")
    return items
