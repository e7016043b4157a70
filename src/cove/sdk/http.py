"""The HTTP side of a request, as application code sees it: its headers and its raw body.

``Headers`` is what ``RequestContext.get().headers`` returns: the headers of the HTTP
request that invoked the application (credentials removed), in every call of that request.
``HttpBody`` is a parameter type hint: an application parameter hinted ``HttpBody``
receives the request's body as it was sent, bytes and content type, whatever that type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

#: The request state key under which the server records a request's headers (a list of
#: ``(name, value)`` pairs), durable with the request and readable from every call.
HEADERS_STATE_KEY = "__cove_request_headers__"
#: Headers that never reach application code: the caller's credentials.
PRIVATE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class Headers(Mapping[str, str]):
    """Immutable HTTP headers, looked up case-insensitively.

    A name sent several times keeps every value: ``headers[name]`` and ``get`` give the
    last, ``getlist`` all of them in order, ``multi_items`` every ``(name, value)`` pair.
    """

    def __init__(
        self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None
    ) -> None:
        pairs: Iterable[tuple[str, str]]
        if headers is None:
            pairs = ()
        elif isinstance(headers, Mapping):
            pairs = headers.items()
        else:
            pairs = headers
        self._pairs: tuple[tuple[str, str], ...] = tuple((str(k), str(v)) for k, v in pairs)
        values: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for name, value in self._pairs:
            values.setdefault(name.lower(), []).append(value)
            names.setdefault(name.lower(), name)
        self._values = values
        self._names = names  # the spelling a name was first sent with

    def __getitem__(self, key: str) -> str:
        if not isinstance(key, str):
            raise KeyError(key)
        return self._values[key.lower()][-1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._values

    def get(self, key: str, default: Any = None) -> Any:
        found = self._values.get(key.lower()) if isinstance(key, str) else None
        return default if found is None else found[-1]

    def getlist(self, key: str) -> list[str]:
        """Every value sent for ``key``, in order (empty when none was)."""
        return list(self._values.get(key.lower(), ()))

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, in the order they were sent."""
        return list(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({list(self._pairs)!r})"


class HttpBody:
    """The raw body of the HTTP request that invoked an application.

    Hint an application parameter ``HttpBody`` to receive the body as sent (no JSON
    decoding, any content type): ``content`` (bytes), ``content_type`` (or None), and
    ``text()`` / ``json()`` to read it. Only application parameters take this hint.
    """

    def __init__(self, content: bytes, content_type: str | None = None) -> None:
        self._content = bytes(content) if isinstance(content, bytearray | memoryview) else content
        self._content_type = content_type

    @property
    def content(self) -> bytes:
        return self._content

    @property
    def content_type(self) -> str | None:
        return self._content_type

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self._content.decode(encoding)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text())

    def __str__(self) -> str:
        return f"HttpBody(content_type={self._content_type}, content={self._content[:20]!r}...)"


def public_headers(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers application code may see: all but the caller's credentials."""
    return [(k, v) for k, v in pairs if k.lower() not in PRIVATE_HEADERS]
