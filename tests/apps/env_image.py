"""A function whose image only sets environment variables (no build step: it runs anywhere)."""

import os
import sys

from cove import Image, application, function

PLAIN = Image(name="plain-env").env("GREETING", "hello from the image")


@application()
@function(image=PLAIN)
def env_imaged() -> dict[str, object]:
    return {"greeting": os.environ.get("GREETING"), "prefix": sys.prefix}
