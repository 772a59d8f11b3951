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


def size_as_int(value: object) -> object:
    """A one-element integer tensor (PyG's pools take one for ``size``, ``data.num_nodes`` may be one) as a Python
    int; anything else unchanged (the check that follows names what is wrong with it)."""
    import torch
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not (value.is_floating_point() or value.is_complex()):
        return int(value)
    return value


def _bool_like(value: object) -> bool:
    import numpy as np
    return isinstance(value, (bool, np.bool_))


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
    import torch
    if not (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        value = size_as_int(value)  # a one-element integer tensor (accepted before these checks)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 3.0 (accepted before); 1.5 would be cut to another seed
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


def assert_in_graph(ok: object, message: str) -> None:
    """Inside a compiled graph (``torch.compile``, where a Python branch on a tensor's values is a graph break or,
    with ``fullgraph=True``, an error): ``ok`` (a bool tensor) is checked when the graph runs, and a False raises
    ``RuntimeError(message)`` there (``torch._assert_async``) — the eager calls' named checks, at no sync."""
    import torch
    torch._assert_async(ok.all() if ok.dim() else ok, message)
