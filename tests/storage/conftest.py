"""Fixtures for the storage tests: a real S3 API (moto's server on loopback) and scratch dirs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # A developer's own profile or config must never be picked up by the tests.
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "NO_PROXY": "127.0.0.1,localhost",
}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto's S3 server on a free loopback port with fake credentials; yield its URL."""
    env = pytest.MonkeyPatch()
    for name, value in _FAKE_AWS_ENV.items():
        env.setenv(name, value)
    env.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        env.undo()


@pytest.fixture
async def s3_bucket(moto_server: str) -> AsyncIterator[str]:
    """A fresh, uniquely named bucket, emptied (objects and pending uploads) and deleted after."""
    name = f"test-{uuid.uuid4().hex[:24]}"
    async with get_session().create_client("s3", endpoint_url=moto_server, region_name="us-east-1") as client:
        await client.create_bucket(Bucket=name)
        try:
            yield name
        finally:
            await _empty_bucket(client, name)
            await client.delete_bucket(Bucket=name)


async def _empty_bucket(client, name: str) -> None:
    uploads = await client.list_multipart_uploads(Bucket=name)
    for upload in uploads.get("Uploads", []):
        await client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=name):
        for item in page.get("Contents", []):
            await client.delete_object(Bucket=name, Key=item["Key"])
