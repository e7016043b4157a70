"""Routing durable calls: frames from containers, outcomes, retries, timeouts.

A mixin of :class:`cove.engine.engine.Engine`, kept apart so each file holds one role. Every
method runs on the event loop; an output reaches its parent only after its commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from cove.engine.deployments import Version
from cove.engine.events import EventLog
from cove.engine.failures import (
    MACHINE_REASONS,
    RETRYABLE,
    cancelled,
    internal,
    lost_failure,
    request_error,
)
from cove.engine.failures import failure as make_failure
from cove.engine.leases import REFUSED, LeaseLost
from cove.engine.model import Call, Outcome, RecentOutcomes, RequestRun, Waiter
from cove.engine.payloads import Payloads
from cove.engine.pool import Pool, PoolHooks, Slot
from cove.engine.settings import Settings
from cove.errors import storage_full
from cove.sdk.retries import Retries
from cove.store import Store
from cove.store import journal as j

log = logging.getLogger(__name__)
#: An outcome whose write met a full disk is written again after this long, until it fits.
STORAGE_RETRY_SECONDS = 0.5


class CallRouter(PoolHooks):
    """What happens to calls between their dispatch and their final outcome."""

    settings: Settings
    store: Store
    payloads: Payloads
    events: EventLog
    live: dict[str, RequestRun]
    recent: RecentOutcomes
    _loop: asyncio.AbstractEventLoop | None
    _drained: asyncio.Event
    #: Outcome writes waiting for room on a full disk (their requests wait meanwhile).
    storage_waiting: int = 0

    def _pool(self, version: Version, function: str) -> Pool:
        raise NotImplementedError

    def _fence(self, conn: Any, run: RequestRun) -> None:
        """In the (fenced) write that finishes a request: tell whoever waits for it."""

    def _guard(self, request_id: str, op: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``op``, a journal write of the request's, fenced (cove.engine.leases): in its
        transaction it writes nothing and returns REFUSED if this server no longer holds
        the request's lease (the refusal is counted and the request dropped here)."""
        return op

    def _write_for(self, request_id: str, op: Callable[[Any], Any]) -> None:
        """A journal write of the request's that nobody waits for, fenced (``lazy``)."""
        self.store.submit(self._guard(request_id, op), lazy=True)

    def _retries(self, call: Call) -> Retries:
        fn = call.run.version.function(call.function) or {}
        policy = fn.get("retries") or call.run.version.application["retries"]
        return Retries.from_dict(policy)

    # -- frames from containers ---------------------------------------------------------
    def on_dispatch(self, call: Call) -> None:
        call.clock_left = self._timeout(call)
        self._start_clock(call)
        run, now, attempts = call.run, time.time(), call.attempts
        container = call.slot.container.id if call.slot is not None else ""
        first = run.status == "pending"
        run.status = "running"
        self.events.call_started(call, container)

        def write(conn: Any) -> None:
            j.start_call(conn, run.id, call.call_id, attempts, now)
            j.start_attempt(conn, run.id, call.call_id, attempts, container, now)
            if first:
                j.mark_request_running(conn, run.id)

        self._write_for(run.id, write)

    def on_frame(self, slot: Slot, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if not _dispatched_here(slot, msg):
            _refuse(slot, msg)
            return
        if kind == "logs":  # only lines of calls this container serves
            msg = (kind, [line for line in msg[1] if _serves(slot, line[0], line[1])])
        if kind == "calls":
            self._children(slot, msg[1], msg[2], msg[3])
        elif kind in ("done", "failed", "tail"):
            call = slot.calls.get(f"{msg[2]}@{msg[1]}")
            if call is None:
                return
            self._stop_clock(call)
            slot.pool.release(slot, call)
            if kind == "done":
                self._end_attempt(call, "succeeded")
                self._succeed(call, msg[3], msg[4])
            elif kind == "failed":
                self._attempt_failed(call, msg[3])
            else:
                self._end_attempt(call, "tail_call")
                self._tail(call, msg[3], msg[4], msg[5])
        elif kind == "state_get":
            run = self.live.get(msg[2])
            data = run.state.get(msg[3]) if run else None
            slot.container.send(("state", msg[1], data is not None, data))
        elif kind == "state_set":
            self._set_state(slot, msg[1], msg[2], msg[3], msg[4])
        elif kind == "progress":
            self._progress_resets_clock(msg[1], msg[2])
            self.events.progress(msg[1], msg[2], msg[3], msg[4], msg[5])
            row = {
                "request_id": msg[1],
                "call_id": msg[2],
                "current": msg[3],
                "total": msg[4],
                "message": msg[5],
                "created_at": time.time(),
            }
            self._write_for(msg[1], lambda c: j.add_progress(c, row))
        elif kind == "logs":  # what the container's calls printed and logged
            self.events.logs(slot.container.id, slot.pool.name, msg[1])
        elif kind == "metric":
            row = {
                "request_id": msg[1],
                "call_id": msg[2],
                "kind": msg[3],
                "name": msg[4],
                "value": msg[5],
                "created_at": time.time(),
            }
            self._write_for(msg[1], lambda c: j.add_metric(c, row))

    def _children(
        self, slot: Slot, request_id: str, parent_id: str, items: list[tuple[Any, ...]]
    ) -> None:
        run = self.live.get(request_id)
        parent = run.calls.get(parent_id) if run is not None else None
        if run is None or parent is None or run.finished:
            for token, *_ in items:
                slot.container.send(("result", token, False, internal("request finished")))
            return
        fresh: list[Call] = []
        now = time.time()
        for token, call_id, function, payload in items:
            call = run.calls.get(call_id)
            if call is not None and call.finished and call.function != function:
                # The body took another path than the journal recorded (code changed, or
                # it is not deterministic): this position runs fresh.
                self._diverge(run, call_id, function, parent_id, payload)
                call = None
            if call is None:
                if run.version.function(function) is None:
                    failure = internal(f"function {function} is not part of this deployment")
                    slot.container.send(("result", token, False, failure))
                    continue
                call = Call(run, call_id, function, parent, "pickle", "pickle", payload)
                run.calls[call_id] = call
                fresh.append(call)
            if call.finished:
                self._answer(slot, token, call)
                continue
            call.waiters.append(Waiter(slot, token, parent, parent.attempts))
            parent.children_waiting += 1
        if fresh:
            rows = [(c.call_id, c.function, c.args) for c in fresh]

            def insert(conn: Any) -> None:
                keep = self.payloads.keep
                j.insert_calls(
                    conn,
                    [
                        call_row(
                            request_id,
                            call_id,
                            function,
                            parent_id,
                            "pickle",
                            "pickle",
                            keep(args),
                            now,
                        )
                        for call_id, function, args in rows
                    ],
                )

            self._write_for(request_id, insert)
        if parent.children_waiting and parent.slot is not None:
            parent.slot.pool.borrow(parent)
            self._stop_clock(parent)  # time spent waiting on children does not count
        for call in fresh:
            self._pool(run.version, call.function).submit(call)

    def _diverge(
        self, run: RequestRun, call_id: str, function: str, parent_id: str, args: bytes
    ) -> None:
        old = run.calls.pop(call_id)
        run.diverged.append(call_id)
        log.warning(
            "request %s: call %s was %s in the journal, now %s: it runs fresh",
            run.id,
            call_id,
            old.function,
            function,
        )
        diverged, now = list(run.diverged), time.time()

        def write(conn: Any) -> None:
            row = call_row(
                run.id,
                call_id,
                function,
                parent_id,
                "pickle",
                "pickle",
                self.payloads.keep(args),
                now,
            )
            j.record_divergence(conn, row, diverged)

        self._write_for(run.id, write)

    def _answer(self, slot: Slot, token: int, call: Call) -> None:
        if call.status == "succeeded":
            slot.container.send(("result", token, True, call.output))
        else:
            slot.container.send(("result", token, False, call.failure))

    def _tail(self, call: Call, child_id: str, function: str, payload: bytes) -> None:
        run = call.run
        call.status = "waiting"
        child = run.calls.get(child_id)
        if child is None:
            child = Call(run, child_id, function, call, "pickle", call.output_mode, payload)
            run.calls[child_id] = child
            now, parent_id, mode = time.time(), call.call_id, call.output_mode

            def insert(conn: Any) -> None:
                kept = self.payloads.keep(payload)
                row = call_row(run.id, child_id, function, parent_id, "pickle", mode, kept, now)
                j.insert_calls(conn, [row])

            self._write_for(run.id, insert)
            child.tail_of = call
            self._pool(run.version, function).submit(child)
            return
        child.tail_of = call
        if child.status == "succeeded":
            assert child.output is not None
            self._succeed(child, child.output, child.content_type or "", journal_self=False)
        elif child.status == "failed":
            self._final_failure(child, child.failure or internal("failed"), journal_self=False)

    # -- outcomes -----------------------------------------------------------------------
    def _succeed(
        self, call: Call, data: bytes, content_type: str, journal_self: bool = True
    ) -> None:
        run = call.run
        chain = tail_chain(call)[1:]
        finishes_request = any(c.call_id == "0" for c in [call, *chain])
        now = time.time()
        keys = [(c.call_id, c.attempts) for c in ([call, *chain] if journal_self else chain)]

        def write(conn: Any) -> None:
            output = self.payloads.keep(data)
            for call_id, attempts in keys:
                j.finish_call(
                    conn, run.id, call_id, "succeeded", now, attempts, output, content_type
                )
            if finishes_request and not run.finished:
                self._fence(conn, run)
                j.finish_request(conn, run.id, "succeeded", now, content_type=content_type)

        def committed() -> None:
            for c in [call, *chain]:
                c.status, c.output, c.content_type = "succeeded", data, content_type
                self._deliver(c, True, data)
            if finishes_request and not run.finished:
                self._close(run, "succeeded")

        self._record(self._guard(run.id, write), committed)

    def _attempt_failed(self, call: Call, failure: dict[str, Any]) -> None:
        self._end_attempt(
            call, "lost" if failure.get("reason") in MACHINE_REASONS else "failed", failure
        )
        reason = failure.get("reason")
        run = call.run
        if run.finished:
            return
        if reason == "request_error":
            self._final_failure(call, failure)
            return
        if reason in MACHINE_REASONS and call.machine_retries < self.settings.machine_retries:
            call.machine_retries += 1
            call.attempts -= 1  # the machine failed, not the user's code
            self._requeue(call, 0.0)
            return
        policy = self._retries(call)
        if reason in RETRYABLE and call.attempts <= policy.max_retries:
            self._requeue(call, policy.delay(call.attempts))
            return
        self._final_failure(call, failure)

    def _end_attempt(self, call: Call, status: str, error: dict[str, Any] | None = None) -> None:
        rid, cid, attempt, now = call.run.id, call.call_id, call.attempts, time.time()
        self.events.call_finished(call, status, error)
        self._write_for(rid, lambda c: j.end_attempt(c, rid, cid, attempt, status, now, error))

    def _requeue(self, call: Call, delay: float) -> None:
        call.status = "pending"
        pool = self._pool(call.run.version, call.function)
        assert self._loop is not None
        if delay > 0:
            self._loop.call_later(delay, pool.submit, call)
        else:
            pool.submit(call)

    def _final_failure(
        self, call: Call, failure: dict[str, Any], journal_self: bool = True
    ) -> None:
        run = call.run
        chain = tail_chain(call)[1:]
        fails_request = failure.get("reason") == "request_error" or any(
            c.call_id == "0" for c in [call, *chain]
        )
        now = time.time()
        keys = [(c.call_id, c.attempts) for c in ([call, *chain] if journal_self else chain)]
        error = request_error(failure)

        def write(conn: Any) -> None:
            for call_id, attempts in keys:
                j.finish_call(conn, run.id, call_id, "failed", now, attempts, error=failure)
            if fails_request and not run.finished:
                self._fence(conn, run)
                j.finish_request(conn, run.id, "failed", now, error=error)

        def committed() -> None:
            for c in [call, *chain]:
                c.status, c.failure = "failed", failure
                self._deliver(c, False, failure)
            if fails_request and not run.finished:
                self._close(run, "failed", error)

        self._record(self._guard(run.id, write), committed)

    def _record(
        self, write: Callable[[Any], None], committed: Callable[[], None], waited: bool = False
    ) -> None:
        """Write an outcome (a call's output or failure, a state entry), then run
        ``committed``. One that meets a full disk is not dropped: it is written again every
        STORAGE_RETRY_SECONDS until there is room, and what waits on it (the parent call,
        the request) waits meanwhile, paused rather than failed."""

        def done(_result: Any, error: BaseException | None) -> None:
            full = storage_full(error)
            if full is not None:
                if not waited:
                    self.storage_waiting += 1
                    log.warning("an outcome waits for room on a full disk: %s", full.message)
                assert self._loop is not None
                self._loop.call_later(STORAGE_RETRY_SECONDS, self._record, write, committed, True)
                return
            if waited:
                self.storage_waiting -= 1
            if error is not None:
                log.error("journal write failed: %s", error)
                return
            if _result is not REFUSED:  # not refused by the lease fence
                committed()

        self.store.submit(write, on_loop=done)

    def _deliver(self, call: Call, ok: bool, data: Any) -> None:
        for w in call.waiters:
            parent = w.parent
            if not w.slot.alive or w.attempt != parent.attempts or parent.finished:
                continue
            w.slot.container.send(("result", w.token, ok, data))
            parent.children_waiting -= 1
            if parent.children_waiting == 0 and parent.slot is not None:
                parent.slot.pool.unborrow(parent)
                self._start_clock(parent)
        call.waiters.clear()

    async def _finish_request(
        self, run: RequestRun, status: str, error: dict[str, Any] | None = None
    ) -> None:
        now = time.time()

        def write(conn: Any) -> None:
            self._fence(conn, run)
            j.finish_request(conn, run.id, status, now, error=error)

        if await self.store.write(self._guard(run.id, write)) is REFUSED:
            raise LeaseLost(f"request {run.id} is run by another replica now")
        self._close(run, status, error)

    def _close(self, run: RequestRun, status: str, error: dict[str, Any] | None = None) -> None:
        """The request is final: wake waiters, stop what still runs for it."""
        run.status = status
        root = run.calls.get("0")
        output = root.output if root and status == "succeeded" else None
        content_type = root.content_type if root else None
        self.recent.add(run.id, Outcome(run.app, status, content_type, output, error))
        run.mark_done()
        self.events.finished(run, status, error)
        self.live.pop(run.id, None)
        if not self.live:
            self._drained.set()
        for call in run.calls.values():
            if call.finished:
                continue
            for w in call.waiters:
                if w.slot.alive:
                    w.slot.container.send(("result", w.token, False, cancelled(status)))
            call.waiters.clear()
            if status != "succeeded" and call.slot is not None and call.slot.alive:
                # Stop the request's running code; other calls in that container are retried.
                call.slot.alive, call.slot.stopped_by_server = False, True
                assert self._loop is not None
                self._loop.create_task(call.slot.container.kill())

    def _set_state(self, slot: Slot, token: int, request_id: str, key: str, data: bytes) -> None:
        run = self.live.get(request_id)
        if run is None:
            slot.container.send(("ack", token))
            return
        run.state[key] = data
        now = time.time()

        def write(conn: Any) -> None:
            j.set_state(conn, request_id, key, self.payloads.keep(data), now)

        self._record(self._guard(request_id, write), lambda: slot.container.send(("ack", token)))

    # -- containers ---------------------------------------------------------------------
    def on_lost(self, slot: Slot) -> None:
        failure = lost_failure(slot)
        for call in list(slot.calls.values()):
            self._stop_clock(call)
            slot.pool.release(slot, call)
            self._attempt_failed(call, {**failure, "function_name": call.function})

    def on_start_failed(self, pool: Pool, failure: dict[str, Any]) -> None:
        failure = {**failure, "reason": failure.get("reason", "function_error")}
        if failure["reason"] == "function_error":
            failure["reason"] = "init_error"
        while pool.queue:
            call = pool.queue.popleft()
            if not call.finished and not call.run.finished:
                self._final_failure(call, failure)

    # -- timeouts -----------------------------------------------------------------------
    def _timeout(self, call: Call) -> float:
        fn = call.run.version.function(call.function) or {}
        return float(fn.get("timeout") or 300)

    def _start_clock(self, call: Call) -> None:
        assert self._loop is not None
        if call.timer is not None:
            call.timer.cancel()
        call.clock_started = time.monotonic()
        call.timer = self._loop.call_later(
            max(0.0, call.clock_left), self._timed_out, call, call.attempts
        )

    def _stop_clock(self, call: Call) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
            call.clock_left -= time.monotonic() - call.clock_started

    def _progress_resets_clock(self, request_id: str, call_id: str) -> None:
        run = self.live.get(request_id)
        call = run.calls.get(call_id) if run is not None else None
        if call is not None and call.timer is not None:
            call.clock_left = self._timeout(call)
            self._start_clock(call)

    def _timed_out(self, call: Call, attempt: int) -> None:
        """The call ran past its timeout: stop its container and fail the attempt."""
        call.timer = None
        slot = call.slot
        if call.attempts != attempt or call.status != "running" or slot is None:
            return
        slot.pool.release(slot, call)
        slot.alive, slot.stopped_by_server = False, True
        assert self._loop is not None
        self._loop.create_task(slot.container.kill())  # other calls there are retried
        seconds = self._timeout(call)
        message = f"{call.function} ran longer than its timeout of {seconds:g} s"
        self._attempt_failed(
            call, make_failure("function_timeout", call.function, message, "TimeoutError")
        )


def _serves(slot: Slot, request_id: object, call_id: object | None = None) -> bool:
    """Whether the server dispatched that call (or, without one, any call of that request)
    to this container, and it has not finished."""
    if call_id is not None:
        return f"{call_id}@{request_id}" in slot.calls
    return any(call.run.id == request_id for call in slot.calls.values())


def _dispatched_here(slot: Slot, msg: tuple[Any, ...]) -> bool:
    """A container acts only for the calls it serves: a frame naming another request or
    call (forged by the code inside, or late) is refused. Each container has its own
    private channel, so the channel itself is the credential (docs/security.md)."""
    kind = msg[0]
    if kind in ("calls", "progress", "metric"):
        return _serves(slot, msg[1], msg[2])
    if kind in ("state_get", "state_set"):
        return _serves(slot, msg[2])
    return True  # done/failed/tail are matched to a served call below; logs line by line


def _refuse(slot: Slot, msg: tuple[Any, ...]) -> None:
    kind = msg[0]
    log.warning(
        "container %s sent a %s frame for a call it does not serve: refused",
        slot.container.id,
        kind,
    )
    refused = internal("refused: this container does not serve that request")
    if kind == "calls":
        for token, *_ in msg[3]:
            slot.container.send(("result", token, False, refused))
    elif kind == "state_get":
        slot.container.send(("state", msg[1], False, None))
    elif kind == "state_set":
        slot.container.send(("ack", msg[1]))


def tail_chain(call: Call) -> list[Call]:
    chain = [call]
    while chain[-1].tail_of is not None:
        nxt = chain[-1].tail_of
        assert nxt is not None
        chain.append(nxt)
    return chain


def call_row(
    request_id: str,
    call_id: str,
    function: str,
    parent_id: str | None,
    input_mode: str,
    output_mode: str,
    args: j.Payload,
    now: float,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "call_id": call_id,
        "function": function,
        "parent_id": parent_id,
        "status": "pending",
        "attempts": 0,
        "input_mode": input_mode,
        "output_mode": output_mode,
        "args_inline": args.inline,
        "args_blob": args.blob,
        "created_at": now,
    }
