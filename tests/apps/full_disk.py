"""Applications for the full-disk test (tests/integration/test_full_disk.py)."""

import os
import time

from cove import application, function


@application()
@function()
def echo(text: str) -> int:
    return len(text)


@application()
@function()
def big_output(size: int, gate: str) -> str:
    """Waits for the file ``gate`` (the test writes it once the disk is full), prints (to a
    log file on that full disk), then returns ``size`` characters: an output for the blob
    store."""
    print("waiting for", gate, flush=True)
    while not os.path.exists(gate):
        time.sleep(0.02)  # another process's file: nothing to await
    print("writing a large output", flush=True)
    return "x" * size
