"""The slideshow render: the source image cross-fading into a mirrored, colour-shifted copy.

Pure Pillow for the pictures and video-gen's PyAV writer for the file, so the clip is CFR H.264
with exactly ``seconds * fps`` frames, i.e. exactly the duration that was sold.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps

from models_registry.video import H264Writer


def _frame_source(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The source image as RGB at ``size``, cropped to fill it (any format, mode or orientation)."""
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "P", "PA"):
            # Transparent areas become black rather than whatever colour the hidden pixels hold.
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size)
            img.paste(rgba, mask=rgba.getchannel("A"))
        return ImageOps.fit(img.convert("RGB"), size, Image.Resampling.LANCZOS)


def _colour_shifted(img: Image.Image, *, mirror: bool = True) -> Image.Image:
    """Rotate the channels (R, G, B -> B, R, G), mirrored too by default: clearly different, same shapes."""
    r, g, b = (ImageOps.mirror(img) if mirror else img).split()
    return Image.merge("RGB", (b, r, g))


def _ease(t: float) -> float:
    """Smoothstep: the fade starts and ends at rest instead of with a visible jolt."""
    return t * t * (3 - 2 * t)


def render_slideshow(
    data: bytes, out_path: Path, *, seconds: int, width: int, height: int, fps: int, mirror: bool = True
) -> Path:
    """Write a ``seconds``-long cross-fade of ``data`` to ``out_path`` and return the path."""
    # yuv420p needs even sizes; rounding here keeps the blend and the encoder on the same size.
    size = (width - width % 2, height - height % 2)
    start = _frame_source(data, size)
    end = _colour_shifted(start, mirror=mirror)
    frames = seconds * fps
    with H264Writer(out_path, *size, fps) as writer:
        for i in range(frames):
            writer.write(Image.blend(start, end, _ease(i / max(frames - 1, 1))))
    return out_path
