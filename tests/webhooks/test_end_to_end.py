"""Webhooks through the whole stack (API over HTTP, a worker pool, real Redis, SQLite): every
event with the job's view as its data, subscriptions, 400s before anything is queued, the
deliveries in the job view, and an admin's resend. The receiver verifies every request with the
``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from service.core.settings import Settings
from service.embedded import embedded_stack
from service.ledger import service as ledger
from tests.console.conftest import Console
from tests.factories import TestModels, grant, image_request, seed_image
from tests.fakes.webhook_receiver import Receiver
from tests.jobs.conftest import JobsApi
from tests.jobs.conftest import running as running_scripted
from tests.webhooks.conftest import new_secret
from tests.workers.models import ScriptedModel

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the database plays no part of its own here (the PostgreSQL runs are elsewhere)."""
    return sqlite_url


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[JobsApi]:
    """The whole stack with the local model and the ``failing`` one (``tests.factories``)."""
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            api = JobsApi(stack, client)
            try:
                yield api
            finally:
                api.app_state.inbox.release_all()


@pytest.fixture
def webhook_timeout() -> float:
    """An attempt's timeout; a test that needs an attempt to hang throughout asks for longer."""
    return 5.0


@pytest.fixture
async def hooked(
    stack_settings: Callable[..., Settings], secret: str, webhook_timeout: float
) -> AsyncIterator[tuple[JobsApi, Receiver, str]]:
    receiver = Receiver(secret)
    url = await receiver.start() + "/hooks"
    settings = stack_settings(
        default_model="local",
        webhook_secret=secret,
        webhook_allow_http=True,
        webhook_allow_private=True,
        webhook_retry_schedule="0.05s,0.05s,0.05s",
        webhook_poll_seconds=0.05,
        webhook_timeout_seconds=webhook_timeout,
    )
    try:
        async with running(settings) as api:
            await seed_image(api.settings)
            yield api, receiver, url
    finally:
        await receiver.stop()


async def answered(api: JobsApi, job_id: str) -> None:
    """Until the job's reply is written (its webhook, if any, was queued before it)."""
    async with asyncio.timeout(30):
        while await api.app_state.stream.reply_of(job_id) is None:
            await asyncio.sleep(0.02)


async def view_when_delivered(api: JobsApi, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            view = (await api.job(job_id)).json()
            if view["webhooks"] and all(w["status"] != "pending" for w in view["webhooks"]):
                return view
            await asyncio.sleep(0.02)


def same_job(data: dict[str, Any], view: dict[str, Any]) -> None:
    """The payload's data is the job's view (download links are minted anew on every read)."""
    fresh = ("downloadUrl", "downloadExpiresAt", "webhooks")
    assert {k: v for k, v in data.items() if k not in fresh} == {k: v for k, v in view.items() if k not in fresh}
    assert data["webhooks"] is None


async def test_a_succeeded_generation_is_told_once_with_the_job_view(hooked: tuple[JobsApi, Receiver, str]) -> None:
    api, receiver, url = hooked
    await grant("u1", 1000)
    r = await api.post(image_request(webhookUrl=url), headers=ASYNC)
    job_id = r.json()["jobId"]
    [got] = await receiver.wait_for(1)
    view = await view_when_delivered(api, job_id)
    assert got.rejected is None and got.path == "/hooks"
    assert got.headers["webhook-id"] == f"msg_{job_id}_succeeded" and got.headers["content-type"] == "application/json"
    assert got.payload["type"] == "generation.succeeded" and got.payload["timestamp"].endswith("Z")
    same_job(got.payload["data"], view)
    assert got.payload["data"]["status"] == "succeeded" and got.payload["data"]["downloadUrl"]
    [delivery] = view["webhooks"]
    assert delivery["id"] == got.headers["webhook-id"] and delivery["event"] == "generation.succeeded"
    assert delivery["status"] == "delivered" and delivery["url"] == url and delivery["nextAttemptAt"] is None
    assert [(a["statusCode"], a["error"]) for a in delivery["attempts"]] == [(204, None)]


async def test_a_failed_generation_is_told_with_its_error_after_the_refund(
    hooked: tuple[JobsApi, Receiver, str],
) -> None:
    api, receiver, url = hooked
    await grant("u1", 1000)
    r = await api.post(image_request(webhookUrl=url, model="failing"), headers=ASYNC)
    job_id = r.json()["jobId"]
    [got] = await receiver.wait_for(1)
    assert got.payload["type"] == "generation.failed" and got.headers["webhook-id"] == f"msg_{job_id}_failed"
    assert got.payload["data"]["error"]["statusCode"] == 500
    assert "the model exploded" in got.payload["data"]["error"]["message"]
    same_job(got.payload["data"], await view_when_delivered(api, job_id))
    assert await ledger.balance_of("u1") == 1000


async def test_a_job_refused_before_any_charge_is_told_too(hooked: tuple[JobsApi, Receiver, str]) -> None:
    api, receiver, url = hooked
    await grant("u1", 100)
    r = await api.post(image_request(webhookUrl=url), headers=ASYNC)
    [got] = await receiver.wait_for(1)
    assert got.payload["type"] == "generation.failed" and got.payload["data"]["jobId"] == r.json()["jobId"]
    assert got.payload["data"]["error"] == {
        "statusCode": 400,
        "message": "Insufficient credits. Required: 750, Available: 100.0",
        "error": "Bad Request",
    }


# The hung attempt must outlast the next generation, however slow a loaded machine makes it (the
# teardown does not wait for it: SHUTDOWN_GRACE_SECONDS is 1 here).
@pytest.mark.parametrize("webhook_timeout", [60.0])
async def test_a_receiver_that_never_answers_delays_no_generation(hooked: tuple[JobsApi, Receiver, str]) -> None:
    api, receiver, url = hooked
    receiver.then = "hang"
    await grant("u1", 2000)
    hung = (await api.post(image_request(webhookUrl=url), headers=ASYNC)).json()["jobId"]
    await receiver.wait_for(1)
    r = await api.post(image_request(prompt="the next one"))  # waits for its outcome
    assert r.status_code == 200 and r.json()["success"] is True
    [delivery] = (await api.job(hung)).json()["webhooks"]
    assert delivery["status"] == "pending" and delivery["attempts"] == []  # its first attempt still hangs


async def test_generation_started_is_sent_when_asked_for_by_name(hooked: tuple[JobsApi, Receiver, str]) -> None:
    api, receiver, url = hooked
    await grant("u1", 1000)
    events = ["generation.started", "generation.succeeded"]
    job_id = (await api.post(image_request(webhookUrl=url, webhookEvents=events), headers=ASYNC)).json()["jobId"]
    got = await receiver.wait_for(2)
    by_type = {r.payload["type"]: r for r in got}
    assert set(by_type) == set(events) and all(r.payload is not None for r in got)
    started = by_type["generation.started"]
    assert started.headers["webhook-id"] == f"msg_{job_id}_started"
    assert started.payload["data"]["status"] == "running" and started.payload["data"]["result"] is None
    assert started.payload["data"]["jobId"] == job_id and started.payload["data"]["attempts"] == 1
    view = await view_when_delivered(api, job_id)
    assert sorted(w["event"] for w in view["webhooks"]) == sorted(events)


async def test_only_the_subscribed_events_are_sent(hooked: tuple[JobsApi, Receiver, str]) -> None:
    api, receiver, url = hooked
    await grant("u1", 2000)
    quiet = await api.post(image_request(webhookUrl=url, webhookEvents=["generation.failed"]), headers=ASYNC)
    await answered(api, quiet.json()["jobId"])
    told = await api.post(
        image_request(webhookUrl=url, webhookEvents=["generation.failed"], model="failing"), headers=ASYNC
    )
    [got] = await receiver.wait_for(1)
    assert got.payload["data"]["jobId"] == told.json()["jobId"]
    assert (await api.job(quiet.json()["jobId"])).json()["webhooks"] is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"webhookUrl": "ftp://x.example/"}, "webhookUrl must be a URL address"),
        ({"webhookUrl": 5}, "webhookUrl must be a URL address"),
        ({"webhookUrl": "http://hooks.example.com/"}, None),  # allowed here: WEBHOOK_ALLOW_HTTP
        ({"webhookEvents": ["generation.succeeded"]}, "webhookUrl should not be empty"),
        (
            {"webhookUrl": "https://hooks.example.com/", "webhookEvents": ["generation.done"]},
            "each value in webhookEvents must be one of the following values: "
            "generation.succeeded, generation.failed, generation.cancelled, generation.started",
        ),
        ({"webhookUrl": "https://hooks.example.com/", "webhookEvents": []}, "webhookEvents should not be empty"),
        ({"webhookUrl": "https://hooks.example.com/", "webhookEvents": "all"}, "webhookEvents must be an array"),
    ],
)
async def test_a_bad_subscription_is_a_400_before_anything_is_queued(
    hooked: tuple[JobsApi, Receiver, str], fields: dict[str, Any], message: str | None
) -> None:
    api, _, _ = hooked
    await grant("u1", 1000)
    r = await api.post(image_request(**fields), headers=ASYNC)
    if message is None:
        assert r.status_code == 202
        return
    assert r.status_code == 400 and r.json() == {"statusCode": 400, "message": [message], "error": "Bad Request"}
    assert await api.app_state.stream.backlog() == 0 and await ledger.balance_of("u1") == 1000


async def test_without_a_secret_or_without_http_allowed_urls_are_refused(
    stack_settings: Callable[..., Settings],
) -> None:
    async with running(stack_settings(default_model="local")) as api:
        r = await api.post(image_request(webhookUrl="https://hooks.example.com/"), headers=ASYNC)
        assert r.json()["message"] == [
            "webhookUrl is not accepted: this server has no WEBHOOK_SECRET to sign webhooks with"
        ]
    async with running(stack_settings(default_model="local", webhook_secret=new_secret())) as api:
        refused = {
            "http://hooks.example.com/": "webhookUrl must be a URL address with protocol https",
            "https://127.0.0.1:9/": "webhookUrl must not point to a private, loopback or link-local address",
        }
        for url, message in refused.items():
            r = await api.post(image_request(webhookUrl=url), headers=ASYNC)
            assert r.status_code == 400 and r.json()["message"] == [message]


async def test_an_admin_resends_a_delivery_with_the_same_webhook_id(hooked: tuple[JobsApi, Receiver, str]) -> None:
    api, receiver, url = hooked
    await grant("u1", 1000)
    job_id = (await api.post(image_request(webhookUrl=url), headers=ASYNC)).json()["jobId"]
    [first] = await receiver.wait_for(1)
    view = await view_when_delivered(api, job_id)
    delivery_id = view["webhooks"][0]["id"]
    admin = api.auth("root", roles=["admin"])
    path = f"/admin/webhooks/{delivery_id}/resend"
    assert (await api.client.post(path, json={"reason": "lost"}, headers=api.auth("u1"))).status_code == 403
    r = await api.client.post(path, json={"reason": "customer lost it"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["delivery"]["status"] == "pending" and r.json()["actionId"] > 0
    _, second = await receiver.wait_for(2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == delivery_id
    assert second.body == first.body and second.payload is not None
    view = await view_when_delivered(api, job_id)
    assert [a["statusCode"] for a in view["webhooks"][0]["attempts"]] == [204, 204]
    one = await api.client.get(f"/admin/webhooks/{delivery_id}", headers=admin)
    assert one.status_code == 200 and one.json()["status"] == "delivered"
    missing = await api.client.post("/admin/webhooks/msg_nope_succeeded/resend", json={"reason": "x"}, headers=admin)
    assert missing.status_code == 404
    assert missing.json()["message"] == "Webhook delivery msg_nope_succeeded not found"


async def test_the_console_shows_a_generations_deliveries(hooked: tuple[JobsApi, Receiver, str]) -> None:
    api, receiver, url = hooked
    await grant("u1", 1000)
    job_id = (await api.post(image_request(webhookUrl=url), headers=ASYNC)).json()["jobId"]
    await receiver.wait_for(1)
    await view_when_delivered(api, job_id)
    async with httpx.AsyncClient(base_url=api.stack.url, timeout=60) as client:
        console = Console(api, client)
        await console.sign_in()
        page = await client.get(f"/console/generations/{job_id}")
        assert page.status_code == 200
        row = page.text.split(f'data-webhook="msg_{job_id}_succeeded"', 1)[1].split("</tr>", 1)[0]
        assert "generation.succeeded" in row and url in row and "status-delivered" in row
        assert "<td>1</td>" in row and "HTTP 204" in row
        resend = f"/console/generations/{job_id}/webhooks/msg_{job_id}_succeeded/resend"
        assert f'action="{resend}"' in row
        ask = await console.post(resend, reason="the customer lost it")
        assert ask.status_code == 200 and "Send it again" in ask.text and len(receiver.received) == 1
        done = await console.post(resend, reason="the customer lost it", confirm="yes")
        assert done.status_code == 303 and "done=resend." in done.headers["location"]
        first, second = await receiver.wait_for(2)
        assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_a_cancelled_generation_is_told_once_after_its_refund(
    stack_settings: Callable[..., Settings], secret: str
) -> None:
    """Issue 11's cancel ends a running job; the worker that ends it tells the subscriber."""
    receiver = Receiver(secret)
    url = await receiver.start() + "/hooks"
    settings = stack_settings(
        default_model="scripted",
        shutdown_grace_seconds=1.0,
        webhook_secret=secret,
        webhook_allow_http=True,
        webhook_allow_private=True,
        webhook_retry_schedule="0.05s",
        webhook_poll_seconds=0.05,
    )
    try:
        async with running_scripted(settings) as api:
            await seed_image(api.settings)
            await grant("u1", 1000)
            r = await api.post(image_request(webhookUrl=url, options={"gate": "never"}), headers=ASYNC)
            job_id = r.json()["jobId"]
            async with asyncio.timeout(30):
                while ScriptedModel.generations[job_id] == 0:
                    await asyncio.sleep(0.02)
            cancelled = await api.client.post(f"/video-gen/jobs/{job_id}/cancel", headers=api.auth("u1"))
            assert cancelled.status_code == 200, cancelled.text
            [got] = await receiver.wait_for(1)
            assert got.rejected is None and got.payload["type"] == "generation.cancelled"
            assert got.headers["webhook-id"] == f"msg_{job_id}_cancelled"
            assert got.payload["data"]["status"] == "cancelled" and got.payload["data"]["jobId"] == job_id
            assert await ledger.balance_of("u1") == 1000
            await asyncio.sleep(0.3)  # a second event would have arrived by now
            assert len(receiver.received) == 1
            ScriptedModel.gates.setdefault("never", asyncio.Event()).set()  # nothing left running at teardown
    finally:
        await receiver.stop()
