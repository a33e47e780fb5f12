"""The feeds API processes and workers read with a blocking ``XREAD`` on a connection of their
own: job events (Server-Sent Events), cancel notices, and each API process's reply inbox."""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis

from service.jobs.base import INBOX_MAXLEN, INBOX_TTL_SECONDS, OPEN_FIELD, StreamBase, text
from service.jobs.messages import DATA_FIELD, JobEvent, JobReply, decode_event, decode_reply


class FeedsSide(StreamBase):
    async def events_tail(self) -> str:
        """The id after which a process starting to follow job events now reads them."""
        last = await self.redis.xrevrange(self.keys.events_stream, count=1)
        return text(last[0][0]) if last else "0-0"

    async def read_events(self, reader: Redis, after: str, block_ms: int) -> tuple[str, list[JobEvent]]:
        """The job events after ``after`` and the id to read after next, waiting up to ``block_ms``
        on ``reader`` (a connection of its own: it blocks)."""
        found = await reader.xread({self.keys.events_stream: after}, count=1_000, block=block_ms)
        events = []
        for _, entries in found or []:
            for message_id, fields in entries:
                after = text(message_id)
                for i, data in enumerate(fields.values()):  # one event per field (``Outbox``)
                    try:
                        events.append(decode_event(data, after if i == 0 else f"{after}.{i}"))
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        continue  # not ours to fail on: the followers re-read their jobs anyway
        return after, events

    async def cancels_tail(self) -> str:
        """The id after which a worker starting now reads cancel notices."""
        last = await self.redis.xrevrange(self.keys.cancels_stream, count=1)
        return text(last[0][0]) if last else "0-0"

    async def read_cancels(self, reader: Redis, after: str, block_ms: int) -> tuple[str, list[str]]:
        """Job ids cancelled after ``after``, and the id to read after next, waiting up to
        ``block_ms`` on ``reader`` (a connection of its own: it blocks)."""
        found = await reader.xread({self.keys.cancels_stream: after}, count=1_000, block=block_ms)
        job_ids = []
        for _, entries in found or []:
            for message_id, fields in entries:
                after = text(message_id)
                if data := fields.get(DATA_FIELD):
                    job_ids.append(text(data))
        return after, job_ids

    async def open_inbox(self, inbox: str) -> None:
        """Create (or keep alive) an API process's inbox; workers never create one (NOMKSTREAM)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(inbox, {OPEN_FIELD: b"1"}, maxlen=INBOX_MAXLEN, approximate=True)
            pipe.expire(inbox, INBOX_TTL_SECONDS)
            await pipe.execute()

    async def keep_inbox(self, inbox: str) -> None:
        """Push the inbox's expiry back; recreate it if Redis lost it."""
        if not await self.redis.expire(inbox, INBOX_TTL_SECONDS):
            await self.open_inbox(inbox)

    async def read_inbox(self, reader: Redis, inbox: str, after: str, block_ms: int) -> tuple[str, list[JobReply]]:
        """The replies on ``inbox`` after ``after`` and the id to read after next, waiting up to
        ``block_ms`` on ``reader`` (a connection of its own: it blocks)."""
        found = await reader.xread({inbox: after}, count=1_000, block=block_ms)
        replies = []
        for _, entries in found or []:
            for message_id, fields in entries:
                after = text(message_id)
                # One reply per field (``Outbox``); the inbox's opening entry carries none.
                replies.extend(decode_reply(data) for name, data in fields.items() if name != OPEN_FIELD)
        return after, replies
