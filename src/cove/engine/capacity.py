"""The machine's CPUs and memory, shared by the containers of every pool.

Pools bound their own containers (``max_containers``); this bounds them together, so the
server never runs more than the machine holds. It counts:

- **memory**: every container, starting, idle or busy, holds its function's ``memory``
  for its whole life;
- **CPU**: a container holds its function's ``cpu`` while it runs calls, and while it
  starts (it starts for a call that will run). An idle container uses no CPU.

A container whose calls all wait on their children (a *blocked parent*) counts for
neither: its children run in its place. Counting it would bring back the deadlock of
nested pools (a parent holding the capacity its own children wait for). When it resumes
it takes its CPU back even over the limit, briefly; it cannot be made to wait behind
the calls it waited for.

A pool that cannot start a container or run a call for want of capacity waits in a FIFO
list; every release wakes the waiting pools in that order. To make room for a queued
call, idle containers of other pools (beyond their ``min_containers``, longest idle
first) are stopped; a minimum or warm container may only displace idle containers that
their pools would scale down anyway. GPUs are whole devices handed out by ``GpuAllocator``; a pool
waiting for one waits here too, and an idle container holding a GPU is stopped the
same way.

**Reserved for life** (``reserved_for_life``: the Ray runtime, whose actors hold their
``num_cpus`` and ``memory`` from start to stop, idle or blocked). There the cluster, not
Cove, decides whether a container fits, and it counts every live container. So Cove
counts CPU like memory, and counts blocked parents too, when it decides whether idle
containers of other pools must be stopped to make room: otherwise a new container would
wait in the cluster's queue behind idle ones. Only once no idle container is left to stop
may a queued call's container start beyond that count, as far as blocked parents lend
theirs: the cluster queues it until a node is added (its autoscaler) or a parent ends, and
nested calls never deadlock in Cove's own accounting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cove.engine.pool import Pool, Slot

log = logging.getLogger(__name__)

_EPSILON = 1e-9


class Capacity:
    """CPU and memory accounting across pools, and the pools waiting for either."""

    def __init__(
        self,
        cpus: float,
        memory_gb: float,
        pools: Callable[[], Iterable[Pool]],
        reserved_for_life: bool = False,
    ) -> None:
        self.cpus = cpus
        self.memory_gb = memory_gb
        self.reserved_for_life = reserved_for_life
        self._pools = pools
        self._waiting: dict[Pool, None] = {}  # an ordered set: first come, first woken
        self._wake_scheduled = False
        self.evictions = 0

    # -- what is in use ------------------------------------------------------------------
    def cpu_in_use(self, lent: bool = True) -> float:
        """CPUs held; with ``lent``, blocked parents' are not counted (see the module)."""
        if self.reserved_for_life:
            return self._held(lambda pool: pool.cpu, lent)
        used = 0.0
        for pool in self._pools():  # on every dispatch: a plain loop, no generator
            busy = pool.starting
            for slot in pool.slots:
                if slot.active > 0 and slot.alive:
                    busy += 1
            used += pool.cpu * busy
        return used

    def memory_in_use(self, lent: bool = True) -> float:
        return self._held(lambda pool: pool.memory_gb, lent)

    def _held(self, amount: Callable[[Pool], float], lent: bool) -> float:
        """What live containers hold for their whole life (with ``lent``, but blocked
        parents)."""
        used = 0.0
        for pool in self._pools():
            held = sum(1 for s in pool.slots if s.alive and not (lent and _blocked(s)))
            used += amount(pool) * (held + pool.starting)
        return used

    def can_run(self, pool: Pool) -> bool:
        """Whether one more of ``pool``'s containers may run calls now. Where containers
        hold their CPUs for life, an existing one already holds them (``can_start``
        counts a new one's)."""
        if self.reserved_for_life:
            return True
        return self.cpu_in_use() + pool.cpu <= self.cpus + _EPSILON

    def can_start(self, pool: Pool, demand: bool) -> bool:
        """Whether one more of ``pool``'s containers fits in memory (and, where containers
        hold their CPUs for life, in CPUs), once idle containers of other pools are
        stopped to make room: for a queued call (``demand``), any idle one beyond its
        pool's ``min_containers``; for a minimum or warm container, only those its pool
        does not keep (idle ones waiting to scale down)."""
        strict = self.reserved_for_life  # count blocked parents: the cluster does
        if self._fits(pool, lent=not strict):
            return True
        for slot in self._idle_elsewhere(pool, keep_warm=not demand):
            self.evict(slot)
            if self._fits(pool, lent=not strict):
                return True
        # Nothing idle is left to stop: a queued call may use what blocked parents lend.
        return strict and demand and self._fits(pool, lent=True)

    def _fits(self, pool: Pool, lent: bool) -> bool:
        if self.memory_in_use(lent) + pool.memory_gb > self.memory_gb + _EPSILON:
            return False
        if not self.reserved_for_life:
            return True
        return self.cpu_in_use(lent) + pool.cpu <= self.cpus + _EPSILON

    def evict_gpu_holder(self, pool: Pool, holds_gpus: Callable[[Slot], bool]) -> bool:
        """Stop the longest-idle container of another pool that holds GPUs; False if none.

        Its GPUs come back when its process has exited (``GpuAllocator.release``), which
        wakes the pools waiting here."""
        for slot in self._idle_elsewhere(pool):
            if holds_gpus(slot):
                self.evict(slot)
                return True
        return False

    def _idle_elsewhere(self, pool: Pool, keep_warm: bool = False) -> list[Slot]:
        """Idle containers of other pools that may be stopped, longest idle first."""
        idle: list[Slot] = []
        for other in self._pools():
            if other is pool:
                continue
            kept = other.target() if keep_warm else (0 if other.retired else other.min_containers)
            spare = len(other.slots) - kept
            candidates = sorted(
                (s for s in other.slots if s.alive and not s.calls), key=lambda s: s.idle_since
            )
            idle.extend(candidates[: max(0, spare)])
        idle.sort(key=lambda s: s.idle_since)
        return idle

    def evict(self, slot: Slot) -> None:
        log.info("stopping idle container %s to make room", slot.container.id)
        self.evictions += 1
        slot.pool.discard(slot)

    # -- waiting -------------------------------------------------------------------------
    def wait(self, pool: Pool) -> None:
        """``pool`` has calls it cannot start for want of capacity (it keeps its place)."""
        self._waiting.setdefault(pool, None)

    def forget(self, pool: Pool) -> None:
        self._waiting.pop(pool, None)

    @property
    def waiting(self) -> list[Pool]:
        return list(self._waiting)

    def freed(self) -> None:
        """Some capacity came back: wake the waiting pools, in order, soon."""
        if not self._waiting or self._wake_scheduled:
            return
        self._wake_scheduled = True
        asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_scheduled = False
        for pool in list(self._waiting):
            pool.pump()  # it leaves the list once nothing of it waits for capacity

    def describe(self) -> dict[str, float | int]:
        return {
            "cpus": self.cpus,
            "cpus_in_use": round(self.cpu_in_use(lent=not self.reserved_for_life), 3),
            "memory_gb": round(self.memory_gb, 3),
            "memory_gb_in_use": round(self.memory_in_use(lent=not self.reserved_for_life), 3),
            "pools_waiting": len(self._waiting),
            "evictions": self.evictions,
        }


def _blocked(slot: Slot) -> bool:
    """All of the container's calls wait on children: it lends its capacity to them."""
    return bool(slot.calls) and slot.active == 0
