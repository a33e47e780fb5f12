"""What S3's errors mean here: a missing key (a 404 of any spelling) or a missing bucket, which is
the operator's problem (503), never the caller's 404."""

from __future__ import annotations

from botocore.exceptions import ClientError

from service.core.errors import ServiceUnavailable

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class BucketMissing(ServiceUnavailable):
    """The configured bucket does not exist: the operator's problem, never the caller's 404."""

    def __init__(self, bucket: str) -> None:
        super().__init__("Service temporarily unavailable: the storage bucket does not exist")
        self.bucket = bucket


def is_not_found(error: ClientError) -> bool:
    code = error_code(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _NOT_FOUND_CODES or status == 404
