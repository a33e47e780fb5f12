"""Large uploads to S3: a file above ``PART_SIZE`` goes up in parts, read one at a time, and an
upload that fails (or is cancelled) is aborted so its parts are not left billed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("service.storage.s3")  # the logger name its lines have always had

PART_SIZE = 8 * 1024 * 1024  # also the threshold above which put_file goes multipart


async def put_multipart(
    client: Any, bucket: str, full: str, path: Path, *, content_type: str, metadata: dict[str, str]
) -> None:
    """Upload ``path`` as the object ``full`` of ``bucket`` in parts of ``PART_SIZE``."""
    created = await client.create_multipart_upload(Bucket=bucket, Key=full, ContentType=content_type, Metadata=metadata)
    upload_id = created["UploadId"]
    try:
        parts = await _upload_parts(client, bucket, full, path, upload_id)
        await client.complete_multipart_upload(
            Bucket=bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        # Also on cancellation: uploaded parts are billed and invisible until aborted.
        await _abort(client, bucket, full, upload_id)
        raise


async def _upload_parts(client: Any, bucket: str, full: str, path: Path, upload_id: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    source = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(source.read, PART_SIZE):
            number = len(parts) + 1
            response = await client.upload_part(
                Bucket=bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=chunk
            )
            parts.append({"ETag": response["ETag"], "PartNumber": number})
    finally:
        await asyncio.to_thread(source.close)
    return parts


async def _abort(client: Any, bucket: str, full: str, upload_id: str) -> None:
    try:
        await client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
    except Exception:
        # Nothing more we can do here; a bucket lifecycle rule should reap what is left.
        log.warning("could not abort multipart upload %s of %s", upload_id, full, exc_info=True)
