"""``POST /video-gen/uploads`` (an upload URL for the caller) and ``PUT /video-gen/uploads/{key}``
(where a local-storage upload URL points; the signature is the credential)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, Request, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from service.core.auth import Principal
from service.core.errors import ErrorBody, NotFound
from service.core.settings import Settings
from service.core.validation import strict
from service.storage.base import Storage
from service.storage.local import LocalStorage
from service.storage.uploads import Uploaded, UploadOut, UploadRequest, new_upload, receive_upload, upload_messages


def _check_body(request: Request[Any, Any, Any], body: Any) -> list[str]:
    return upload_messages(body, request.app.state.settings.max_source_bytes)


class UploadsController(Controller):
    path = "/video-gen/uploads"
    tags = ["generation"]

    @post(
        "/",
        status_code=200,
        opt=strict(_check_body),
        summary="An upload URL for a source image",
        description="Answers `id` (the image's key: the `id` of `POST /video-gen/image-to-video`), and an "
        "`uploadUrl` to send the file to with `method` and exactly `headers`, valid until `expiresAt` "
        "(UPLOAD_URL_SECONDS). PNG, JPEG or WebP, `contentLength` bytes exactly, at most MAX_SOURCE_BYTES.",
        responses={400: ResponseSpec(ErrorBody, description="Validation error (a list)")},
    )
    async def create(
        self,
        data: JSONBody[UploadRequest],
        principal: NamedDependency[Principal],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
    ) -> UploadOut:
        return await new_upload(
            storage,
            principal.user_id,
            data,
            prefix_template=settings.source_key_prefix,
            expires_in=settings.upload_url_seconds,
        )

    @put(
        "/{key:path}",
        status_code=200,
        opt={"exclude_from_auth": True},
        include_in_schema=False,
        request_max_body_size=None,  # the signed length is the limit, checked while reading
    )
    async def receive(
        self,
        request: Request[Any, Any, Any],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        key: FromPath[Path],
    ) -> Uploaded:
        object_key = str(key).removeprefix("/")
        if not isinstance(storage, LocalStorage):  # S3 upload URLs point at S3 itself
            raise NotFound(f"File not found: {object_key}")
        return await receive_upload(
            storage,
            settings.jwt_secret,
            object_key,
            query={name: request.query_params.get(name) for name in ("type", "length", "expires", "signature")},
            content_type=request.headers.get("content-type"),
            body=request.stream(),
        )
