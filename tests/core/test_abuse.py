"""Abuse from outside: one budget per verified user or per address, whatever the spelling of the
header; Bearer only; tokens with clock skew; headers the parser or the app refuse, in JSON."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest

from service.core.settings import Settings
from service.embedded import embedded_stack
from tests.conftest import Api, make_settings
from tests.factories import TestModels, token_for

LIMIT, POLLING = 4, 12


@pytest.fixture
async def limited(sqlite_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(
        sqlite_url, redis_prefix, tmp_path, rate_limit_per_minute=LIMIT, job_status_rate_limit_per_minute=POLLING
    )
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
            yield Api(stack, client)


def _token(settings: Settings, **claims: object) -> str:
    payload = {"sub": "u1", "roles": [], "exp": int(time.time()) + 3600, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, settings.jwt_secret, algorithm="HS256")


def _spec(response: httpx.Response, status: int) -> object:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"statusCode", "message", "error"} and body["statusCode"] == status
    return body["message"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_only_the_bearer_scheme_authenticates(api: Api) -> None:
    token = token_for(api.settings, "u1")
    for header in (f"Basic {token}", f"x {token}", token, f"Bearer  {token} extra", "Bearer"):
        r = await api.client.get("/video-gen/credits", headers={"Authorization": header})
        _spec(r, 401)
    for header in (f"Bearer {token}", f"bearer {token}"):
        assert (await api.client.get("/video-gen/credits", headers={"Authorization": header})).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_tokens_need_sub_and_exp_not_iat_and_tolerate_a_few_seconds_of_skew(api: Api) -> None:
    now = int(time.time())
    accepted = [
        _token(api.settings, iat=None),  # no iat
        _token(api.settings, exp=now - 3),  # expired 3 s ago: the issuer's clock is ahead
        _token(api.settings, iat=now + 2),  # issued "in the future": ours is behind
        _token(api.settings, nbf=now + 2),
    ]
    for token in accepted:
        r = await api.client.get("/video-gen/credits", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (jwt.decode(token, options={"verify_signature": False}), r.text)
    refused = [_token(api.settings, exp=now - 60), _token(api.settings, exp=None), _token(api.settings, sub=None)]
    for token in refused:
        _spec(await api.client.get("/video-gen/credits", headers={"Authorization": f"Bearer {token}"}), 401)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_oversized_and_malformed_authorization_headers_get_json(api: Api) -> None:
    r = await api.client.get("/video-gen/credits", headers={"Authorization": "Bearer " + "a" * 10_000})
    assert _spec(r, 431) == "Request Header Fields Too Large: Authorization"
    reader, writer = await asyncio.open_connection(api.settings.host, api.settings.port)
    writer.write(b"GET /video-gen/credits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x01\x02\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
    assert body.startswith(b'{"statusCode":400,"message":"Malformed HTTP request')


async def test_one_budget_per_user_whatever_the_token_or_its_spelling(limited: Api) -> None:
    tokens = [_token(limited.settings, exp=int(time.time()) + 3600 + i) for i in range(LIMIT + 1)]
    for token in tokens[:LIMIT]:
        assert (await limited.client.get("/video-gen/credits", headers={"Authorization": f"Bearer {token}"})).is_success
    r = await limited.client.get("/video-gen/credits", headers={"Authorization": f"bearer {tokens[-1]}"})
    _spec(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
    other = await limited.client.get("/video-gen/credits", headers=limited.auth("u2"))
    assert other.status_code == 200  # another user has a budget of its own


async def test_unauthenticated_requests_are_limited_per_address(limited: Api) -> None:
    for header in ("Basic abc", "x y", "Bearer not-a-jwt", "garbage")[:LIMIT]:
        _spec(await limited.client.get("/video-gen/credits", headers={"Authorization": header}), 401)
    r = await limited.client.get("/video-gen/credits", headers={"Authorization": "Bearer still-not-a-jwt"})
    _spec(r, 429)
    assert "Retry-After" in r.headers


async def test_polling_a_job_has_its_own_higher_budget(limited: Api) -> None:
    headers = limited.auth("u1")
    for _ in range(LIMIT):
        assert (await limited.client.get("/video-gen/credits", headers=headers)).status_code == 200
    _spec(await limited.client.get("/video-gen/credits", headers=headers), 429)
    for _ in range(POLLING):  # three jobs once a second for four seconds, after the budget ran out
        _spec(await limited.client.get("/video-gen/jobs/some-job", headers=headers), 404)
    _spec(await limited.client.get("/video-gen/jobs/some-job", headers=headers), 429)


@pytest.fixture
async def cors(sqlite_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(sqlite_url, redis_prefix, tmp_path, cors_allow_origins="https://app.example.com")
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
            yield Api(stack, client)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_browsers_may_call_only_from_the_allowed_origins(cors: Api, api: Api) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await cors.client.options(
        "/video-gen/image-to-video", headers={"Origin": "https://app.example.com", **preflight}
    )
    assert allowed.status_code in (200, 204)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = await cors.client.options(
        "/video-gen/image-to-video", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers
    r = await cors.client.get("/video-gen/credits", headers={"Origin": "https://app.example.com", **cors.auth()})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example.com"
    default = await api.client.get("/video-gen/credits", headers={"Origin": "https://app.example.com", **api.auth()})
    assert "access-control-allow-origin" not in default.headers  # empty by default: no origin is allowed


@pytest.fixture(params=["httptools", "h11"])
async def impatient(request: pytest.FixtureRequest, sqlite_url: str, redis_prefix: str, tmp_path: Path):
    loop = "uvloop" if request.param == "httptools" else "asyncio"  # EVENT_LOOP picks the HTTP parser
    settings = make_settings(
        sqlite_url, redis_prefix, tmp_path, http_keep_alive_seconds=1, http_read_timeout_seconds=1.5, event_loop=loop
    )
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        yield stack.settings


def _talk(host: str, port: int, chunks: list[bytes], pause: float = 0.0) -> tuple[bytes, float]:
    """Send ``chunks`` with ``pause`` between them (stopping once the server answers), then read
    until the server closes; what it answered and how long the connection lived."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=15) as sock:
        for chunk in chunks:
            if select.select([sock], [], [], pause)[0]:
                break  # the server answered (or closed): stop sending
            try:
                sock.sendall(chunk)
            except OSError:
                break
        received = b""
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            received += data
    return received, time.monotonic() - started


async def test_idle_and_slow_connections_are_closed(impatient: Settings) -> None:
    host, port = impatient.host, impatient.port
    # connected, sends nothing: a JSON 408 and closed after the read timeout
    answer, lived = await asyncio.to_thread(_talk, host, port, [])
    assert answer.startswith(b"HTTP/1.1 408") and b'"statusCode":408' in answer and lived < 8
    # headers a byte at a time (slowloris): closed once the read timeout passes, however busy it is
    slow = [bytes([b]) for b in b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400]
    answer, lived = await asyncio.to_thread(_talk, host, port, slow, 0.05)
    assert answer.startswith(b"HTTP/1.1 408") and b'"statusCode":408' in answer and lived < 8
    # a body that never comes
    head = b"POST /video-gen/image-to-video HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    answer, lived = await asyncio.to_thread(_talk, host, port, [head + b"Content-Length: 100\r\n\r\n{"])
    assert answer.startswith((b"HTTP/1.1 408", b"HTTP/1.1 401")) and lived < 8
    # kept alive after a response, then idle: closed after the keep-alive time, the answer intact
    answer, lived = await asyncio.to_thread(_talk, host, port, [b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1 and lived < 8
