"""The process inside a container: imports the deployed code once and serves calls.

Run as ``python -m cove.runtime.worker MODULE FUNCTION`` with the channel's file
descriptor in ``COVE_CHANNEL_FD``. Calls of a plain function run in threads; calls of an
``async def`` function share one event loop, in a thread of its own (a body that blocks
that loop, instead of awaiting, holds up the container's other calls). Child calls, state,
progress and metrics go to the server over the channel. When the channel closes (the
server is gone) the process exits at once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import threading
import warnings
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cove.errors import FunctionError, RequestError
from cove.runtime.logcapture import capture_output
from cove.runtime.protocol import BlockingChannel
from cove.sdk.codec import application_signature, decode_arguments, dumps, encode_output_ref, loads
from cove.sdk.context import (
    CallScope,
    CallSpec,
    enable_process_fallback,
    set_loop_blocking_hook,
)
from cove.sdk.decorators import instance_of, registered_functions
from cove.sdk.execution import TailCall, classify, run_body, run_body_async
from cove.sdk.manifest import load_module


class WorkerBackend:
    """The SDK's backend inside a container: everything goes over the channel."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        self._tokens = itertools.count(1)
        self._pending: dict[int, tuple[ConcurrentFuture[Any], str]] = {}
        self._lock = threading.Lock()

    def _expect(self, what: str) -> tuple[int, ConcurrentFuture[Any]]:
        future: ConcurrentFuture[Any] = ConcurrentFuture()
        with self._lock:
            token = next(self._tokens)
            self._pending[token] = (future, what)
        return token, future

    def start_calls(self, scope: CallScope, specs: list[CallSpec]) -> list[ConcurrentFuture[Any]]:
        items, futures = [], []
        for spec in specs:
            payload = dumps((spec.args, spec.kwargs), f"arguments of {spec.function_name}")
            token, future = self._expect(spec.function_name)
            items.append((token, spec.call_id, spec.function_name, payload))
            futures.append(future)
        self.channel.send(("calls", scope.request_id, scope.call_id, items))
        return futures

    def state_get(self, scope: CallScope, key: str) -> tuple[bool, Any]:
        token, future = self._expect(f"state '{key}'")
        self.channel.send(("state_get", token, scope.request_id, key))
        found, data = future.result()
        return (True, loads(data, f"state '{key}'")) if found else (False, None)

    def state_set(self, scope: CallScope, key: str, value: Any) -> None:
        data = dumps(value, f"state value for '{key}'")
        token, future = self._expect(f"state '{key}'")
        self.channel.send(("state_set", token, scope.request_id, key, data))
        future.result()

    def progress(self, scope: CallScope, current: float, total: float, message: str | None) -> None:
        self.channel.send(("progress", scope.request_id, scope.call_id, current, total, message))

    def metric(self, scope: CallScope, kind: str, name: str, value: float) -> None:
        self.channel.send(("metric", scope.request_id, scope.call_id, kind, name, value))

    # -- frames from the server ---------------------------------------------------------
    def resolve(self, msg: tuple[Any, ...]) -> None:
        kind, token = msg[0], msg[1]
        with self._lock:
            entry = self._pending.pop(token, None)
        if entry is None:
            return
        future, what = entry
        if kind == "result":
            ok, data = msg[2], msg[3]
            if ok:
                try:
                    future.set_result(loads(data, f"output of {what}"))
                except Exception as exc:
                    future.set_exception(exc)
            else:
                future.set_exception(_error_of(data))
        elif kind == "state":
            future.set_result((msg[2], msg[3]))
        else:
            future.set_result(None)


def _error_of(failure: dict[str, Any]) -> Exception:
    if failure.get("reason") == "request_error":
        return RequestError(str(failure.get("message")), function_name=failure.get("function_name"))
    if failure.get("reason") == "function_timeout":
        from cove.errors import TimeoutError as CoveTimeoutError

        return CoveTimeoutError(
            str(failure.get("message")),
            function_name=failure.get("function_name"),
            error_type="TimeoutError",
            reason="function_timeout",
        )
    return FunctionError(
        str(failure.get("message")),
        function_name=failure.get("function_name"),
        error_type=failure.get("error_type"),
        reason=failure.get("reason"),
    )


class Worker:
    def __init__(self, channel: BlockingChannel, module: str, function: str) -> None:
        self.channel = channel
        self.backend = WorkerBackend(channel)
        self.functions = registered_functions(module)
        self.fn = self.functions[function]
        self.pool = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="cove-call")
        self.logs = capture_output(channel)  # each call's prints and logging, to the server
        self._loop: asyncio.AbstractEventLoop | None = None
        # Calls sent to the loop that have not begun there yet, and how many blocking
        # waits the loop is stuck in now (see loop_blocked).
        self._async_lock = threading.Lock()
        self._not_begun: dict[int, tuple[Any, ...]] = {}
        self._keys = itertools.count()
        self._blocked = 0
        self._warned = False

    def serve(self) -> None:
        while True:
            msg = self.channel.recv()
            if msg is None:
                os._exit(0)  # the server is gone: stop now, never run calls twice
            if msg[0] == "call":
                if self.fn.is_async:
                    self.start_async(msg[1:])
                else:
                    self.pool.submit(self.run_call, *msg[1:])
            else:
                self.backend.resolve(msg)

    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop every call of an ``async def`` function runs on."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            set_loop_blocking_hook(self.loop_blocked, self.loop_unblocked)
            threading.Thread(target=self._loop.run_forever, name="cove-async", daemon=True).start()
        return self._loop

    def start_async(self, call: tuple[Any, ...]) -> None:
        """Run a call of the ``async def`` function on the loop, or, while a body blocks
        the loop, in a thread with a loop of its own."""
        loop = self.loop()
        with self._async_lock:
            if self._blocked:
                self.pool.submit(self.run_call, *call)
                return
            key = next(self._keys)
            self._not_begun[key] = call
        asyncio.run_coroutine_threadsafe(self.run_async_call(key), loop)

    def loop_blocked(self) -> None:
        """A body blocks the loop on an SDK wait (``child(x)`` rather than ``await``).

        The calls waiting to begin on the loop go to threads instead: one of them may be
        the very child it waits for. Calls that arrive until it unblocks do the same."""
        if self._loop is None or asyncio.get_running_loop() is not self._loop:
            return  # a thread's own loop (see start_async): blocking it stops nothing else
        with self._async_lock:
            self._blocked += 1
            moved, self._not_begun = list(self._not_begun.values()), {}
        for call in moved:
            self.pool.submit(self.run_call, *call)
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{self.fn.name} is async but waits for a call without await (for example "
                "child(x) or .result()); it holds up the other calls of its container "
                "meanwhile: await the future (await child.future(x)) instead",
                RuntimeWarning,
                stacklevel=4,
            )

    def loop_unblocked(self) -> None:
        if self._loop is None or asyncio.get_running_loop() is not self._loop:
            return
        with self._async_lock:
            self._blocked -= 1

    def run_call(
        self, call_id: str, request_id: str, payload: bytes, input_mode: str, output_mode: str
    ) -> None:
        scope = CallScope(request_id, call_id, self.fn.name, self.backend)
        try:
            args, kwargs = self.arguments(payload, input_mode)
            result = run_body(self.fn, scope, args, kwargs)
        except BaseException as exc:
            self.failed(request_id, call_id, exc)
        else:
            self.deliver(request_id, call_id, result, output_mode)

    async def run_async_call(self, key: int) -> None:
        with self._async_lock:
            call = self._not_begun.pop(key, None)
        if call is None:
            return  # the loop was blocked before this began: it runs in a thread instead
        call_id, request_id, payload, input_mode, output_mode = call
        scope = CallScope(request_id, call_id, self.fn.name, self.backend)
        try:
            args, kwargs = self.arguments(payload, input_mode)
            result = await run_body_async(self.fn, scope, args, kwargs)
        except BaseException as exc:
            self.failed(request_id, call_id, exc)
        else:
            self.deliver(request_id, call_id, result, output_mode)

    def arguments(self, payload: bytes, input_mode: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        fn = self.fn
        if input_mode == "json":
            return (), decode_arguments(application_signature(fn), loads(payload, "input"))
        args, kwargs = loads(payload, f"arguments of {fn.name}")
        return args, kwargs

    def failed(self, request_id: str, call_id: str, exc: BaseException) -> None:
        self.logs.finish(request_id, call_id)
        self.channel.send(("failed", request_id, call_id, classify(self.fn.name, exc).to_dict()))

    def deliver(self, request_id: str, call_id: str, result: Any, output_mode: str) -> None:
        """Send a call's outcome: its output, or the tail call it ended with."""
        fn = self.fn
        try:
            self.logs.finish(request_id, call_id)  # its lines reach the server before its result
            if isinstance(result, TailCall):
                spec = result.spec
                data = dumps((spec.args, spec.kwargs), f"arguments of {spec.function_name}")
                self.channel.send(
                    ("tail", request_id, call_id, spec.call_id, spec.function_name, data)
                )
                return
            if output_mode.startswith("json:"):
                app = self.functions[output_mode[5:]]
                # A large File goes back as a reference to its blob, not through the channel.
                body, content_type = encode_output_ref(application_signature(app), result)
            else:
                body, content_type = dumps(result, f"output of {fn.name}"), "application/pickle"
            self.channel.send(("done", request_id, call_id, body, content_type))
        except BaseException as exc:
            self.failed(request_id, call_id, exc)


def run_worker(sock: socket.socket, module: str, function: str, load: bool = True) -> None:
    """Serve calls of ``function`` over ``sock`` until the server goes away; never returns.
    ``load`` is False in a container forked from a template that imported the code."""
    enable_process_fallback()
    cores = os.environ.pop("COVE_CPU_CORES", "")
    if cores:  # confined to the CPUs its function asked for
        os.sched_setaffinity(0, {int(c) for c in cores.split(",")})
    channel = BlockingChannel(sock)
    try:
        if load:
            load_module(_module_path(module), module)
        worker = Worker(channel, module, function)
        if worker.fn.cls is not None:
            instance_of(worker.fn.cls)
    except BaseException as exc:
        channel.send(("init_failed", classify(function, exc).to_dict()))
        os._exit(1)
    channel.send(("ready",))
    worker.serve()
    os._exit(0)


def main() -> None:
    module, function = sys.argv[1], sys.argv[2]
    run_worker(socket.socket(fileno=int(os.environ.pop("COVE_CHANNEL_FD"))), module, function)


def _module_path(module: str) -> Any:
    from pathlib import Path

    return Path(os.environ.get("COVE_CODE_DIR") or Path.cwd()) / f"{module}.py"


if __name__ == "__main__":
    main()
