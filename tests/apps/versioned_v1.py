import time

from cove import application, function


@application()
@function()
def versioned(x: int, wait: float = 0.0) -> str:
    time.sleep(wait)
    return f"v1:{x}"
