"""uvicorn's HTTP protocols, answering requests they cannot parse in the spec's JSON body.

A request line or header the parser refuses (a control character in ``Authorization``, a header
over h11's size limit) never reaches the application; uvicorn would answer a ``text/plain`` 400.
These subclasses answer ``{"statusCode": 400, "message": ..., "error": "Bad Request"}`` instead and
close the connection, as uvicorn does.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from service.core.errors import error_body

MALFORMED = "Malformed HTTP request: the request line or a header could not be parsed"


def _response() -> bytes:
    body = msgspec.json.encode(error_body(400, MALFORMED))
    head = (
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@cache
def json_error_protocol(parser: str) -> type[Any]:
    """uvicorn's ``httptools`` or ``h11`` protocol class with a JSON 400 (``Config(http=...)``)."""
    if parser == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class JsonErrorProtocol(base):  # type: ignore[misc,valid-type]
        def send_400_response(self, msg: str) -> None:
            self.transport.write(_response())
            self.transport.close()

    JsonErrorProtocol.__name__ = f"JsonError{base.__name__}"
    return JsonErrorProtocol
