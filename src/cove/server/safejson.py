"""JSON from the network, decoded with bounds: a body that is valid JSON but hostile (nested
thousands deep, ``NaN``, integers of thousands of digits) is a ``ValueError`` like any other
malformed body, so routes answer 400 instead of failing deeper down (docs/security.md)."""

from __future__ import annotations

import json
import math
from typing import Any

#: Deepest nesting of arrays and objects accepted.
MAX_DEPTH = 64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses ``NaN``/``Infinity`` (written, or as a number too large
    for a float) and nesting past ``max_depth``.
    Integers past Python's digit limit (4300) already raise ``ValueError``."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    _check_depth(value, max_depth)
    return value


def _check_depth(value: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:  # iterative: the walk must not recurse on what it is bounding
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= max_depth:
            raise ValueError(f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)
