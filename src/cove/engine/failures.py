"""Failure records: why a call or a request ended without output, as JSON-ready dicts.

Every path ends in one of these reasons: ``function_error``, ``function_timeout``,
``request_error``, ``out_of_memory``, ``cancelled``, ``internal_error``,
``constraint_unsatisfiable`` (plus ``container_lost``, which is retried, and
``child_failed`` inside containers, which takes the reason of the child that failed).
"""

from __future__ import annotations

import signal
from typing import Any

from cove.engine.pool import Slot

MACHINE_REASONS = ("container_lost",)
RETRYABLE = ("function_error", "function_timeout", "out_of_memory")


def lost_failure(slot: Slot) -> dict[str, Any]:
    """Why a container's calls ended with it: the machine's doing, or the user code's."""
    code = slot.container.exit_code
    if slot.out_of_memory:
        return {
            "reason": "out_of_memory",
            "message": f"the container went over the function's memory limit of "
            f"{slot.pool.function.get('memory') or 1:g} GB and was stopped",
            "error_type": "OutOfMemory",
            "traceback": "",
        }
    if slot.out_of_disk:
        return {
            "reason": "function_error",
            "message": "the call wrote more than the function's ephemeral_disk of "
            f"{slot.pool.function.get('ephemeral_disk') or 2:g} GB to its temporary folder",
            "error_type": "EphemeralDiskFull",
            "traceback": "",
        }
    if slot.stopped_by_server or code is None or code == -signal.SIGKILL:
        # Stopped by Cove, by the operating system or by an operator: not the code's fault,
        # so it costs no user retry.
        return {
            "reason": "container_lost",
            "message": "the container stopped while the call ran",
            "error_type": "ContainerLost",
            "traceback": "",
        }
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    return {
        "reason": "function_error",
        "message": f"the container's process ended with {how} while the call ran",
        "error_type": "ContainerExited",
        "traceback": "",
    }


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


def internal(message: str) -> dict[str, Any]:
    return {
        "reason": "internal_error",
        "function_name": None,
        "message": message,
        "error_type": "InternalError",
        "traceback": "",
    }


def cancelled(status: str) -> dict[str, Any]:
    return {
        "reason": "cancelled",
        "function_name": None,
        "message": f"the request already {status}",
        "error_type": "Cancelled",
        "traceback": "",
    }
