"""uvicorn's HTTP protocols, with the spec's JSON errors and a deadline for reading requests.

A request line or header the parser refuses (a control character in ``Authorization``, a header
over h11's size limit) never reaches the application; uvicorn would answer a ``text/plain`` 400.
These subclasses answer ``{"statusCode": 400, "message": ..., "error": "Bad Request"}`` instead and
close the connection, as uvicorn does.

uvicorn closes a connection idle between requests after ``timeout_keep_alive``
(``HTTP_KEEP_ALIVE_SECONDS``) but has no header or body timeout: a client may hold a connection,
and its slot, by sending a request a byte at a time. Here a request must arrive whole (line,
headers and body) within ``HTTP_READ_TIMEOUT_SECONDS`` of the connection opening or of the
previous response; otherwise the answer is a JSON 408 and the connection is closed. The time the
application takes to answer is not counted.

A process holds thousands of connections while their requests wait: each keeps lighter queue and
events than uvicorn's (``service.core.lean``) and no read timer once its request has arrived.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from service.core.errors import error_body
from service.core.lean import Pipeline, lighter

MALFORMED = "Malformed HTTP request: the request line or a header could not be parsed"
TOO_SLOW = "Request Timeout: the request did not arrive in time"


def _response(status: int, phrase: str, message: str) -> bytes:
    body = msgspec.json.encode(error_body(status, message))
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class JsonErrors:
    """What ``json_error_protocol`` adds to uvicorn's protocol: listed first among its bases, so each
    ``super()`` call here is uvicorn's own method."""

    read_timeout: float = 30.0  # set per class by json_error_protocol
    # (the read timer, the cycle current when it was armed), or None. One attribute, not two:
    # uvicorn's protocol has 28 and CPython shares an instance's keys up to 29 (its dict is
    # then 300 bytes, past that 1,600: a connection more than a kilobyte heavier).
    _reading: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if hasattr(self, "pipeline"):
            self.pipeline = Pipeline()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self.flow._is_writable_event = lighter(self.flow._is_writable_event)
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before and self.cycle is not None:  # new: its task has not run yet
            self.cycle.message_event = lighter(self.cycle.message_event)
        if self._reading is not None and self._arrived(self._reading[1]):
            self._disarm()  # the request is whole: a request held open costs no timer

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm()  # the next request, if any, has the same time to arrive

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(_response(400, "Bad Request", MALFORMED))
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        armed = self.cycle
        self._reading = (self.loop.call_later(self.read_timeout, self._read_timed_out, armed), armed)

    def _disarm(self) -> None:
        if self._reading is not None:
            self._reading[0].cancel()
            self._reading = None

    def _arrived(self, armed: Any) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle is not armed and not cycle.more_body

    def _read_timed_out(self, armed: Any) -> None:
        self._reading = None
        cycle = self.cycle
        if self._arrived(armed) or self.transport.is_closing():
            return  # the application is answering: its time is not ours to limit
        if cycle is None or cycle is armed or not cycle.response_started:
            self.transport.write(_response(408, "Request Timeout", TOO_SLOW))
        self.transport.close()

    # uvicorn's protocol sets these; declared for the type checker only.
    cycle: Any
    flow: Any
    loop: Any
    transport: Any


@cache
def json_error_protocol(parser: str, read_timeout: float = 30.0) -> type[Any]:
    """uvicorn's ``httptools`` or ``h11`` protocol class (``Config(http=...)``) with JSON errors and
    a ``read_timeout`` for each request to arrive (``JsonErrors``)."""
    if parser == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    return type(f"JsonError{base.__name__}", (JsonErrors, base), {"read_timeout": read_timeout})


async def _rewritten(scope: Any, receive: Any, send: Any) -> None:
    """What uvicorn's proxy-headers middleware calls once the scope is rewritten (``ProxyHeaders``)."""


class ProxyHeaders:
    """uvicorn's proxy-headers middleware (``FORWARDED_ALLOW_IPS``) without a coroutine of its own
    held for each request's life: uvicorn's code rewrites the scope, run to its end at once on an
    app that does nothing, and the application's coroutine is handed to the server to await."""

    def __init__(self, uvicorns: Any) -> None:
        self.app, uvicorns.app = uvicorns.app, _rewritten
        self.rewrite = uvicorns

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] != "lifespan":
            step = self.rewrite(scope, receive, send)
            try:
                step.send(None)
            except StopIteration:
                pass
            else:  # uvicorn's rewrite never waits; if a version did, its own middleware stays right
                step.close()
                raise RuntimeError("uvicorn's proxy-headers middleware suspended")
        return self.app(scope, receive, send)


def lean_proxy_headers(config: Any) -> Any:
    """Load uvicorn's ``config`` and put ``ProxyHeaders`` in place of its proxy-headers middleware."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    config.load()
    if isinstance(config.loaded_app, ProxyHeadersMiddleware):
        config.loaded_app = ProxyHeaders(config.loaded_app)
    return config
