"""The workers of ``bench.waiting_requests``: the replies every held request's job gets, built
before the clock starts, and their writes, timed."""

from __future__ import annotations

import msgspec
import redis

from service.core.keys import Keys
from service.generations.schemas import Credits, ImageToVideoResponse
from service.jobs.messages import DATA_FIELD, JobReply, decode_job, encode


def replies_project(client: redis.Redis, keys: Keys) -> list[list[tuple]]:
    """What the workers would write for every queued job, in batches: the reply (200, the spec's
    success body, made as the worker makes it), added to the inbox the job names, and the job's
    entry deleted (then no worker could take it). Built before the clock starts."""
    batches: list[list[tuple]] = []
    stream = keys.queue("local")  # DEFAULT_MODEL below: every held request's job is on its stream
    after = "-"
    while entries := client.xrange(stream, min=after, count=5000):
        batch = []
        for message_id, fields in entries:
            job = decode_job(fields[DATA_FIELD])
            data = encode(success_reply(job.job_id))
            batch += [
                ("set", (keys.reply(job.job_id), data), {"ex": 600}),
                ("xadd", (job.inbox, {DATA_FIELD: data}), {}),
                ("xdel", (stream, message_id), {}),
            ]
        batches.append(batch)
        after = "(" + entries[-1][0].decode()
    return batches


def success_reply(job_id: str) -> JobReply:
    body = ImageToVideoResponse(
        success=True,
        s3_key=f"videos/user/2026/11/{job_id}.mp4",
        model="local",
        credits=Credits(used=5, balance=995.0),
        duration="5s",
        generation_time=1500,
    )
    return JobReply(job_id=job_id, status_code=200, body=msgspec.Raw(msgspec.json.encode(body)))


def replies_prototype(client: redis.Redis) -> list[list[tuple]]:
    batches: list[list[tuple]] = []
    after = "-"
    while entries := client.xrange("jobs", min=after, count=5000):
        batch = []
        for message_id, fields in entries:
            reply = {"id": fields[b"id"], "ok": 1}
            batch += [
                ("xadd", (fields[b"reply_to"], reply), {"maxlen": 100_000, "approximate": True}),
                ("xdel", ("jobs", message_id), {}),
            ]
        batches.append(batch)
        after = "(" + entries[-1][0].decode()
    return batches


def write(client: redis.Redis, batches: list[list[tuple]]) -> None:
    """Play the workers: each batch in one pipeline (the clock runs)."""
    for batch in batches:
        pipe = client.pipeline(transaction=False)
        for command, args, kwargs in batch:
            getattr(pipe, command)(*args, **kwargs)
        pipe.execute()
