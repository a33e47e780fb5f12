"""Storage on S3 or any S3-compatible endpoint, through aiobotocore.

One session and one client live for the whole process (``open`` to ``close``): creating a client
per call would redo credential resolution and lose the connection pool. Credentials come from the
standard AWS chain (environment, shared config, instance role...), never from our settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from service.storage.base import InvalidKey, ObjectHead, ObjectNotFound, ObjectTooLarge, UploadTarget
from service.storage.keys import validate_key
from service.storage.s3_clients import open_clients
from service.storage.s3_errors import BucketMissing, error_code, is_not_found
from service.storage.s3_multipart import PART_SIZE, put_multipart

_READ_CHUNK = 1024 * 1024


class S3Storage:
    """The Storage protocol on one bucket, optionally under a key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool = False,
        public_endpoint_url: str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name")
        prefix = prefix.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except InvalidKey as exc:
                raise ValueError(f"invalid S3 key prefix {prefix!r}: {exc}") from None
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self._endpoint_url = endpoint_url
        self._region = region
        self._path_style = path_style
        self._public_endpoint_url = public_endpoint_url
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._signer: Any = None  # the client that presigns: the public endpoint's, else _client

    async def open(self) -> None:
        if self._client is not None:
            return
        stack = AsyncExitStack()
        try:
            self._client, self._signer = await open_clients(
                stack,
                self._endpoint_url,
                self._region,
                path_style=self._path_style,
                public_url=self._public_endpoint_url,
            )
        except BaseException:
            await stack.aclose()  # the first client, when the second failed
            raise
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack, self._client, self._signer = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def client(self) -> Any:
        """The open aiobotocore client (raises if ``open`` was not awaited)."""
        if self._client is None:
            raise RuntimeError("S3Storage is not open; await open() first")
        return self._client

    def full_key(self, key: str) -> str:
        """The bucket key for ``key``: validated, with the prefix prepended."""
        return self.prefix + validate_key(key)

    async def read(self, key: str, *, max_bytes: int, check: Callable[[bytes], object] | None = None) -> bytes:
        full = self.full_key(key)
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=full)
            size = int(head["ContentLength"])
            if size > max_bytes:
                raise ObjectTooLarge(key, size, max_bytes)
            response = await self.client.get_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucket":
                raise BucketMissing(self.bucket) from None
            if is_not_found(exc):
                # a HEAD's 404 has no body: a missing bucket looks like a missing key until asked
                await self.check()
                raise ObjectNotFound(key) from None
            raise
        async with response["Body"] as body:
            data = await _read_at_most(body, max_bytes + 1)
        # The object may have been replaced by a bigger one between HEAD and GET.
        if len(data) > max_bytes:
            raise ObjectTooLarge(key, len(data), max_bytes)
        if check is not None:
            await asyncio.to_thread(check, data)
        return data

    async def put_bytes(self, key: str, data: bytes, *, content_type: str, metadata: dict[str, str]) -> None:
        await self.client.put_object(
            Bucket=self.bucket, Key=self.full_key(key), Body=data, ContentType=content_type, Metadata=metadata
        )

    async def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: dict[str, str], consume: bool = False
    ) -> None:
        full = self.full_key(key)
        size = (await asyncio.to_thread(Path(path).stat)).st_size
        if size <= PART_SIZE:
            data = await asyncio.to_thread(Path(path).read_bytes)
            await self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentType=content_type, Metadata=metadata
            )
            return
        await put_multipart(self.client, self.bucket, full, Path(path), content_type=content_type, metadata=metadata)

    async def exists(self, key: str) -> bool:
        try:
            await self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    async def head(self, key: str) -> ObjectHead | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return ObjectHead(
            size=int(head["ContentLength"]),
            content_type=head.get("ContentType"),
            metadata=dict(head.get("Metadata") or {}),
        )

    async def check(self) -> None:
        """The bucket exists and these credentials reach it (start-up and ``/health/ready``)."""
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if is_not_found(exc):
                raise BucketMissing(self.bucket) from None
            raise

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))

    async def download_url(self, key: str, *, expires_in: int) -> str:
        """A presigned GET, named for ``public_endpoint_url`` when one is set."""
        signer = self._signer if self._signer is not None else self.client
        return await signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.full_key(key)}, ExpiresIn=int(expires_in)
        )

    async def upload_url(self, key: str, *, content_type: str, content_length: int, expires_in: int) -> UploadTarget:
        params = {
            "Bucket": self.bucket,
            "Key": self.full_key(key),
            "ContentType": content_type,
            "ContentLength": content_length,
        }
        url = await self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=int(expires_in))
        return UploadTarget(url, "PUT", {"Content-Type": content_type, "Content-Length": str(content_length)})


async def _read_at_most(body: Any, limit: int) -> bytes:
    """Read the stream until EOF or ``limit`` bytes, whichever comes first."""
    buffer = bytearray()
    while len(buffer) < limit:
        chunk = await body.read(min(_READ_CHUNK, limit - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer)
