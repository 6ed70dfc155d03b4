"""The one exception type of jaxcollapse and the checks that raise it."""

from __future__ import annotations

import math
import numbers


class ConfigError(ValueError):
    """A bad setting: the message names the parameter and the allowed range, on one line."""


#: Smallest decoding temperature: below it ``p^(1/T)`` leaves the range of floats (NaN weights).
MIN_TEMPERATURE = 1e-3
#: Largest add-alpha smoothing pseudo-count (``alpha x vocab`` must stay finite; far beyond any useful value).
MAX_SMOOTHING = 1e6


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a real boolean (``True``/``False``, NumPy's too), else raise ConfigError."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def check_callable(name: str, value):
    """Return ``value`` if it is None or callable, else raise ConfigError."""
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be a callable or None, got {value!r}")
    return value


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int, or raise ConfigError naming ``name`` and the allowed range."""
    rng = _range_text(low, high)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name} must be an integer {rng}, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be an integer {rng}, got {value}")
    return value


def check_float(name: str, value, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a finite float in the range, or raise ConfigError naming ``name``."""
    lo_b = "(" if low_open else "["
    hi_b = ")" if high_open else "]"
    rng = f"in {lo_b}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_b}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number {rng}, got {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        raise ConfigError(f"{name} must be a number {rng}, got {value}")
    return value


def _range_text(low, high) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""
