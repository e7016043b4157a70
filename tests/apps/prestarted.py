"""One plain function: its containers are forked from the template of this code."""

import os

from cove import application, function


@application()
@function()
def prestarted(x: int) -> dict[str, int]:
    return {"x": x, "pid": os.getpid(), "parent": os.getppid()}
