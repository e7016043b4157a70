"""Run a command inside a network namespace of its own: ``python -m tests.netns CMD ...``.

The namespace has only a loopback interface (brought up), so whatever the command starts
(a Ray cluster, servers) binds to 127.0.0.1 and nothing leaves the machine. The command
runs as PID 1 of a PID namespace too (``unshare --pid --fork --kill-child``): when it ends,
every process it left behind ends with it. The namespace is deleted afterwards; the exit
status is the command's. Needs root (or CAP_SYS_ADMIN) for ``ip netns add``.
"""

from __future__ import annotations

import secrets
import shlex
import signal
import subprocess
import sys
from types import FrameType


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.netns COMMAND [ARG ...]", file=sys.stderr)
        return 2
    name = f"cove-test-{secrets.token_hex(4)}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        print(f"ip netns is not permitted here: {made.stderr.strip()}", file=sys.stderr)
        return 3
    try:
        script = f"ip link set lo up && exec {shlex.join(argv)}"
        command = ["ip", "netns", "exec", name, "unshare", "--pid", "--fork", "--kill-child",
                   "--mount-proc", "sh", "-c", script]  # fmt: skip
        child = subprocess.Popen(command)

        def forward(signum: int, frame: FrameType | None) -> None:
            child.send_signal(signum)  # unshare ends, and with it its PID namespace

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, forward)
        return child.wait()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
