"""The aiobotocore clients of ``S3Storage``: one for requests and, with a public endpoint, one
that presigns for it."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session


async def open_clients(
    stack: AsyncExitStack, endpoint_url: str | None, region: str | None, *, path_style: bool, public_url: str | None
) -> tuple[Any, Any]:
    """The client for requests and the one that presigns (the same client without a
    ``public_url``), both closed with ``stack``."""
    config = AioConfig(
        s3={"addressing_style": "path" if path_style else "auto"},
        signature_version="s3v4",
        # S3-compatible stores often reject the default checksum headers of recent botocore.
        **({"request_checksum_calculation": "when_required"} if endpoint_url else {}),
    )
    session = get_session()
    client = await stack.enter_async_context(
        session.create_client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    )
    if not public_url:
        return client, client
    # A presigned URL signs its host: it must be made for the name clients use (a proxy, a public
    # DNS name), not the internal one workers reach. Presigning sends no request.
    signer = await stack.enter_async_context(
        session.create_client("s3", endpoint_url=public_url, region_name=region, config=config)
    )
    return client, signer
