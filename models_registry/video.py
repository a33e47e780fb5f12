"""Small PyAV helpers: probe a video's real numbers, trim it, or extend it to an exact length.

Every file written here is constant-frame-rate H.264 (yuv420p) in MP4 with one frame per
``1/fps`` tick, so "exact length" means exactly ``round(seconds * fps)`` frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream
from PIL import Image

H264_OPTIONS = {"preset": "veryfast", "crf": "20"}


@dataclass(frozen=True)
class VideoInfo:
    duration_seconds: float
    width: int
    height: int
    frames: int
    fps: float
    codec: str


class H264Writer:
    """Context manager writing frames to a CFR H.264/yuv420p MP4, frame ``i`` at ``i / fps``.

    Odd sizes are rounded down to even because yuv420p needs them; frames of another size or
    pixel format are converted by the encoder.
    """

    def __init__(self, path: Path | str, width: int, height: int, fps: Fraction | int) -> None:
        self.fps = Fraction(fps)
        self._container = av.open(str(path), mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=self.fps, options=H264_OPTIONS)
        self._stream.width, self._stream.height = width - width % 2, height - height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = 1 / self.fps
        self.frames = 0

    def write(self, frame: VideoFrame | Image.Image) -> None:
        if isinstance(frame, Image.Image):
            frame = VideoFrame.from_image(frame)
        # A decoded frame's I/P type would otherwise force the encoder's GOP structure.
        frame.pict_type = PictureType.NONE
        frame.pts, frame.time_base = self.frames, 1 / self.fps
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()


def _frames(path: Path | str) -> Iterator[tuple[VideoFrame, VideoStream]]:
    """Decode the first video stream, raising ``ValueError`` when there is none to decode."""
    try:
        with av.open(str(path)) as container:
            # FFmpeg reads a still image as a one-frame "video"; a provider's still is an error.
            if not container.streams.video or container.format.name.endswith(("_pipe", "image2")):
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame, stream
    except av.FFmpegError as exc:
        raise ValueError(f"{path}: not a decodable video ({exc})") from exc


def probe_video(path: Path | str) -> VideoInfo:
    """Decode every frame of ``path`` and report what is really there.

    ``duration_seconds`` is ``frames / fps`` (fps = the stream's average frame rate): exact for
    the CFR files this project writes, where it equals the container's duration, and independent
    of container metadata that providers sometimes get wrong.
    """
    info, _ = _probe(path)
    return info


def _probe(path: Path | str) -> tuple[VideoInfo, Fraction]:
    frames, stream, size = 0, None, (0, 0)
    for frame, stream in _frames(path):  # noqa: B007 (the last stream is the one probed)
        if not frames:
            size = (frame.width, frame.height)
        frames += 1
    if stream is None:
        raise ValueError(f"{path}: no decodable video frames")
    rate = Fraction(stream.average_rate or stream.guessed_rate or 0)
    if rate:
        duration = float(frames / rate)
    else:  # no rate recorded: fall back to the stream's own duration
        duration = float((stream.duration or 0) * stream.time_base)
        rate = Fraction(frames / duration).limit_denominator(1001) if duration else rate
    info = VideoInfo(duration, *size, frames, float(rate), stream.codec_context.name)
    return info, rate


def _source_format(src: Path | str) -> tuple[Fraction, int, int, int]:
    """(fps, width, height, frames) of ``src``."""
    info, rate = _probe(src)
    if not rate:
        raise ValueError(f"{src}: unknown frame rate")
    return rate, info.width, info.height, info.frames


def trim_video(src: Path, dst: Path, seconds: float) -> VideoInfo:
    """Re-encode the first ``seconds`` of ``src`` to ``dst`` (same fps and size, no audio).

    Used to cut a provider's longer clip to the length that was sold, e.g. 5 s out of 6 s.
    Raises ``ValueError`` if ``src`` is shorter than ``seconds``.
    """
    fps, width, height, available = _source_format(src)
    wanted = round(seconds * fps)
    if wanted < 1 or wanted > available:
        raise ValueError(f"cannot trim {float(available / fps):.3f}s video to {seconds}s")
    with H264Writer(dst, width, height, fps) as writer:
        for frame, _ in _frames(src):
            if writer.frames == wanted:
                break
            writer.write(frame)
    return probe_video(dst)


def _extension_positions(available: int, wanted: int) -> list[float]:
    """Source frame position for every output frame of an eased slow-down to a stop.

    The last ``k`` source frames are replayed over ``2k - 1`` output frames with a quadratic
    ease-out: speed starts at 1 source frame per output frame (no visible seam) and falls
    linearly to 0 on the last frame. If the source is too short for that, the final frame holds.
    """
    extra = wanted - available
    k = min(extra + 1, available)  # source frames in the slowed tail, the last one included
    start, span = available - k, 2 * k - 1
    positions = [float(i) for i in range(start)]
    for j in range(span):
        u = j / (span - 1) if span > 1 else 1.0
        positions.append(start + (k - 1) * (1 - (1 - u) ** 2))
    positions += [float(available - 1)] * (wanted - len(positions))
    return positions


def extend_video(src: Path, dst: Path, seconds: float) -> VideoInfo:
    """Make a ``seconds``-long video from a shorter ``src`` by slowing its end to a stop.

    Method: see ``_extension_positions``; in-between positions cross-fade the two neighbouring
    source frames, so nothing is invented beyond the source's own pixels (e.g. 8 s -> 10 s replays
    the last 2 s over 4 s, easing to rest). A ``seconds`` not longer than ``src`` just trims.
    """
    fps, width, height, available = _source_format(src)
    wanted = round(seconds * fps)
    if wanted <= available:
        return trim_video(src, dst, seconds)
    # Every frame goes through RGB, blended or not: mixing the two paths shows as a flicker.
    decoded = (frame.to_image() for frame, _ in _frames(src))
    pair = [next(decoded)]  # source frames floor(p) and floor(p) + 1
    index = 0  # source index of pair[0]
    with H264Writer(dst, width, height, fps) as writer:
        for position in _extension_positions(available, wanted):
            base, frac = math.floor(position), position - math.floor(position)
            while index < base:
                if len(pair) < 2:
                    pair.append(next(decoded))
                pair.pop(0)
                index += 1
            if frac > 1e-6 and len(pair) < 2:
                pair.append(next(decoded))
            writer.write(Image.blend(pair[0], pair[1], frac) if frac > 1e-6 else pair[0])
        decoded.close()
    return probe_video(dst)
