"""The queue under ``/admin/queue`` over real HTTP on the whole stack (a real worker pool), on
SQLite and PostgreSQL: the admin role, the queue's state, and dead letters requeued (once, the job
then charged once and run) and discarded, each an admin action in the audit trail.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.jobs.messages import DATA_FIELD
from service.jobs.stream import JobStream
from service.ledger import service as ledger
from tests.conftest import Api
from tests.factories import bury_job, grant, job_message, seed_image

FORBIDDEN = {"statusCode": 403, "message": "Forbidden resource", "error": "Forbidden"}


def admin(api: Api) -> dict[str, str]:
    return api.auth("admin-ann", roles=["admin"])


def stream_of(api: Api) -> JobStream:
    return api.stack.server.config.app.state["stream"]


async def until_status(api: Api, job_id: str, status: str) -> dict[str, Any]:
    for _ in range(600):  # a safety net: the local model makes a small clip in about a second
        view = (await api.client.get(f"/video-gen/jobs/{job_id}", headers=api.auth("u1"))).json()
        if view["status"] == status:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never became {status}: {view}")


async def test_only_admins_get_in(api: Api) -> None:
    dead = await bury_job(stream_of(api), job_message())
    for method, path, body in [
        ("GET", "/admin/queue", None),
        ("GET", "/admin/queue/dead-letters", None),
        ("POST", f"/admin/queue/dead-letters/{dead}/requeue", {"reason": "r"}),
        ("POST", f"/admin/queue/dead-letters/{dead}/discard", {"reason": "r"}),
    ]:
        assert (await api.client.request(method, path, json=body)).status_code == 401, path
        user = await api.client.request(method, path, json=body, headers=api.auth("u1"))
        assert (user.status_code, user.json()) == (403, FORBIDDEN), path
    assert await stream_of(api).redis.xlen(stream_of(api).keys.dead_letter_stream) == 1


async def test_a_requeued_dead_letter_runs_once_and_is_charged_once(api: Api) -> None:
    await seed_image(api.settings)
    await grant("u1", 2000)
    job = job_message()
    dead = await bury_job(stream_of(api), job)
    page = (await api.client.get("/admin/queue/dead-letters", headers=admin(api))).json()
    [item] = page["items"]
    assert (item["id"], item["reason"], item["jobId"], item["requeueable"], page["nextCursor"]) == (
        dead,
        "unknown model 'gone'",
        job.job_id,
        True,
        None,
    )
    url = f"/admin/queue/dead-letters/{dead}/requeue"
    r = await api.client.post(url, json={"reason": "the plugin is installed now"}, headers=admin(api))
    assert r.status_code == 200, r.text
    assert (r.json()["deadLetterId"], r.json()["jobId"]) == (dead, job.job_id)
    again = await api.client.post(url, json={"reason": "twice"}, headers=admin(api))
    assert (again.status_code, again.json()["message"]) == (404, f"Dead letter {dead} not found")
    view = await until_status(api, job.job_id, "succeeded")
    assert view["result"]["credits"] == {"used": 750, "balance": 1250.0}
    assert await ledger.balance_of("u1") == 1250
    trail = (await api.client.get("/admin/audit", params={"generationId": job.job_id}, headers=admin(api))).json()
    assert [(i["type"], i["kind"]) for i in trail["items"]] == [("entry", "debit"), ("action", "requeue")]
    assert trail["items"][1]["details"]["deadLetterId"] == dead
    assert (await api.client.get("/admin/queue/dead-letters", headers=admin(api))).json()["items"] == []
    assert (await api.client.get("/admin/ledger/verify", headers=admin(api))).json()["ok"] is True


async def test_an_unreadable_dead_letter_can_only_be_discarded(api: Api) -> None:
    stream = stream_of(api)
    raw = await stream.redis.xadd(stream.keys.dead_letter_stream, {DATA_FIELD: b"{not a letter"})
    dead = raw.decode()
    r = await api.client.post(f"/admin/queue/dead-letters/{dead}/requeue", json={"reason": "r"}, headers=admin(api))
    assert (r.status_code, r.json()["error"]) == (409, "Conflict")
    r = await api.client.post(f"/admin/queue/dead-letters/{dead}/discard", json={"reason": "junk"}, headers=admin(api))
    assert r.status_code == 200, r.text
    assert await stream.redis.xlen(stream.keys.dead_letter_stream) == 0
    trail = (await api.client.get("/admin/audit", params={"kind": "discard"}, headers=admin(api))).json()["items"]
    assert [(i["kind"], i["actor"], i["reason"], i["details"]["deadLetterId"]) for i in trail] == [
        ("discard", "admin-ann", "junk", dead)
    ]


async def test_bad_input_is_a_spec_shaped_400_or_404_and_changes_nothing(api: Api) -> None:
    dead = await bury_job(stream_of(api), job_message())
    for path, body, status, message in [
        (
            f"/admin/queue/dead-letters/{dead}/requeue",
            {},
            400,
            ["reason should not be empty", "reason must be a string"],
        ),
        (f"/admin/queue/dead-letters/{dead}/discard", {"reason": "r", "x": 1}, 400, ["property x should not exist"]),
        ("/admin/queue/dead-letters/not-an-id/requeue", {"reason": "r"}, 404, "Dead letter not-an-id not found"),
        ("/admin/queue/dead-letters/1-1/discard", {"reason": "r"}, 404, "Dead letter 1-1 not found"),
    ]:
        r = await api.client.post(path, json=body, headers=admin(api))
        assert (r.status_code, r.json()["message"]) == (status, message), path
    r = await api.client.get("/admin/queue/dead-letters", params={"cursor": "zzz"}, headers=admin(api))
    assert (r.status_code, r.json()["message"]) == (400, ["cursor is not valid"])
    assert await stream_of(api).redis.xlen(stream_of(api).keys.dead_letter_stream) == 1
    assert (await api.client.get("/admin/audit", params={"kind": "requeue"}, headers=admin(api))).json()["items"] == []


async def test_the_queue_state_counts_by_model_and_worker(api: Api) -> None:
    r = await api.client.get("/admin/queue", headers=admin(api))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"waiting", "running", "deadLetters", "byModel", "workers", "waitingJobs", "runningJobs"}
    assert (body["waiting"], body["running"], body["deadLetters"], body["waitingJobs"]) == (0, 0, 0, [])
    orphan = job_message(model="orphan")  # a model no worker has (the API would refuse it): it waits in its stream
    await stream_of(api).submit(orphan)
    body = (await api.client.get("/admin/queue", headers=admin(api))).json()
    assert {"model": "orphan", "waiting": 1, "running": 0, "workers": 0} in body["byModel"]
    assert [j["jobId"] for j in body["waitingJobs"]] == [orphan.job_id] and body["waiting"] == 1
