"""Request ids: time-ordered, unique, URL-safe (a ULID-style string)."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_request_id() -> str:
    """26 characters: 48 bits of milliseconds then 80 random bits, in Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def is_request_id(text: str) -> bool:
    return len(text) == 26 and all(c in _ALPHABET for c in text)
