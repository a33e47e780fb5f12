"""Draw the bundled sample image: a sunset over the sea, procedurally, with Pillow only.

Run ``uv run python service/assets/make_sample.py`` to regenerate ``sample-image.png``.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 1280, 720
HORIZON = 430
SUN = (800, 398, 62)  # centre x, centre y, radius
SKY = [(0.0, (38, 42, 96)), (0.45, (196, 86, 112)), (0.8, (250, 150, 84)), (1.0, (255, 206, 128))]
SEA = [(0.0, (92, 66, 104)), (1.0, (18, 30, 64))]


def _mix(stops: list[tuple[float, tuple[int, int, int]]], t: float) -> tuple[int, ...]:
    """The colour at ``t`` along a gradient given as (position, colour) stops."""
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            u = (t - t0) / (t1 - t0)
            return tuple(round(a + (b - a) * u) for a, b in zip(c0, c1))
    return stops[-1][1]


def _gradient(draw: ImageDraw.ImageDraw, top: int, bottom: int, stops: list) -> None:
    for y in range(top, bottom):
        draw.line([(0, y), (WIDTH, y)], fill=_mix(stops, (y - top) / max(bottom - top - 1, 1)))


def _sun(image: Image.Image) -> Image.Image:
    """A soft glow, then the disc, clipped at the horizon (it is setting into the sea)."""
    x, y, r = SUN
    glow = Image.new("L", image.size, 0)
    ImageDraw.Draw(glow).ellipse([x - 3 * r, y - 3 * r, x + 3 * r, y + 3 * r], fill=110)
    glow = glow.filter(ImageFilter.GaussianBlur(r * 1.2))
    image = Image.composite(Image.new("RGB", image.size, (255, 190, 120)), image, glow)
    disc = Image.new("L", image.size, 0)
    ImageDraw.Draw(disc).ellipse([x - r, y - r, x + r, y + r], fill=255)
    disc.paste(0, (0, HORIZON, WIDTH, HEIGHT))
    disc = disc.filter(ImageFilter.GaussianBlur(1.5))
    return Image.composite(Image.new("RGB", image.size, (255, 236, 180)), image, disc)


def _waves(draw: ImageDraw.ImageDraw) -> None:
    """Reflection streaks under the sun and a few wave lines, wider and bolder near the eye."""
    rng = random.Random(7)  # fixed: the sample must not change between runs
    for y in range(HORIZON + 4, HEIGHT, 7):
        depth = (y - HORIZON) / (HEIGHT - HORIZON)
        half = (20 + 110 * depth) * rng.uniform(0.45, 1.0)
        x = SUN[0] + rng.uniform(-12, 12) * depth
        draw.line([(x - half, y), (x + half, y)], fill=(255, 196, 130), width=1 + round(2 * depth))
    for y in range(HORIZON + 14, HEIGHT, 22):
        depth = (y - HORIZON) / (HEIGHT - HORIZON)
        for _ in range(3):
            length = (50 + 160 * depth) * rng.uniform(0.6, 1.2)
            left = rng.uniform(-40, WIDTH)
            box = [left, y - 4 - 5 * depth, left + length, y + 4 + 5 * depth]
            draw.arc(box, 200, 340, fill=(150, 118, 160), width=1 + round(2 * depth))


def make_sample(path: Path) -> Path:
    """Draw the landscape and save it as a PNG at ``path``."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    _gradient(draw, 0, HORIZON, SKY)
    image = _sun(image)
    draw = ImageDraw.Draw(image)
    _gradient(draw, HORIZON, HEIGHT, SEA)
    _waves(draw)
    image.save(path, optimize=True)
    return path


if __name__ == "__main__":
    out = make_sample(Path(__file__).with_name("sample-image.png"))
    print(out, out.stat().st_size, "bytes")
