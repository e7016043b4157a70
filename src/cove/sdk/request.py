"""A request to an application, as the caller sees it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Request(ABC):
    """One run of an application: ``.id`` names it, ``.output()`` waits for its result.

    ``output()`` raises :class:`cove.RequestFailed` when the request failed or was cancelled.
    """

    @property
    @abstractmethod
    def id(self) -> str: ...

    @abstractmethod
    def output(self, timeout: float | None = None) -> Any: ...

    def __repr__(self) -> str:
        return f"<cove.Request {self.id}>"
