"""Which webhook URLs are accepted, and which addresses are never connected to (SSRF).

A URL is checked twice: its shape when the request comes in (``url_problems``, no DNS: a 400
before anything is queued), and its address before every attempt (``resolve``): every address
the host resolves to must be public, and the attempt connects to the address that was checked,
so a DNS answer that changes in between (rebinding) cannot point it inside the network.
``WEBHOOK_ALLOW_PRIVATE=true`` lifts the address check (development, tests);
``WEBHOOK_ALLOW_HTTP=true`` accepts ``http://``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The target may not be connected to; the message says why (shown in the attempt)."""


def is_internal(ip: IPAddress) -> bool:
    """Loopback, private, link-local, shared, reserved, multicast, unspecified: anything not global."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and is_internal(embedded):
            return True
    return not ip.is_global or ip.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return None
    return parts


def url_problems(url: object, *, allow_http: bool, allow_private: bool, name: str = "webhookUrl") -> list[str]:
    """class-validator-style messages for a webhook URL (empty when it is acceptable)."""
    if not isinstance(url, str):
        return [f"{name} must be a URL address"]
    parts = _split(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if len(url) > MAX_URL_LENGTH or parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        return [f"{name} must be a URL address"]
    if parts.scheme not in schemes:
        return [f"{name} must be a URL address with protocol https"]
    if parts.username is not None or parts.password is not None:
        return [f"{name} must not contain credentials"]
    ip = _literal(parts.hostname)
    internal = (ip is not None and is_internal(ip)) or parts.hostname.lower().rstrip(".").endswith("localhost")
    if internal and not allow_private:
        return [f"{name} must not point to a private, loopback or link-local address"]
    return []


@dataclass(frozen=True)
class Target:
    """Where one attempt connects: the checked address, and the host name the request carries."""

    scheme: str
    host: str
    address: str
    port: int
    path: str

    @property
    def url(self) -> str:
        """The URL with the address in place of the host (the Host header and TLS keep the name)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


async def resolve(url: str, *, allow_private: bool) -> Target:
    """The address to connect to for ``url``; ``Refused`` when any address it resolves to is internal."""
    parts = _split(url)
    if parts is None or not parts.hostname or parts.scheme not in ("http", "https"):
        raise Refused("not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {parts.hostname}: {exc.strerror}") from None  # retried: DNS may recover
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OSError(f"cannot resolve {parts.hostname}")
    if not allow_private:
        for address in addresses:
            if is_internal(ipaddress.ip_address(address.split("%")[0])):
                raise Refused(f"refused: {parts.hostname} resolves to the internal address {address}")
    return Target(parts.scheme, parts.hostname, addresses[0], port, path)
