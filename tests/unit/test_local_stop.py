"""Stopping a local process never hangs on one whose exit is not reported."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from cove.runtime import local


def test_a_stop_waits_a_bounded_time_for_a_killed_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(local, "_KILLED_EXIT_WAIT", 0.3)

    async def scenario() -> tuple[int | None, int | None]:
        # A process that does not exit (as one the kill never reached): the wait gives up.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import time; time.sleep(60)"
        )
        with caplog.at_level(logging.WARNING, logger=local.__name__):
            await local._wait_killed(process, "a test process")
        still = process.returncode
        process.kill()
        await local._wait_killed(process, "a test process")  # gone: returns at once
        return still, process.returncode

    still, after = asyncio.run(scenario())
    assert still is None and after is not None
    assert "a test process" in caplog.text and "not reported within 0.3 s" in caplog.text
