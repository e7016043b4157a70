"""Cove functions: what ``@function`` turns a Python function into."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cove.errors import SDKUsageError
from cove.sdk.future import _NO_INITIAL, Future, check_thread, coroutine_of, thread_scope
from cove.sdk.image import Image
from cove.sdk.retries import Retries


@dataclass
class FunctionConfig:
    """Everything ``@function(...)`` was given, validated."""

    description: str = ""
    cpu: float = 1.0
    memory: float = 1.0
    ephemeral_disk: float = 2.0
    gpu: str | list[str] | None = None
    timeout: float = 300
    image: Image | None = None
    secrets: list[str] = field(default_factory=list)
    retries: Retries | None = None
    region: str | None = None
    min_containers: int | None = None
    max_containers: int | None = None
    warm_containers: int | None = None
    max_concurrency: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "cpu": self.cpu,
            "memory": self.memory,
            "ephemeral_disk": self.ephemeral_disk,
            "gpu": self.gpu,
            "timeout": self.timeout,
            "image": self.image.to_dict() if self.image else None,
            "secrets": list(self.secrets),
            "retries": self.retries.to_dict() if self.retries else None,
            "region": self.region,
            "min_containers": self.min_containers,
            "max_containers": self.max_containers,
            "warm_containers": self.warm_containers,
            "max_concurrency": self.max_concurrency,
        }


@dataclass
class ApplicationConfig:
    """Everything ``@application(...)`` was given, validated."""

    tags: dict[str, str] = field(default_factory=dict)
    retries: Retries = field(default_factory=Retries)
    region: str | None = None
    allow: tuple[str, ...] = ()


class Function:
    """A Python function that runs as a Cove function.

    Calling it inside a request starts a durable child call in the function's own container
    and blocks until it returns; ``map``, ``reduce`` and ``future`` run calls in parallel.
    Called outside any request it is plain Python.
    """

    def __init__(self, fn: Callable[..., Any], config: FunctionConfig) -> None:
        self.fn = fn
        self.config = config
        self.module = fn.__module__
        qualname = fn.__qualname__
        self.is_method = "." in qualname and "<locals>" not in qualname
        self.name: str = qualname if self.is_method else fn.__name__
        self.class_name: str | None = qualname.rsplit(".", 1)[0] if self.is_method else None
        self.cls: type | None = None  # set by @cls
        self.application: ApplicationConfig | None = None  # set by @application
        self.is_async = inspect.iscoroutinefunction(fn)
        self.future = FutureFactory(self)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__qualname__ = qualname
        self.__wrapped__ = fn

    # -- calling ------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function and return its output; for an ``async def`` function, a
        coroutine that makes the call when awaited (or run as a task)."""
        if thread_scope() is None:
            check_thread()  # a thread the user started, while calls run here
            return self.run_plain(*args, **kwargs)
        future = Future(self, "call", args, kwargs)
        if self.is_async:
            return coroutine_of(future)
        return future.run().result()

    def map(self, items: Iterable[Any] | Future) -> Any:
        """Call the function on every item in parallel; results keep the items' order.
        For an ``async def`` function, a coroutine of that list."""
        future = self.future.map(items)
        if self.is_async and thread_scope() is not None:
            return coroutine_of(future)
        return future.run().result()

    def reduce(self, items: Iterable[Any] | Future, initial: Any = _NO_INITIAL) -> Any:
        """Fold the items: ``acc = f(acc, item)`` for each item, starting from ``initial``.
        For an ``async def`` function, a coroutine of the result."""
        future = self.future.reduce(items, initial)
        if self.is_async and thread_scope() is not None:
            return coroutine_of(future)
        return future.run().result()

    def run_plain(self, *args: Any, **kwargs: Any) -> Any:
        """Run the body directly in this process (no durability, no container)."""
        if self.cls is not None:
            from cove.sdk.decorators import instance_of

            return self.fn(instance_of(self.cls), *args, **kwargs)
        return self.fn(*args, **kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Function:
        # Methods of a @cls class are called without ``self``: the container holds the
        # one instance.
        return self

    def __reduce__(self) -> Any:
        # Passed or returned by mistake (``f`` for ``f(x)``): fail, as the Tensorlake SDK does.
        raise SDKUsageError(
            f"Attempt to pickle {self}. It cannot be passed as a function argument "
            "or returned from a function."
        )

    def __repr__(self) -> str:
        return f"<cove.Function {self.name}>"


class FutureFactory:
    """``f.future(...)``, ``f.future.map(...)``, ``f.future.reduce(...)``: unstarted Futures."""

    def __init__(self, function: Function) -> None:
        self._function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Future:
        return Future(self._function, "call", args, kwargs)

    def map(self, items: Iterable[Any] | Future) -> Future:
        return Future(self._function, "map", items=items)

    def reduce(self, items: Iterable[Any] | Future, initial: Any = _NO_INITIAL) -> Future:
        return Future(self._function, "reduce", items=items, initial=initial)

    def __reduce__(self) -> Any:
        raise SDKUsageError(
            f"Attempt to pickle {self._function.name}.future. It cannot be passed as a "
            "function argument or returned from a function."
        )
