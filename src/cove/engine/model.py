"""In-memory records of live requests and calls (the journal holds the durable truth)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cove.blobs import BlobRef
    from cove.engine.deployments import Version
    from cove.engine.pool import Slot

#: Finished requests whose outcome stays in memory, so that a client waiting for one is
#: answered without a read; an older one is read from the journal.
RECENT_OUTCOMES = 4096
#: Bytes of output those outcomes hold together at most. The oldest outputs are let go
#: first (their outcomes stay, without them): a few large outputs must not keep memory that
#: the journal holds anyway.
RECENT_OUTPUT_BYTES = 32 << 20
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

    @property
    def output_let_go(self) -> bool:
        """Whether it succeeded but its output was not kept in memory (RecentOutcomes): the
        journal answers for it."""
        return self.output is None and self.status == "succeeded"


class RecentOutcomes:
    """How the last ``limit`` requests that finished here ended, holding at most
    ``output_bytes`` of their outputs together (the newest first; an output larger than that
    is not held at all). An outcome without its output (``output is None`` though it
    succeeded) is one whose output is read from the journal when asked for."""

    def __init__(
        self, limit: int = RECENT_OUTCOMES, output_bytes: int = RECENT_OUTPUT_BYTES
    ) -> None:
        self.limit = limit
        self.output_bytes = output_bytes
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self._held: OrderedDict[str, int] = OrderedDict()  # request id -> its output's size
        self.held_bytes = 0

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._outcomes

    def __len__(self) -> int:
        return len(self._outcomes)

    def get(self, request_id: str) -> Outcome | None:
        return self._outcomes.get(request_id)

    def add(self, request_id: str, outcome: Outcome) -> None:
        self.discard(request_id)
        size = len(outcome.output) if isinstance(outcome.output, bytes) else 0
        if size > self.output_bytes:
            outcome = _without_output(outcome)
        elif size:
            self._held[request_id] = size
            self.held_bytes += size
        self._outcomes[request_id] = outcome
        while len(self._outcomes) > self.limit:
            self.discard(next(iter(self._outcomes)))
        while self.held_bytes > self.output_bytes:
            oldest, size = self._held.popitem(last=False)
            self.held_bytes -= size
            self._outcomes[oldest] = _without_output(self._outcomes[oldest])

    def discard(self, request_id: str) -> None:
        self._outcomes.pop(request_id, None)
        self.held_bytes -= self._held.pop(request_id, 0)

    def discard_app(self, app: str) -> None:
        for request_id in [r for r, o in self._outcomes.items() if o.app == app]:
            self.discard(request_id)

    def clear(self) -> None:
        self._outcomes.clear()
        self._held.clear()
        self.held_bytes = 0


def _without_output(outcome: Outcome) -> Outcome:
    """A copy without its output: whoever read the outcome before keeps the output."""
    return dataclasses.replace(outcome, output=None)
