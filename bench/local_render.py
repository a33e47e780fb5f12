"""Benchmark: the local model's pan-and-zoom render against a plain encode of the same frames.

The baseline writes the cover-fitted still image ``seconds * fps`` times through the same H.264
writer (encoding only); the measured run renders the pan-and-zoom clip (resampling every frame
plus encoding). Both run in this command, so the ratio shows what the motion costs on this
machine, and the absolute seconds show the "a 5 s clip at 1024x576 in a few seconds" target.

    uv run python -m bench.local_render [--seconds 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from models_registry.local.render import render_pan_zoom
from models_registry.video import H264Writer, probe_video

SAMPLE = Path(__file__).resolve().parents[1] / "service" / "assets" / "sample-image.png"
WIDTH, HEIGHT, FPS = 1024, 576, 24


def plain_encode(image_bytes: bytes, out: Path, seconds: int) -> None:
    import io

    still = ImageOps.fit(Image.open(io.BytesIO(image_bytes)).convert("RGB"), (WIDTH, HEIGHT))
    with H264Writer(out, WIDTH, HEIGHT, FPS) as writer:
        for _ in range(seconds * FPS):
            writer.write(still)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(seconds: int, repeat: int) -> None:
    data = SAMPLE.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        base_out, motion_out = Path(tmp) / "still.mp4", Path(tmp) / "motion.mp4"
        base = [timed(plain_encode, data, base_out, seconds) for _ in range(repeat)]
        motion = [
            timed(
                lambda: render_pan_zoom(
                    data, motion_out, seconds=seconds, width=WIDTH, height=HEIGHT, fps=FPS, seed="bench"
                )
            )
            for _ in range(repeat)
        ]
        info = probe_video(motion_out)
    b, m = statistics.median(base), statistics.median(motion)
    print(f"{seconds} s clip, {WIDTH}x{HEIGHT} @ {FPS} fps, median of {repeat}")
    print(f"{'run':<28} {'seconds':>8} {'vs baseline':>12}")
    print(f"{'baseline: encode a still':<28} {b:>8.2f} {1.0:>11.2f}x")
    print(f"{'local model: pan and zoom':<28} {m:>8.2f} {m / b:>11.2f}x")
    print(f"output: {info.frames} frames, {info.duration_seconds:.2f} s, {info.width}x{info.height} {info.codec}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    main(args.seconds, args.repeat)
