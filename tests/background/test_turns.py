"""The encoder slot's order: when both queues wait, recordings and videos take turns, so a
backlog of one kind (a night of recordings to compress) never starves the other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.background.gate import CompressGate
from server.background.slot import EncoderSlot, Job
from server.events import EventBus
from server.live.streams import Streams
from tests.conftest import wait_until
from transcoder.layout import MediaLayout
from transcoder.live.ladder import LadderConfig
from transcoder.live.pool import LadderPool


class Queue:
    """A job source holding ready jobs; each job notes its name in `ran` when it runs."""

    def __init__(self, kind: str, names: list[str], ran: list[str]) -> None:
        self.kind = kind
        self.waiting = list(names)
        self.ran = ran

    async def next_job(self) -> Job | None:
        if not self.waiting:
            return None
        name = self.waiting.pop(0)

        async def run() -> None:
            self.ran.append(name)
            await asyncio.sleep(0.01)

        return Job(self.kind, name, run)

    async def crashed(self, job: Job) -> None:
        raise AssertionError(f"{job.id} crashed")


async def test_waiting_kinds_take_turns(tmp_path: Path) -> None:
    pool = LadderPool(MediaLayout(tmp_path), LadderConfig())
    gate = CompressGate(Streams(pool, EventBus(), 1935), pool, None, 1.5)
    slot = EncoderSlot(gate)
    ran: list[str] = []
    slot.add(Queue("compress", ["recording 1", "recording 2", "recording 3"], ran))
    slot.add(Queue("vod", ["video 1", "video 2"], ran))
    loop = asyncio.create_task(slot.run())

    async def all_ran() -> bool:
        return len(ran) == 5

    try:
        await wait_until(all_ran, 10, "all five jobs to run", interval=0.05)
    finally:
        loop.cancel()
    assert ran == ["recording 1", "video 1", "recording 2", "video 2", "recording 3"]
