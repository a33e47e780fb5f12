"""A Ken Burns renderer: a still image becomes a smooth pan-and-zoom H.264 clip, offline.

The camera is a crop rectangle with float coordinates over a cover-fitted copy of the image; each
frame resamples that rectangle to the output size, so motion moves in sub-pixel steps instead of
whole-pixel jumps.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from models_registry.video import H264Writer

# The cover-fitted canvas is this much larger than the output: the room the camera moves in.
MAX_ZOOM = 1.25
BACKGROUND = (16, 16, 16)  # what transparent pixels become
_LOOKAHEAD = 4  # frames resampled ahead of the encoder


class RenderStopped(Exception):
    """``on_frame`` asked the render to stop (its job was cancelled)."""


@dataclass(frozen=True)
class _Shot:
    """Where the camera starts and ends: zoom factors and signed travel along ``angle``."""

    zoom: tuple[float, float]
    travel: tuple[float, float]
    angle: float


def _load_rgb(image_bytes: bytes, size: tuple[int, int]) -> Image.Image:
    """Decode PNG/JPEG/WebP bytes of any mode to RGB, upright, transparent parts flattened."""
    try:
        image = Image.open(io.BytesIO(image_bytes))
        # JPEG: decode a big photo at a reduced scale, much faster. Square, as EXIF may rotate it.
        image.draft("RGB", (max(size), max(size)))
        image = ImageOps.exif_transpose(image)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a decodable image: {exc}") from exc
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, BACKGROUND)
        flat.paste(image, mask=image.getchannel("A"))
        return flat
    return image.convert("RGB")


def _plan_shot(seed: str) -> _Shot:
    """Pick zoom-in, zoom-out or a pan, and its direction, deterministically from ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    angle = digest[1] / 256 * 2 * math.pi
    kind = digest[0] % 3
    if kind == 0:  # zoom in, drifting toward one side
        return _Shot((1.0, MAX_ZOOM), (0.0, 0.8), angle)
    if kind == 1:  # zoom out, from one side back to the whole picture
        return _Shot((MAX_ZOOM, 1.0), (0.8, 0.0), angle)
    return _Shot((1.15, 1.15), (-1.0, 1.0), angle)  # a straight pan at a fixed zoom


def _ease(t: float) -> float:
    """Ease-in-out: the camera starts and stops gently instead of jerking into motion."""
    return 0.5 - 0.5 * math.cos(math.pi * t)


def _crop_box(shot: _Shot, t: float, canvas: tuple[int, int]) -> tuple[float, float, float, float]:
    """The camera's crop rectangle (float pixels on ``canvas``) at eased time ``t`` in [0, 1]."""
    e = _ease(t)
    # Interpolating zoom geometrically makes the zoom rate look constant.
    zoom = shot.zoom[0] * (shot.zoom[1] / shot.zoom[0]) ** e
    travel = shot.travel[0] + (shot.travel[1] - shot.travel[0]) * e
    width, height = canvas[0] / zoom, canvas[1] / zoom
    # Travel is a fraction of the free margin, so the crop never leaves the canvas.
    cx = canvas[0] / 2 + travel * math.cos(shot.angle) * (canvas[0] - width) / 2
    cy = canvas[1] / 2 + travel * math.sin(shot.angle) * (canvas[1] - height) / 2
    return (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def render_pan_zoom(
    image_bytes: bytes,
    out_path: Path,
    *,
    seconds: int,
    width: int = 1024,
    height: int = 576,
    fps: int = 24,
    seed: str = "",
    on_frame: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``image_bytes`` as an H.264 MP4 of exactly ``seconds * fps`` frames of Ken Burns.

    The image is cover-fitted (centre crop) to the output aspect; ``seed`` (e.g. the prompt)
    picks the move. Odd sizes are rounded down to even (yuv420p). Raises ``ValueError`` for
    bytes that are not an image. ``on_frame(done, count)`` is called after each encoded frame
    (progress); it may raise (``RenderStopped``) to stop the render there.
    """
    if seconds < 1 or fps < 1 or width < 2 or height < 2:
        raise ValueError(f"bad render size: {seconds}s {width}x{height}@{fps}")
    size = (width - width % 2, height - height % 2)
    canvas = (math.ceil(size[0] * MAX_ZOOM), math.ceil(size[1] * MAX_ZOOM))
    # One high-quality resize up front; per-frame resampling then scales by at most MAX_ZOOM,
    # where bilinear is both fast and alias-free.
    source = ImageOps.fit(_load_rgb(image_bytes, canvas), canvas, Image.Resampling.LANCZOS)
    shot, count = _plan_shot(seed), seconds * fps

    def frame(index: int) -> Image.Image:
        box = _crop_box(shot, index / max(count - 1, 1), canvas)
        # resize(box=floats) resamples a sub-pixel rectangle, like transform(EXTENT), but is
        # about twice as fast and filters properly when it shrinks.
        return source.resize(size, Image.Resampling.BILINEAR, box=box)

    with H264Writer(out_path, *size, fps) as writer:
        for done, image in enumerate(_prefetch(frame, count), start=1):
            writer.write(image)
            if on_frame is not None:
                on_frame(done, count)
    return out_path


def _prefetch(make: Callable[[int], Image.Image], count: int) -> Iterator[Image.Image]:
    """Yield ``make(0..count-1)`` in order, computing a few frames ahead in a thread.

    Pillow and the encoder both release the GIL, so resampling overlaps encoding (about halves
    the wall time on 2 cores); the bounded window keeps memory to a handful of frames.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque[Future[Image.Image]] = deque()
        for index in range(count):
            pending.append(pool.submit(make, index))
            if len(pending) > _LOOKAHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
