"""``Logger``: structured log lines, one JSON object each, with fields bound once.

Each line goes to the process's standard output when it is logged, so inside a function
call it is one of that call's log lines (a container captures a call's output as its logs;
``cove logs`` and ``GET .../logs`` show them). A line holds the bound fields, the fields
given with the call, ``level``, ``event`` (the message) and ``timestamp`` (UTC, ISO 8601).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import traceback
from enum import Enum
from typing import Any

_JSON_TYPES = (str, int, float, bool, type(None), list, dict, tuple, Enum)


class Logger:
    """A structured logger: ``Logger.get_logger(app="x").bind(user=u).info("done", n=3)``
    prints ``{"app": "x", "user": ..., "n": 3, "level": "info", "event": "done",
    "timestamp": ...}``.

    ``exc_info=True`` (or an exception) adds the traceback as ``exception``; values JSON
    cannot hold are written as their ``str()``. Logging never raises.
    """

    def __init__(self, context: dict[str, Any]) -> None:
        self._context: dict[str, Any] = dict(context)

    @classmethod
    def get_logger(cls, **kwargs: Any) -> Logger:
        """A logger with ``kwargs`` bound to every line it writes."""
        return cls(context=kwargs)

    def bind(self, **kwargs: Any) -> Logger:
        """A new logger with ``kwargs`` bound as well (this one is unchanged)."""
        bound = self.__class__.__new__(self.__class__)
        bound._context = {**self._context, **kwargs}
        return bound

    def info(self, message: str, **kwargs: Any) -> None:
        self._log("info", message, kwargs)

    def error(self, message: str, **kwargs: Any) -> None:
        self._log("error", message, kwargs)

    def debug(self, message: str, **kwargs: Any) -> None:
        self._log("debug", message, kwargs)

    def warning(self, message: str, **kwargs: Any) -> None:
        self._log("warning", message, kwargs)

    def _log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        try:
            line = self._format(level, message, fields)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except Exception as exc:
            with contextlib.suppress(Exception):  # stdout closed: logging never fails a call
                print(f"Logger: could not write {message!r} ({exc})", flush=True)

    def _format(self, level: str, message: str, fields: dict[str, Any]) -> str:
        data: dict[str, Any] = {**self._context, **fields, "level": level, "event": message}
        if "exc_info" in data:
            exc_info = data.pop("exc_info")
            if exc_info is True:
                exc_info = sys.exc_info()
            elif isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            if isinstance(exc_info, tuple) and exc_info[0] is not None:
                data["exception"] = "".join(traceback.format_exception(*exc_info))
        for key, value in data.items():
            if not isinstance(value, _JSON_TYPES):
                data[key] = str(value)
        now = datetime.datetime.now(datetime.UTC)
        data["timestamp"] = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps(data, default=str)
