"""Turning an HTTP request body into an application's arguments, checked against its schema.

Empty body: no arguments. JSON body: the single argument (or, for several parameters, an
object keyed by parameter name). ``multipart/form-data``: one part per parameter, JSON
except for ``File`` parameters, which get the part's bytes and content type. A single
``File`` parameter also takes the raw body with its ``Content-Type``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

import jsonschema
from starlette.datastructures import UploadFile
from starlette.requests import Request

from cove.errors import InvalidInputError
from cove.sdk.file import File


def _bad(app: str, message: str, **details: Any) -> InvalidInputError:
    return InvalidInputError(f"application {app}: {message}", application=app, **details)


def _parse_json(app: str, raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(app, f"{what} is not valid JSON: {exc}") from None


async def read_arguments(request: Request, manifest: dict[str, Any]) -> dict[str, Any]:
    """The arguments in ``request``'s body, validated; raises InvalidInputError naming what."""
    app = manifest["name"]
    params = {p["name"]: p for p in manifest["parameters"]}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        values = await _from_multipart(app, request, params)
    else:
        values = _from_body(app, await request.body(), content_type, params)
    _validate(app, manifest["parameters"], values)
    return values


async def _from_multipart(app: str, request: Request, params: dict[str, Any]) -> dict[str, Any]:
    try:
        form = await request.form()
    except Exception as exc:
        raise _bad(app, f"the multipart/form-data body is malformed: {exc}") from None
    values: dict[str, Any] = {}
    for name, part in form.multi_items():
        param = params.get(name)
        if param is None:
            continue  # unknown arguments are ignored
        raw = await part.read() if isinstance(part, UploadFile) else part.encode()
        if param["is_file"]:
            ctype = (part.content_type if isinstance(part, UploadFile) else None) or "text/plain"
            values[name] = File(raw, ctype)
            continue
        try:
            values[name] = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            if param["schema"].get("type") == "string":
                values[name] = raw.decode(errors="replace")  # plain text for a str parameter
            else:
                raise _bad(app, f"part '{name}' is not valid JSON", parameter=name) from None
    return values


def _from_body(app: str, body: bytes, content_type: str, params: dict[str, Any]) -> dict[str, Any]:
    if not body.strip():
        return {}
    plist = list(params.values())
    if len(plist) == 1 and plist[0]["is_file"] and not content_type.startswith("application/json"):
        return {plist[0]["name"]: File(body, content_type or "application/octet-stream")}
    value = _parse_json(app, body, "the request body")
    if not plist:
        return {}
    if len(plist) == 1:
        if plist[0]["is_file"]:
            raise _bad(
                app, f"parameter '{plist[0]['name']}' expects a file", parameter=plist[0]["name"]
            )
        return {plist[0]["name"]: value}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in params}
    raise _bad(
        app,
        f"it takes {len(plist)} parameters ({', '.join(params)}): send multipart/form-data "
        "with one part per parameter, or a JSON object keyed by parameter name",
    )


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _validate(app: str, params: list[dict[str, Any]], values: dict[str, Any]) -> None:
    for p in params:
        name = p["name"]
        if name not in values:
            if p["required"]:
                raise _bad(app, f"missing required argument '{name}'", parameter=name)
            continue
        value = values[name]
        if p["is_file"]:
            if not isinstance(value, File):
                raise _bad(app, f"parameter '{name}' expects a file upload", parameter=name)
            continue
        if isinstance(value, File):
            raise _bad(app, f"parameter '{name}' expects JSON, not a file", parameter=name)
        error = jsonschema.exceptions.best_match(
            _validator(json.dumps(p["schema"], sort_keys=True)).iter_errors(value)
        )
        if error is not None:
            where = "".join(f"[{x!r}]" for x in error.absolute_path)
            expected = p["schema"].get("title") or p["schema"].get("type") or "its schema"
            raise _bad(
                app,
                f"parameter '{name}'{where} does not match its type ({expected}): {error.message}",
                parameter=name,
            )


def fingerprint(values: dict[str, Any]) -> str:
    """A hash of the arguments, to tell a repeated request from a different one."""
    digest = hashlib.sha256()
    for name in sorted(values):
        value = values[name]
        digest.update(name.encode() + b"\0")
        if isinstance(value, File):
            digest.update(value.content_type.encode() + b"\0" + value.content)
        else:
            digest.update(json.dumps(value, sort_keys=True).encode())
        digest.update(b"\0")
    return digest.hexdigest()
