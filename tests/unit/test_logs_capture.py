"""Log capture inside a container: lines attributed to the call whose thread wrote them."""

from __future__ import annotations

import io
import logging
import socket
import threading

from cove.runtime.logcapture import CallLogHandler, CallOutput, LogShipper
from cove.runtime.protocol import BlockingChannel
from cove.sdk.context import CallScope, enter_scope, exit_scope


class NoBackend:
    pass


def test_lines_of_each_call_are_attributed_and_sent_in_order() -> None:
    ours, theirs = socket.socketpair()
    server = BlockingChannel(theirs)
    shipper = LogShipper(BlockingChannel(ours))
    original = io.StringIO()
    out = CallOutput(original, "stdout", shipper)
    handler = CallLogHandler(shipper, io.StringIO())
    logger = logging.getLogger("capture-test")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def call(call_id: str) -> None:
        scope = CallScope("r1", call_id, "f", NoBackend())  # type: ignore[arg-type]
        token = enter_scope(scope)
        try:
            out.write(f"hello from {call_id}")
            out.write(" and more\nsecond line\n")
            out.write("unfinished")
            logger.warning("careful %s", call_id)
        finally:
            shipper.finish("r1", call_id)
            exit_scope(scope, token)

    out.write("outside any call\n")
    threads = [threading.Thread(target=call, args=(cid,)) for cid in ("0.1", "0.2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    received: list[tuple[object, ...]] = []
    while len(received) < 8:
        frame = server.recv()
        assert frame is not None and frame[0] == "logs"
        received.extend(frame[1])
    for cid in ("0.1", "0.2"):
        mine = [(line[2], line[4], line[5]) for line in received if line[1] == cid]
        assert mine == [
            ("stdout", None, f"hello from {cid} and more"),
            ("stdout", None, "second line"),
            ("log", "WARNING", "capture-test: careful " + cid),
            ("stdout", None, "unfinished"),
        ]
    assert all(line[0] == "r1" and isinstance(line[3], float) for line in received)
    assert "outside any call" in original.getvalue()  # still written to the container's log
    assert "hello from 0.1" in original.getvalue()
    logger.removeHandler(handler)
    ours.close()
    theirs.close()
