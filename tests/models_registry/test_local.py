"""The local pan-and-zoom model: real MP4s, decoded and measured."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from models_registry.base import GeneratedVideo, GenerationJob, Progress, SourceImage
from models_registry.local.plugin import LocalPanZoomModel, LocalSettings
from models_registry.local.render import _crop_box, _plan_shot, render_pan_zoom
from models_registry.settings import PluginSettingsError
from models_registry.video import probe_video

SAMPLE = Path(__file__).resolve().parents[2] / "service" / "assets" / "sample-image.png"


def decode_images(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel value, 0..255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def five_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "five.mp4"
    data = SAMPLE.read_bytes()
    return render_pan_zoom(data, out, seconds=5, width=320, height=180, seed="sunset")


def test_render_has_exact_frames_size_codec_and_duration(five_seconds: Path) -> None:
    info = probe_video(five_seconds)
    assert (info.frames, info.width, info.height, info.codec) == (120, 320, 180, "h264")
    assert info.fps == 24.0
    assert info.duration_seconds == 5.0
    with av.open(str(five_seconds)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.duration * stream.time_base) == 5.0  # the container agrees


def test_render_moves_every_frame_but_only_a_little(five_seconds: Path) -> None:
    images = decode_images(five_seconds)
    steps = [mean_abs_diff(a, b) for a, b in zip(images, images[1:])]
    whole_move = mean_abs_diff(images[0], images[-1])
    # Ease-in-out makes the very first and last steps tiny; the encoder may merge one of them.
    assert sum(step > 0 for step in steps) >= 0.95 * len(steps)
    # Measured: largest step about 2.0 of 255 at this size, over a whole move of about 35.
    assert max(steps) < 4.0
    assert max(steps) < whole_move / 8  # the motion is spread out, not a jump


def test_crop_moves_by_sub_pixel_amounts() -> None:
    shot, canvas = _plan_shot("sunset"), (400, 225)
    boxes = [_crop_box(shot, i / 119, canvas) for i in range(120)]
    shifts = [abs(b[0] - a[0]) + abs(b[1] - a[1]) for a, b in zip(boxes, boxes[1:])]
    assert all(0 < shift < 1.5 for shift in shifts)
    assert any(shift % 1 > 0.01 for shift in shifts)  # not whole-pixel jumps
    assert all(b[0] >= 0 and b[1] >= 0 and b[2] <= canvas[0] and b[3] <= canvas[1] for b in boxes)


def test_seed_picks_the_move_deterministically() -> None:
    assert _plan_shot("a prompt") == _plan_shot("a prompt")
    assert len({_plan_shot(str(i)) for i in range(12)}) > 1


def _inputs() -> dict[str, bytes]:
    photo = Image.open(SAMPLE).convert("RGB").resize((640, 360))
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    paletted = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    paletted.info["transparency"] = 0
    return {
        "jpeg": encode(photo, "JPEG"),
        "webp": encode(photo, "WEBP"),
        "rgba-png": encode(rgba, "PNG"),
        "grey-jpeg": encode(photo.convert("L"), "JPEG"),
        "grey-png": encode(photo.convert("L"), "PNG"),
        "paletted-png": encode(paletted, "PNG"),
        "tall-tiny": encode(photo.resize((31, 97)), "PNG"),
        "wide-huge": encode(photo.resize((3000, 400)), "JPEG"),
    }


@pytest.mark.parametrize("kind", list(_inputs()))
def test_render_accepts_any_image_format_mode_and_aspect(kind: str, tmp_path: Path) -> None:
    data = _inputs()[kind]
    out = render_pan_zoom(data, tmp_path / "out.mp4", seconds=1, width=96, height=54, fps=8)
    info = probe_video(out)
    assert (info.frames, info.width, info.height, info.duration_seconds) == (8, 96, 54, 1.0)


def test_render_rounds_odd_sizes_to_even(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    out = render_pan_zoom(data, tmp_path / "o.mp4", seconds=1, width=97, height=55, fps=4)
    assert (probe_video(out).width, probe_video(out).height) == (96, 54)


def test_render_rejects_bytes_that_are_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a decodable image"):
        render_pan_zoom(b"\x00garbage" * 100, tmp_path / "out.mp4", seconds=1)
    with pytest.raises(ValueError, match="not a decodable image"):
        render_pan_zoom(SAMPLE.read_bytes()[:2000], tmp_path / "out.mp4", seconds=1)  # truncated


def test_plugin_declares_the_contract() -> None:
    model = LocalPanZoomModel()
    assert model.name == "local"
    assert model.durations == ("5s", "8s", "10s")
    assert model.default_duration in model.durations
    assert model.timeout_seconds == 120
    assert [model.cost(d, model.Options()) for d in model.durations] == [750, 750, 750]
    assert model.description


def test_plugin_reads_its_own_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCAL_MODEL_WIDTH", "LOCAL_MODEL_HEIGHT", "LOCAL_MODEL_FPS"):
        monkeypatch.delenv(name, raising=False)
    assert (LocalPanZoomModel().width, LocalPanZoomModel().height, LocalPanZoomModel().fps) == (1024, 576, 24)
    monkeypatch.setenv("LOCAL_MODEL_WIDTH", "160")
    assert LocalPanZoomModel().width == 160
    monkeypatch.setenv("LOCAL_MODEL_FPS", "fast")
    with pytest.raises(PluginSettingsError, match="^LOCAL_MODEL_FPS must be an integer, got 'fast'$"):
        LocalPanZoomModel()


async def test_plugin_generates_a_real_video_of_the_sold_length(tmp_path: Path) -> None:
    model = LocalPanZoomModel(LocalSettings(width=160, height=90, fps=12))
    reports: list[Progress] = []

    async def report(progress: Progress) -> None:
        reports.append(progress)

    data = SAMPLE.read_bytes()
    image = SourceImage(key="images/u1/sample.png", data=data, content_type="image/png")
    job = GenerationJob(
        job_id="job-1",
        prompt="a calm sea",
        duration="5s",
        image=image,
        workdir=tmp_path,
        report_progress=report,
    )
    result = await model.generate(job)
    assert isinstance(result, GeneratedVideo)
    assert result.path == tmp_path / "job-1.mp4"
    assert result.duration_seconds == 5.0
    assert result.content_type == "video/mp4"
    info = probe_video(result.path)
    assert (info.frames, info.width, info.height) == (60, 160, 90)
    assert reports and reports[-1].fraction == 1.0
    fractions = [r.fraction for r in reports if r.fraction is not None]
    assert fractions == sorted(fractions)


def test_a_render_stops_when_on_frame_says_so(tmp_path: Path) -> None:
    from models_registry.local.render import RenderStopped

    seen: list[tuple[int, int]] = []

    def on_frame(done: int, count: int) -> None:
        seen.append((done, count))
        if done == 5:
            raise RenderStopped("stop")

    with pytest.raises(RenderStopped):
        render_pan_zoom(
            SAMPLE.read_bytes(), tmp_path / "x.mp4", seconds=5, width=64, height=36, fps=8, on_frame=on_frame
        )
    assert seen == [(n, 40) for n in range(1, 6)]


async def test_the_local_model_reports_rendering_progress_and_stops_when_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    import models_registry.local.plugin as plugin_module
    from models_registry.local.render import RenderStopped

    stopped = threading.Event()
    real = plugin_module.render_pan_zoom

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return real(*args, **kwargs)
        except RenderStopped:
            stopped.set()
            raise

    monkeypatch.setattr(plugin_module, "render_pan_zoom", watched)
    monkeypatch.setattr(plugin_module, "PROGRESS_EVERY", 0.005)  # a tiny render: read its progress often
    model = LocalPanZoomModel(LocalSettings(width=160, height=90, fps=8))
    reports: list[Progress] = []
    running = asyncio.Event()

    async def report(progress: Progress) -> None:
        reports.append(progress)
        if progress.fraction and progress.fraction > 0:
            running.set()

    data = SAMPLE.read_bytes()
    job = GenerationJob(
        job_id="j", prompt="p", duration="10s", image=SourceImage("k", data, "image/png"), workdir=tmp_path
    )
    job.report_progress = report
    whole = await model.generate(job)
    fractions = [r.fraction for r in reports]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    middle = fractions[1:-2]
    assert len(middle) >= 2 and middle == sorted(middle) and 0 < middle[0] < middle[-1] <= 0.9
    assert probe_video(whole.path).duration_seconds == 10.0

    reports.clear()
    running.clear()
    cancel_dir = tmp_path / "cancelled"
    cancel_dir.mkdir()
    job.workdir = cancel_dir
    task = asyncio.create_task(model.generate(job))
    await running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(stopped.wait, 60)  # the render thread stopped at its next frame
