"""The console's forms over real HTTP on the whole stack, on SQLite and PostgreSQL: CSRF on every
form, and two-step actions (ask, then act once) through the admin services."""

from __future__ import annotations

import re

from service.ledger import service as ledger
from tests.console.conftest import Console
from tests.factories import make_generation


async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(console: Console) -> None:
    gid = await make_generation("u1", status="succeeded")
    await console.sign_in()
    for path, form in [
        (f"/console/generations/{gid}/refund", {"reason": "r", "confirm": "yes"}),
        ("/console/users/u1/grant", {"amount": "10", "reason": "r", "confirm": "yes"}),
    ]:
        for token in (None, "forged"):
            data = form if token is None else {**form, "_csrf_token": token}
            r = await console.client.post(path, data=data)
            assert r.status_code == 403 and "CSRF token is missing or wrong" in r.text
    assert await ledger.balance_of("u1") == 0
    no_session = await console.client.post("/console/sign-in", data={"token": "x"})
    assert no_session.status_code == 403


async def test_a_refund_asks_first_then_happens_once_through_the_admin_service(console: Console) -> None:
    gid = await make_generation("u1", status="succeeded")
    await console.sign_in()
    ask = await console.post(f"/console/generations/{gid}/refund", reason="bad video")
    assert ask.status_code == 200 and "Refund 750 credits to u1?" in ask.text
    assert await ledger.balance_of("u1") == 0
    empty = await console.post(f"/console/generations/{gid}/refund", reason=" ", confirm="yes")
    assert empty.status_code == 400 and "reason should not be empty" in empty.text
    done = await console.post(f"/console/generations/{gid}/refund", reason="bad video", confirm="yes")
    assert done.status_code == 303 and re.fullmatch(
        rf"/console/generations/{gid}\?done=refund\.\d+", done.headers["location"]
    )
    page = await console.client.get(done.headers["location"])
    assert "Refunded (admin action #" in page.text and "bad video" in page.text
    again = await console.post(f"/console/generations/{gid}/refund", reason="bad video", confirm="yes")
    assert again.status_code == 409 and f"Generation {gid} is already refunded" in again.text
    assert await ledger.balance_of("u1") == 750
    audit = (await console.api.client.get("/admin/audit", params={"kind": "refund"}, headers=admin(console))).json()
    assert [(i["type"], i["actor"], i["reason"]) for i in audit["items"]] == [
        ("action", "admin-ann", "bad video"),
        ("entry", "admin-ann", "bad video"),
    ]
    missing = await console.post("/console/generations/nope/refund", reason="r")
    assert missing.status_code == 404 and "Generation nope not found" in missing.text


async def test_a_grant_is_checked_with_the_admin_apis_words(console: Console) -> None:
    await console.sign_in()
    for amount, message in [("abc", "amount must be an integer number"), ("0", "amount must be a positive number")]:
        r = await console.post("/console/users/u2/grant", amount=amount, reason="r", confirm="yes")
        assert r.status_code == 400 and message in r.text
    ask = await console.post("/console/users/u2/grant", amount="300", reason="welcome")
    assert ask.status_code == 200 and "Grant 300 credits to u2?" in ask.text
    done = await console.post("/console/users/u2/grant", amount="300", reason="welcome", confirm="yes")
    assert done.status_code == 303
    assert "Credits granted" in (await console.client.get(done.headers["location"])).text
    assert await ledger.balance_of("u2") == 300


def admin(console: Console) -> dict[str, str]:
    return console.api.auth("admin-ann", roles=["admin"])
