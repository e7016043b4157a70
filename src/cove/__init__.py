"""Cove: durable, autoscaled Python applications.

Decorate functions with ``@application`` and ``@function``, deploy the file to a Cove
server, and call each application over HTTP or from Python.
"""

from typing import Literal

from cove.errors import (
    CoveError,
    DeserializationError,
    ErrorCode,
    FunctionError,
    InternalError,
    RemoteAPIError,
    RequestError,
    RequestFailed,
    RequestNotFinished,
    SDKUsageError,
    SerializationError,
    TensorlakeError,
    TensorlakeException,
    TimeoutError,
)
from cove.sdk.context import FunctionProgress, RequestContext, RequestState
from cove.sdk.decorators import application, cls, function
from cove.sdk.file import File
from cove.sdk.function import Function
from cove.sdk.future import RETURN_WHEN, Future
from cove.sdk.http import Headers, HttpBody
from cove.sdk.image import Image
from cove.sdk.local import run_local_application
from cove.sdk.logger import Logger
from cove.sdk.remote import run_remote_application
from cove.sdk.request import Request
from cove.sdk.retries import Retries

__version__ = "0.1.0"

#: What ``@application(allow=[...])`` may grant (the Tensorlake SDK's name for it).
ApplicationCapability = Literal["unauthenticated_requests"]

__all__ = [
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
