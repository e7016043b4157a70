"""``python -m cove.runtime.template MODULE``: import a deployed module once, fork containers.

Starting a Python process and importing Cove and the user's code costs hundreds of
milliseconds; forking a process that already did costs about one. The template stays
single-threaded (forking a threaded process is unsafe): it waits on its order socket,
forks one container per order (the container's channel arrives with the order, as a passed
file descriptor), and reports each fork and each exit back to the server.

Orders (server -> template, one per message, with one fd):
  ("fork", container_id, function, env, log_path)
Reports (template -> server, framed like a container's channel):
  ("ready",) / ("init_failed", failure)  once
  ("forked", container_id, pid)
  ("exit", pid, exit_code)              negative: killed by that signal
"""

from __future__ import annotations

import os
import pickle
import select
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from cove.runtime import descendants
from cove.runtime.protocol import BlockingChannel


def main() -> None:
    module = sys.argv[1]
    orders = socket.socket(fileno=int(os.environ.pop("COVE_TEMPLATE_ORDERS_FD")))
    reports = BlockingChannel(socket.socket(fileno=int(os.environ.pop("COVE_TEMPLATE_REPORTS_FD"))))
    try:
        from cove.runtime import worker  # noqa: F401 - imported once, here, for every child
        from cove.sdk.manifest import load_module

        load_module(Path.cwd() / f"{module}.py", module)
    except BaseException as exc:
        from cove.sdk.execution import classify

        reports.send(("init_failed", classify(module, exc).to_dict()))
        os._exit(1)
    reports.send(("ready",))
    children: set[int] = set()
    while True:
        ready, _, _ = select.select([orders], [], [], 0.2)
        if ready:
            data, fds, _flags, _addr = socket.recv_fds(orders, 1 << 20, 1)
            if not data:
                os._exit(0)  # the server is gone
            order = pickle.loads(data)
            pid = os.fork()
            if pid == 0:
                _container(order, fds[0], module, orders, reports)
            for fd in fds:
                os.close(fd)
            children.add(pid)
            reports.send(("forked", order[1], pid))
        _reap(children, reports)


def _reap(children: set[int], reports: BlockingChannel) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        reports.send(("exit", pid, os.waitstatus_to_exitcode(status)))


def _container(
    order: tuple[Any, ...], fd: int, module: str, orders: socket.socket, reports: BlockingChannel
) -> None:
    """In the forked child: become a container of its own, then serve; never returns."""
    try:
        _, _container_id, function, env, log_path = order
        os.setsid()  # its own process group: stopping it stops what it spawns
        orders.close()
        reports.close()
        os.environ.update(env)
        # Its token where the kernel shows it, for its forked children to inherit: the
        # template's is there now (see cove.runtime.descendants).
        token = env.get(descendants.TOKEN)
        tagged = token is None or descendants.retag(token)
        tempfile.tempdir = None  # TMPDIR changed: forget the template's choice
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        if not tagged:
            print(
                "cove: could not mark this container's environment; processes it forks "
                "are stopped when the server stops, not with it",
                file=sys.stderr,
                flush=True,
            )
        from cove.runtime.worker import run_worker

        run_worker(socket.socket(fileno=fd), module, function, load=False)
    finally:
        os._exit(1)


if __name__ == "__main__":
    main()
