"""Futures: function calls, maps and reduces that run while the caller goes on."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Generator, Iterable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, InvalidStateError
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import wait as wait_concurrent
from enum import Enum
from typing import TYPE_CHECKING, Any

from cove.errors import SDKUsageError
from cove.errors import TimeoutError as CoveTimeoutError
from cove.sdk import context as _context
from cove.sdk.context import CallScope, CallSpec, blocking_wait

if TYPE_CHECKING:
    from cove.sdk.function import Function


class RETURN_WHEN(Enum):
    """When :meth:`Future.wait` returns."""

    FIRST_COMPLETED = "first_completed"
    FIRST_FAILURE = "first_failure"
    ALL_COMPLETED = "all_completed"


_STD_RETURN_WHEN = {
    RETURN_WHEN.FIRST_COMPLETED: FIRST_COMPLETED,
    RETURN_WHEN.FIRST_FAILURE: FIRST_EXCEPTION,
    RETURN_WHEN.ALL_COMPLETED: ALL_COMPLETED,
}

_NO_INITIAL: Any = object()

OUTSIDE_CALL = (
    "The Cove SDK was called outside of a Cove function thread or process. "
    "Please only call the SDK from Cove functions (a thread you start runs no call: "
    "use futures or map instead)."
)


def thread_scope() -> CallScope | None:
    """The call this thread (or asyncio task) runs: never the container's fallback for
    threads the user started, whose SDK calls fail as in the Tensorlake SDK."""
    scope = _context._current.get()
    if scope is None or getattr(scope, "pid", os.getpid()) != os.getpid():
        return None
    return scope


def check_thread() -> None:
    """Raise :class:`SDKUsageError` in a thread that runs no call while calls run in this
    process (a thread the user started, in a container or while ``run_local_application``
    runs a request; or a forked child of a call), as the Tensorlake SDK does.

    With no request running, functions are plain Python (see docs/tensorlake.md)."""
    if thread_scope() is None and _context.calls_run_here():
        raise SDKUsageError(OUTSIDE_CALL)


class Future:
    """A call (or a map, or a reduce) of a Cove function that runs in the background.

    Created unstarted by ``f.future(...)``, ``f.future.map(...)`` or
    ``f.future.reduce(...)``; :meth:`run` starts it (once) and :meth:`result` waits for it
    (starting it first if needed). A Future may be an argument of another call, or the
    items (or initial value) of a map or reduce: the consumer starts it and receives its
    value. Returning an unstarted Future from a function is a tail call: the function's
    output becomes that Future's output. Futures can be awaited from ``async def`` code.
    """

    def __init__(
        self,
        function: Function,
        kind: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        items: Any = None,
        initial: Any = _NO_INITIAL,
    ) -> None:
        self._function = function
        self._kind = kind
        self._args = tuple(unwrap(a) for a in args)
        self._kwargs = {k: unwrap(v) for k, v in (kwargs or {}).items()}
        self._items: list[Any] | Future
        if items is None:
            self._items = []
        else:
            collection = unwrap(items)
            if isinstance(collection, Future):
                self._items = collection  # a collection still to come
            else:
                self._items = [unwrap(item) for item in collection]
        self._initial = unwrap(initial)
        self._scope: CallScope | None = thread_scope()
        # The position is taken when the Future is created, so ids follow program order.
        self._base_id = self._scope.child_id() if self._scope is not None else None
        # Settled with the value or the error; a wait that times out settles it first.
        self._outcome: ConcurrentFuture[Any] = ConcurrentFuture()
        self._run_called = False
        self._start_delay = 0.0
        self._coroutine: Coroutine[Any, Any, Any] | None = None
        self._lock = threading.Lock()

    # -- introspection used by runtimes -------------------------------------------------
    @property
    def started(self) -> bool:
        return self._run_called

    def dependencies(self) -> list[Future]:
        """The Futures whose values this one needs before it can start."""
        deps = [a for a in self._args if isinstance(a, Future)]
        deps += [v for v in self._kwargs.values() if isinstance(v, Future)]
        if isinstance(self._items, Future):
            deps.append(self._items)
        else:
            deps += [item for item in self._items if isinstance(item, Future)]
        if isinstance(self._initial, Future):
            deps.append(self._initial)
        return deps

    def started_in_tree(self) -> Future | None:
        """This Future or one it depends on (at any depth) that was already started."""
        if self._run_called:
            return self
        for dep in self.dependencies():
            found = dep.started_in_tree()
            if found is not None:
                return found
        return None

    def tail_call_spec(self) -> CallSpec | None:
        """The call this Future stands for when it can be a tail call (an unstarted call of
        this scope). Futures it depends on are started and waited for here first."""
        if self._kind != "call" or self._run_called or self._base_id is None:
            return None
        for dep in self.dependencies():
            dep.ensure_started()
        args, kwargs = self._resolved_arguments()
        with self._lock:
            self._run_called = True  # it runs as the tail call: nobody else may start it
        return CallSpec(self._base_id, self._function.name, args, kwargs)

    def ensure_started(self) -> None:
        """Start the work unless it started already (the runtime's way; never raises)."""
        with self._lock:
            if self._run_called:
                return
            self._run_called = True
        self._begin()

    def settled(self) -> ConcurrentFuture[Any]:
        """The outcome: a concurrent future with the value or the error."""
        return self._outcome

    # -- public API ---------------------------------------------------------------------
    def run(self) -> Future:
        """Start the work now and return ``self``; a Future runs once (a second run, or a
        run of a Future that started, raises :class:`cove.SDKUsageError`)."""
        check_thread()
        with self._lock:
            if self._run_called:
                raise SDKUsageError(f"Attempt to run Future that is already started: {self}")
            self._run_called = True
        self._begin()
        if self._failed_to_start:  # an argument that cannot be pickled, for one
            exc = self._outcome.exception()
            assert exc is not None
            raise exc
        return self

    def run_later(self, start_delay: float) -> Future:
        """Start the work after ``start_delay`` seconds and return ``self``."""
        if (
            not isinstance(start_delay, int | float)
            or isinstance(start_delay, bool)
            or not math.isfinite(start_delay)
            or start_delay < 0
        ):
            raise SDKUsageError("Future delay must be a non-negative finite number.")
        if not self._run_called:
            self._start_delay = float(start_delay)
        return self.run()

    def result(self, timeout: float | None = None) -> Any:
        """The value, waiting up to ``timeout`` seconds (starting the work if needed);
        raises the work's error. When the wait times out the Future is done, with a
        :class:`cove.TimeoutError`."""
        if not self._outcome.done():
            check_thread()
            with blocking_wait():  # entered before the call starts: see set_loop_blocking_hook
                self.ensure_started()
                Future._wait_started([self], timeout, RETURN_WHEN.ALL_COMPLETED)
        return self._outcome.result()

    def done(self) -> bool:
        """Whether the work finished (with a value or an error), or a wait for it timed out."""
        return self._outcome.done()

    @property
    def exception(self) -> BaseException | None:
        """The error the work ended with; None while it runs, or when it succeeded."""
        return self._outcome.exception() if self._outcome.done() else None

    def coroutine(self) -> Coroutine[Any, Any, Any]:
        """A coroutine for this Future (the same one each time), as calling an ``async
        def`` function gives: for ``asyncio.create_task``, ``gather`` and the like."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise SDKUsageError(
                "Future.coroutine() can only be called from an async function. "
                "Use Future.result() to get the result in a sync function."
            ) from None
        if self._run_called:
            raise SDKUsageError(
                f"Future.coroutine() cannot be called on a Future that is already running: {self}"
            )
        if self._coroutine is not None:
            return self._coroutine
        return coroutine_of(self)

    def __await__(self) -> Generator[Any, None, Any]:
        if not self._outcome.done():
            check_thread()
            self.ensure_started()
            yield from _loop_future(self._outcome).__await__()
        return self._outcome.result()

    @staticmethod
    def wait(
        futures: Iterable[Future],
        timeout: float | None = None,
        return_when: RETURN_WHEN = RETURN_WHEN.ALL_COMPLETED,
    ) -> tuple[list[Future], list[Future]]:
        """Wait for several futures (starting those not started); returns
        ``(done, not_done)`` in the order given. With a ``timeout``, every Future not done
        when the wait returns is done, with a :class:`cove.TimeoutError`."""
        items = list(futures)
        if timeout is not None and (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not math.isfinite(timeout)
            or timeout < 0
        ):
            raise SDKUsageError("Future.wait timeout must be a non-negative finite number.")
        if not isinstance(return_when, RETURN_WHEN):
            raise SDKUsageError(f"Not supported return_when value: '{return_when}'")
        for item in items:
            if not isinstance(item, Future):
                raise SDKUsageError(f"Cannot run a non-Future object {item}.")
        check_thread()
        with blocking_wait():
            for item in items:
                item.ensure_started()
            return Future._wait_started(items, timeout, return_when)

    @staticmethod
    def _wait_started(
        items: list[Future], timeout: float | None, return_when: RETURN_WHEN
    ) -> tuple[list[Future], list[Future]]:
        wait_concurrent(
            {f._outcome for f in items}, timeout=timeout, return_when=_STD_RETURN_WHEN[return_when]
        )
        done: list[Future] = []
        pending: list[Future] = []
        for item in items:
            if not item._outcome.done() and timeout is not None:
                item._time_out()
            (done if item._outcome.done() else pending).append(item)
        return done, pending

    def _time_out(self) -> None:
        error = CoveTimeoutError(
            "Timed out.", function_name=self._function.name, error_type="TimeoutError"
        )
        _settle(self._outcome, exception=error)

    def __reduce__(self) -> Any:
        # A Future is only an argument itself (its value is passed), never inside one.
        raise SDKUsageError(
            f"Attempt to pickle {self}. It cannot be stored inside an object "
            "which is a function argument or returned from a function."
        )

    def __repr__(self) -> str:
        state = "done" if self.done() else ("running" if self.started else "not started")
        return f"<cove.Future {self._kind} {self._function.name} ({state})>"

    # -- starting -----------------------------------------------------------------------
    _failed_to_start = False

    def _begin(self) -> None:
        """Start the work, after its delay and once the Futures it needs are done."""
        deps = self.dependencies()
        for dep in deps:
            dep.ensure_started()
        if self._start_delay == 0 and not deps and self._kind != "reduce":
            try:  # started here: a start error (an unpicklable argument) raises from run()
                _chain(self._start(), self._outcome)
            except BaseException as exc:
                self._failed_to_start = True
                _settle(self._outcome, exception=exc)
            return

        def later() -> ConcurrentFuture[Any]:
            if self._start_delay:
                time.sleep(self._start_delay)
            for dep in deps:
                dep._outcome.exception()  # waits; an error surfaces when it is resolved
            return self._start()

        def target() -> None:
            try:
                _chain(later(), self._outcome)
            except BaseException as exc:
                _settle(self._outcome, exception=exc)

        threading.Thread(target=target, daemon=True, name="cove-future").start()

    def _resolved_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = tuple(_value(a) for a in self._args)
        return args, {k: _value(v) for k, v in self._kwargs.items()}

    def _resolved_items(self) -> list[Any]:
        if isinstance(self._items, Future):
            return list(_value(self._items))
        return [_value(item) for item in self._items]

    def _start(self) -> ConcurrentFuture[Any]:
        scope = self._scope
        if scope is None or self._base_id is None:
            return self._start_detached()
        backend = scope.backend
        if self._kind == "call":
            args, kwargs = self._resolved_arguments()
            spec = CallSpec(self._base_id, self._function.name, args, kwargs)
            return backend.start_calls(scope, [spec])[0]
        items = self._resolved_items()
        if self._kind == "map":
            specs = [
                CallSpec(f"{self._base_id}.{i}", self._function.name, (_value(item),), {})
                for i, item in enumerate(items)
            ]
            return _gather(backend.start_calls(scope, specs) if specs else [])
        if self._kind == "reduce":
            return _done_with(lambda: self._reduce(scope, items))
        raise SDKUsageError(f"unknown future kind {self._kind!r}")

    def _fold_start(self, items: list[Any]) -> tuple[Any, list[Any]]:
        if self._initial is _NO_INITIAL:
            if not items:
                raise SDKUsageError(
                    f"{self._function.name}.reduce() of an empty iterable needs an initial value"
                )
            return _value(items[0]), items[1:]
        return _value(self._initial), items

    def _reduce(self, scope: CallScope, items: list[Any]) -> Any:
        assert self._base_id is not None
        acc, rest = self._fold_start(items)
        for i, item in enumerate(rest):
            spec = CallSpec(f"{self._base_id}.{i}", self._function.name, (acc, _value(item)), {})
            acc = scope.backend.start_calls(scope, [spec])[0].result()
        return acc

    def _start_detached(self) -> ConcurrentFuture[Any]:
        """Outside any Cove call the function runs here, as plain Python."""
        fn = self._function

        def work() -> Any:
            if self._kind == "call":
                args, kwargs = self._resolved_arguments()
                return fn.run_plain(*args, **kwargs)
            items = self._resolved_items()
            if self._kind == "map":
                return [fn.run_plain(_value(item)) for item in items]
            acc, rest = self._fold_start(items)
            for item in rest:
                acc = fn.run_plain(acc, _value(item))
            return acc

        return _done_with(work)


# -- coroutines of async functions -----------------------------------------------------------
_COROUTINES: weakref.WeakKeyDictionary[Any, Future] = weakref.WeakKeyDictionary()


def coroutine_of(future: Future) -> Coroutine[Any, Any, Any]:
    """A real coroutine that runs ``future`` when first awaited (or made a task), as calling
    an ``async def`` function gives. Passed as an argument, or returned, it stands for the
    Future."""

    async def cove_function_call() -> Any:
        future.run()  # started synchronously: start order, and so ids, stay deterministic
        return await future

    coroutine = cove_function_call()
    future._coroutine = coroutine
    _COROUTINES[coroutine] = future
    return coroutine


def unwrap(value: Any) -> Any:
    """The Future a value stands for (a Future, a coroutine of an async function call, or
    an asyncio Task running one), else the value itself."""
    if isinstance(value, Future):
        return value
    coroutine: Any = None
    if isinstance(value, asyncio.Task):
        coroutine = value.get_coro()
    elif isinstance(value, Coroutine):
        coroutine = value
    if coroutine is not None:
        try:
            future = _COROUTINES.get(coroutine)
        except TypeError:  # not weakly referenceable: not one of ours
            future = None
        if future is not None:
            return future
    return value


def _value(item: Any) -> Any:
    """The value of a resolved argument (a Future's must be done, or is waited for)."""
    if isinstance(item, Future):
        item.ensure_started()
        return item._outcome.result()
    return item


def _settle(
    target: ConcurrentFuture[Any], result: Any = None, exception: BaseException | None = None
) -> None:
    try:
        if exception is not None:
            target.set_exception(exception)
        else:
            target.set_result(result)
    except InvalidStateError:  # settled already (a wait timed out): the late outcome is dropped
        pass


def _chain(source: ConcurrentFuture[Any], target: ConcurrentFuture[Any]) -> None:
    def copy(done: ConcurrentFuture[Any]) -> None:
        exc = done.exception()
        _settle(target, None if exc is not None else done.result(), exc)

    source.add_done_callback(copy)


def _loop_future(outcome: ConcurrentFuture[Any]) -> asyncio.Future[None]:
    """An asyncio future on the running loop that completes when ``outcome`` does (and
    whose cancellation leaves ``outcome`` alone)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: ConcurrentFuture[Any]) -> None:
        def set_done() -> None:
            if not waiter.done():
                waiter.set_result(None)

        loop.call_soon_threadsafe(set_done)

    outcome.add_done_callback(wake)
    return waiter


def _gather(parts: list[ConcurrentFuture[Any]]) -> ConcurrentFuture[Any]:
    """One future for a list of futures: their results in order, or the first error."""
    combined: ConcurrentFuture[Any] = ConcurrentFuture()
    if not parts:
        combined.set_result([])
        return combined
    remaining = [len(parts)]
    lock = threading.Lock()

    def on_done(part: ConcurrentFuture[Any]) -> None:
        with lock:
            if combined.done():
                return
            exc = part.exception()
            if exc is not None:
                combined.set_exception(exc)
                return
            remaining[0] -= 1
            if remaining[0] == 0:
                combined.set_result([p.result() for p in parts])

    for part in parts:
        part.add_done_callback(on_done)
    return combined


def _done_with(work: Callable[[], Any]) -> ConcurrentFuture[Any]:
    """A settled future with ``work()``'s value or error (``work`` runs here)."""
    outcome: ConcurrentFuture[Any] = ConcurrentFuture()
    try:
        outcome.set_result(work())
    except BaseException as exc:
        outcome.set_exception(exc)
    return outcome
