"""``mended``, version 1: its second step is broken."""

import os
from pathlib import Path

from cove import RequestContext, application, function


def mark(work: str, name: str) -> None:
    line = f"{name} {RequestContext.get().function_call_id}\n".encode()
    fd = os.open(Path(work) / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@function()
def stable(work: str) -> int:
    mark(work, "stable")
    return 40


@function()
def broken(work: str) -> int:
    raise RuntimeError("a bug in version 1")


@application()
@function()
def mended(work: str) -> int:
    return stable(work) + broken(work)
