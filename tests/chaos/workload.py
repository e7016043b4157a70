"""The chaos suite's workload: request state, a map, nested blocking calls, injected errors.

``chaos_job(log, n)`` sets request state, maps ``leaf_parent`` over ``n`` items (each makes a
blocking call to ``leaf``) and reads the state back through ``read_state``. Every body sleeps
10-40 ms (deterministic from its inputs) and, as its very last act, appends
``"<request_id> <function_call_id> <token>\\n"`` to the side-effect log, where ``token`` is a
fresh uuid4 for this run of the body; the token is also part of the output, so a test can
tell which run's output the journal recorded.

About 15 % of ``leaf`` calls (chosen from a hash of the request and call ids) raise on their
first run: a marker file beside the log, created with ``O_CREAT | O_EXCL``, tells the first
run from a retry.

With ``CHAOS_WORKLOAD_IMPORT_DELAY`` set (seconds), importing this file takes that long, so a
test can act on a container while it starts.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

from cove import RequestContext, Retries, application, function

RETRIES = Retries(max_retries=3, initial_delay=0.05)
FAIL_PERCENT = 15
STATE_KEY = "chaos"

_IMPORT_DELAY = float(os.environ.get("CHAOS_WORKLOAD_IMPORT_DELAY") or 0)
if _IMPORT_DELAY > 0:
    time.sleep(_IMPORT_DELAY)


def _digest(*parts: object) -> int:
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _pause(*inputs: object) -> None:
    """Sleep 10-40 ms, deterministic from the inputs."""
    time.sleep(0.010 + (_digest("pause", *inputs) % 31) / 1000)


def _record(log: str, token: str) -> None:
    """Append this run's line to the side-effect log: one write, O_APPEND."""
    ctx = RequestContext.get()
    line = f"{ctx.request_id} {ctx.function_call_id} {token}\n".encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def injects_failure(request_id: str, call_id: str) -> bool:
    """Whether the ``leaf`` call ``call_id`` of ``request_id`` fails its first run."""
    return _digest("fail", request_id, call_id) % 100 < FAIL_PERCENT


def _first_run(log: str, request_id: str, call_id: str) -> bool:
    marker = Path(log).with_name(f"marker-{request_id}-{call_id}")
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


@function(retries=RETRIES)
def leaf(item: tuple[str, int]) -> dict[str, Any]:
    log, x = item
    token = uuid.uuid4().hex
    ctx = RequestContext.get()
    _pause("leaf", x)
    if injects_failure(ctx.request_id, ctx.function_call_id) and _first_run(
        log, ctx.request_id, ctx.function_call_id
    ):
        raise RuntimeError(f"injected failure of leaf {ctx.function_call_id}")
    _record(log, token)
    return {"value": x * x, "token": token}


@function(retries=RETRIES)
def leaf_parent(item: tuple[str, int]) -> dict[str, Any]:
    log, x = item
    token = uuid.uuid4().hex
    _pause("leaf_parent", x)
    child = leaf((log, x))
    _record(log, token)
    return {"value": child["value"] + x, "token": token, "child": child["token"]}


@function(retries=RETRIES)
def read_state(log: str) -> dict[str, Any]:
    token = uuid.uuid4().hex
    value = RequestContext.get().state.get(STATE_KEY, None)
    _pause("read_state", log)
    _record(log, token)
    return {"value": value, "token": token}


@application(retries=RETRIES)
@function(retries=RETRIES)
def chaos_job(log: str, n: int) -> dict[str, Any]:
    ctx = RequestContext.get()
    token = uuid.uuid4().hex
    ctx.state.set(STATE_KEY, {"n": n, "request": ctx.request_id})
    parts = leaf_parent.map([(log, i) for i in range(n)])
    state = read_state(log)
    _pause("chaos_job", n)
    _record(log, token)
    return {
        "total": sum(p["value"] for p in parts),
        "tokens": [p["token"] for p in parts],
        "children": [p["child"] for p in parts],
        "state": state["value"],
        "state_token": state["token"],
        "token": token,
    }


def expected_total(n: int) -> int:
    """What ``chaos_job(log, n)`` returns as ``total``."""
    return sum(i * i + i for i in range(n))
