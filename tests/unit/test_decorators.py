"""Decorator validation (at decoration time) and plain-Python behaviour outside requests."""

import asyncio
import pickle
import re
from typing import Any

import pytest

import cove
from cove import Retries, SDKUsageError, application, cls, function
from cove.sdk import decorators

from .apps import plain


class NotJson:
    """A plain class: pydantic cannot build a JSON schema for it."""


def _raises(*parts: str) -> Any:
    """pytest.raises(SDKUsageError) whose message contains every part, in order."""
    return pytest.raises(SDKUsageError, match=".*".join(re.escape(p) for p in parts))


# -- @function resource limits ----------------------------------------------------------


# As in the Tensorlake SDK, cpu, memory and ephemeral_disk take any finite number above 0
# (whether a machine can give it is the server's question); they used to be bounded (1-8
# CPUs, 1-32 GB, 2-50 GB), which refused Tensorlake programs.
@pytest.mark.parametrize("attr", ["cpu", "memory", "ephemeral_disk"])
@pytest.mark.parametrize("value", [0, -1, -0.5, float("inf"), float("nan")])
def test_resource_not_above_zero(attr: str, value: float) -> None:
    with _raises("limits_fn", attr, "finite number above 0", repr(value)):

        @function(**{attr: value})
        def limits_fn() -> None: ...


@pytest.mark.parametrize("value", [0, 172801, -5])
def test_timeout_out_of_range(value: float) -> None:
    with _raises("limits_fn", "timeout", "1", "172800", repr(value)):

        @function(timeout=value)
        def limits_fn() -> None: ...


@pytest.mark.parametrize("attr", ["cpu", "memory", "ephemeral_disk", "timeout"])
@pytest.mark.parametrize("value", ["2", None, True])
def test_resource_must_be_a_number(attr: str, value: Any) -> None:
    with _raises("typed_fn", attr):

        @function(**{attr: value})
        def typed_fn() -> None: ...


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cpu": 1},
        {"cpu": 8},
        {"cpu": 2.5},
        {"cpu": 0.1},
        {"cpu": 64},
        {"memory": 1},
        {"memory": 32},
        {"memory": 0.25},
        {"memory": 512},
        {"ephemeral_disk": 2},
        {"ephemeral_disk": 50},
        {"ephemeral_disk": 1.0},
        {"ephemeral_disk": 0.5},
        {"ephemeral_disk": 1000},
        {"timeout": 1},
        {"timeout": 172800},
        {"min_containers": 2, "max_containers": 2, "warm_containers": 2},
        {"min_containers": 0, "warm_containers": 0},
        {"max_concurrency": 5},
        {"region": "us-east-1"},
        {"region": "eu-west-1"},
        {"retries": Retries(max_retries=10)},
        {"gpu": "H100"},
        {"gpu": ["H100", "A100"]},
        {"secrets": ["OPENAI_API_KEY"]},
        {"image": cove.Image("custom").run("pip install x")},
    ],
)
def test_boundaries_and_valid_values_are_accepted(kwargs: dict[str, Any]) -> None:
    @function(**kwargs)
    def ok_fn() -> int:
        return 1

    assert isinstance(ok_fn, cove.Function)
    for key, value in kwargs.items():
        assert getattr(ok_fn.config, key) == value


def test_defaults() -> None:
    @function()
    def default_fn() -> None: ...

    cfg = default_fn.config
    assert (cfg.cpu, cfg.memory, cfg.ephemeral_disk, cfg.timeout) == (1.0, 1.0, 2.0, 300)
    assert cfg.gpu is None and cfg.region is None and cfg.retries is None
    assert cfg.max_concurrency == 1
    assert cfg.secrets == []


# -- @function scaling --------------------------------------------------------------------


@pytest.mark.parametrize("other", ["min_containers", "warm_containers"])
def test_max_containers_below_other_bound(other: str) -> None:
    with _raises("scale_fn", "max_containers (2)", f"{other} (5)"):

        @function(max_containers=2, **{other: 5})
        def scale_fn() -> None: ...


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_max_concurrency_below_one(value: Any) -> None:
    with _raises("conc_fn", "max_concurrency", "at least 1"):

        @function(max_concurrency=value)
        def conc_fn() -> None: ...


@pytest.mark.parametrize(
    ("attr", "value", "minimum"),
    [("min_containers", -1, "0"), ("warm_containers", -2, "0"), ("max_containers", 0, "1")],
)
def test_container_counts_have_minimums(attr: str, value: int, minimum: str) -> None:
    with _raises("count_fn", attr, f"at least {minimum}"):

        @function(**{attr: value})
        def count_fn() -> None: ...


# -- region, retries, other options -----------------------------------------------------------


@pytest.mark.parametrize("region", ["us-west-2", "", "US-EAST-1"])
def test_bad_region_on_function(region: str) -> None:
    with _raises("region_fn", "region must be one of", "us-east-1", "eu-west-1"):

        @function(region=region)
        def region_fn() -> None: ...


def test_bad_region_on_application() -> None:
    with _raises("@application region_app", "region must be one of"):

        @application(region="mars-1")
        @function()
        def region_app() -> None: ...


@pytest.mark.parametrize("retries", [3, {"max_retries": 3}, "3"])
def test_bad_retries_type_on_function(retries: Any) -> None:
    with _raises("retries_fn", "retries must be a cove.Retries"):

        @function(retries=retries)
        def retries_fn() -> None: ...


def test_bad_retries_type_on_application() -> None:
    with _raises("@application retries_app", "retries must be a cove.Retries"):

        @application(retries=5)  # type: ignore[arg-type]
        @function()
        def retries_app() -> None: ...


def test_retries_max_retries_limit() -> None:
    assert Retries(max_retries=10).max_retries == 10
    with _raises("max_retries", "0 to 10", "11"):
        Retries(max_retries=11)
    with _raises("max_retries", "0 to 10", "-1"):
        Retries(max_retries=-1)
    with _raises("max_retries"):
        Retries(max_retries=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"initial_delay": -1}, {"max_delay": -0.1}])
def test_retries_negative_delays(kwargs: dict[str, float]) -> None:
    with _raises("delays must not be negative"):
        Retries(**kwargs)


def test_retries_multiplier_at_least_one() -> None:
    with _raises("delay_multiplier", "at least 1"):
        Retries(delay_multiplier=0.5)


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"image": "python:3.11"}, "image must be a cove.Image"),
        ({"secrets": [""]}, "secrets must be a list"),
        ({"gpu": 1}, "gpu must be"),
        ({"description": 5}, "description must be a string"),
    ],
)
def test_other_options_are_type_checked(kwargs: dict[str, Any], rule: str) -> None:
    with _raises("opt_fn", rule):

        @function(**kwargs)
        def opt_fn() -> None: ...


def test_secrets_as_a_single_string_is_rejected() -> None:
    with _raises("str_secrets_fn", "secrets must be a list"):

        @function(secrets="TOKEN")  # type: ignore[arg-type]
        def str_secrets_fn() -> None: ...


def test_application_tags_must_be_strings() -> None:
    with _raises("@application tags_app", "tags"):

        @application(tags={"team": 1})  # type: ignore[dict-item]
        @function()
        def tags_app() -> None: ...


def test_function_applied_twice() -> None:
    with _raises("@function applied twice", "twice_fn"):

        @function()
        @function()
        def twice_fn() -> None: ...


def test_function_on_a_class() -> None:
    with _raises("@function must decorate a function"):

        @function()
        class NotAFunction: ...


# -- @application signature rules -------------------------------------------------------------


def test_application_without_function_is_rejected_when_run() -> None:
    # As in the Tensorlake SDK: ``@function()`` may still come above, so the definition is
    # accepted, and running (or deploying) it is refused.
    @application()
    def plain_fn() -> None: ...

    with _raises("@application plain_fn", "@function()"):
        cove.run_local_application(plain_fn)
    with _raises("@application plain_fn", "@function()"):
        decorators.registered_functions(plain_fn.module)
    del decorators._registry[plain_fn.module]["plain_fn"]  # leave the module deployable


def test_function_above_application_is_the_same_as_below() -> None:
    # The Tensorlake SDK takes both orders; @function() above used to be an SDKUsageError.
    @function(cpu=2, retries=Retries(max_retries=1))
    @application(tags={"team": "x"})
    def above_fn(x: int) -> int:
        return x + 1

    assert isinstance(above_fn, cove.Function)
    assert above_fn.config.cpu == 2 and above_fn.config.retries == Retries(max_retries=1)
    assert above_fn.application is not None and above_fn.application.tags == {"team": "x"}
    assert decorators.registered_functions(above_fn.module)["above_fn"] is above_fn
    assert cove.run_local_application(above_fn, 1).output() == 2
    with _raises("@function applied twice", "above_fn"):
        function()(above_fn)


def test_function_above_application_validates_its_config() -> None:
    with _raises("above_bad_fn", "cpu", "above 0"):

        @function(cpu=0)
        @application()
        def above_bad_fn() -> None: ...

    decorators._registry[__name__].pop("above_bad_fn")  # left unconfigured: not deployable


def test_positional_only_parameter() -> None:
    with _raises("@application posonly_app", "'x'", "positional-only", "/"):

        @application()
        @function()
        def posonly_app(x: int, /) -> int:
            return x


def test_keyword_only_parameter() -> None:
    with _raises("@application kwonly_app", "'y'", "keyword-only", "*"):

        @application()
        @function()
        def kwonly_app(x: int, *, y: int) -> int:
            return x + y


def test_var_positional_parameter() -> None:
    with _raises("@application varargs_app", "'args'", "*args"):

        @application()
        @function()
        def varargs_app(*args: int) -> int:
            return sum(args)


def test_var_keyword_parameter() -> None:
    with _raises("@application varkw_app", "'kwargs'", "**kwargs"):

        @application()
        @function()
        def varkw_app(x: int, **kwargs: int) -> int:
            return x


def test_non_json_parameter_hint() -> None:
    with _raises("@application notjson_app", "'thing'", "NotJson", "not JSON-serializable"):

        @application()
        @function()
        def notjson_app(thing: NotJson) -> int:
            return 1


def test_non_json_return_hint() -> None:
    with _raises("@application notjson_ret_app", "return value", "NotJson", "JSON-serializable"):

        @application()
        @function()
        def notjson_ret_app() -> NotJson:
            return NotJson()


def test_plain_function_accepts_any_signature() -> None:
    # Only applications restrict signatures; functions take anything picklable.
    @function()
    def anything(a: NotJson, /, *args: Any, b: int = 1, **kwargs: Any) -> NotJson:
        return a

    value = NotJson()
    assert anything(value, 1, 2, b=3, c=4) is value


def test_application_is_marked_and_keeps_config() -> None:
    @application(tags={"team": "search"}, retries=Retries(max_retries=2), region="eu-west-1")
    @function(description="entry point")
    def marked_app(x: int) -> int:
        return x

    assert marked_app.application is not None
    assert marked_app.application.tags == {"team": "search"}
    assert marked_app.application.retries == Retries(max_retries=2)
    assert marked_app.application.region == "eu-west-1"
    assert marked_app.config.description == "entry point"


def test_application_default_retries_do_not_retry() -> None:
    @application()
    @function()
    def default_retries_app() -> None: ...

    assert default_retries_app.application is not None
    assert default_retries_app.application.retries.max_retries == 0


# -- @cls ----------------------------------------------------------------------------------


def test_cls_init_with_extra_args() -> None:
    with _raises("@cls", "WithArgs:", "__init__ must take only self", "path"):

        @cls()
        class WithArgs:
            def __init__(self, path: str) -> None:
                self.path = path

            @function()
            def run(self) -> str:
                return self.path


def test_cls_init_with_defaulted_extra_args() -> None:
    with _raises("@cls", "WithDefault:", "__init__ must take only self"):

        @cls()
        class WithDefault:
            def __init__(self, path: str = "x") -> None:
                self.path = path

            @function()
            def run(self) -> str:
                return self.path


def test_cls_without_function_method() -> None:
    with _raises("@cls", "NoMethods:", "no method is decorated with @function()"):

        @cls()
        class NoMethods:
            def run(self) -> int:
                return 1


def test_cls_on_a_function() -> None:
    with _raises("@cls must decorate a class"):

        @cls()
        def not_a_class() -> None: ...


def test_cls_bad_init_timeout() -> None:
    with _raises("timeout", "1", "172800"):

        @cls(init_timeout=0)
        class SlowInit:
            @function()
            def run(self) -> int:
                return 1


# -- outside any request: plain Python ---------------------------------------------------------


def test_function_outside_request_is_plain_python() -> None:
    assert plain.triple(2) == 6
    assert plain.plus(1, b=2) == 3
    assert plain.triple.__name__ == "triple"
    assert plain.triple.name == "triple"
    assert plain.triple.__wrapped__(4) == 12


def test_futures_map_reduce_outside_request_are_plain_python() -> None:
    fut = plain.triple.future(5)
    assert fut.result() == 15
    assert fut.done()
    assert plain.triple.map([1, 2, 3]) == [3, 6, 9]
    assert plain.plus.reduce([1, 2, 3]) == 6
    assert plain.plus.reduce([1, 2, 3], 10) == 16
    assert plain.plus.reduce([], 10) == 10
    assert plain.triple.map([]) == []


def test_reduce_of_empty_without_initial_outside_request() -> None:
    with _raises("reduce() of an empty iterable needs an initial value"):
        plain.plus.reduce([])


def test_errors_outside_request_propagate_as_is() -> None:
    with pytest.raises(TypeError):
        plain.triple()


def test_async_function_outside_request_returns_a_coroutine() -> None:
    coro = plain.async_triple(3)
    assert asyncio.iscoroutine(coro)
    assert asyncio.run(coro) == 9


def test_cls_init_runs_once_per_process() -> None:
    assert plain.INITS["Counter"] == 0
    handle = plain.Counter()  # a cheap handle: __init__ does not run
    assert plain.INITS["Counter"] == 0
    assert handle.bump(1) == 1001
    assert plain.Counter().bump(2) == 1002
    assert plain.Counter().bump_twice(3) == 1006
    assert plain.INITS["Counter"] == 1
    instance = decorators.instance_of(plain.Counter)
    assert instance is decorators.instance_of(plain.Counter)
    assert instance.base == 1000
    assert plain.INITS["Counter"] == 1


def test_methods_are_registered_by_qualified_name() -> None:
    names = decorators.registered_functions(plain.__name__)
    assert list(names) == ["triple", "plus", "async_triple", "Counter.bump", "Counter.bump_twice"]
    bump = names["Counter.bump"]
    assert bump.is_method and bump.class_name == "Counter" and bump.cls is plain.Counter
    assert not names["triple"].is_method and names["triple"].cls is None
    assert names["async_triple"].is_async


def test_functions_do_not_pickle() -> None:
    # As in the Tensorlake SDK: a Function passed as an argument or returned is a mistake.
    for fn in (plain.triple, plain.Counter.bump, plain.triple.future):
        with pytest.raises(SDKUsageError, match="Attempt to pickle"):
            pickle.dumps(fn)


def test_request_context_outside_request() -> None:
    with _raises("RequestContext.get()", "only available in the thread that runs a function"):
        cove.RequestContext.get()
