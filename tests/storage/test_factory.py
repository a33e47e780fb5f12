"""``STORAGE_URL`` makes the storage: a local directory, an S3 bucket and prefix, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.core.settings import Settings
from service.storage.factory import storage_from_settings
from service.storage.local import LocalStorage
from service.storage.s3 import S3Storage


def test_factory_builds_local_storage(scratch: Path):
    store = storage_from_settings(Settings(storage_url=f"file://{scratch}/store", host="h", port=9))
    assert isinstance(store, LocalStorage) and store.root == scratch / "store"
    relative = storage_from_settings(Settings(storage_url="file://./var/storage"))
    assert isinstance(relative, LocalStorage) and relative.root == Path.cwd() / "var" / "storage"


def test_factory_builds_s3_storage():
    settings = Settings(storage_url="s3://my-bucket/some/prefix", s3_endpoint_url="http://s3.test", s3_path_style=True)
    store = storage_from_settings(settings)
    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix) == ("my-bucket", "some/prefix/")


@pytest.mark.parametrize("url", ["ftp://x", "file://relative", "file://", "s3://", "s3:///prefix", "/plain/path"])
def test_factory_rejects_unknown_urls(url: str):
    with pytest.raises(ValueError, match="STORAGE_URL"):
        storage_from_settings(Settings(storage_url=url))
