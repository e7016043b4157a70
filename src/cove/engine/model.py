"""In-memory records of live requests and calls (the journal holds the durable truth)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cove.blobs import BlobRef
    from cove.engine.deployments import Version
    from cove.engine.pool import Slot

FINAL_CALL = ("succeeded", "failed")
FINAL_REQUEST = ("succeeded", "failed", "cancelled")


@dataclass(slots=True)
class Waiter:
    """A parent waiting for a call: the container it runs in and the token it expects."""

    slot: Slot
    token: int
    parent: Call
    attempt: int


@dataclass(eq=False, slots=True)
class Call:
    """One durable function call of a live request."""

    run: RequestRun
    call_id: str
    function: str
    parent: Call | None
    input_mode: str  # "json" for an application's entry call, else "pickle"
    output_mode: str  # "pickle", or "json:<application function>"
    args: bytes
    status: str = "pending"
    attempts: int = 0
    machine_retries: int = 0
    waiters: list[Waiter] = field(default_factory=list)
    output: bytes | None = None
    content_type: str | None = None
    failure: dict[str, Any] | None = None
    slot: Slot | None = None
    holds_slot: bool = False
    children_waiting: int = 0
    tail_of: Call | None = None
    # The timeout clock: seconds left, when it last started, and the timer that fires.
    clock_left: float = 0.0
    clock_started: float = 0.0
    timer: asyncio.TimerHandle | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_CALL


@dataclass(eq=False)
class RequestRun:
    """A request that has not finished yet."""

    id: str
    version: Version
    calls: dict[str, Call] = field(default_factory=dict)
    state: dict[str, bytes] = field(default_factory=dict)
    status: str = "pending"
    diverged: list[str] = field(default_factory=list)
    done: bool = False  # ended here, or no longer this server's (mark_done)
    #: Futures of clients waiting for it to end (Engine.wait), resolved by mark_done.
    watchers: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def app(self) -> str:
        return self.version.app

    def mark_done(self) -> None:
        """It ended (or is no longer this server's): wake whoever waits for it."""
        self.done = True
        self.wake_watchers()

    def wake_watchers(self) -> None:
        """Answer every client waiting for it now (at its end, or at a graceful shutdown)."""
        for watcher in self.watchers:
            if not watcher.done():
                watcher.set_result(None)
        self.watchers.clear()

    @property
    def finished(self) -> bool:
        return self.status in FINAL_REQUEST


@dataclass
class Outcome:
    """How a request ended, as ``/output`` reports it."""

    app: str
    status: str
    content_type: str | None
    output: bytes | BlobRef | None  # BlobRef: a returned File, streamed from the blob store
    error: dict[str, Any] | None
