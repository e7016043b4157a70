"""Futures: function calls, maps and reduces that run while the caller goes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import wait as wait_concurrent
from enum import Enum
from typing import TYPE_CHECKING, Any

from cove.errors import SDKUsageError
from cove.errors import TimeoutError as CoveTimeoutError
from cove.sdk.context import CallScope, CallSpec, blocking_wait, current_scope

if TYPE_CHECKING:
    from cove.sdk.function import Function


class RETURN_WHEN(Enum):
    """When :meth:`Future.wait` returns."""

    FIRST_COMPLETED = "first_completed"
    FIRST_FAILURE = "first_failure"
    ALL_COMPLETED = "all_completed"


_NO_INITIAL: Any = object()


class Future:
    """A call (or a map, or a reduce) of a Cove function that runs in the background.

    Created unstarted by ``f.future(...)``, ``f.future.map(...)`` or
    ``f.future.reduce(...)``; :meth:`run` starts it and :meth:`result` waits for it
    (starting it first if needed). Returning an unstarted single-call Future from a
    function is a tail call: the function's output becomes that call's output.
    Futures can also be awaited from ``async def`` functions.
    """

    def __init__(
        self,
        function: Function,
        kind: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        items: Iterable[Any] | None = None,
        initial: Any = _NO_INITIAL,
    ) -> None:
        self._function = function
        self._kind = kind
        self._args = args
        self._kwargs = kwargs or {}
        self._items = list(items) if items is not None else []
        self._initial = initial
        self._scope: CallScope | None = current_scope()
        # The position is taken when the Future is created, so ids follow program order.
        self._base_id = self._scope.child_id() if self._scope is not None else None
        self._outcome: ConcurrentFuture[Any] | None = None
        self._lock = threading.Lock()

    # -- introspection used by runtimes -------------------------------------------------
    @property
    def started(self) -> bool:
        return self._outcome is not None

    def tail_call_spec(self) -> CallSpec | None:
        """The call this Future stands for, when it can be a tail call (unstarted call)."""
        if self._kind != "call" or self.started or self._base_id is None:
            return None
        return CallSpec(self._base_id, self._function.name, self._args, self._kwargs)

    # -- public API ---------------------------------------------------------------------
    def run(self) -> Future:
        """Start the work if it has not started yet; returns ``self``."""
        with self._lock:
            if self._outcome is None:
                self._outcome = self._start()
        return self

    def result(self, timeout: float | None = None) -> Any:
        """The value, waiting up to ``timeout`` seconds; raises the call's error if it failed."""
        with blocking_wait():  # entered before the call starts: see set_loop_blocking_hook
            outcome = self.run()._outcome
            assert outcome is not None
            try:
                return outcome.result(timeout)
            except TimeoutError as exc:
                if isinstance(exc, CoveTimeoutError) or outcome.done():
                    raise
        raise CoveTimeoutError(
            f"waiting for {self._function.name} took longer than {timeout} s",
            function_name=self._function.name,
        ) from None

    def done(self) -> bool:
        """Whether the work finished (with a value or an error)."""
        return self._outcome is not None and self._outcome.done()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The error the work ended with, or None when it succeeded."""
        with blocking_wait():
            outcome = self.run()._outcome
            assert outcome is not None
            return outcome.exception(timeout)

    def __await__(self) -> Generator[Any, None, Any]:
        import asyncio

        outcome = self.run()._outcome
        assert outcome is not None
        return asyncio.wrap_future(outcome).__await__()

    @staticmethod
    def wait(
        futures: Iterable[Future],
        timeout: float | None = None,
        return_when: RETURN_WHEN = RETURN_WHEN.ALL_COMPLETED,
    ) -> tuple[list[Future], list[Future]]:
        """Wait for several futures; returns ``(done, not_done)`` in the order given."""
        with blocking_wait():
            return Future._wait([f.run() for f in futures], timeout, return_when)

    @staticmethod
    def _wait(
        items: list[Future], timeout: float | None, return_when: RETURN_WHEN
    ) -> tuple[list[Future], list[Future]]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = [f for f in items if f.done()]
            pending = [f for f in items if not f.done()]
            if not pending:
                return done, pending
            if return_when is RETURN_WHEN.FIRST_COMPLETED and done:
                return done, pending
            if return_when is RETURN_WHEN.FIRST_FAILURE and any(
                f.exception() is not None for f in done
            ):
                return done, pending
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return done, pending
            outcomes = [f._outcome for f in pending if f._outcome is not None]
            wait_concurrent(outcomes, timeout=remaining, return_when=FIRST_COMPLETED)

    def __repr__(self) -> str:
        state = "done" if self.done() else ("running" if self.started else "not started")
        return f"<cove.Future {self._kind} {self._function.name} ({state})>"

    # -- starting -----------------------------------------------------------------------
    def _start(self) -> ConcurrentFuture[Any]:
        scope = self._scope
        if scope is None or self._base_id is None:
            return self._start_detached()
        backend = scope.backend
        if self._kind == "call":
            spec = CallSpec(self._base_id, self._function.name, self._args, self._kwargs)
            return backend.start_calls(scope, [spec])[0]
        items = [_resolve(item) for item in self._items]
        if self._kind == "map":
            specs = [
                CallSpec(f"{self._base_id}.{i}", self._function.name, (item,), {})
                for i, item in enumerate(items)
            ]
            return _gather(backend.start_calls(scope, specs) if specs else [])
        if self._kind == "reduce":
            return _run_in_thread(lambda: self._reduce(scope, items))
        raise SDKUsageError(f"unknown future kind {self._kind!r}")

    def _reduce(self, scope: CallScope, items: list[Any]) -> Any:
        assert self._base_id is not None
        if self._initial is _NO_INITIAL:
            if not items:
                raise SDKUsageError(
                    f"{self._function.name}.reduce() of an empty iterable needs an initial value"
                )
            acc, rest = items[0], items[1:]
        else:
            acc, rest = self._initial, items
        for i, item in enumerate(rest):
            spec = CallSpec(f"{self._base_id}.{i}", self._function.name, (acc, item), {})
            acc = scope.backend.start_calls(scope, [spec])[0].result()
        return acc

    def _start_detached(self) -> ConcurrentFuture[Any]:
        """Outside any Cove call the function runs here, as plain Python."""
        fn = self._function
        outcome: ConcurrentFuture[Any] = ConcurrentFuture()
        try:
            if self._kind == "call":
                outcome.set_result(fn.run_plain(*self._args, **self._kwargs))
            elif self._kind == "map":
                outcome.set_result([fn.run_plain(_resolve(i)) for i in self._items])
            else:
                items = [_resolve(i) for i in self._items]
                if self._initial is _NO_INITIAL:
                    if not items:
                        raise SDKUsageError(
                            f"{fn.name}.reduce() of an empty iterable needs an initial value"
                        )
                    acc, rest = items[0], items[1:]
                else:
                    acc, rest = self._initial, items
                for item in rest:
                    acc = fn.run_plain(acc, item)
                outcome.set_result(acc)
        except BaseException as exc:
            outcome.set_exception(exc)
        return outcome


def _resolve(item: Any) -> Any:
    return item.result() if isinstance(item, Future) else item


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


def _run_in_thread(work: Any) -> ConcurrentFuture[Any]:
    outcome: ConcurrentFuture[Any] = ConcurrentFuture()

    def target() -> None:
        try:
            outcome.set_result(work())
        except BaseException as exc:
            outcome.set_exception(exc)

    threading.Thread(target=target, daemon=True, name="cove-reduce").start()
    return outcome
