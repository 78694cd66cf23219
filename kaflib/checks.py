"""Checks of parameters at the public boundary: a ValueError that names the parameter,
its value and what is allowed."""

import numpy as np

__all__ = ["check", "is_int", "is_number"]


def is_int(value):
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value):
    """A real number (Python or NumPy int or float), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check(name, value, ok, allowed, owner="Parameter"):
    """Raise `ValueError("<owner> <name>=<value> is invalid: must be <allowed>.")` unless `ok`."""
    if not ok:
        raise ValueError(f"{owner} {name}={value!r} is invalid: must be {allowed}.".lstrip())
