"""Applications for the security tests: one needs a key, one allows anonymous requests."""

import os

from cove import application, function


@application()
@function()
def echo(text: str) -> str:
    return text


@application(allow=["unauthenticated_requests"])
@function()
def public_echo(text: str) -> str:
    return f"public {text}"


@function(secrets=["API_TOKEN"])
def token() -> str | None:
    return os.environ.get("API_TOKEN")


@application()
@function()
def read_token() -> str | None:
    return token()
