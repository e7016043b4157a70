"""Inside a container: what each call prints and logs, attributed to it and sent to the server.

``sys.stdout``, ``sys.stderr`` and the root logger are replaced once per container. A write
from a thread running a call (or a thread it started, see ``current_scope``) becomes log
lines of that call; everything is also written to the container's own output, as before.
Lines are batched and sent as ``("logs", [(request_id, call_id, stream, time, level,
text), ...])`` frames at most every ``FLUSH_SECONDS``, and before the call's result, so a
call's lines reach the server before its outcome. Output written below Python (by C code
or subprocesses, straight to the file descriptors) reaches only the container's log file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
from typing import TextIO

from cove.runtime.protocol import BlockingChannel
from cove.sdk.context import current_scope

FLUSH_SECONDS = 0.05
#: Longest line kept (longer ones are cut, with a marker).
MAX_LINE = 16_384
Line = tuple[str, str, str, float, str | None, str]


class LogShipper:
    """Collects lines and sends them to the server in batches."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        self._lines: list[Line] = []
        self._partial: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # batches leave in the order they were taken
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cove-logs", daemon=True)
        self._thread.start()

    def write(self, request_id: str, call_id: str, stream: str, text: str) -> None:
        """Text written by a call: complete lines are kept, the rest waits for its end."""
        key = (request_id, call_id, stream)
        now = time.time()
        with self._lock:
            text = self._partial.pop(key, "") + text
            *lines, rest = text.split("\n")
            if rest:
                self._partial[key] = rest
            self._lines.extend(
                (request_id, call_id, stream, now, None, _cut(line)) for line in lines
            )
        if lines:
            self._wake.set()

    def record(self, request_id: str, call_id: str, level: str, text: str) -> None:
        """A ``logging`` record of a call (one entry, even over several lines)."""
        with self._lock:
            self._lines.append((request_id, call_id, "log", time.time(), level, _cut(text)))
        self._wake.set()

    def finish(self, request_id: str, call_id: str) -> None:
        """The call ends: send its unfinished lines and everything waiting, now."""
        with self._lock:
            for key in [k for k in self._partial if k[0] == request_id and k[1] == call_id]:
                rest = self._partial.pop(key)
                self._lines.append((request_id, call_id, key[2], time.time(), None, _cut(rest)))
        self.flush()

    def flush(self) -> None:
        with self._send_lock:
            with self._lock:
                lines, self._lines = self._lines, []
            if lines:
                self.channel.send(("logs", lines))

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(FLUSH_SECONDS)  # gather what comes meanwhile into one frame
            self._wake.clear()
            try:
                self.flush()
            except OSError:
                return  # the channel is closed: the container is stopping


class CallOutput(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` of a container: tees a call's writes to its log."""

    def __init__(self, original: TextIO, stream: str, shipper: LogShipper) -> None:
        self.original = original
        self.stream = stream
        self.shipper = shipper

    def write(self, text: str) -> int:
        scope = current_scope()
        if scope is not None and text:
            self.shipper.write(scope.request_id, scope.call_id, self.stream, text)
        try:
            return self.original.write(text)
        except OSError:  # the container's log file on a full disk: its lines still reach
            return len(text)  # the server above; a print() must not fail the call

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self.original.flush()

    def fileno(self) -> int:
        return self.original.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.original, "encoding", "utf-8"))


class CallLogHandler(logging.Handler):
    """The root logger's handler in a container: a call's records go to its log."""

    def __init__(self, shipper: LogShipper, fallback: TextIO) -> None:
        super().__init__(logging.NOTSET)
        self.shipper = shipper
        self.fallback = fallback
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            scope = current_scope()
            if scope is not None:
                self.shipper.record(scope.request_id, scope.call_id, record.levelname, text)
            with contextlib.suppress(OSError):  # the log file on a full disk
                self.fallback.write(f"{record.levelname} {text}\n")
        except Exception:
            self.handleError(record)


def capture_output(channel: BlockingChannel) -> LogShipper:
    """Route this process's Python output and logging through a :class:`LogShipper`.

    The root logger gets Cove's handler at level INFO (a later ``logging.basicConfig()``
    finds a handler and changes nothing; one with ``force=True`` replaces it)."""
    shipper = LogShipper(channel)
    out, err = sys.stdout, sys.stderr
    sys.stdout = CallOutput(out, "stdout", shipper)
    sys.stderr = CallOutput(err, "stderr", shipper)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(CallLogHandler(shipper, err))
    root.setLevel(logging.INFO)
    return shipper


def _cut(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    return line[:MAX_LINE] + f" [... {len(line) - MAX_LINE} more characters]"
