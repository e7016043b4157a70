"""JSON shapes of the API's resources, built from journal rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cove.engine.deployments import Version


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def application(v: Version, base_url: str) -> dict[str, Any]:
    app = v.application
    return {
        "name": v.app,
        "version": v.version,
        "created_at": iso(v.created_at),
        "description": app["description"],
        "tags": app["tags"],
        "url": f"{base_url}/applications/{v.app}",
        "parameters": app["parameters"],
        "return_schema": app["return_schema"],
        "returns_file": app["returns_file"],
        "retries": app["retries"],
        "region": app["region"],
        "module": v.module,
        "functions": v.manifest["functions"],
    }


def _error(raw: str | None) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


def request_summary(row: dict[str, Any]) -> dict[str, Any]:
    error = _error(row["error"])
    return {
        "id": row["id"],
        "application": row["app"],
        "application_version": row["version"],
        "status": row["status"],
        "created_at": iso(row["created_at"]),
        "finished_at": iso(row["finished_at"]),
        "error": (
            {
                "function_name": error.get("function_name"),
                "message": error.get("message"),
                "reason": error.get("reason"),
            }
            if error
            else None
        ),
    }


def request_detail(
    row: dict[str, Any],
    calls: list[dict[str, Any]],
    progress: list[dict[str, Any]],
    metrics: list[dict[str, Any]],
) -> dict[str, Any]:
    data = request_summary(row)
    error = _error(row["error"])
    if data["error"] is not None and error is not None:
        data["error"].update(error_type=error.get("error_type"), traceback=error.get("traceback"))
    data["function_calls"] = [
        {
            "id": c["call_id"],
            "function": c["function"],
            "parent_id": c["parent_id"],
            "status": c["status"],
            "attempts": c["attempts"],
            "created_at": iso(c["created_at"]),
            "started_at": iso(c["started_at"]),
            "finished_at": iso(c["finished_at"]),
            "error": _error(c["error"]),
        }
        for c in calls
    ]
    latest: dict[str, dict[str, Any]] = {}
    for p in progress:
        latest[p["call_id"]] = {
            "function_call_id": p["call_id"],
            "current": p["current"],
            "total": p["total"],
            "message": p["message"],
            "at": iso(p["created_at"]),
        }
    data["progress"] = list(latest.values())
    counters: dict[str, float] = {}
    timers: dict[str, list[float]] = {}
    for m in metrics:
        if m["kind"] == "counter":
            counters[m["name"]] = counters.get(m["name"], 0) + m["value"]
        else:
            timers.setdefault(m["name"], []).append(m["value"])
    data["metrics"] = {"counters": counters, "timers": timers}
    return data
