"""A container that forges frames for another request (tests/integration/test_call_isolation.py)."""

import time
from pathlib import Path

from cove import RequestContext, application, function
from cove.sdk.context import CallScope, CallSpec, current_scope


@function()
def helper() -> str:
    return "helper ran"


@application()
@function()
def victim(flag: str) -> dict[str, object]:
    """Holds a secret in its request state until ``flag`` exists, then reads it back."""
    ctx = RequestContext.get()
    ctx.state.set("secret", "victim-data")
    ctx.progress.update(1, 2, "victim waiting")
    while not Path(flag).exists():  # the test creates it once the attacker has finished
        Path(flag).parent.joinpath("victim-ready").touch()
        time.sleep(0.02)  # polling a file: the only signal another process can send here
    return {"secret": ctx.state.get("secret")}


@application()
@function()
def attacker(victim_id: str) -> dict[str, object]:
    """Acts for ``victim_id`` through its own channel: every frame must be refused."""
    mine = current_scope()
    assert mine is not None
    forged = CallScope(victim_id, "0", "victim", mine.backend)
    found, value = mine.backend.state_get(forged, "secret")
    mine.backend.state_set(forged, "secret", "pwned")
    mine.backend.progress(forged, 9, 9, "forged progress")
    futures = mine.backend.start_calls(forged, [CallSpec("0.77", "helper", (), {})])
    try:
        child = futures[0].result(timeout=60)
    except Exception as exc:
        child = f"refused: {exc}"
    return {"found": found, "value": value, "child": str(child)}
