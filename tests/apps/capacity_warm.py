"""A function that keeps one warm container of 2 GB."""

import os

from cove import application, function


@application()
@function(memory=2, warm_containers=1)
def warm_big() -> int:
    return os.getpid()
