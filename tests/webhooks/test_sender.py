"""One attempt over TLS to the address that was checked: the URL carries the address, SNI, the
certificate check and the Host header carry the name (trustme's CA; a resolver that plays DNS)."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator

import pytest
import trustme

from service.core.settings import parse_webhook_secret
from service.webhooks import safety
from service.webhooks.sender import Resolve, Sender
from tests.fakes.webhook_receiver import Receiver
from tests.webhooks.conftest import make_delivery

NAME = "hooks.example.test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, name: str, seen: list[str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    context.sni_callback = lambda sock, server_name, ctx: seen.append(server_name)  # type: ignore[assignment,return-value]
    return context


@pytest.fixture
async def receiver(secret: str) -> AsyncIterator[Receiver]:
    made = Receiver(secret)
    yield made
    await made.stop()


def pinned(port: int, checked: list[str]) -> Resolve:
    async def resolve(url: str, *, allow_private: bool) -> safety.Target:
        checked.append(url)
        return safety.Target("https", NAME, "127.0.0.1", port, "/hooks")  # what DNS said, checked once

    return resolve


async def test_tls_goes_to_the_checked_address_and_verifies_the_name(
    ca: trustme.CA, receiver: Receiver, secret: str
) -> None:
    sni: list[str | None] = []
    port = int((await receiver.start(server_context(ca, NAME, sni))).rsplit(":", 1)[1])
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    checked: list[str] = []
    sender = Sender(
        [parse_webhook_secret(secret, "s")],
        timeout=5.0,
        allow_private=False,
        verify=client_context,
        resolve=pinned(port, checked),
    )
    try:
        result = await sender.send(make_delivery(f"https://{NAME}:{port}/hooks"))
    finally:
        await sender.close()
    assert result.delivered, result.attempt
    [got] = receiver.received
    assert sni == [NAME] and got.headers["host"] == f"{NAME}:{port}" and got.payload is not None
    assert checked == [f"https://{NAME}:{port}/hooks"]


async def test_a_certificate_for_another_name_is_refused(ca: trustme.CA, receiver: Receiver, secret: str) -> None:
    port = int((await receiver.start(server_context(ca, "elsewhere.example.test", []))).rsplit(":", 1)[1])
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    keys = [parse_webhook_secret(secret, "s")]
    sender = Sender(keys, timeout=5.0, allow_private=False, verify=client_context, resolve=pinned(port, []))
    started = time.time()
    try:
        result = await sender.send(make_delivery(f"https://{NAME}:{port}/hooks"))
    finally:
        await sender.close()
    assert not result.delivered and result.attempt.status_code is None and result.attempt.at >= started - 1
    assert "CERTIFICATE_VERIFY_FAILED" in (result.attempt.error or ""), result.attempt.error
    assert receiver.received == []
