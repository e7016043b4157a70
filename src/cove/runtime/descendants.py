"""Every process a container started, found by a token in its environment.

A container's process group does not hold all that its code starts: a process that calls
``setsid()`` (``subprocess.Popen(start_new_session=True)``, a double-forked daemon) leaves
it, and once the container is gone its group can no longer be found from its leader. So
every container's environment carries ``COVE_CONTAINER=<folder>:<run>:<container id>``
(``<folder>`` names the data folder, ``<run>`` the server run), which every descendant
inherits unless it clears its environment. Stopping a container kills the processes that
carry its token; a server starting on a data folder kills those that carry a token of that
folder from another run. Reading every process's environment under /proc costs about a
millisecond per hundred processes, paid when containers stop and when a server starts or
stops, never per call.

The kernel shows (in ``/proc/PID/environ``) the environment block a process was executed
with, and a forked child inherits that block as it is: ``os.environ`` changes only the C
library's copy. A container forked from a template would show the template's token, and
so would its own forked children. The template's token therefore reserves room, and each
forked container writes its own token over it in place (:func:`retag`).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import secrets
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

TOKEN = "COVE_CONTAINER"
_KEY = TOKEN.encode() + b"="
_ROOM = 240  # characters a template's token holds, for its containers' tokens
_LONGEST_ID = 160  # longer container ids are shortened (with a hash) in tokens
_ROUNDS = 100  # kill-and-look-again rounds at most (each catches what the last forked)


def folder_key(data_dir: Path) -> str:
    """What tokens of containers of the data folder ``data_dir`` begin with."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]


def new_run(data_dir: Path) -> str:
    """A prefix for the tokens of one server run on ``data_dir``: ``<folder>:<run>``."""
    return f"{folder_key(data_dir)}:{secrets.token_hex(4)}"


def container_token(run: str, container_id: str) -> str:
    if len(container_id) > _LONGEST_ID:
        digest = hashlib.sha256(container_id.encode()).hexdigest()[:16]
        container_id = f"{container_id[: _LONGEST_ID - 17]}~{digest}"
    return f"{run}:{container_id}"


def template_token(run: str) -> str:
    """A template's token: its run's, padded with room for any container's token."""
    return f"{run}:template".ljust(_ROOM, "~")


def retag(token: str) -> bool:
    """In a process forked from a template: write ``token`` over the token in the
    environment block the kernel shows for it (and its forked children inherit), and set it
    in ``os.environ`` (what the processes it executes get). False if the block could not
    be changed (its forked children then carry the template's token)."""
    os.environ[TOKEN] = token
    try:
        stat = Path("/proc/self/stat").read_bytes()
        env_start = int(stat[stat.rindex(b")") + 2 :].split()[47])  # field 50: env_start
        block = Path("/proc/self/environ").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
    found = _value_span(block)
    data = token.encode()
    if found is None or len(data) > found[1] - found[0]:
        return False
    start, end = found
    ctypes.memmove(env_start + start, data.ljust(end - start, b"\0"), end - start)
    return token_of(Path("/proc/self/environ").read_bytes()) == token


def _value_span(block: bytes) -> tuple[int, int] | None:
    """Where the token's value lies in an environment block (NUL-separated entries)."""
    if block.startswith(_KEY):
        at = 0
    else:
        at = block.find(b"\0" + _KEY)
        if at < 0:
            return None
        at += 1
    start = at + len(_KEY)
    end = block.find(b"\0", start)
    return start, len(block) if end < 0 else end


def token_of(block: bytes) -> str | None:
    found = _value_span(block)
    if found is None:
        return None
    return block[found[0] : found[1]].decode(errors="replace")


def carriers() -> Iterator[tuple[int, str]]:
    """(pid, token) of every process (other than this one) whose environment this user may
    read and that carries a token. A zombie has no environment left: it never shows."""
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                block = f.read()
        except OSError:  # gone, or another user's
            continue
        if _KEY in block:
            token = token_of(block)
            if token is not None:
                yield int(name), token


def sweep(match: Callable[[str], bool]) -> int:
    """SIGKILL every process whose token ``match`` accepts, and what they fork meanwhile;
    returns how many were killed.

    A process killed here can fork no more once the signal is sent, and a child it forked
    before is listed by the next look: looking again until no new one shows catches all."""
    killed: set[int] = set()
    for _ in range(_ROUNDS):
        found = [pid for pid, token in carriers() if pid not in killed and match(token)]
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(found)
    return len(killed)
