"""The public surface of ``cove``: names, and the error hierarchy they expose."""

import builtins
import pickle

import pytest

import cove
from cove import errors

EXPECTED_ALL = [
    "RETURN_WHEN",
    "ApplicationCapability",
    "CoveError",
    "DeserializationError",
    "ErrorCode",
    "File",
    "Function",
    "FunctionError",
    "FunctionProgress",
    "Future",
    "Headers",
    "HttpBody",
    "Image",
    "InternalError",
    "Logger",
    "RemoteAPIError",
    "Request",
    "RequestContext",
    "RequestError",
    "RequestFailed",
    "RequestNotFinished",
    "RequestState",
    "Retries",
    "SDKUsageError",
    "SerializationError",
    "TensorlakeError",
    "TensorlakeException",
    "TimeoutError",
    "__version__",
    "application",
    "cls",
    "function",
    "run_local_application",
    "run_remote_application",
]


def test_all_is_pinned() -> None:
    assert cove.__all__ == EXPECTED_ALL


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_each_name_resolves(name: str) -> None:
    assert getattr(cove, name) is not None


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from cove import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(EXPECTED_ALL)


def test_version_is_a_string() -> None:
    assert isinstance(cove.__version__, str)
    assert cove.__version__.count(".") == 2


def test_names_come_from_their_modules() -> None:
    from cove.sdk import decorators, future, local, retries

    assert cove.function is decorators.function
    assert cove.application is decorators.application
    assert cove.cls is decorators.cls
    assert cove.Future is future.Future
    assert cove.RETURN_WHEN is future.RETURN_WHEN
    assert cove.run_local_application is local.run_local_application
    assert cove.Retries is retries.Retries
    assert cove.CoveError is errors.CoveError


def test_return_when_members() -> None:
    assert {m.name for m in cove.RETURN_WHEN} == {
        "FIRST_COMPLETED",
        "FIRST_FAILURE",
        "ALL_COMPLETED",
    }


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls_",
    [
        cove.SDKUsageError,
        cove.SerializationError,
        cove.DeserializationError,
        cove.RequestError,
        cove.FunctionError,
        cove.TimeoutError,
        cove.RequestFailed,
    ],
)
def test_every_error_is_a_cove_error(cls_: type[Exception]) -> None:
    assert issubclass(cls_, cove.CoveError)
    assert issubclass(cls_, Exception)


def test_timeout_error_is_a_function_error_and_a_builtin_timeout() -> None:
    assert issubclass(cove.TimeoutError, cove.FunctionError)
    assert issubclass(cove.TimeoutError, builtins.TimeoutError)
    assert cove.TimeoutError is not builtins.TimeoutError


def test_error_codes() -> None:
    assert cove.SDKUsageError("x").code is cove.ErrorCode.SDK_USAGE
    assert cove.RequestError("x").code is cove.ErrorCode.REQUEST_ERROR
    assert cove.FunctionError("x").code is cove.ErrorCode.FUNCTION_ERROR
    assert cove.TimeoutError("x").code is cove.ErrorCode.FUNCTION_TIMEOUT
    assert cove.RequestFailed("x").code is cove.ErrorCode.REQUEST_FAILED
    # An explicit code overrides the class's.
    err = cove.RequestFailed("x", code=cove.ErrorCode.CANCELLED)
    assert err.code is cove.ErrorCode.CANCELLED
    assert cove.RequestFailed("y").code is cove.ErrorCode.REQUEST_FAILED


def test_error_details_and_to_dict() -> None:
    err = cove.FunctionError("it broke", function_name="parse", attempt=2)
    assert str(err) == "it broke"
    assert err.message == "it broke"
    assert err.function_name == "parse"
    assert err.details == {"function_name": "parse", "attempt": 2}
    assert err.to_dict() == {
        "code": "function_error",
        "message": "it broke",
        "function_name": "parse",
        "attempt": 2,
    }
    assert cove.FunctionError("no name").function_name is None


@pytest.mark.parametrize(
    "err",
    [
        cove.FunctionError("f failed", function_name="f", error_type="ValueError"),
        cove.TimeoutError("too slow", function_name="g"),
        cove.RequestError("bad input"),
        cove.RequestFailed("failed", code=cove.ErrorCode.REQUEST_ERROR, function_name="h"),
        cove.SDKUsageError("misuse"),
    ],
)
def test_errors_survive_pickling(err: cove.CoveError) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert back.message == err.message
    assert back.code is err.code
    assert back.details == err.details
    assert str(back) == str(err)


def test_error_from_dict_round_trip() -> None:
    err = errors.error_from_dict(
        {"code": "sdk_usage", "message": "bad decorator", "function_name": "f"}
    )
    assert isinstance(err, cove.SDKUsageError)
    assert err.message == "bad decorator"
    assert err.details == {"function_name": "f"}
    # Failures of a request come back as RequestFailed, keeping their specific code.
    failed = errors.error_from_dict({"code": "function_error", "message": "boom"})
    assert isinstance(failed, cove.RequestFailed)
    assert failed.code is cove.ErrorCode.FUNCTION_ERROR
    unknown = errors.error_from_dict({"code": "what", "message": "?"})
    assert isinstance(unknown, errors.InternalError)
    assert unknown.code is cove.ErrorCode.INTERNAL
