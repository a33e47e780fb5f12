"""The dispatcher against a real receiver on loopback (signatures verified with the
``standardwebhooks`` library) and the real Redis queue: delivery, retries with one ``webhook-id``,
receivers that never answer, redirects, refused targets, secret rotation, dead senders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY

from service.core.settings import parse_webhook_secret
from service.webhooks.messages import DeliveryStatus, WebhookDelivery, WebhookEvent
from service.webhooks.queue import WebhookQueue
from service.webhooks.sender import RESPONSE_EXCERPT
from tests.webhooks.conftest import make_delivery, new_secret


async def settled(queue: WebhookQueue, delivery_id: str, timeout: float = 30.0) -> WebhookDelivery:
    """The delivery once it is final (``timeout`` is a safety net)."""
    async with asyncio.timeout(timeout):
        while True:
            found = await queue.get(delivery_id)
            if found is not None and found.status is not DeliveryStatus.PENDING:
                return found
            await asyncio.sleep(0.02)


async def test_a_delivery_arrives_signed_and_is_recorded(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    receiver, url = await receivers()
    delivery = make_delivery(url + "/hooks?x=1")
    assert await queue.enqueue(delivery)
    dispatchers()
    done = await settled(queue, delivery.id)
    [got] = receiver.received
    assert got.rejected is None and got.payload == {"type": "generation.succeeded", "data": {"jobId": "job1"}}
    assert got.headers["webhook-id"] == delivery.id and got.path == "/hooks?x=1"
    assert got.body == delivery.payload.encode()
    assert done.status is DeliveryStatus.DELIVERED and [a.status_code for a in done.attempts] == [204]
    assert done.next_at is None and await queue.due() == 0


async def test_queueing_an_event_twice_keeps_one_delivery(queue: WebhookQueue) -> None:
    first = make_delivery("https://example.com/a")
    assert await queue.enqueue(first)
    assert not await queue.enqueue(make_delivery("https://example.com/b"))
    stored = await queue.get(first.id)
    assert stored is not None and stored.url == "https://example.com/a" and await queue.due() == 1


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"event": "generation.succeeded", **labels}) or 0.0


async def test_a_receiver_that_fails_three_times_gets_one_logical_delivery(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    metrics = ("video_gen_webhook_attempts_total", "video_gen_webhook_deliveries_finished_total")
    before = [counted(metrics[0], result="http_error"), counted(metrics[0], result="delivered")]
    before.append(counted(metrics[1], outcome="delivered"))
    receiver, url = await receivers(answers=[500, 503, 429])
    delivery = make_delivery(url)
    await queue.enqueue(delivery)
    dispatchers(delays=[0.05, 0.05, 0.05, 0.05])
    done = await settled(queue, delivery.id)
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.id] * 4
    assert len(receiver.verified) == 4 and {r.body for r in receiver.received} == {delivery.payload.encode()}
    assert done.status is DeliveryStatus.DELIVERED
    assert [a.status_code for a in done.attempts] == [500, 503, 429, 204]
    assert all(a.duration_ms >= 0 and a.at > 0 for a in done.attempts)
    after = [counted(metrics[0], result="http_error"), counted(metrics[0], result="delivered")]
    after.append(counted(metrics[1], outcome="delivered"))
    assert [a - b for a, b in zip(after, before)] == [3, 1, 1]


async def test_a_delivery_fails_once_the_schedule_is_spent(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    receiver, url = await receivers(then=500)
    delivery = make_delivery(url)
    await queue.enqueue(delivery)
    dispatchers(delays=[0.02, 0.02])
    done = await settled(queue, delivery.id)
    assert done.status is DeliveryStatus.FAILED and len(done.attempts) == 3 == len(receiver.received)
    assert await queue.due() == 0


async def test_a_receiver_that_never_answers_times_out_and_slows_nobody(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    dead, dead_url = await receivers(then="hang")
    _alive, alive_url = await receivers()
    stuck = make_delivery(dead_url, job_id="stuck")
    await queue.enqueue(stuck)
    dispatchers(timeout=2.0, delays=[0.05])
    await dead.wait_for(1)
    other = make_delivery(alive_url, job_id="other")
    await queue.enqueue(other)
    delivered = await settled(queue, other.id)
    # The other receiver was served while the first attempt was still hanging.
    hanging = await queue.get(stuck.id)
    assert hanging is not None and hanging.attempts == [] and delivered.status is DeliveryStatus.DELIVERED
    done = await settled(queue, stuck.id)
    assert done.status is DeliveryStatus.FAILED
    assert [a.error for a in done.attempts] == ["timed out after 2s"] * 2
    assert all(a.status_code is None for a in done.attempts)


async def test_a_dead_receiver_with_many_deliveries_leaves_slots_for_the_others(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    dead, dead_url = await receivers(then="hang")
    alive, alive_url = await receivers()
    stuck = [make_delivery(dead_url, job_id=f"stuck{i}") for i in range(3)]
    for delivery in stuck:
        await queue.enqueue(delivery)
    other = make_delivery(alive_url, job_id="other")
    other.next_at = stuck[-1].next_at + 0.001  # due after them: without the per-host cap it would wait
    await queue.enqueue(other)
    dispatchers(timeout=3.0, delays=[0.05], concurrency=2, per_host=1)
    delivered = await settled(queue, other.id)
    waiting = [await queue.get(d.id) for d in stuck]
    assert delivered.status is DeliveryStatus.DELIVERED and len(alive.received) == 1
    assert len(dead.received) == 1  # one slot for the dead host; the others were put back, not tried
    assert all(w is not None and w.attempts == [] and w.status is DeliveryStatus.PENDING for w in waiting)


async def test_redirects_are_not_followed(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    elsewhere, elsewhere_url = await receivers()
    receiver, url = await receivers(then=(302, {"location": elsewhere_url + "/x"}))
    delivery = make_delivery(url)
    await queue.enqueue(delivery)
    dispatchers(delays=[0.02])
    done = await settled(queue, delivery.id)
    assert done.status is DeliveryStatus.FAILED and [a.status_code for a in done.attempts] == [302, 302]
    assert elsewhere.received == [] and len(receiver.received) == 2


async def test_loopback_and_private_targets_are_refused_without_a_request(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    receiver, url = await receivers()
    port = url.rsplit(":", 1)[1]
    targets = [url, f"http://localhost:{port}/", "http://10.1.2.3/", "http://169.254.169.254/latest/meta-data"]
    deliveries = [make_delivery(target, job_id=f"j{i}") for i, target in enumerate(targets)]
    for delivery in deliveries:
        await queue.enqueue(delivery)
    dispatchers(allow_private=False, delays=[0.02, 0.02])
    for delivery in deliveries:
        done = await settled(queue, delivery.id)
        assert done.status is DeliveryStatus.FAILED and len(done.attempts) == 1  # no retries
        assert (done.attempts[0].error or "").startswith("refused:"), done.attempts[0]
    assert receiver.received == []


async def test_a_receiver_with_another_secret_rejects_the_signature(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    receiver, url = await receivers(secret=new_secret())
    delivery = make_delivery(url)
    await queue.enqueue(delivery)
    dispatchers(delays=[0.02])
    done = await settled(queue, delivery.id)
    assert receiver.verified == [] and {r.rejected for r in receiver.received} == {"No matching signature found"}
    assert done.status is DeliveryStatus.FAILED and [a.status_code for a in done.attempts] == [401, 401]


async def test_while_a_secret_rotates_both_the_old_and_the_new_verify(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any], secret: str
) -> None:
    old = new_secret()
    on_old, old_url = await receivers(secret=old)
    on_new, new_url = await receivers(secret=secret)
    dispatchers(keys=[parse_webhook_secret(secret, "new"), parse_webhook_secret(old, "old")])
    for job_id, url in (("a", old_url), ("b", new_url)):
        await queue.enqueue(make_delivery(url, job_id=job_id))
    for receiver in (on_old, on_new):
        [got] = await receiver.wait_for(1)
        assert got.payload is not None and len(got.headers["webhook-signature"].split(" ")) == 2


async def test_a_claim_of_a_dead_sender_comes_due_again(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    receiver, url = await receivers()
    delivery = make_delivery(url, event=WebhookEvent.FAILED)
    await queue.enqueue(delivery)
    [claimed] = await queue.claim(10, lease_seconds=0.3)  # a sender that dies now
    assert claimed.id == delivery.id and await queue.claim(10, lease_seconds=0.3) == []
    dispatchers()
    done = await settled(queue, delivery.id)
    assert done.status is DeliveryStatus.DELIVERED and len(receiver.received) == 1


async def test_only_an_excerpt_of_the_answer_is_kept(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    receiver, url = await receivers()
    big = "y" * 100_000
    receiver.then = 200
    receiver.body = big
    delivery = make_delivery(url)
    await queue.enqueue(delivery)
    dispatchers()
    done = await settled(queue, delivery.id)
    assert done.attempts[0].response is not None and len(done.attempts[0].response) <= RESPONSE_EXCERPT


async def test_stopping_hands_attempts_in_flight_back_at_once(
    queue: WebhookQueue, receivers: Callable[..., Any], dispatchers: Callable[..., Any]
) -> None:
    receiver, url = await receivers(answers=["hang"])
    delivery = make_delivery(url)
    await queue.enqueue(delivery)
    first = dispatchers(timeout=30.0)
    await receiver.wait_for(1)
    await first.stop(0)  # a worker shutting down: the hanging attempt is cancelled
    pending = await queue.get(delivery.id)
    assert pending is not None and pending.status is DeliveryStatus.PENDING and pending.attempts == []
    [claimed] = await queue.claim(10, lease_seconds=30)  # due now, not after the 60 s claim lease
    assert claimed.id == delivery.id


async def test_a_stale_due_entry_is_dropped_not_sent(queue: WebhookQueue) -> None:
    done = make_delivery("https://example.com/", job_id="done")
    done.status = DeliveryStatus.DELIVERED
    await queue.enqueue(done)  # a final record left due (a crash between two writes)
    await queue.redis.zadd(queue.keys.webhooks_due, {"msg_gone_failed": 0})  # a record that expired
    assert await queue.claim(10, lease_seconds=30) == [] and await queue.due() == 0
