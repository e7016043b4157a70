"""A replica's lease loop ends when it is cancelled, even when a wake-up (a NOTIFY, or
the listener's catch-up at start) arrives in the same instant: a loop that ran on would
leave the server's shutdown waiting for it forever (cove.engine.leases.Leases.stop)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from cove.engine.leases import Leases
from cove.engine.settings import Settings


def _leases(tmp_path: Path) -> Leases:
    engine = SimpleNamespace(
        store=SimpleNamespace(writer_engine=SimpleNamespace(dialect=SimpleNamespace(name="x"))),
        settings=Settings(data_dir=tmp_path, lease_seconds=3),
        data_dir=tmp_path,
        events=SimpleNamespace(),
    )
    return Leases(engine)  # type: ignore[arg-type]


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_the_lease_loop_ends_when_cancelled_as_a_wake_arrives(tmp_path: Path, turns: int) -> None:
    async def scenario() -> tuple[bool, int]:
        leases = _leases(tmp_path)
        rounds = 0

        async def round_() -> None:
            nonlocal rounds
            rounds += 1

        leases.round = round_  # type: ignore[method-assign]
        task = asyncio.get_running_loop().create_task(leases._keep())
        await asyncio.sleep(0)  # it waits for a wake-up (or its interval, 1 s)
        leases._wake.set()
        for _ in range(turns):  # the wake-up is on its way through the loop's turns
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(10):  # ten of its intervals: it is not coming back
                await task
        ended = task.done()
        task.cancel()  # a loop that ran on: stop it for good
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return ended, rounds

    ended, rounds = asyncio.run(scenario())
    assert ended, f"the lease loop ran on after its cancel ({rounds} rounds since)"
    assert rounds <= 1  # the round the wake-up asked for, if it came before the cancel
