"""The OpenAPI document tells the truth: Schemathesis calls every operation of the served schema
(a bounded number of examples each, as a user and as an admin) and checks each answer against it:
no server error, every status documented, every body and content type as documented, and no
operation marked public that needs a token or the reverse.

The request-side checks (a schema-valid request accepted, a schema-violating one refused) are not
run: cursors are opaque and model options are checked per model, which a schema cannot say.
"""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.embedded import embedded_stack
from tests.conftest import REDIS_URL, TABLES, make_settings
from tests.factories import TestModels, token_for

EXAMPLES = 12  # per operation and role: enough to reach each documented answer, cheap enough for `just test`
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]


async def _truncate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
    finally:
        await conn.close()


class Served:
    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url, self.tokens = url, tokens


@pytest.fixture(scope="module")
def served(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The whole stack on its own thread and loop (Schemathesis calls it synchronously), on
    PostgreSQL: what production runs, and the stricter of the two databases (NUL, int32, ranges)."""
    tmp = tmp_path_factory.mktemp("openapi")
    asyncio.run(_truncate(postgres_url))
    prefix = f"vgtest-{uuid.uuid4().hex[:12]}"
    config = make_settings(postgres_url, prefix, tmp, sync_wait_seconds=5)
    ready, done = threading.Event(), threading.Event()
    box: dict[str, object] = {}

    async def main() -> None:
        async with embedded_stack(config, registry=TestModels.registry()) as stack:
            box["url"] = stack.url
            ready.set()
            while not done.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=lambda: box.setdefault("error", asyncio.run(main())), daemon=True)
    thread.start()
    assert ready.wait(60), box
    tokens = {"user": token_for(config, "u1"), "admin": token_for(config, "root", roles=["admin"])}
    try:
        yield Served(str(box["url"]), tokens)
    finally:
        done.set()
        thread.join(60)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def api_schema(served: Served) -> schemathesis.BaseSchema:
    raw = httpx.get(f"{served.url}/schema/openapi.json").json()
    return schemathesis.openapi.from_dict(raw)


def _call(case: schemathesis.Case, served: Served, role: str) -> None:
    case.call_and_validate(
        base_url=served.url, headers={"Authorization": f"Bearer {served.tokens[role]}"}, checks=CHECKS
    )


def _fuzz(api_schema: schemathesis.BaseSchema, served: Served, role: str) -> None:
    """Every operation, EXAMPLES cases each (the same ones every run); all failures reported at once."""
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first failure as found
        )
        def run(case: schemathesis.Case) -> None:
            _call(case, served, role)

        try:
            run()
        except Exception as exc:  # a failed check: collect it, go on with the other operations
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_every_answer_to_a_user_is_documented(api_schema: schemathesis.BaseSchema, served: Served) -> None:
    _fuzz(api_schema, served, "user")


def test_every_answer_to_an_admin_is_documented(api_schema: schemathesis.BaseSchema, served: Served) -> None:
    _fuzz(api_schema, served, "admin")


def test_what_the_document_says(api_schema: schemathesis.BaseSchema, served: Served) -> None:
    raw = httpx.get(f"{served.url}/schema/openapi.json").json()
    paths = raw["paths"]
    assert "security" not in raw
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert "security" not in paths[path]["get"], path
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    post = paths["/video-gen/image-to-video"]["post"]
    assert post["security"] == [{"BearerToken": []}]
    assert {"400", "401", "404", "413", "415", "422", "429", "431", "500", "503"} <= set(post["responses"])
    text = str(raw)
    assert "status_code" not in text and "'extra'" not in text  # no Litestar error body anywhere
    error = raw["components"]["schemas"]["ErrorBody"]
    assert error["examples"] == [{"statusCode": 400, "message": ["id should not be empty"], "error": "Bad Request"}]
    assert text.count("'examples'") == 1  # no invented example strings
    request = raw["components"]["schemas"]["ImageToVideoRequest"]
    assert request["properties"]["prompt"]["maxLength"] == 2000 and request["additionalProperties"] is False


def test_swagger_works_offline(served: Served) -> None:
    page = httpx.get(f"{served.url}/schema/swagger")
    assert page.status_code == 200 and "cdn." not in page.text and "unpkg" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js", "favicon-32x32.png"):
        assert f"/docs-assets/swagger/{asset}" in page.text
        r = httpx.get(f"{served.url}/docs-assets/swagger/{asset}")  # no token: public like the schema
        assert r.status_code == 200 and len(r.content) > 500, asset
    bundle = httpx.get(f"{served.url}/docs-assets/swagger/swagger-ui-bundle.js").text
    assert 'PACKAGE_VERSION:"5.' in bundle  # Swagger UI 5 renders OpenAPI 3.1 (4 does not)


def test_scalar_works_offline(served: Served) -> None:
    page = httpx.get(f"{served.url}/schema/scalar")
    assert page.status_code == 200
    assert not re.findall(r"(?:src|href)=\"https?://", page.text)  # every asset is ours
    assert '"withDefaultFonts":false' in page.text  # no fonts.scalar.com
    assert "/docs-assets/scalar/scalar.css" in page.text and "/docs-assets/scalar-bundle/standalone.js" in page.text
    css = httpx.get(f"{served.url}/docs-assets/scalar/scalar.css")
    assert css.status_code == 200 and css.content
    for encoding in ("gzip", "identity"):  # stored gzipped: sent so to browsers, inflated for the rest
        r = httpx.get(f"{served.url}/docs-assets/scalar-bundle/standalone.js", headers={"Accept-Encoding": encoding})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert r.headers.get("content-encoding") == (encoding if encoding == "gzip" else None)
        assert len(r.content) > 3_000_000 and b"withDefaultFonts" in r.content  # httpx inflates gzip
