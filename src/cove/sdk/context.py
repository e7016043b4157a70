"""The request context: which request and call the running code belongs to.

A :class:`CallScope` is set while a function's body runs; SDK calls made from that body
(child calls, state, progress, metrics) go through the scope's :class:`Backend`, which is
the container's channel to the server, or the local runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass, field
from typing import Any, Protocol

from cove.errors import InternalError, SDKUsageError
from cove.sdk.http import HEADERS_STATE_KEY, Headers


@dataclass
class CallSpec:
    """One child call to start: its durable id, the function, and its arguments."""

    call_id: str
    function_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class Backend(Protocol):
    """Where the SDK sends what a running function asks for."""

    def start_calls(
        self, scope: CallScope, specs: list[CallSpec]
    ) -> list[ConcurrentFuture[Any]]: ...

    def state_get(self, scope: CallScope, key: str) -> tuple[bool, Any]: ...

    def state_set(self, scope: CallScope, key: str, value: Any) -> None: ...

    def progress(
        self, scope: CallScope, current: float, total: float, message: str | None
    ) -> None: ...

    def metric(self, scope: CallScope, kind: str, name: str, value: float) -> None: ...


@dataclass
class CallScope:
    """The running call: its request, durable id and the counter for its children's ids.

    Child ids are ``f"{call_id}.{position}"``; positions are handed out in the order the
    body issues calls, so a re-run of the same body finds the same ids in the journal.
    """

    request_id: str
    call_id: str
    function_name: str
    backend: Backend
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The process the call runs in: a child process (forked with the caller's context
    # variables) is not the call, and must not use its channel.
    pid: int = field(default_factory=os.getpid)

    def next_position(self) -> int:
        with self._lock:
            pos = self._next
            self._next += 1
            return pos

    def child_id(self) -> str:
        return f"{self.call_id}.{self.next_position()}"

    def own_backend(self) -> Backend:
        """The backend, for this call's own process: a child process that inherited the
        context (fork) gets :class:`SDKUsageError`, not a channel that never answers it."""
        if self.pid != os.getpid():
            raise SDKUsageError(
                "the request context's state, headers, progress and metrics were used in a "
                "process the function call started; only its request_id is available there "
                "(the call's channel belongs to the call's own process)"
            )
        return self.backend


_current: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "cove_call_scope", default=None
)
# Threads the user starts do not inherit context variables; when exactly one call runs in
# this process, its scope is the fallback (see docs/concepts.md, "call ids and threads").
_process_scopes: dict[int, CallScope] = {}
_process_lock = threading.Lock()
_process_fallback = False
# Requests run_local_application is running in this process (not counting calls still
# running after their request returned): while one runs, a thread with no call of its own
# is one a body started, and its SDK calls raise as in the Tensorlake SDK.
_local_requests = 0


@contextlib.contextmanager
def local_request() -> Iterator[None]:
    """Count a request of the local runner as running while the block runs."""
    global _local_requests
    with _process_lock:
        _local_requests += 1
    try:
        yield
    finally:
        with _process_lock:
            _local_requests -= 1


def calls_run_here() -> bool:
    """Whether SDK calls from a thread without a call of its own must raise: in a container
    (every thread belongs to its call), or while the local runner runs a request."""
    return _process_fallback or _local_requests > 0


def enable_process_fallback() -> None:
    """In a container (one function per process) a thread the user started belongs to
    the call running there; elsewhere (the local runner) no fallback applies."""
    global _process_fallback
    _process_fallback = True


def current_scope() -> CallScope | None:
    """The scope of the call running in this thread, if any."""
    scope = thread_scope()
    if scope is not None:
        return scope
    if not _process_fallback:
        return None
    with _process_lock:
        if len(_process_scopes) == 1:
            scope = next(iter(_process_scopes.values()))
            return scope if scope.pid == os.getpid() else None
    return None


def thread_scope() -> CallScope | None:
    """The scope of the call whose body runs in this thread (or in an asyncio task or
    ``asyncio.to_thread`` worker that copied its context), never a fallback: what
    ``RequestContext.get()`` sees, as in the Tensorlake SDK."""
    scope = _current.get()
    if scope is None or scope.pid != os.getpid():
        return None
    return scope


def enter_scope(scope: CallScope) -> contextvars.Token[CallScope | None]:
    with _process_lock:
        _process_scopes[id(scope)] = scope
    return _current.set(scope)


def exit_scope(scope: CallScope, token: contextvars.Token[CallScope | None]) -> None:
    with _process_lock:
        _process_scopes.pop(id(scope), None)
    try:
        _current.reset(token)
    except ValueError:  # reset from another context (async function finished elsewhere)
        _current.set(None)


def require_scope(what: str) -> CallScope:
    scope = current_scope()
    if scope is None:
        raise SDKUsageError(
            f"{what} is only available inside a Cove function call "
            "(run the application with run_local_application or on a Cove server)"
        )
    return scope


class RequestState:
    """Key-value state shared by every function call of one request."""

    def __init__(self, scope: CallScope) -> None:
        self._scope = scope

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (any picklable object) under ``key`` for this request."""
        if not isinstance(key, str) or not key:
            raise SDKUsageError(f"state key must be a non-empty string, got {key!r}")
        self._scope.own_backend().state_set(self._scope, key, value)

    def get(self, key: str, default: Any | None = None) -> Any | None:
        """The value stored under ``key``, or ``default`` when there is none."""
        found, value = self._scope.own_backend().state_get(self._scope, key)
        return value if found else default


class FunctionProgress:
    """The type of ``RequestContext.progress``: progress reports of the running call."""

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``update(current, total, message=None, attributes=None)``: report that
        ``current`` of ``total`` units of work are done."""
        raise InternalError(f"{type(self).__name__} does not implement FunctionProgress.update")


class RequestProgress(FunctionProgress):
    """Progress updates of the running call; each update also resets its timeout."""

    def __init__(self, scope: CallScope) -> None:
        self._scope = scope

    def update(
        self,
        current: float,
        total: float,
        message: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Report that ``current`` of ``total`` units of work are done.

        ``attributes`` (string keys and values) are checked and accepted for Tensorlake
        compatibility; Cove's progress events carry ``current``, ``total`` and ``message``.
        Arguments of the wrong type raise :class:`cove.SDKUsageError`."""
        _check_progress(current, total, message, attributes)
        self._scope.own_backend().progress(self._scope, float(current), float(total), message)


def _is_count(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:  # an int too large for a float
        return False


def _check_progress(current: object, total: object, message: object, attributes: object) -> None:
    if not _is_count(current):
        raise SDKUsageError(f"'current' needs to be a non-negative number, got: {current!r}")
    if not _is_count(total):
        raise SDKUsageError(f"'total' needs to be a non-negative number, got: {total!r}")
    if message is not None and not isinstance(message, str):
        raise SDKUsageError(f"'message' needs to be a string, got: {message!r}")
    if attributes is None:
        return
    if not isinstance(attributes, dict):
        raise SDKUsageError(
            f"'attributes' needs to be a dictionary of string key/value pairs, got: {attributes!r}"
        )
    for key, value in attributes.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SDKUsageError(
                f"'attributes' needs string keys and values, got {key!r}: {value!r}"
            )


class RequestMetrics:
    """Custom metrics recorded with the request."""

    def __init__(self, scope: CallScope) -> None:
        self._scope = scope

    def timer(self, name: str, value: float) -> None:
        """Record a duration in seconds."""
        self._scope.own_backend().metric(self._scope, "timer", name, float(value))

    def counter(self, name: str, value: int = 1) -> None:
        """Increment the counter ``name`` by ``value`` (counters start at 0)."""
        self._scope.own_backend().metric(self._scope, "counter", name, float(value))


class RequestContext:
    """Information about, and APIs of, the request the current call belongs to.

    Use ``RequestContext.get()`` inside a function.
    """

    def __init__(self, scope: CallScope) -> None:
        self._scope = scope
        self.state = RequestState(scope)
        self.progress = RequestProgress(scope)
        self.metrics = RequestMetrics(scope)

    @property
    def request_id(self) -> str:
        return self._scope.request_id

    @property
    def function_call_id(self) -> str:
        return self._scope.call_id

    @property
    def headers(self) -> Headers:
        """The headers of the HTTP request that invoked the application, credentials
        (``Authorization``, ``Cookie``) removed; empty when it was not invoked over HTTP."""
        found, pairs = self._scope.own_backend().state_get(self._scope, HEADERS_STATE_KEY)
        return Headers(pairs if found else None)

    @classmethod
    def get(cls) -> RequestContext:
        """The context of the request the calling code runs in.

        Also in a child process the call forked (``multiprocessing`` with the ``fork``
        start method), as in the Tensorlake SDK; there only ``request_id`` and
        ``function_call_id`` work: state, headers, progress and metrics raise
        :class:`SDKUsageError`, since they need the call's own channel."""
        scope = _current.get()
        if scope is None:
            raise SDKUsageError(
                "RequestContext.get() is only available in the thread that runs a function "
                "call's body (run_local_application or a Cove server), not outside a call nor "
                "in threads the call starts: pass them what they need as arguments"
            )
        return cls(scope)


# -- blocking waits inside an event loop ---------------------------------------------------
# A container runs every call of an ``async def`` function on one loop. A body there that
# blocks on a Future (``child(x)``, ``.map``, ``.result()``) instead of awaiting it stops
# that loop; the worker must know, to run the calls that arrive meanwhile elsewhere.
_loop_blocking_hook: tuple[Callable[[], None], Callable[[], None]] | None = None


def set_loop_blocking_hook(enter: Callable[[], None], leave: Callable[[], None]) -> None:
    """Have ``enter``/``leave`` called around every blocking SDK wait made on a thread that
    is running an event loop (they decide whether it is the loop they care about)."""
    global _loop_blocking_hook
    _loop_blocking_hook = (enter, leave)


@contextlib.contextmanager
def blocking_wait() -> Iterator[None]:
    """Wrap a blocking wait for SDK results (see ``set_loop_blocking_hook``)."""
    hook = _loop_blocking_hook
    if hook is None or not _in_running_loop():
        yield
        return
    hook[0]()
    try:
        yield
    finally:
        hook[1]()


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
