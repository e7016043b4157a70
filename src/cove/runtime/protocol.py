"""Frames on a container's channel: a 4-byte big-endian length, then a pickled tuple.

One persistent, bidirectional channel per container carries calls, child calls, results,
state, progress and metrics; only Cove's own tuples of plain values and bytes travel in
frames (user values are cloudpickled bytes inside them, opened only in containers).

Server -> container:
  ("call", call_id, request_id, payload, input_mode, output_mode)
  ("result", token, ok, data)          data: output bytes, or a failure dict when not ok
  ("state", token, found, data)
  ("ack", token)
Container -> server:
  ("ready",) / ("init_failed", failure_dict)
  ("done", request_id, call_id, data, content_type)
  ("failed", request_id, call_id, failure_dict)
  ("tail", request_id, call_id, child_call_id, function_name, payload)
  ("calls", request_id, parent_call_id, [(token, call_id, function_name, payload), ...])
  ("state_get", token, request_id, key) / ("state_set", token, request_id, key, data)
  ("progress", request_id, call_id, current, total, message)
  ("metric", request_id, call_id, kind, name, value)
  ("logs", [(request_id, call_id, stream, time, level, text), ...])   see runtime/logcapture.py
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
import threading
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 31


def encode(msg: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(msg, protocol=5)
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next frame, or None at end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    msg: tuple[Any, ...] = pickle.loads(body)
    return msg


class BlockingChannel:
    """The container side of the channel: blocking reads, thread-safe writes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb", buffering=1 << 16)
        self._lock = threading.Lock()

    def send(self, msg: tuple[Any, ...]) -> None:
        data = encode(msg)
        with self._lock:
            self._sock.sendall(data)

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def recv(self) -> tuple[Any, ...] | None:
        header = self._file.read(HEADER.size)
        if len(header) < HEADER.size:
            return None
        (size,) = HEADER.unpack(header)
        body = self._file.read(size)
        if len(body) < size:
            return None
        msg: tuple[Any, ...] = pickle.loads(body)
        return msg
