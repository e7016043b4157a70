"""An application whose function leaves processes running behind it, in and out of its
container's process group: stopping the container must stop them all."""

import multiprocessing
import os
import subprocess
import time

from cove import application, function


def _linger() -> None:
    time.sleep(600)


def _daemon() -> int:
    """A double-forked daemon in a session of its own, never executed (it carries the
    container's environment block as forked); returns its pid."""
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        grandchild = os.fork()
        if grandchild == 0:
            time.sleep(600)
            os._exit(0)
        os.write(write, str(grandchild).encode())
        os._exit(0)
    os.close(write)
    pid = int(os.read(read, 32))
    os.close(read)
    os.waitpid(middle, 0)
    return pid


@application()
@function()
def leave_processes(_: int) -> dict[str, int]:
    child = multiprocessing.get_context("fork").Process(target=_linger)
    child.start()
    session = subprocess.Popen(
        ["sleep", "600"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return {
        "container": os.getpid(),
        "process": int(child.pid or 0),
        "session": session.pid,
        "daemon": _daemon(),
    }
