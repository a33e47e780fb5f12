"""Which webhook URLs are accepted at submission, and which addresses are never connected to."""

from __future__ import annotations

import ipaddress

import pytest

from service.webhooks.safety import Refused, Target, is_internal, resolve, url_problems


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:a00:1::", "224.0.0.1", "255.255.255.255"],
)  # fmt: skip
def test_internal_addresses(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://hooks.example.com/video?x=1", None),
        (42, "webhookUrl must be a URL address"),
        ("not a url", "webhookUrl must be a URL address"),
        ("ftp://example.com/", "webhookUrl must be a URL address"),
        ("https://", "webhookUrl must be a URL address"),
        ("https://example.com:99999/", "webhookUrl must be a URL address"),
        ("https://" + "a" * 2100 + ".com/", "webhookUrl must be a URL address"),
        ("http://example.com/", "webhookUrl must be a URL address with protocol https"),
        ("https://user:pw@example.com/", "webhookUrl must not contain credentials"),
        ("https://127.0.0.1/", "webhookUrl must not point to a private, loopback or link-local address"),
        ("https://[::1]:8443/", "webhookUrl must not point to a private, loopback or link-local address"),
        ("https://localhost/", "webhookUrl must not point to a private, loopback or link-local address"),
        ("https://169.254.169.254/", "webhookUrl must not point to a private, loopback or link-local address"),
    ],
)
def test_url_problems(url: object, message: str | None) -> None:
    assert url_problems(url, allow_http=False, allow_private=False) == ([message] if message else [])


def test_development_settings_allow_http_and_loopback() -> None:
    assert url_problems("http://127.0.0.1:8080/h", allow_http=True, allow_private=True) == []


async def test_resolve_refuses_a_name_that_resolves_inside_and_pins_the_checked_address() -> None:
    with pytest.raises(Refused, match="refused: localhost resolves to the internal address"):
        await resolve("http://localhost:8080/x", allow_private=False)
    target = await resolve("https://localhost:8443/h?q=1", allow_private=True)
    assert target.address in ("127.0.0.1", "::1") and target.host == "localhost"
    assert target.host_header == "localhost:8443" and target.path == "/h?q=1"


def test_target_puts_the_address_in_the_url_and_the_name_in_the_host_header() -> None:
    target = Target("https", "hooks.example.com", "2606:4700::1111", 443, "/a")
    assert target.url == "https://[2606:4700::1111]:443/a" and target.host_header == "hooks.example.com"
