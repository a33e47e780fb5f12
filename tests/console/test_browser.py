"""The console in headless Chromium (Playwright, Debian's browser) against the whole stack with a
real worker: sign in, filter, play a preview, refund with confirmation, grant, requeue a dead
letter, verify the ledger, and a non-admin refused. Each page is saved as a screenshot.

The first test runs in ``just test``; the rest (``browser_suite``) in ``just browser``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from service.generations import repository
from service.ledger import service as ledger
from tests.conftest import Api
from tests.console.conftest import screenshot_path
from tests.factories import bury_job, grant, image_request, job_message, seed_image, token_for

VIEWPORT = {"width": 1366, "height": 820}


async def open_console(browser: Any, site: Api, user_id: str = "admin-ann", **context: Any) -> Any:
    """A page signed in the way an operator is: the link ``video-gen serve`` prints."""
    token = token_for(site.settings, user_id, roles=["admin"] if user_id.startswith("admin") else [])
    ctx = await browser.new_context(viewport=VIEWPORT, locale="en-GB", **context)
    page = await ctx.new_page()
    await page.goto(f"{site.stack.url}/console/sign-in#token={token}")
    await page.wait_for_load_state("networkidle")
    return page


async def generate(site: Api, user_id: str = "u1", **body: Any) -> str:
    """A real generation through the API (the local model makes a real MP4); its job id."""
    r = await site.client.post(
        "/video-gen/image-to-video",
        json=image_request(id=f"images/{user_id}/source-image.png", **body),
        headers={**site.auth(user_id), "Prefer": "respond-async"},
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["jobId"]
    for _ in range(600):  # a safety net; the clip takes about a second
        view = (await site.client.get(f"/video-gen/jobs/{job_id}", headers=site.auth(user_id))).json()
        if view["status"] in ("succeeded", "failed"):
            return job_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


async def test_sign_in_with_the_printed_link_and_a_non_admin_is_refused(site: Api, browser: Any) -> None:
    await seed_image(site.settings)
    await grant("u1", 750)
    await generate(site)
    page = await open_console(browser, site)
    assert page.url.endswith("/console/generations")
    assert "#token" not in page.url
    assert await page.locator("header .who span").inner_text() == "admin-ann"
    assert await page.locator("tr[data-generation]").count() == 1
    await page.screenshot(path=screenshot_path("01-generations"), full_page=True)

    outsider = await open_console(browser, site, "u1")
    assert await outsider.locator("h1").inner_text() == "Not allowed"
    assert "does not carry the admin role" in await outsider.locator("main").inner_text()
    assert await outsider.locator("table").count() == 0
    await outsider.screenshot(path=screenshot_path("02-refused"))
    await outsider.goto(f"{site.stack.url}/console/generations")  # no session was made for them
    assert "/console/sign-in" in outsider.url and await outsider.locator("tr[data-generation]").count() == 0
    await outsider.screenshot(path=screenshot_path("03-sign-in"))
    await outsider.goto(f"{site.stack.url}/console/sign-in#token=u1.not.a.token")
    await outsider.wait_for_load_state("networkidle")
    assert "That token was not accepted" in await outsider.locator(".error").inner_text()


@pytest.mark.browser_suite
async def test_filter_generations_and_play_a_preview(site: Api, browser: Any) -> None:
    for user in ("u1", "u2"):
        await seed_image(site.settings, user_id=user)
        await grant(user, 1500)
    ok = await generate(site, "u1", prompt="A lighthouse at dusk", projectId="p-lights")
    await generate(site, "u2", model="failing", prompt="This one fails")
    await generate(site, "u2", prompt="Waves on a beach")
    page = await open_console(browser, site)
    assert await page.locator("tr[data-generation]").count() == 3

    await page.fill("input[name=user]", "u1")
    await page.select_option("select[name=status]", "succeeded")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert "user=u1" in page.url and "tz=" in page.url  # the viewer's zone travels with the filter
    rows = page.locator("tr[data-generation]")
    assert await rows.count() == 1 and await rows.first.get_attribute("data-generation") == ok
    assert "A lighthouse at dusk" in await rows.first.inner_text()
    thumb = rows.first.locator("img")
    assert await thumb.evaluate("img => img.complete && img.naturalWidth > 0")

    duration = await rows.first.locator("video").evaluate(
        """video => new Promise((resolve, reject) => {
            video.muted = true;
            video.addEventListener('playing', () => resolve(video.duration), {once: true});
            video.addEventListener('error', () => reject(new Error('media error ' + video.error.code)), {once: true});
            video.play().catch(reject);
        })"""
    )
    assert 4.5 < duration < 5.5  # the local model's 5 s clip, decoded by the browser
    await page.screenshot(path=screenshot_path("04-generations-filtered"), full_page=True)

    await page.select_option("select[name=status]", "failed")
    await page.fill("input[name=user]", "")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert await rows.count() == 1 and "the model exploded" in await rows.first.inner_text()


@pytest.mark.browser_suite
async def test_times_show_in_the_viewers_time_zone(site: Api, browser: Any) -> None:
    await seed_image(site.settings)
    await grant("u1", 750)
    job_id = await generate(site)
    created = (await repository.get(job_id)).created_at  # type: ignore[union-attr]
    page = await open_console(browser, site, timezone_id="Asia/Tokyo")
    shown = await page.locator("tr[data-generation] time").first.inner_text()
    tokyo = created.astimezone(ZoneInfo("Asia/Tokyo"))
    assert tokyo.strftime("%H:%M:%S") in shown and tokyo.strftime("%Y") in shown, shown

    since = (tokyo + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")  # a Tokyo wall-clock time
    await page.fill("input[name=since]", since)
    await page.click("form.filters button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert "tz=Asia%2FTokyo" in page.url and await page.locator("tr[data-generation]").count() == 0
    await page.fill("input[name=since]", (tokyo - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M"))
    await page.click("form.filters button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("tr[data-generation]").count() == 1


@pytest.mark.browser_suite
async def test_a_refund_takes_a_confirmation_and_moves_the_balance_once(site: Api, browser: Any) -> None:
    await seed_image(site.settings)
    await grant("u1", 1000)
    job_id = await generate(site)
    assert await ledger.balance_of("u1") == 250
    page = await open_console(browser, site)
    await page.goto(f"{site.stack.url}/console/generations/{job_id}")
    await page.screenshot(path=screenshot_path("05-generation"), full_page=True)
    second = await page.context.new_page()  # another operator, on the same generation
    await second.goto(page.url)
    for operator in (page, second):
        await operator.fill("form.action input[name=reason]", "The sea was green")
        await operator.click("form.action button[type=submit]")
        await operator.wait_for_load_state("networkidle")
        assert await operator.locator("h1").inner_text() == "Refund 750 credits to u1?"
    assert await ledger.balance_of("u1") == 250  # the first step only asks
    await page.screenshot(path=screenshot_path("06-confirm-refund"), full_page=True)

    await page.click("button[data-confirm]")
    await page.wait_for_load_state("networkidle")
    assert "Refunded (admin action #" in await page.locator(".notice").inner_text()
    assert await ledger.balance_of("u1") == 1000
    await second.click("button[data-confirm]")  # too late: the database allows one refund
    await second.wait_for_load_state("networkidle")
    assert "already refunded" in await second.locator(".errors").inner_text()
    assert await ledger.balance_of("u1") == 1000

    await page.goto(f"{site.stack.url}/console/users/u1")
    assert await page.locator("[data-balance]").inner_text() == "1,000"
    await page.screenshot(path=screenshot_path("07-account"), full_page=True)
    await page.goto(f"{site.stack.url}/console/audit?kind=refund")
    rows = page.locator("table.grid tbody tr")
    assert await rows.count() == 2  # the refund entry and the admin action, once each
    text = await page.locator("table.grid").inner_text()
    assert text.count("The sea was green") == 2 and "admin-ann" in text
    await page.goto(f"{site.stack.url}/console/audit")
    await page.screenshot(path=screenshot_path("08-audit"), full_page=True)


@pytest.mark.browser_suite
async def test_a_grant_and_the_ledger_check(site: Api, browser: Any) -> None:
    page = await open_console(browser, site)
    await page.goto(f"{site.stack.url}/console/users")
    await page.fill("input[name=user]", "u9")
    await page.click("main form button[type=submit]")
    await page.fill("input[name=amount]", "1200")
    await page.fill("form.action input[name=reason]", "Welcome credits")
    await page.click("form.action button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert "Balance after" in await page.locator("dl.facts").inner_text()
    await page.click("button[data-confirm]")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("[data-balance]").inner_text() == "1,200"
    assert await ledger.balance_of("u9") == 1200
    await page.goto(f"{site.stack.url}/console/ledger")
    await page.click("text=Run the check")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("[data-verdict]").get_attribute("data-verdict") == "ok"
    await page.screenshot(path=screenshot_path("09-ledger"), full_page=True)


@pytest.mark.browser_suite
async def test_requeue_a_dead_letter(site: Api, browser: Any) -> None:
    await seed_image(site.settings)
    await grant("u1", 750)
    stream = site.stack.server.config.app.state["stream"]
    job = job_message(prompt="Requeued after the plugin came back")
    dead = await bury_job(stream, job)
    await bury_job(stream, job_message(model="gone"), reason="unknown model 'gone'")
    page = await open_console(browser, site)
    await page.goto(f"{site.stack.url}/console/queue")
    assert await page.locator("[data-dead]").inner_text() == "2"
    await page.screenshot(path=screenshot_path("10-queue"), full_page=True)
    row = page.locator(f"tr[data-dead-letter='{dead}']")
    assert "unknown model 'gone'" in await row.inner_text()
    await row.locator("text=Requeue…").click()
    await page.wait_for_load_state("networkidle")
    assert "runs again under its own id" in await page.locator(".warning").inner_text()
    await page.fill("input[name=reason]", "The plugin is installed again")
    await page.click("button[data-confirm]")
    await page.wait_for_load_state("networkidle")
    assert "Requeued" in await page.locator(".notice").inner_text()
    assert await page.locator(f"tr[data-dead-letter='{dead}']").count() == 0
    assert await page.locator("[data-dead]").inner_text() == "1"

    for _ in range(600):  # the worker runs it (a safety net; it takes about a second)
        record = await repository.get(job.job_id)
        if record is not None and record.status == "succeeded":
            break
        await asyncio.sleep(0.1)
    await page.goto(f"{site.stack.url}/console/generations/{job.job_id}")
    assert "succeeded" in await page.locator("h1").inner_text()
    trail = await page.locator("table.grid").inner_text()
    assert "requeue" in trail and "The plugin is installed again" in trail and "debit" in trail
    assert await ledger.balance_of("u1") == 0  # charged once


@pytest.mark.browser_suite
async def test_the_api_pages_render_with_no_internet(site: Api, browser: Any) -> None:
    """Swagger UI and Scalar from the service's own assets: every request leaving loopback is
    refused, and both pages still show the image-to-video operation."""
    ctx = await browser.new_context(viewport=VIEWPORT)
    outside: list[str] = []

    async def only_loopback(route: Any) -> None:
        if route.request.url.startswith(site.stack.url) or route.request.url.startswith("data:"):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await ctx.route("**/*", only_loopback)
    page = await ctx.new_page()
    for path, name in (("/schema/swagger", "swagger"), ("/schema/scalar", "scalar")):
        await page.goto(f"{site.stack.url}{path}")
        await page.get_by_text("/video-gen/image-to-video").first.wait_for(timeout=30_000)
        await page.screenshot(path=screenshot_path(f"docs-{name}"))
    assert outside == []
