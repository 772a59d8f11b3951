"""Argument checks shared across gnnkit's packages (layers, the generator), with errors that name the
argument."""
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
