"""What users see of their own money and history, over HTTP, on SQLite and PostgreSQL; and never
anyone else's.
"""

from __future__ import annotations

from tests.conftest import Api
from tests.factories import grant, make_generation


async def _walk(api: Api, path: str, user: str, params: dict[str, object], key: str = "items") -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(50):
        r = await api.client.get(
            path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=api.auth(user)
        )
        assert r.status_code == 200, r.text
        items += r.json()[key]
        cursor = r.json()["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


async def test_credits_show_the_callers_balance_and_entries_only(api: Api) -> None:
    await grant("u1", 900, reason="welcome")
    gid = await make_generation("u1", fund=False)
    await grant("u2", 50)
    r = await api.client.get("/video-gen/credits", headers=api.auth("u1"))
    assert r.status_code == 200
    body = r.json()
    assert (body["userId"], body["balance"], body["nextCursor"]) == ("u1", 150.0, None)
    assert isinstance(body["balance"], float)
    debit, granted = body["entries"]
    assert (debit["kind"], debit["amount"], debit["balanceAfter"], debit["generationId"]) == ("debit", -750, 150.0, gid)
    assert (granted["kind"], granted["amount"], granted["reason"]) == ("grant", 900, "welcome")
    assert isinstance(debit["amount"], int) and debit["createdAt"].endswith("Z") and "actor" not in debit
    paged = await _walk(api, "/video-gen/credits", "u1", {"limit": 1}, key="entries")
    assert paged == body["entries"]
    stranger = (await api.client.get("/video-gen/credits", headers=api.auth("u3"))).json()
    assert stranger == {"userId": "u3", "balance": 0.0, "entries": [], "nextCursor": None}
    assert (await api.client.get("/video-gen/credits")).status_code == 401
    # another user's id in the query changes nothing: there is no such parameter
    assert (await api.client.get("/video-gen/credits", params={"userId": "u1"}, headers=api.auth("u2"))).json()[
        "balance"
    ] == 50.0


async def test_generation_history_is_the_callers_own_by_project_and_paged(api: Api) -> None:
    first = await make_generation("u1", project_id="p1", status="succeeded")
    second = await make_generation("u1", project_id="p2", status="failed")
    third = await make_generation("u1", project_id="p1")
    others = await make_generation("u2", project_id="p1")
    mine = await _walk(api, "/video-gen/generations", "u1", {"limit": 2})
    assert [g["id"] for g in mine] == [third, second, first]
    assert others not in {g["id"] for g in mine}
    assert [g["id"] for g in await _walk(api, "/video-gen/generations", "u1", {"projectId": "p1"})] == [third, first]
    assert [g["id"] for g in await _walk(api, "/video-gen/generations", "u2", {})] == [others]
    done = mine[2]
    assert set(done) == {
        "id",
        "userId",
        "projectId",
        "model",
        "prompt",
        "sourceKey",
        "requestedDuration",
        "duration",
        "status",
        "s3Key",
        "creditsCharged",
        "creditsRefunded",
        "error",
        "generationTime",
        "createdAt",
        "finishedAt",
        "downloadUrl",
    }
    assert (done["status"], done["creditsCharged"], done["duration"], done["generationTime"]) == (
        "succeeded",
        750,
        "5s",
        1234,
    )
    assert done["downloadUrl"] and done["s3Key"] in done["downloadUrl"]  # succeeded: a link
    assert (mine[1]["status"], mine[1]["creditsRefunded"], mine[1]["error"]) == ("failed", 750, "test failure")
    assert mine[1]["downloadUrl"] is None  # failed: nothing to download
    bad = await api.client.get("/video-gen/generations", params={"limit": 500}, headers=api.auth("u1"))
    assert bad.json() == {"statusCode": 400, "message": ["limit must not be greater than 200"], "error": "Bad Request"}
    cursor_of_entries = (
        await api.client.get("/video-gen/credits", params={"limit": 1}, headers=api.auth("u1"))
    ).json()["nextCursor"]
    wrong = await api.client.get("/video-gen/generations", params={"cursor": cursor_of_entries}, headers=api.auth("u1"))
    assert wrong.status_code == 400 and wrong.json()["message"] == ["cursor is not valid"]
