"""Functions that read secrets from their environment."""

import os

from cove import application, function


@function(secrets=["API_TOKEN"])
def with_token() -> dict[str, str | None]:
    return {"API_TOKEN": os.environ.get("API_TOKEN"), "OTHER": os.environ.get("OTHER_SECRET")}


@function()
def without() -> dict[str, str | None]:
    return {"API_TOKEN": os.environ.get("API_TOKEN"), "OTHER": os.environ.get("OTHER_SECRET")}


@application()
@function()
def read_secrets() -> dict[str, dict[str, str | None]]:
    return {"with": with_token(), "without": without(), "entry": without.run_plain()}
