"""The n streams of one request's choices, merged as their chunks come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


async def merge(streams: list[AsyncIterator[dict[str, Any]]]) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """The chunks of n streams as they come, tagged with their choice index. A failure in one
    stream ends all of them (closing a stream aborts its PD legs)."""
    if len(streams) == 1:
        async for chunk in streams[0]:
            yield 0, chunk
        return
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    done = object()

    async def pump(index: int, stream: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for chunk in stream:
                await queue.put((index, chunk))
            await queue.put((index, done))
        except Exception as err:  # noqa: BLE001 (handed to the consumer, which raises it)
            await queue.put((index, err))

    pumps = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        live = len(streams)
        while live:
            index, item = await queue.get()
            if item is done:
                live -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
