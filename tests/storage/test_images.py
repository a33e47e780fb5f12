"""Source-image checks (sniffing, ownership, size) and output keys."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from service.core.errors import BadRequest, NotFound, PayloadTooLarge
from service.storage.images import check_source_key, load_source_image, output_key, sniff_image_type
from service.storage.local import LocalStorage

TEMPLATE = "images/{user_id}/"
LIMIT = 1024 * 1024


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 40, 90)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
async def storage(scratch: Path) -> LocalStorage:
    store = LocalStorage(scratch / "root", signing_secret="s")
    await store.open()
    return store


async def put(storage: LocalStorage, key: str, data: bytes) -> None:
    await storage.put_bytes(key, data, content_type="application/octet-stream", metadata={})


async def load(storage: LocalStorage, key: str, *, user_id: str = "u1", template: str = TEMPLATE, limit: int = LIMIT):
    return await load_source_image(storage, key, user_id=user_id, prefix_template=template, max_bytes=limit)


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_sniffs_real_images(fmt: str, mime: str):
    assert sniff_image_type(image_bytes(fmt)) == mime


@pytest.mark.parametrize("data", [b"", b"hello, I am text", b"RIFF\x00\x00\x00\x00WAVEfmt ", image_bytes("GIF")])
def test_sniff_refuses_other_content(data: bytes):
    assert sniff_image_type(data) is None


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
async def test_load_source_image_happy_path(storage: LocalStorage, fmt: str, mime: str):
    data = image_bytes(fmt)
    # The extension is deliberately wrong: only the bytes count.
    await put(storage, "images/u1/photo.bin", data)
    image = await load(storage, "images/u1/photo.bin")
    assert (image.key, image.data, image.content_type) == ("images/u1/photo.bin", data, mime)


async def test_png_named_text_file_is_refused(storage: LocalStorage):
    await put(storage, "images/u1/fake.png", b"not an image at all")
    with pytest.raises(BadRequest) as info:
        await load(storage, "images/u1/fake.png")
    assert info.value.status_code == 400
    assert info.value.message == "Source image must be a PNG, JPEG or WebP image"


async def test_other_users_key_looks_exactly_like_a_missing_one(storage: LocalStorage):
    await put(storage, "images/u2/theirs.png", image_bytes("PNG"))
    with pytest.raises(NotFound) as existing:
        await load(storage, "images/u2/theirs.png")
    await storage.delete("images/u2/theirs.png")
    with pytest.raises(NotFound) as missing:
        await load(storage, "images/u2/theirs.png")
    with pytest.raises(NotFound) as own_missing:
        await load(storage, "images/u1/none.png")
    assert existing.value.body() == missing.value.body()
    assert existing.value.message == "Source image not found: images/u2/theirs.png"
    assert own_missing.value.message == "Source image not found: images/u1/none.png"
    assert existing.value.status_code == 404


async def test_prefix_is_a_whole_segment(storage: LocalStorage):
    await put(storage, "images/u10/a.png", image_bytes("PNG"))
    with pytest.raises(NotFound):
        await load(storage, "images/u10/a.png", user_id="u1")
    assert (await load(storage, "images/u10/a.png", user_id="u10")).content_type == "image/png"


async def test_empty_template_disables_the_prefix_rule(storage: LocalStorage):
    await put(storage, "shared/a.png", image_bytes("PNG"))
    assert (await load(storage, "shared/a.png", template="")).content_type == "image/png"
    with pytest.raises(NotFound):
        await load(storage, "shared/a.png")


@pytest.mark.parametrize("user_id", ["u1/../u2", "u2/sub", "", ".."])
def test_unsafe_user_ids_own_nothing(user_id: str):
    with pytest.raises(NotFound):
        check_source_key("images/u2/sub/a.png", user_id, TEMPLATE)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "x" * 1025,
        "../a.png",
        "images/u1/../u2/a.png",
        "/images/u1/a.png",
        "images/u1/a\x00.png",
        "images\\u1\\a.png",
        "images/u1/a\x07.png",
        "images/u1//a.png",
        "images/u1/%2e%2e/a.png",
    ],
)
def test_malformed_keys_are_bad_requests(key: str):
    with pytest.raises(BadRequest) as info:
        check_source_key(key, "u1", TEMPLATE)
    assert info.value.status_code == 400
    assert str(info.value.message).startswith("Invalid source image key")


def test_own_key_passes():
    check_source_key("images/u1/a.png", "u1", TEMPLATE)


async def test_size_limit(storage: LocalStorage):
    data = image_bytes("PNG")
    await put(storage, "images/u1/a.png", data)
    assert (await load(storage, "images/u1/a.png", limit=len(data))).data == data
    with pytest.raises(PayloadTooLarge) as info:
        await load(storage, "images/u1/a.png", limit=len(data) - 1)
    assert info.value.status_code == 413
    assert info.value.message == f"Source image is too large: {len(data)} bytes (limit {len(data) - 1})"


async def test_storage_refusing_the_key_is_a_bad_request(storage: LocalStorage, scratch: Path):
    outside = scratch / "outside"
    outside.mkdir()
    (outside / "a.png").write_bytes(image_bytes("PNG"))
    (storage.root / "images").mkdir()
    (storage.root / "images" / "u1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BadRequest) as info:
        await load(storage, "images/u1/a.png")
    assert info.value.message == "Invalid source image key: images/u1/a.png"


def test_output_key_layout_and_sanitizing():
    now = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
    assert output_key("u1", "gen-123", now) == "videos/u1/2025/03/gen-123.mp4"
    assert output_key("a/../b", "g", now) == "videos/a~2F..~2Fb/2025/03/g.mp4"
    assert output_key("..", "g", now) == "videos/~2E./2025/03/g.mp4"
    assert output_key("", "g", now) == "videos/~/2025/03/g.mp4"
    assert output_key("a~2Fb", "g", now) != output_key("a/b", "g", now)
    # Late on 31 Jan in New York is already February in UTC.
    new_york = datetime(2025, 1, 31, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert output_key("u1", "g", new_york) == "videos/u1/2025/02/g.mp4"


def _png_declaring(width: int, height: int) -> bytes:
    """A valid PNG of ``width`` x ``height`` whose pixel data compresses to almost nothing."""
    buffer = io.BytesIO()
    Image.new("1", (width, height), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("truncated", image_bytes("PNG")[:-30], "Source image could not be decoded: the file is truncated"),
        ("png magic then garbage", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "Source image could not be decoded"),
        ("jpeg magic then garbage", b"\xff\xd8\xff" + b"\x00" * 64, "Source image could not be decoded"),
        ("truncated jpeg", image_bytes("JPEG")[:40], "Source image could not be decoded"),
    ],
)
async def test_an_image_that_does_not_decode_is_a_clear_400(
    storage: LocalStorage, name: str, data: bytes, message: str
) -> None:
    await put(storage, "images/u1/bad.png", data)
    with pytest.raises(BadRequest) as caught:
        await load(storage, "images/u1/bad.png")
    assert str(caught.value).startswith(message), caught.value
    assert "<" not in str(caught.value) and "Error(" not in str(caught.value)


async def test_pixels_are_bounded_before_decoding(storage: LocalStorage) -> None:
    huge = _png_declaring(12000, 12000)  # a few hundred kB that would decode to 144 million pixels
    assert len(huge) < 1024 * 1024
    await put(storage, "images/u1/huge.png", huge)
    with pytest.raises(BadRequest, match=r"Source image is too large: 12000x12000 pixels \(limit 40000000 pixels\)"):
        await load_source_image(
            storage,
            "images/u1/huge.png",
            user_id="u1",
            prefix_template=TEMPLATE,
            max_bytes=LIMIT,
            max_pixels=40_000_000,
        )
    small = image_bytes("PNG")
    await put(storage, "images/u1/small.png", small)
    with pytest.raises(BadRequest, match=r"8x6 pixels \(limit 40 pixels\)"):
        await load_source_image(
            storage, "images/u1/small.png", user_id="u1", prefix_template=TEMPLATE, max_bytes=LIMIT, max_pixels=40
        )


def test_a_header_declaring_50000_squared_is_refused_without_allocating() -> None:
    from service.storage.images import check_decodes

    header = _png_declaring(8, 8)
    # rewrite IHDR's width and height (and its CRC) to 50000 x 50000
    import struct
    import zlib

    ihdr = b"IHDR" + struct.pack(">II", 50000, 50000) + header[24:29]
    forged = header[:8] + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + header[33:]
    with pytest.raises(BadRequest, match=r"Source image is too large \(limit 40000000 pixels\)"):
        check_decodes(forged, 40_000_000)


@pytest.mark.parametrize("segment", ["a" * 201, "é" * 101])
def test_key_segments_are_bounded(segment: str) -> None:
    with pytest.raises(BadRequest, match="a segment is longer than 200 bytes"):
        check_source_key(f"images/u1/{segment}.png", "u1", TEMPLATE)
    check_source_key(f"images/u1/{'a' * 196}.png", "u1", TEMPLATE)


def test_output_keys_of_long_user_ids_stay_within_the_segment_bound() -> None:
    from service.storage.keys import MAX_SEGMENT_BYTES, validate_key

    now = datetime(2026, 1, 2, tzinfo=UTC)
    keys = {output_key(user, "g1", now) for user in ("u" * 255, "u" * 254 + "v", "é" * 255)}
    assert len(keys) == 3
    for key in keys:
        assert validate_key(key) and all(len(s) <= MAX_SEGMENT_BYTES for s in key.split("/"))


async def test_a_small_image_is_read_and_checked_on_the_loop_a_large_one_in_one_thread_trip(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
):
    import asyncio
    import os

    from service.storage.local import INLINE_BYTES

    buffer = io.BytesIO()
    Image.frombytes("RGB", (400, 400), os.urandom(400 * 400 * 3)).save(buffer, format="PNG")
    large = buffer.getvalue()
    assert len(large) > INLINE_BYTES
    await put(storage, "images/u1/photo.png", image_bytes("PNG"))
    await put(storage, "images/u1/large.png", large)
    trips: list[object] = []
    real = asyncio.to_thread

    async def counted(func, /, *args, **kwargs):
        trips.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    assert (await load(storage, "images/u1/photo.png")).content_type == "image/png"
    assert trips == []
    checked = await load(storage, "images/u1/large.png", limit=len(large))
    assert (checked.content_type, checked.data) == ("image/png", large)
    assert len(trips) == 1
