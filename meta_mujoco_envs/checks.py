"""Input checks shared by the environments: each raises an error that names the bad argument."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def real_numbers(name: str, values: Any) -> np.ndarray:
    """``values`` as an array of their own integer or floating dtype; a ``TypeError`` naming ``name`` otherwise.

    ``np.asarray(..., dtype=float)`` would turn ``"1"`` or ``True`` into 1.0 and drop imaginary parts.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers, got {array.dtype} values: {values!r}")
    return array


def real_array(name: str, values: Any) -> np.ndarray:
    """``values`` as a float64 array; a ``TypeError`` naming ``name`` if they are not real numbers."""
    return real_numbers(name, values).astype(np.float64, copy=False)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or numpy), booleans excluded."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``; a ``ValueError`` naming ``name`` otherwise."""
    if not is_real(value) or value not in choices:
        raise ValueError(f"task[{name!r}] must be one of {choices}, got {value!r}")
    return type(choices[0])(value)


def check_task_keys(task: Any, keys: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``task`` is a dict with exactly ``keys``."""
    if not isinstance(task, dict) or set(task) != set(keys):
        got = sorted(task) if isinstance(task, dict) else type(task).__name__
        raise ValueError(f"a task must be a dict with keys {sorted(keys)}, got {got}")


def check_range(name: str, value: tuple[float, float], positive: bool = False) -> tuple[float, float]:
    """Validate a ``(low, high)`` constructor argument."""
    try:
        low, high = value
    except (TypeError, ValueError):
        low = high = None
    if not (is_real(low) and is_real(high)):
        raise ValueError(f"{name} must be a pair (low, high) of numbers, got {value!r}")
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}")
    if low < 0 or (positive and low == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'}, got {value!r}")
    return low, high
