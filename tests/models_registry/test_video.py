"""probe/trim/extend on real MP4s."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.audio.frame import AudioFrame
from PIL import Image, ImageChops, ImageStat

from models_registry.local.render import render_pan_zoom
from models_registry.video import extend_video, probe_video, trim_video

SAMPLE = Path(__file__).resolve().parents[2] / "service" / "assets" / "sample-image.png"


def decode_images(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


@pytest.fixture(scope="module")
def three_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s, 12 fps pan: 36 frames."""
    out = tmp_path_factory.mktemp("video") / "three.mp4"
    data = SAMPLE.read_bytes()
    return render_pan_zoom(data, out, seconds=3, width=160, height=90, fps=12, seed="b")


def write_with_audio(path: Path, seconds: int, fps: int = 24) -> Path:
    """A provider-like file: H.264 video plus an AAC track, as Veo3 returns."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 128, 72, "yuv420p"
        audio = container.add_stream("aac", rate=48000, layout="mono")
        for i in range(seconds * fps):
            image = Image.new("RGB", (128, 72), (i * 5 % 256, 80, 160))
            container.mux(video.encode(av.VideoFrame.from_image(image)))
        for i in range(seconds * 48000 // 1024):
            frame = AudioFrame(format="fltp", layout="mono", samples=1024)
            frame.planes[0].update(bytes(4 * 1024))
            frame.sample_rate, frame.pts, frame.time_base = 48000, i * 1024, Fraction(1, 48000)
            container.mux(audio.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def test_probe_reports_decoded_numbers(three_seconds: Path) -> None:
    info = probe_video(three_seconds)
    assert (info.frames, info.fps, info.duration_seconds) == (36, 12.0, 3.0)
    assert (info.width, info.height, info.codec) == (160, 90, "h264")


NOT_VIDEO = [b"", b"not a video at all" * 50, b"\x00\x00\x00\x18ftypmp42" + bytes(64)]


@pytest.mark.parametrize("content", NOT_VIDEO)
def test_probe_rejects_files_that_are_not_video(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="bad.mp4"):
        probe_video(path)


def test_probe_rejects_a_still_image(tmp_path: Path) -> None:
    path = tmp_path / "still.mp4"
    path.write_bytes(SAMPLE.read_bytes())
    with pytest.raises(ValueError, match="no video stream"):
        probe_video(path)


def test_probe_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        probe_video(tmp_path / "missing.mp4")


def test_trim_keeps_the_first_seconds_exactly(three_seconds: Path, tmp_path: Path) -> None:
    info = trim_video(three_seconds, tmp_path / "trim.mp4", 2)
    assert (info.frames, info.duration_seconds, info.fps) == (24, 2.0, 12.0)
    assert (info.width, info.height, info.codec) == (160, 90, "h264")
    source, trimmed = decode_images(three_seconds), decode_images(tmp_path / "trim.mp4")
    # The same frames, re-encoded.
    assert all(mean_abs_diff(a, b) < 2.0 for a, b in zip(source, trimmed))


def test_trim_drops_audio_and_keeps_the_frame_rate(tmp_path: Path) -> None:
    source = write_with_audio(tmp_path / "veo.mp4", seconds=3)
    info = trim_video(source, tmp_path / "five.mp4", 2)
    assert (info.frames, info.duration_seconds, info.fps) == (48, 2.0, 24.0)
    with av.open(str(tmp_path / "five.mp4")) as container:
        assert not container.streams.audio


def test_trim_refuses_to_lengthen(three_seconds: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot trim"):
        trim_video(three_seconds, tmp_path / "trim.mp4", 4)


def test_extend_slows_the_end_to_an_exact_length(three_seconds: Path, tmp_path: Path) -> None:
    info = extend_video(three_seconds, tmp_path / "long.mp4", 5)
    assert (info.frames, info.duration_seconds, info.fps) == (60, 5.0, 12.0)
    assert (info.width, info.height, info.codec) == (160, 90, "h264")
    source, extended = decode_images(three_seconds), decode_images(tmp_path / "long.mp4")
    # The head is the source untouched; the very end is the source's last frame.
    assert all(mean_abs_diff(a, b) < 2.0 for a, b in zip(source[:10], extended[:10]))
    assert mean_abs_diff(source[-1], extended[-1]) < 2.0
    # The slow-down never moves faster than the source did: no seam, no jump.
    source_steps = [mean_abs_diff(a, b) for a, b in zip(source, source[1:])]
    tail_steps = [mean_abs_diff(a, b) for a, b in zip(extended[11:], extended[12:])]
    assert max(tail_steps) <= max(source_steps) + 0.5
    assert all(step < 0.3 for step in tail_steps[-10:])  # coming to rest, without flicker


def test_extend_holds_the_last_frame_when_the_source_is_very_short(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    short = render_pan_zoom(data, tmp_path / "s.mp4", seconds=1, width=64, height=36, fps=8)
    info = extend_video(short, tmp_path / "long.mp4", 4)
    assert (info.frames, info.duration_seconds) == (32, 4.0)


def test_extend_to_a_shorter_length_trims(three_seconds: Path, tmp_path: Path) -> None:
    assert extend_video(three_seconds, tmp_path / "same.mp4", 2).frames == 24


def test_extend_a_provider_file_with_audio(tmp_path: Path) -> None:
    source = write_with_audio(tmp_path / "veo.mp4", seconds=2)
    info = extend_video(source, tmp_path / "long.mp4", 3)
    assert (info.frames, info.duration_seconds, info.fps) == (72, 3.0, 24.0)
