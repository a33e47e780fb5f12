"""The console's pages over real HTTP on the whole stack, on SQLite and PostgreSQL: who gets in,
pagination and filters. The forms (CSRF, two-step actions) are in ``test_actions.py``."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.conftest import Api
from tests.console.conftest import Console
from tests.factories import grant, make_generation, seed_image, token_for

PAGES = ["/console/generations", "/console/users/u1", "/console/queue", "/console/audit", "/console/ledger?run=1"]


async def test_pages_need_a_session_and_the_admin_role(console: Console, api: Api) -> None:
    gid = await make_generation("u1", status="succeeded")
    for path in [*PAGES, f"/console/generations/{gid}", f"/console/generations/{gid}/thumbnail"]:
        r = await console.client.get(path)
        assert (r.status_code, r.headers["location"].split("?")[0]) == (303, "/console/sign-in"), path

    refused = await console.sign_in("u1", roles=["editor"])
    assert refused.status_code == 403 and "Not allowed" in refused.text and "u1" in refused.text
    assert "vg_console=" not in refused.headers.get("set-cookie", "")  # no session for a non-admin
    user_token = token_for(api.settings, "u1")
    for path in PAGES:  # a non-admin token sent anyway (as a cookie or a bearer header) sees no data
        for headers in ({"Cookie": f"vg_console={user_token}"}, {"Authorization": f"Bearer {user_token}"}):
            r = await console.client.get(path, headers=headers)
            assert r.status_code == 403 and "Not allowed" in r.text and "<table" not in r.text, path
    console.client.cookies.clear()

    expired = await console.sign_in(ttl=timedelta(seconds=-60))  # beyond the leeway for clock skew
    assert expired.status_code == 401 and "That token was not accepted" in expired.text
    signed = await console.sign_in()
    assert (signed.status_code, signed.headers["location"]) == (303, "/console/generations")
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/console" in cookie and "SameSite=strict" in cookie
    for path in PAGES:
        r = await console.client.get(path)
        assert r.status_code == 200 and "admin-ann" in r.text, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
    home = await console.client.get("/console")
    assert home.status_code in (302, 303) and home.headers["location"] == "/console/generations"
    schema = (await console.client.get("/schema/openapi.json")).json()["paths"]
    assert "/admin/queue" in schema and not any(p.startswith("/console") for p in schema)
    out = await console.post("/console/sign-out")
    assert (out.status_code, out.headers["location"]) == (303, "/console/sign-in")
    assert (await console.client.get("/console/queue")).status_code == 303


async def test_sign_in_never_redirects_off_the_console(console: Console) -> None:
    page = await console.client.get("/console/sign-in")
    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    token = token_for(console.api.settings, "admin-ann", roles=["admin"])
    for target, lands in [
        ("https://evil.example/", "/console/generations"),
        ("//evil.example/console/", "/console/generations"),
        ("/console/queue", "/console/queue"),
    ]:
        r = await console.client.post("/console/sign-in", data={"token": token, "next": target, "_csrf_token": csrf})
        assert r.headers["location"] == lands


async def test_generations_page_and_keep_their_filters(console: Console) -> None:
    await seed_image(console.api.settings)
    ids = [await make_generation("u1", project_id="p1", status="succeeded") for _ in range(3)]
    await make_generation("u2", project_id="p2", status="failed")
    await console.sign_in()
    seen, url = [], "/console/generations?user=u1&status=succeeded&limit=2"
    while url:
        page = (await console.client.get(url)).text
        seen += re.findall(r'data-generation="([0-9a-f]+)"', page)
        found = re.search(r'href="([^"]+)" rel="next"', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
        assert not found or ("user=u1" in url and "status=succeeded" in url and "cursor=" in url)
    assert seen == ids[::-1]
    failed = (await console.client.get("/console/generations?status=failed")).text
    assert len(re.findall(r"data-generation=", failed)) == 1 and "test failure" in failed
    thumb = await console.client.get(f"/console/generations/{ids[0]}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    bad = await console.client.get("/console/generations?cursor=nope")
    assert bad.status_code == 400 and "cursor is not valid" in bad.text


async def test_the_account_page_pages_its_entries(console: Console) -> None:
    for n in range(4):
        await grant("u3", 10 + n, reason=f"grant {n}")
    await console.sign_in()
    first = (await console.client.get("/console/users/u3?limit=3")).text
    assert "grant 3" in first and "grant 0" not in first and 'rel="next"' in first
    nxt = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = (await console.client.get(nxt)).text
    assert "grant 0" in second and "grant 3" not in second and 'rel="next"' not in second
