"""``ProxyHeaders``: uvicorn's proxy-headers rewrite, without a coroutine of its own per request."""

from __future__ import annotations

from typing import Any

import uvicorn

from service.core.http import ProxyHeaders, lean_proxy_headers


async def test_a_trusted_proxy_names_the_client_and_the_app_coroutine_is_handed_back() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    config = lean_proxy_headers(uvicorn.Config(app, forwarded_allow_ips="127.0.0.1", lifespan="off"))
    assert isinstance(config.loaded_app, ProxyHeaders)
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    for client in ("127.0.0.1", "198.51.100.1"):  # the proxy, then a client that is not one
        scope = {"type": "http", "client": (client, 5000), "scheme": "http", "headers": headers}
        await config.loaded_app(scope, None, None)
    assert seen[0]["client"] == ("203.0.113.7", 0) and seen[0]["scheme"] == "https"
    assert seen[1]["client"] == ("198.51.100.1", 5000) and seen[1]["scheme"] == "http"
    await config.loaded_app({"type": "lifespan"}, None, None)
    assert seen[2] == {"type": "lifespan"}
