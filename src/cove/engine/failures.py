"""Failure records: why a call or a request ended without output, as JSON-ready dicts.

Every path ends in one of these reasons: ``function_error``, ``function_timeout``,
``request_error``, ``out_of_memory``, ``cancelled``, ``internal_error``,
``constraint_unsatisfiable``, ``blob_missing``, ``storage_full`` (plus ``container_lost``,
which is retried, and ``child_failed`` inside containers, which takes the reason of the child
that failed).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cove.engine.pool import Slot

MACHINE_REASONS = ("container_lost",)
RETRYABLE = ("function_error", "function_timeout", "out_of_memory")


def failure(
    reason: str, function_name: str | None, message: str, error_type: str
) -> dict[str, Any]:
    """One failure record, as calls, attempts and requests keep it."""
    return {
        "reason": reason,
        "function_name": function_name,
        "message": message,
        "error_type": error_type,
        "traceback": "",
    }


def lost_failure(slot: Slot) -> dict[str, Any]:
    """Why a container's calls ended with it: the machine's doing, or the user code's."""
    code = slot.container.exit_code
    name = slot.pool.name
    if slot.out_of_memory:
        limit = slot.pool.function.get("memory") or 1
        message = f"the container went over the function's memory limit of {limit:g} GB"
        return failure("out_of_memory", name, f"{message} and was stopped", "OutOfMemory")
    if slot.out_of_disk:
        limit = slot.pool.function.get("ephemeral_disk") or 2
        message = f"the call wrote more than the function's ephemeral_disk of {limit:g} GB"
        return failure("function_error", name, f"{message} to its temporary folder",
                       "EphemeralDiskFull")  # fmt: skip
    if slot.stopped_by_server or code is None or code == -signal.SIGKILL:
        # Stopped by Cove, by the operating system or by an operator: not the code's fault,
        # so it costs no user retry.
        return failure("container_lost", name, "the container stopped while the call ran",
                       "ContainerLost")  # fmt: skip
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    message = f"the container's process ended with {how} while the call ran"
    return failure("function_error", name, message, "ContainerExited")


def request_error(failure: dict[str, Any]) -> dict[str, Any]:
    reason = failure.get("reason")
    if reason == "child_failed":  # the request failed for the reason its child did
        reason = failure.get("cause") or "function_error"
        if reason in ("child_failed", "container_lost", "init_error"):
            reason = "function_error"
    return {
        "reason": reason,
        "function_name": failure.get("function_name"),
        "message": failure.get("message"),
        "error_type": failure.get("error_type"),
        "traceback": failure.get("traceback"),
    }


def storage_full(message: str, function_name: str | None = None) -> dict[str, Any]:
    """The server's storage was full where a call or request needed to write (not the
    code's fault, so no user retry is spent on it)."""
    return failure("storage_full", function_name, message, "StorageFullError")


def internal(message: str) -> dict[str, Any]:
    return failure("internal_error", None, message, "InternalError")


def cancelled(status: str) -> dict[str, Any]:
    return failure("cancelled", None, f"the request already {status}", "Cancelled")
