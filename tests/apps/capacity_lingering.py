"""A function whose idle container lingers until the idle timeout (no warm, no minimum)."""

import os

from cove import application, function


@application()
@function(memory=2)
def lingering() -> int:
    return os.getpid()
