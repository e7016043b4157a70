"""Cove: durable, autoscaled Python applications.

Decorate functions with ``@application`` and ``@function``, deploy the file to a Cove
server, and call each application over HTTP or from Python.
"""

from cove.errors import (
    CoveError,
    DeserializationError,
    ErrorCode,
    FunctionError,
    RequestError,
    RequestFailed,
    SDKUsageError,
    SerializationError,
    TimeoutError,
)
from cove.sdk.context import RequestContext
from cove.sdk.decorators import application, cls, function
from cove.sdk.file import File
from cove.sdk.function import Function
from cove.sdk.future import RETURN_WHEN, Future
from cove.sdk.image import Image
from cove.sdk.local import run_local_application
from cove.sdk.remote import run_remote_application
from cove.sdk.request import Request
from cove.sdk.retries import Retries

__version__ = "0.1.0"

__all__ = [
    "RETURN_WHEN",
    "CoveError",
    "DeserializationError",
    "ErrorCode",
    "File",
    "Function",
    "FunctionError",
    "Future",
    "Image",
    "Request",
    "RequestContext",
    "RequestError",
    "RequestFailed",
    "Retries",
    "SDKUsageError",
    "SerializationError",
    "TimeoutError",
    "__version__",
    "application",
    "cls",
    "function",
    "run_local_application",
    "run_remote_application",
]
