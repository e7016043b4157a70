"""``@function``, ``@application`` and ``@cls``: validated when applied, at import time."""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from cove.errors import SDKUsageError
from cove.sdk.function import ApplicationConfig, Function, FunctionConfig
from cove.sdk.image import Image
from cove.sdk.retries import Retries

REGIONS = ("us-east-1", "eu-west-1")
# Resources and timeouts: any number above 0, as the Tensorlake SDK accepts. Whether this
# cluster can give a function what it asks for is the server's question (a call that no
# machine here can run fails with ``constraint_unsatisfiable``, see engine/constraints.py).
_POSITIVE = ("cpu", "memory", "ephemeral_disk")
TIMEOUT_LIMITS = (1, 172800)

# Functions that ``@application()`` made before ``@function()`` (written above it) gave
# them their configuration: an application needs both decorators.
_PENDING_ATTR = "_cove_needs_function_decorator"

# module name -> function name -> Function, in definition order.
_registry: dict[str, dict[str, Function]] = {}

T = TypeVar("T", bound=type)


def registered_functions(module: str) -> dict[str, Function]:
    """The Cove functions defined in ``module``, by name.

    Raises :class:`SDKUsageError` if an application there lacks ``@function()``."""
    functions = dict(_registry.get(module, {}))
    for fn in functions.values():
        check_complete(fn)
    return functions


def find_function(name: str) -> Function | None:
    """The Cove function called ``name`` in any imported module (the latest defined)."""
    found = None
    for functions in _registry.values():
        found = functions.get(name, found)
    return found


def check_complete(fn: Function) -> None:
    """Raise :class:`SDKUsageError` if ``fn`` has ``@application()`` but no ``@function()``."""
    if getattr(fn, _PENDING_ATTR, False):
        raise SDKUsageError(
            f"@application {fn.name}: the function must also be decorated with @function() "
            "(an application needs both @application() and @function(), in either order)"
        )


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _check_positive(fn_name: str, attr: str, value: Any) -> None:
    if not _is_number(value) or not 0 < value < math.inf:
        raise SDKUsageError(
            f"@function {fn_name}: {attr} must be a finite number above 0, got {value!r}"
        )


def _check_timeout(fn_name: str, attr: str, value: Any) -> None:
    low, high = TIMEOUT_LIMITS
    if not _is_number(value) or not low <= value <= high:
        raise SDKUsageError(
            f"@function {fn_name}: {attr} must be a number of seconds from {low} to {high}, "
            f"got {value!r}"
        )


def _check_count(fn_name: str, attr: str, value: Any, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SDKUsageError(
            f"@function {fn_name}: {attr} must be an integer of at least {minimum}, got {value!r}"
        )


def _check_region(where: str, region: Any) -> None:
    if region is not None and region not in REGIONS:
        raise SDKUsageError(f"{where}: region must be one of {REGIONS} or None, got {region!r}")


def _validate_function_config(name: str, cfg: FunctionConfig) -> None:
    for attr in _POSITIVE:
        _check_positive(name, attr, getattr(cfg, attr))
    _check_timeout(name, "timeout", cfg.timeout)
    for attr in ("min_containers", "warm_containers"):
        _check_count(name, attr, getattr(cfg, attr), 0)
    _check_count(name, "max_containers", cfg.max_containers, 1)
    _check_count(name, "max_concurrency", cfg.max_concurrency, 1)
    if cfg.max_containers is not None:
        for attr in ("min_containers", "warm_containers"):
            value = getattr(cfg, attr)
            if value is not None and value > cfg.max_containers:
                raise SDKUsageError(
                    f"@function {name}: max_containers ({cfg.max_containers}) must be at least "
                    f"{attr} ({value})"
                )
    if cfg.retries is not None and not isinstance(cfg.retries, Retries):
        raise SDKUsageError(
            f"@function {name}: retries must be a cove.Retries, got {cfg.retries!r}"
        )
    if cfg.image is not None and not isinstance(cfg.image, Image):
        raise SDKUsageError(f"@function {name}: image must be a cove.Image, got {cfg.image!r}")
    if not isinstance(cfg.secrets, list | tuple) or not all(
        isinstance(s, str) and s for s in cfg.secrets
    ):
        raise SDKUsageError(f"@function {name}: secrets must be a list of secret names")
    gpu = cfg.gpu
    if gpu is not None and not (
        isinstance(gpu, str) or (isinstance(gpu, list) and all(isinstance(g, str) for g in gpu))
    ):
        raise SDKUsageError(
            f"@function {name}: gpu must be a model string, a list of them, or None"
        )
    if not isinstance(cfg.description, str):
        raise SDKUsageError(f"@function {name}: description must be a string")
    _check_region(f"@function {name}", cfg.region)


def function(
    description: str = "",
    cpu: float = 1.0,
    memory: float = 1.0,
    ephemeral_disk: float = 2.0,
    gpu: str | list[str] | None = None,
    timeout: float = 300,
    image: Image | None = None,
    secrets: list[str] | None = None,
    retries: Retries | None = None,
    region: str | None = None,
    min_containers: int | None = None,
    max_containers: int | None = None,
    warm_containers: int | None = None,
    max_concurrency: int = 1,
) -> Callable[[Callable[..., Any]], Function]:
    """Make a Python function a Cove function: its own containers, durable, retried, timed."""
    cfg = FunctionConfig(
        description=description,
        cpu=cpu,
        memory=memory,
        ephemeral_disk=ephemeral_disk,
        gpu=gpu,
        timeout=timeout,
        image=image,
        secrets=secrets if isinstance(secrets, str) else list(secrets or []),
        retries=retries,
        region=region,
        min_containers=min_containers,
        max_containers=max_containers,
        warm_containers=warm_containers,
        max_concurrency=max_concurrency,
    )

    def decorate(fn: Callable[..., Any]) -> Function:
        if isinstance(fn, Function):
            if not getattr(fn, _PENDING_ATTR, False):
                raise SDKUsageError(f"@function applied twice to {fn.name}")
            # ``@function()`` written above ``@application()``: configure the Function that
            # ``@application()`` made.
            _validate_function_config(fn.name, cfg)
            fn.config = cfg
            delattr(fn, _PENDING_ATTR)
            return fn
        if not callable(fn) or not hasattr(fn, "__qualname__") or inspect.isclass(fn):
            raise SDKUsageError(f"@function must decorate a function, got {fn!r}")
        name = fn.__qualname__
        _validate_function_config(name, cfg)
        wrapped = Function(fn, cfg)
        _registry.setdefault(wrapped.module, {})[wrapped.name] = wrapped
        return wrapped

    return decorate


def application(
    tags: dict[str, str] | None = None,
    retries: Retries | None = None,
    region: str | None = None,
    allow: list[str] | None = None,
) -> Callable[[Function | Callable[..., Any]], Function]:
    """Make a Cove function an application: an HTTP entry point named after the function.

    Use it with ``@function()``, above or below it. ``allow=["unauthenticated_requests"]``
    lets a server with ``--auth`` accept its requests without an API key (see docs/security.md).
    """
    app_cfg = ApplicationConfig(
        tags=dict(tags or {}),
        retries=retries or Retries(),
        region=region,
        allow=_check_allow(allow),
    )

    def decorate(fn: Function | Callable[..., Any]) -> Function:
        if not isinstance(fn, Function):
            if not callable(fn) or not hasattr(fn, "__qualname__") or inspect.isclass(fn):
                raise SDKUsageError(f"@application must decorate a function, got {fn!r}")
            # ``@function()`` is written above: it configures this Function next.
            fn = Function(fn, FunctionConfig())
            setattr(fn, _PENDING_ATTR, True)
            _registry.setdefault(fn.module, {})[fn.name] = fn
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in app_cfg.tags.items()):
            raise SDKUsageError(f"@application {fn.name}: tags must map strings to strings")
        if not isinstance(app_cfg.retries, Retries):
            raise SDKUsageError(f"@application {fn.name}: retries must be a cove.Retries")
        _check_region(f"@application {fn.name}", app_cfg.region)
        from cove.sdk.codec import application_signature

        application_signature(fn)  # raises SDKUsageError naming the parameter
        fn.application = app_cfg
        return fn

    return decorate


ALLOWED = ("unauthenticated_requests",)


def _check_allow(allow: object) -> tuple[str, ...]:
    if allow is None:
        return ()
    if not isinstance(allow, list | tuple) or not all(a in ALLOWED for a in allow):
        raise SDKUsageError(
            f"@application: allow must be a list of {', '.join(map(repr, ALLOWED))}, got {allow!r}"
        )
    return tuple(dict.fromkeys(allow))


_REAL_INIT = threading.local()


def cls(init_timeout: float | None = None) -> Callable[[T], T]:
    """Make a class hold Cove functions: ``__init__(self)`` runs once per container."""

    def decorate(klass: T) -> T:
        if not inspect.isclass(klass):
            raise SDKUsageError(f"@cls must decorate a class, got {klass!r}")
        if init_timeout is not None:
            _check_timeout(klass.__qualname__, "init_timeout", init_timeout)
        init = klass.__dict__.get("__init__")
        if init is not None:
            params = list(inspect.signature(init).parameters.values())
            if len(params) != 1:
                raise SDKUsageError(
                    f"@cls {klass.__qualname__}: __init__ must take only self, "
                    f"got ({', '.join(p.name for p in params)})"
                )
        methods = [v for v in klass.__dict__.values() if isinstance(v, Function)]
        if not methods:
            raise SDKUsageError(
                f"@cls {klass.__qualname__}: no method is decorated with @function()"
            )
        for method in methods:
            method.cls = klass
        klass.__cove_init_timeout__ = init_timeout  # type: ignore[attr-defined]
        original_init = klass.__init__

        def __init__(self: Any) -> None:
            # Only a container (or the local runner) builds the real instance; elsewhere
            # ``Model()`` is a cheap handle whose methods start calls.
            if getattr(_REAL_INIT, "active", False):
                original_init(self)

        klass.__init__ = __init__  # type: ignore[method-assign]
        return klass

    return decorate


_instances: dict[type, Any] = {}
_instances_lock = threading.Lock()


def instance_of(klass: type) -> Any:
    """The one instance of a @cls class in this process, built on first use."""
    with _instances_lock:
        obj = _instances.get(klass)
        if obj is None:
            _REAL_INIT.active = True
            try:
                obj = klass()
            finally:
                _REAL_INIT.active = False
            _instances[klass] = obj
        return obj
