"""Argument checks shared across gnnkit's packages (layers, the generator), with errors that name the
argument."""
import math
import numbers


def check_int(name: str, value: object, minimum: int, who: str = "", hint: str = "") -> int:
    """``value`` is an int (not a bool, not a float; numpy integers too) of at least ``minimum``, else a
    ValueError naming ``name`` (after ``who:``, the function or layer, when given; ``hint`` follows the bound)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral)
    if who and not (ok and value >= minimum):
        raise ValueError(f"{who}: {name} must be an int >= {minimum}{hint}, got {value!r}")
    if not ok:
        raise ValueError(f"{name}={value!r} must be an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return int(value)


def _bool_like(value: object) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy's bool, without importing numpy


def check_flag(name: str, value: object, who: str = "") -> bool:
    """``value`` is True or False (numpy's bool, or the ints 0 and 1, too), else a ValueError naming ``name``:
    ``bool("no")`` is True, so a string here is a mistake, not a choice."""
    if _bool_like(value) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    pre = f"{who}: " if who else ""
    raise ValueError(f"{pre}{name} must be True or False, got {value!r}")


def check_seed(name: str, value: object, who: str = "") -> "int | None":
    """``value`` is None or an integer seed torch's generators take (``[-2**63, 2**64)``; numpy ints too), else a
    ValueError naming ``name`` (a float such as 1.5 would be cut to another seed without a word)."""
    if value is None:
        return None
    pre = f"{who}: " if who else ""
    if _bool_like(value) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{pre}{name} must be an integer seed (or None), got {value!r}")
    if not -(2 ** 63) <= int(value) < 2 ** 64:
        raise ValueError(f"{pre}{name} must lie in [-2**63, 2**64) (torch's generators), got {value}")
    return int(value)


def check_number(name: str, value: object, minimum: float, who: str = "") -> float:
    """``value`` is a finite real number (not a bool, not a string) of at least ``minimum``, else a ValueError
    naming ``name``."""
    pre = f"{who}: " if who else ""
    if _bool_like(value) or not isinstance(value, numbers.Real):
        raise ValueError(f"{pre}{name} must be a number >= {minimum}, got {value!r}")
    if not math.isfinite(float(value)) or float(value) < minimum:
        raise ValueError(f"{pre}{name} must be a number >= {minimum} (finite), got {value!r}")
    return float(value)
