"""The admin API over real HTTP on the whole stack, on SQLite and PostgreSQL: the admin role,
grants, refunds, the audit trail, generation listings and the ledger check.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from service.ledger import service as ledger
from tests.conftest import Api
from tests.factories import grant, image_request, make_generation, seed_image
from tests.ledger.raw import RawSQL, move

ROUTES = [
    ("POST", "/admin/credits/grants", {"userId": "u1", "amount": 5, "reason": "r"}),
    ("POST", "/admin/generations/g1/refund", {"reason": "r"}),
    ("POST", "/admin/generations/g1/cancel", {"reason": "r"}),
    ("GET", "/admin/audit", None),
    ("GET", "/admin/generations", None),
    ("GET", "/admin/ledger/verify", None),
]
FORBIDDEN = {"statusCode": 403, "message": "Forbidden resource", "error": "Forbidden"}


def admin(api: Api, admin_id: str = "admin-ann") -> dict[str, str]:
    return api.auth(admin_id, roles=["admin"])


async def test_only_admins_get_in(api: Api) -> None:
    await make_generation("u1", generation_id="g1")
    for method, path, body in ROUTES:
        anonymous = await api.client.request(method, path, json=body)
        assert anonymous.status_code == 401, path
        assert set(anonymous.json()) == {"statusCode", "message", "error"}
        assert anonymous.json()["statusCode"] == 401 and anonymous.json()["error"] == "Unauthorized"
        user = await api.client.request(method, path, json=body, headers=api.auth("u1", roles=["editor"]))
        assert (user.status_code, user.json()) == (403, FORBIDDEN), path
    assert await ledger.balance_of("u1") == 0  # nothing a refused caller sent moved a credit


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        (
            {},
            [
                "userId should not be empty",
                "userId must be a string",
                "amount should not be empty",
                "amount must be an integer number",
                "reason should not be empty",
                "reason must be a string",
            ],
        ),
        ({"userId": "u1", "amount": 0, "reason": "r"}, ["amount must be a positive number"]),
        ({"userId": "u1", "amount": -5, "reason": "r"}, ["amount must be a positive number"]),
        ({"userId": "u1", "amount": 2.5, "reason": "r"}, ["amount must be an integer number"]),
        ({"userId": "u1", "amount": "10", "reason": "r"}, ["amount must be an integer number"]),
        ({"userId": "", "amount": 10, "reason": ""}, ["userId should not be empty", "reason should not be empty"]),
        ({"userId": "u1", "amount": 10, "reason": "r", "kind": "x"}, ["property kind should not exist"]),
    ],
)
async def test_a_bad_grant_is_a_spec_shaped_400_and_moves_nothing(api: Api, body: dict, messages: list[str]) -> None:
    r = await api.client.post("/admin/credits/grants", json=body, headers=admin(api))
    assert (r.status_code, r.json()) == (400, {"statusCode": 400, "message": messages, "error": "Bad Request"})
    assert await ledger.balance_of("u1") == 0


async def test_a_grant_answers_the_new_balance_and_is_audited(api: Api) -> None:
    await grant("u1", 100)
    r = await api.client.post(
        "/admin/credits/grants", json={"userId": "u1", "amount": 1400, "reason": "support"}, headers=admin(api)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["userId"], body["amount"], body["balance"]) == ("u1", 1400, 1500.0)
    assert isinstance(body["balance"], float) and isinstance(body["amount"], int)
    trail = (await api.client.get("/admin/audit", params={"userId": "u1"}, headers=admin(api))).json()["items"]
    action, entry = trail[0], trail[1]
    assert (action["type"], action["kind"], action["actor"], action["reason"], action["userId"]) == (
        "action",
        "grant",
        "admin-ann",
        "support",
        "u1",
    )
    assert action["details"] == {"amount": 1400, "balanceAfter": 1500, "entryId": body["entryId"]}
    assert (entry["type"], entry["id"], entry["kind"], entry["amount"], entry["balanceAfter"], entry["actor"]) == (
        "entry",
        body["entryId"],
        "grant",
        1400,
        1500.0,
        "admin-ann",
    )
    assert trail[2]["actor"] == "test"  # the factory's grant, older


async def test_a_refund_happens_once(api: Api) -> None:
    charged = await make_generation("u1", cost=750)
    free = await make_generation("u1", cost=0)
    failed = await make_generation("u1", status="failed")  # refunded by the system already
    url = f"/admin/generations/{charged}/refund"
    r = await api.client.post(url, json={"reason": "the video was black"}, headers=admin(api))
    assert r.status_code == 200, r.text
    assert r.json() | {"actionId": 0} == {
        "generationId": charged,
        "userId": "u1",
        "refunded": 750,
        "balance": 1500.0,
        "actionId": 0,
    }
    for gen, status in ((charged, 409), (free, 409), (failed, 409), ("no-such-generation", 404)):
        again = await api.client.post(f"/admin/generations/{gen}/refund", json={"reason": "again"}, headers=admin(api))
        assert again.status_code == status
        assert set(again.json()) == {"statusCode", "message", "error"} and again.json()["statusCode"] == status
    assert await ledger.balance_of("u1") == 1500
    bad = await api.client.post(url, json={"reason": "", "x": 1}, headers=admin(api))
    assert bad.json() == {
        "statusCode": 400,
        "message": ["property x should not exist", "reason should not be empty"],
        "error": "Bad Request",
    }
    trail = (await api.client.get("/admin/audit", params={"generationId": charged}, headers=admin(api))).json()
    assert [(i["type"], i["kind"], i["actor"]) for i in trail["items"]] == [
        ("action", "refund", "admin-ann"),
        ("entry", "refund", "admin-ann"),
        ("entry", "debit", "u1"),
    ]
    assert (await api.client.get("/admin/ledger/verify", headers=admin(api))).json()["violations"] == []


async def test_an_admin_cancel_refunds_once_and_is_recorded(api: Api) -> None:
    running = await make_generation("u1", cost=750)
    done = await make_generation("u1", status="succeeded")
    url = f"/admin/generations/{running}/cancel"
    r = await api.client.post(url, json={"reason": "stuck at the provider"}, headers=admin(api))
    assert r.status_code == 200, r.text
    assert r.json() | {"actionId": 0} == {
        "generationId": running,
        "userId": "u1",
        "status": "cancelled",
        "refunded": 750,
        "actionId": 0,
    }
    again = await api.client.post(url, json={"reason": "again"}, headers=admin(api))
    assert (again.status_code, again.json()["refunded"]) == (200, 750)  # a retried cancel: no second refund
    for gen, status in ((done, 409), ("0" * 32, 404)):
        refused = await api.client.post(f"/admin/generations/{gen}/cancel", json={"reason": "x"}, headers=admin(api))
        assert (refused.status_code, refused.json()["statusCode"]) == (status, status), refused.text
    bad = await api.client.post(url, json={}, headers=admin(api))
    assert bad.json()["message"] == ["reason should not be empty", "reason must be a string"]
    assert await ledger.balance_of("u1") == 750  # the cancelled job's credits back, the succeeded one's spent
    trail = (await api.client.get("/admin/audit", params={"generationId": running}, headers=admin(api))).json()
    assert [(i["type"], i["kind"], i["actor"]) for i in trail["items"]] == [
        ("action", "cancel", "admin-ann"),
        ("action", "cancel", "admin-ann"),
        ("entry", "refund", "admin admin-ann"),
        ("entry", "debit", "u1"),
    ]
    assert (await api.client.get("/admin/ledger/verify", headers=admin(api))).json()["violations"] == []


async def test_refunds_of_real_jobs(api: Api) -> None:
    """A failed job was refunded by its worker (an admin refund is a 409); a succeeded one may be
    refunded by an admin once, and the ledger still verifies."""
    await seed_image(api.settings)
    await grant("u1", 1500)
    failed = await api.client.post(
        "/video-gen/image-to-video",
        json=image_request(model="failing"),
        headers={**api.auth("u1"), "Prefer": "respond-async"},
    )
    ok = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=api.auth("u1"))
    assert ok.status_code == 200, ok.text
    failed_id = failed.json()["jobId"]
    for _ in range(200):
        if (await api.client.get(f"/video-gen/jobs/{failed_id}", headers=api.auth("u1"))).json()["status"] == "failed":
            break
        await asyncio.sleep(0.1)
    r = await api.client.post(f"/admin/generations/{failed_id}/refund", json={"reason": "x"}, headers=admin(api))
    assert r.status_code == 409 and "already refunded" in r.json()["message"]
    gens = (await api.client.get("/admin/generations", params={"status": "succeeded"}, headers=admin(api))).json()
    [done] = gens["items"]
    r = await api.client.post(
        f"/admin/generations/{done['id']}/refund", json={"reason": "wrong colours"}, headers=admin(api)
    )
    assert (r.status_code, r.json()["balance"]) == (200, 1500.0)
    report = (await api.client.get("/admin/ledger/verify", headers=admin(api))).json()
    assert report["ok"] is True and report["violations"] == [] and report["generations"] == 2


async def test_the_audit_trail_filters_and_pages(api: Api) -> None:
    start = datetime.now(UTC)
    for user in ("u1", "u2", "u1"):
        await api.client.post(
            "/admin/credits/grants", json={"userId": user, "amount": 800, "reason": "batch"}, headers=admin(api)
        )
    gid = await make_generation("u1", fund=False)
    await api.client.post(f"/admin/generations/{gid}/refund", json={"reason": "r"}, headers=admin(api))
    everything = await _walk(api, "/admin/audit", {"limit": 2})
    assert len(everything) == 9 and len({(i["type"], i["id"]) for i in everything}) == 9
    stamps = [i["createdAt"] for i in everything]
    assert stamps == sorted(stamps, reverse=True) and all(s.endswith("Z") for s in stamps)
    only = await _walk(api, "/admin/audit", {"userId": "u2", "limit": 1})
    assert [(i["type"], i["kind"]) for i in only] == [("action", "grant"), ("entry", "grant")]
    refunds = await _walk(api, "/admin/audit", {"kind": "refund"})
    assert {(i["type"], i["generationId"]) for i in refunds} == {("action", gid), ("entry", gid)}
    assert await _walk(api, "/admin/audit", {"until": start.isoformat()}) == []
    later = await _walk(api, "/admin/audit", {"since": everything[3]["createdAt"]})
    assert later == everything[: len(later)] and len(later) >= 4
    for params, message in (
        ({"limit": 0}, "limit must not be less than 1"),
        ({"limit": 201}, "limit must not be greater than 200"),
        ({"cursor": "not-a-cursor"}, "cursor is not valid"),
    ):
        r = await api.client.get("/admin/audit", params=params, headers=admin(api))
        assert (r.status_code, r.json()) == (400, {"statusCode": 400, "message": [message], "error": "Bad Request"})


async def test_generations_are_listed_by_user_status_model_project_and_time(api: Api) -> None:
    a = await make_generation("u1", project_id="p1", status="succeeded")
    b = await make_generation("u1", project_id="p2", status="failed")
    c = await make_generation("u2", project_id="p1", model="veo3")
    everything = await _walk(api, "/admin/generations", {"limit": 2})
    assert [g["id"] for g in everything] == [c, b, a]
    assert [g["id"] for g in await _walk(api, "/admin/generations", {"userId": "u1"})] == [b, a]
    assert [g["id"] for g in await _walk(api, "/admin/generations", {"status": "failed"})] == [b]
    assert [g["id"] for g in await _walk(api, "/admin/generations", {"model": "veo3"})] == [c]
    assert [g["id"] for g in await _walk(api, "/admin/generations", {"projectId": "p1", "limit": 1})] == [c, a]
    since = await _walk(api, "/admin/generations", {"since": everything[1]["createdAt"]})
    assert [g["id"] for g in since] == [c, b]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert len(await _walk(api, "/admin/generations", {"until": tomorrow})) == 3
    first = everything[2]
    assert (first["status"], first["creditsCharged"], first["creditsRefunded"], first["duration"], first["s3Key"]) == (
        "succeeded",
        750,
        0,
        "5s",
        f"videos/u1/{a}.mp4",
    )
    assert everything[1]["creditsRefunded"] == 750


async def test_verify_lists_what_is_broken(api: Api) -> None:
    await grant("u1", 100)
    assert (await api.client.get("/admin/ledger/verify", headers=admin(api))).json() == {
        "ok": True,
        "violations": [],
        "accounts": 1,
        "entries": 1,
        "generations": 0,
    }
    await RawSQL(api.settings.database_url).run(move(5), bypass_triggers=True)
    report = (await api.client.get("/admin/ledger/verify", headers=admin(api))).json()
    assert report["ok"] is False
    assert report["violations"] == [
        {"invariant": "balance_is_sum_of_entries", "detail": "balance 105 but entries sum to 100", "userId": "u1"}
    ]


async def _walk(api: Api, path: str, params: dict[str, object]) -> list[dict]:
    """Every item of a paginated listing, following ``nextCursor``."""
    items: list[dict] = []
    cursor = None
    for _ in range(100):
        r = await api.client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=admin(api))
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")
