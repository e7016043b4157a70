"""The engine: accepts requests, routes durable calls between containers, finishes requests.

Everything here runs on the server's event loop; durable writes go through the store's
single writer. A call's output reaches its parent (and a request's answer its client)
only after the journal has committed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import pickle
import signal
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.blobs import BlobStore, LocalBlobStore
from cove.engine.constraints import unsatisfiable
from cove.engine.deployments import Deployments, Version
from cove.engine.ids import new_request_id
from cove.engine.model import Call, RequestRun, Waiter
from cove.engine.pool import Pool, PoolHooks, Slot
from cove.engine.settings import Settings
from cove.errors import ConflictError, ErrorCode, NotFoundError, UnavailableError
from cove.runtime.base import ContainerRuntime
from cove.runtime.local import LocalProcessRuntime
from cove.sdk.retries import Retries
from cove.store import Store, open_store
from cove.store import journal as j

log = logging.getLogger(__name__)
MACHINE_REASONS = ("container_lost",)
RETRYABLE = ("function_error", "function_timeout", "out_of_memory")


_RECENT_OUTCOMES = 4096


@dataclass
class Outcome:
    """How a request ended, as ``/output`` reports it."""

    app: str
    status: str
    content_type: str | None
    output: bytes | None
    error: dict[str, Any] | None


class Payloads:
    """Small payloads stay in journal rows; large ones go to the blob store."""

    def __init__(self, blobs: BlobStore, limit: int) -> None:
        self.blobs = blobs
        self.limit = limit

    def keep(self, data: bytes) -> j.Payload:
        if len(data) <= self.limit:
            return j.Payload(inline=data)
        return j.Payload(blob=self.blobs.put(data))

    def load(self, payload: j.Payload) -> bytes:
        if payload.inline is not None:
            return payload.inline
        if payload.blob is not None:
            return self.blobs.get(payload.blob)
        return b""


class Engine(PoolHooks):
    """Requests, calls and pools of one server."""

    def __init__(self, settings: Settings, runtime: ContainerRuntime | None = None) -> None:
        self.settings = settings
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        sync = settings.sqlite_synchronous.upper()
        self.store: Store = open_store(settings.database(), sync)
        self.blobs = LocalBlobStore(data_dir / "blobs", fsync=sync in ("FULL", "EXTRA"))
        self.payloads = Payloads(self.blobs, settings.inline_payload_limit)
        self.runtime = runtime or LocalProcessRuntime(data_dir)
        self.deployments = Deployments(self.store, self.blobs, data_dir)
        self.live: dict[str, RequestRun] = {}
        # Outcomes of recently finished requests, so a waiting client is answered from memory.
        self.recent: OrderedDict[str, Outcome] = OrderedDict()
        self.pools: dict[tuple[str, int, str], Pool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._janitor: asyncio.Task[None] | None = None
        self.accepting = False
        self._stopping = asyncio.Event()  # set when a graceful shutdown begins
        self._drained = asyncio.Event()  # set when no request is left running

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Stop orphaned containers, load deployments, resume unfinished requests."""
        self._loop = asyncio.get_running_loop()
        self.store.bind_loop(self._loop)
        self.runtime.reap_orphans()
        await self.deployments.load()
        await self._recover()
        self._janitor = self._loop.create_task(self._reap_idle())
        self._memory_watch = self._loop.create_task(self._watch_memory())
        self.accepting = True

    def begin_shutdown(self) -> None:
        """Stop accepting requests (they get 503); running ones go on. Safe from a signal
        handler."""
        self.accepting = False
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def drain(self, grace: float) -> bool:
        """After :meth:`begin_shutdown`: wait up to ``grace`` seconds for running requests
        to finish. True if none is left; the rest resume when a server starts again."""
        self.begin_shutdown()
        if not self.live:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), grace)
        return not self.live

    async def stop(self) -> None:
        self.accepting = False
        if self._janitor is not None:
            self._janitor.cancel()
            self._memory_watch.cancel()
        for pool in list(self.pools.values()):
            await pool.stop()
        await self.runtime.close()
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)

    async def _watch_memory(self) -> None:
        while True:
            await asyncio.sleep(self.settings.memory_check_interval)
            for pool in list(self.pools.values()):
                pool.enforce_memory()

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.settings.container_idle_timeout))
            for pool in list(self.pools.values()):
                await pool.stop_idle(self.settings.container_idle_timeout)

    async def _recover(self) -> None:
        rows = await self.store.read(j.unfinished_requests)
        for row in rows:
            rid: str = row["id"]
            try:
                version = self.deployments.get(row["app"], row["version"])
            except Exception:
                gone = _internal("the request's application version is gone")
                await self.store.write(
                    functools.partial(
                        j.finish_request,
                        request_id=rid,
                        status="failed",
                        now=time.time(),
                        error=gone,
                    )
                )
                continue
            await self._resume(rid, version, row["status"])
        if rows:
            log.info("resumed %d unfinished request(s)", len(rows))

    async def _resume(self, rid: str, version: Version, status: str) -> None:
        """Rebuild a request from the journal and run its entry call again."""
        run = RequestRun(rid, version, status=status)

        def load(conn: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
            return j.calls_of(conn, rid), j.state_of(conn, rid)

        calls, state = await self.store.read(load)
        run.state = {k: self.payloads.load(v) for k, v in state.items()}
        root = self._recover_calls(run, calls)
        self.live[run.id] = run
        self._drained.clear()
        if root is not None:
            self._pool(version, root.function).submit(root)

    def _recover_calls(self, run: RequestRun, rows: list[dict[str, Any]]) -> Call | None:
        root: Call | None = None
        for row in rows:
            if row["status"] not in ("succeeded", "failed") and row["call_id"] != "0":
                continue  # re-issued by its parent when the parent runs again
            args = self.payloads.load(j.Payload(row["args_inline"], row["args_blob"]))
            call = Call(
                run,
                row["call_id"],
                row["function"],
                None,
                row["input_mode"],
                row["output_mode"],
                args if row["call_id"] == "0" else b"",
                status=row["status"],
                attempts=row["attempts"],
            )
            if call.status == "succeeded":
                call.output = self.payloads.load(
                    j.Payload(row["output_inline"], row["output_blob"])
                )
                call.content_type = row["content_type"]
            elif call.status == "failed":
                import json

                call.failure = json.loads(row["error"]) if row["error"] else _internal("failed")
            else:
                call.status, root = "pending", call
            run.calls[call.call_id] = call
        return root

    # -- requests -----------------------------------------------------------------------
    async def invoke(
        self,
        app: str,
        values: dict[str, Any],
        idempotency_key: str | None = None,
        body_hash: str | None = None,
    ) -> tuple[str, bool]:
        """Accept a request; returns ``(request_id, created)`` once it is durable."""
        if not self.accepting:
            raise UnavailableError("the server is shutting down: send the request again later")
        version = self.deployments.get(app)
        entry = version.application["function"]
        args = pickle.dumps(values, protocol=5)
        now = time.time()
        rid = new_request_id()
        request = {
            "id": rid,
            "app": app,
            "version": version.version,
            "status": "pending",
            "created_at": now,
            "idempotency_key": idempotency_key,
            "idempotency_hash": body_hash,
        }

        def write(conn: Any) -> tuple[str, bool]:
            payload = self.payloads.keep(args)
            root = _call_row(rid, "0", entry, None, "json", f"json:{entry}", payload, now)
            return j.create_request(conn, request, root)

        if idempotency_key is None:
            # Nothing to deduplicate: the entry call starts while its record commits. Every
            # answer about the request (its id, its output) still waits for that commit,
            # and the call's own records commit after it.
            committed = self.store.write_future(write)
            self._start(rid, version, entry, args)
            try:
                await committed
            except BaseException:
                run = self.live.get(rid)
                if run is not None:
                    self._close(run, "failed", _internal("the request could not be recorded"))
                raise
            return rid, True
        request_id, created = await self.store.write(write)
        if created:
            self._start(rid, version, entry, args)
        return request_id, created

    def _start(self, rid: str, version: Version, entry: str, args: bytes) -> None:
        run = RequestRun(rid, version)
        root = Call(run, "0", entry, None, "json", f"json:{entry}", args)
        run.calls["0"] = root
        self.live[rid] = run
        self._drained.clear()
        self._pool(version, entry).submit(root)

    async def wait(self, request_id: str, timeout: float) -> None:
        run = self.live.get(request_id)
        if run is None:
            return
        # A graceful shutdown answers waiting clients at once (the request goes on).
        done = asyncio.ensure_future(run.done.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(
                {done, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            done.cancel()
            stopping.cancel()

    async def cancel(self, request_id: str, reason: str = "cancelled by the user") -> bool:
        """Stop a running request: its running calls stop, queued ones never start, and it
        ends ``cancelled`` (durably: a restart does not resume it). False if not running."""
        run = self.live.get(request_id)
        if run is None:
            return False
        error = {"reason": "cancelled", "function_name": None, "message": reason}
        await self._finish_request(run, "cancelled", error=error)
        return True

    async def replay(self, app: str, request_id: str, upgrade: bool = False) -> int:
        """Run a failed or cancelled request again under its id, reusing every recorded
        output; with ``upgrade`` on the latest version. Returns the version it runs on."""
        if request_id in self.live:
            raise ConflictError(f"request {request_id} is still running", request_id=request_id)
        row = await self.store.read(lambda c: j.get_request(c, request_id))
        if row is None or row["app"] != app:
            raise NotFoundError(
                f"application {app!r} has no request {request_id!r}",
                code=ErrorCode.REQUEST_NOT_FOUND,
                request_id=request_id,
            )
        version = self.deployments.get(app, None if upgrade else row["version"])
        now = time.time()
        await self.store.write(lambda c: j.prepare_replay(c, request_id, version.version, now))
        self.recent.pop(request_id, None)
        await self._resume(request_id, version, "pending")
        return version.version

    async def delete_application(self, app: str) -> None:
        """Cancel the application's live requests, stop its containers, forget it."""
        self.deployments.get(app)
        for run in [r for r in self.live.values() if r.app == app]:
            await self.cancel(run.id, "the application was deleted")
        for key in [k for k in self.pools if k[0] == app]:
            await self.pools.pop(key).stop()
        for rid in [rid for rid, outcome in self.recent.items() if outcome.app == app]:
            del self.recent[rid]
        await self.deployments.delete(app)

    def _pool(self, version: Version, function: str) -> Pool:
        key = (version.app, version.version, function)
        pool = self.pools.get(key)
        if pool is None:
            manifest = version.function(function)
            assert manifest is not None, function
            pool = Pool(
                version,
                manifest,
                self.runtime,
                self,
                self.settings.default_max_containers,
                self.settings.container_start_timeout,
                unsatisfiable(manifest, version.application, self.settings),
            )
            self.pools[key] = pool
        return pool

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

        def write(conn: Any) -> None:
            j.start_call(conn, run.id, call.call_id, attempts, now)
            j.start_attempt(conn, run.id, call.call_id, attempts, container, now)
            if first:
                j.mark_request_running(conn, run.id)

        self.store.submit(write, lazy=True)

    def on_frame(self, slot: Slot, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
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
            row = {
                "request_id": msg[1],
                "call_id": msg[2],
                "current": msg[3],
                "total": msg[4],
                "message": msg[5],
                "created_at": time.time(),
            }
            self.store.submit(lambda c: j.add_progress(c, row), lazy=True)
        elif kind == "metric":
            row = {
                "request_id": msg[1],
                "call_id": msg[2],
                "kind": msg[3],
                "name": msg[4],
                "value": msg[5],
                "created_at": time.time(),
            }
            self.store.submit(lambda c: j.add_metric(c, row), lazy=True)

    def _children(
        self, slot: Slot, request_id: str, parent_id: str, items: list[tuple[Any, ...]]
    ) -> None:
        run = self.live.get(request_id)
        parent = run.calls.get(parent_id) if run is not None else None
        if run is None or parent is None or run.finished:
            for token, *_ in items:
                slot.container.send(("result", token, False, _internal("request finished")))
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
                    failure = _internal(f"function {function} is not part of this deployment")
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
                        _call_row(
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

            self.store.submit(insert, lazy=True)
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
            row = _call_row(
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

        self.store.submit(write, lazy=True)

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
                row = _call_row(run.id, child_id, function, parent_id, "pickle", mode, kept, now)
                j.insert_calls(conn, [row])

            self.store.submit(insert, lazy=True)
            child.tail_of = call
            self._pool(run.version, function).submit(child)
            return
        child.tail_of = call
        if child.status == "succeeded":
            assert child.output is not None
            self._succeed(child, child.output, child.content_type or "", journal_self=False)
        elif child.status == "failed":
            self._final_failure(child, child.failure or _internal("failed"), journal_self=False)

    # -- outcomes -----------------------------------------------------------------------
    def _succeed(
        self, call: Call, data: bytes, content_type: str, journal_self: bool = True
    ) -> None:
        run = call.run
        chain = _tail_chain(call)[1:]
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
                j.finish_request(conn, run.id, "succeeded", now, content_type=content_type)

        def committed() -> None:
            for c in [call, *chain]:
                c.status, c.output, c.content_type = "succeeded", data, content_type
                self._deliver(c, True, data)
            if finishes_request and not run.finished:
                self._close(run, "succeeded")

        self.store.submit(write, on_loop=_after(committed))

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
        self.store.submit(
            lambda c: j.end_attempt(c, rid, cid, attempt, status, now, error), lazy=True
        )

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
        chain = _tail_chain(call)[1:]
        fails_request = failure.get("reason") == "request_error" or any(
            c.call_id == "0" for c in [call, *chain]
        )
        now = time.time()
        keys = [(c.call_id, c.attempts) for c in ([call, *chain] if journal_self else chain)]
        error = _request_error(failure)

        def write(conn: Any) -> None:
            for call_id, attempts in keys:
                j.finish_call(conn, run.id, call_id, "failed", now, attempts, error=failure)
            if fails_request and not run.finished:
                j.finish_request(conn, run.id, "failed", now, error=error)

        def committed() -> None:
            for c in [call, *chain]:
                c.status, c.failure = "failed", failure
                self._deliver(c, False, failure)
            if fails_request and not run.finished:
                self._close(run, "failed", error)

        self.store.submit(write, on_loop=_after(committed))

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
        await self.store.write(lambda c: j.finish_request(c, run.id, status, now, error=error))
        self._close(run, status, error)

    def _close(self, run: RequestRun, status: str, error: dict[str, Any] | None = None) -> None:
        """The request is final: wake waiters, stop what still runs for it."""
        run.status = status
        root = run.calls.get("0")
        self.recent[run.id] = Outcome(
            run.app,
            status,
            root.content_type if root else None,
            root.output if root and status == "succeeded" else None,
            error,
        )
        while len(self.recent) > _RECENT_OUTCOMES:
            self.recent.popitem(last=False)
        run.done.set()
        self.live.pop(run.id, None)
        if not self.live:
            self._drained.set()
        for call in run.calls.values():
            if call.finished:
                continue
            for w in call.waiters:
                if w.slot.alive:
                    w.slot.container.send(("result", w.token, False, _cancelled(status)))
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

        self.store.submit(write, on_loop=_after(lambda: slot.container.send(("ack", token))))

    # -- containers ---------------------------------------------------------------------
    def on_lost(self, slot: Slot) -> None:
        failure = _lost_failure(slot)
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
        self._attempt_failed(
            call,
            {
                "reason": "function_timeout",
                "function_name": call.function,
                "message": f"{call.function} ran longer than its timeout of {seconds:g} s",
                "error_type": "TimeoutError",
                "traceback": "",
            },
        )


def _after(fn: Callable[[], None]) -> Callable[[Any, BaseException | None], None]:
    """A store callback that runs ``fn`` once the write committed."""

    def done(_result: Any, error: BaseException | None) -> None:
        if error is not None:
            log.error("journal write failed: %s", error)
            return
        fn()

    return done


def _lost_failure(slot: Slot) -> dict[str, Any]:
    """Why a container's calls ended with it: the machine's doing, or the user code's."""
    code = slot.container.exit_code
    if slot.out_of_memory:
        return {
            "reason": "out_of_memory",
            "message": f"the container went over the function's memory limit of "
            f"{slot.pool.function.get('memory') or 1:g} GB and was stopped",
            "error_type": "OutOfMemory",
            "traceback": "",
        }
    if slot.stopped_by_server or code is None or code == -signal.SIGKILL:
        # Stopped by Cove, by the operating system or by an operator: not the code's fault,
        # so it costs no user retry.
        return {
            "reason": "container_lost",
            "message": "the container stopped while the call ran",
            "error_type": "ContainerLost",
            "traceback": "",
        }
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    return {
        "reason": "function_error",
        "message": f"the container's process ended with {how} while the call ran",
        "error_type": "ContainerExited",
        "traceback": "",
    }


def _tail_chain(call: Call) -> list[Call]:
    chain = [call]
    while chain[-1].tail_of is not None:
        nxt = chain[-1].tail_of
        assert nxt is not None
        chain.append(nxt)
    return chain


def _call_row(
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


def _request_error(failure: dict[str, Any]) -> dict[str, Any]:
    reason = failure.get("reason")
    if reason == "child_failed":  # the request failed for the reason its child did
        reason = failure.get("cause") or "function_error"
        if reason in ("child_failed", "container_lost", "init_error"):
            reason = "function_error"
    return {
        "reason": reason,
        "function_name": failure.get("function_name"),
        "message": failure.get("message"),
        "error_type": failure.get("error_type"),
        "traceback": failure.get("traceback"),
    }


def _internal(message: str) -> dict[str, Any]:
    return {
        "reason": "internal_error",
        "function_name": None,
        "message": message,
        "error_type": "InternalError",
        "traceback": "",
    }


def _cancelled(status: str) -> dict[str, Any]:
    return {
        "reason": "cancelled",
        "function_name": None,
        "message": f"the request already {status}",
        "error_type": "Cancelled",
        "traceback": "",
    }
