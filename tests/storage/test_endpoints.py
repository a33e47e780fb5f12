"""The download route of local storage's signed links: the file for a genuine link, 403 for a bad or
expired one, 404 for a missing file or with S3 storage."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.testing import AsyncTestClient

from service.core.errors import AppError
from service.core.settings import Settings
from service.storage.base import Storage
from service.storage.endpoints import FilesController
from service.storage.local import LocalStorage
from service.storage.s3 import S3Storage
from service.storage.signing import sign_download

SECRET = "test-signing-secret"


@pytest.fixture
async def storage(scratch: Path) -> LocalStorage:
    store = LocalStorage(scratch / "root", signing_secret=SECRET, base_url="http://api.test")
    await store.open()
    return store


def _app(storage: Storage) -> Litestar:
    def render(request: Request, exc: AppError) -> Response:
        return Response(exc.body(), status_code=exc.status_code)

    settings = Settings(jwt_secret=SECRET)
    return Litestar(
        [FilesController],
        exception_handlers={AppError: render},
        dependencies={
            "storage": Provide(lambda: storage, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
    )


async def test_download_route_serves_signed_file_and_refuses_bad_links(storage: LocalStorage):
    await storage.put_bytes("videos/u1/a.mp4", b"movie-bytes", content_type="video/mp4", metadata={})
    url = await storage.download_url("videos/u1/a.mp4", expires_in=60)
    path_and_query = url.removeprefix("http://api.test")
    async with AsyncTestClient(_app(storage)) as client:
        ok = await client.get(path_and_query)
        assert (ok.status_code, ok.content, ok.headers["content-type"]) == (200, b"movie-bytes", "video/mp4")
        bad = await client.get(path_and_query.replace("signature=", "signature=0"))
        assert bad.status_code == 403
        assert bad.json()["message"] == "Invalid or expired download link"
        expired = f"/video-gen/files/videos/u1/a.mp4?expires=1&signature={sign_download(SECRET, 'videos/u1/a.mp4', 1)}"
        assert (await client.get(expired)).status_code == 403
        assert (await client.get("/video-gen/files/videos/u1/a.mp4")).status_code == 403
        await storage.delete("videos/u1/a.mp4")
        assert (await client.get(path_and_query)).status_code == 404


async def test_download_route_is_not_found_with_s3_storage():
    link = "/video-gen/files/a.mp4?expires=99999999999&signature=" + sign_download(SECRET, "a.mp4", 99999999999)
    async with AsyncTestClient(_app(S3Storage("bucket"))) as client:
        assert (await client.get(link)).status_code == 404
