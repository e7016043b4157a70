"""Request ids: time-ordered, unique, unguessable, URL-safe (a ULID-style string)."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RANDOM_BITS = 128  # a request id is a capability (docs/security.md): it must not be guessed
_LENGTH = 36  # ceil((48 + 128) / 5)


def new_request_id() -> str:
    """36 characters: 48 bits of milliseconds then 128 random bits, in Crockford base32."""
    value = (int(time.time() * 1000) << _RANDOM_BITS) | int.from_bytes(os.urandom(16), "big")
    chars = []
    for _ in range(_LENGTH):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def is_request_id(text: str) -> bool:
    return len(text) == _LENGTH and all(c in _ALPHABET for c in text)
