"""JSON shapes of the API's resources, built from journal rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cove.engine.deployments import Version
from cove.engine.keys import public_name


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def application(v: Version, base_url: str) -> dict[str, Any]:
    app = v.application
    return {
        "name": public_name(v.app),
        "version": v.version,
        "created_at": iso(v.created_at),
        "description": app["description"],
        "tags": app["tags"],
        "url": f"{base_url}/applications/{public_name(v.app)}",
        "parameters": app["parameters"],
        "return_schema": app["return_schema"],
        "returns_file": app["returns_file"],
        "retries": app["retries"],
        "region": app["region"],
        "allow": app.get("allow") or [],
        "module": v.module,
        "functions": v.manifest["functions"],
    }


def _error(raw: str | None) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


def request_summary(row: dict[str, Any]) -> dict[str, Any]:
    error = _error(row["error"])
    return {
        "id": row["id"],
        "application": public_name(row["app"]),
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


@dataclass
class RequestRecords:
    """Everything the journal holds about one request, beside its row."""

    calls: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    progress: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    replay: dict[str, Any] | None


def _attempt(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "attempt": a["attempt"],
        "container": a["container"],
        "status": a["status"],
        "started_at": iso(a["started_at"]),
        "finished_at": iso(a["finished_at"]),
        "error": _error(a["error"]),
    }


def request_detail(row: dict[str, Any], records: RequestRecords) -> dict[str, Any]:
    calls, progress, metrics = records.calls, records.progress, records.metrics
    history: dict[str, list[dict[str, Any]]] = {}
    for a in records.attempts:
        history.setdefault(a["call_id"], []).append(_attempt(a))
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
            "attempt_history": history.get(c["call_id"], []),
        }
        for c in calls
    ]
    replay = records.replay
    data["replay"] = (
        {
            "count": replay["count"],
            "last_replayed_at": iso(replay["last_at"]),
            "from_version": replay["from_version"],
            "diverged_calls": json.loads(replay["diverged"]) if replay["diverged"] else [],
        }
        if replay
        else None
    )
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
