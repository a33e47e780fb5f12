"""The Veo3 plugin (and the shared fal client code) running fal-client's real code against a local
fake of fal's queue protocol. The other Veo models: ``test_veo_family.py``."""

from __future__ import annotations

import asyncio
import io
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import fal_client
import fal_client.client
import httpx
import pytest
from PIL import Image

from models_registry.base import GeneratedVideo, GenerationJob, Progress, SourceImage
from models_registry.errors import GenerationFailed, ProviderRejected
from models_registry.fal.errors import RetryableProviderError, classify, describe_detail
from models_registry.fal.settings import FalSettings
from models_registry.veo3.plugin import Veo3Model, Veo3Options
from models_registry.video import probe_video
from service.core.errors import from_model_error
from tests.fakes.fal_queue import FakeFal, install_in_process, start_fal_server

ROOT = Path(__file__).resolve().parents[2]


def png(width: int = 64, height: int = 36) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


class Recorder:
    """The job's callbacks, remembering what was reported and what the fake had seen by then."""

    def __init__(self, fake: FakeFal | None = None) -> None:
        self.fake = fake
        self.progress: list[Progress] = []
        self.saved: list[str] = []
        self.polls_when_saved: int | None = None

    async def report(self, progress: Progress) -> None:
        self.progress.append(progress)

    async def save(self, request_id: str) -> None:
        self.saved.append(request_id)
        self.polls_when_saved = self.fake.status_polls if self.fake else None


def make_job(
    tmp_path: Path, recorder: Recorder, *, prompt: str = "A calm sea at dawn", duration: str = "8s", **fields
) -> GenerationJob:
    image = fields.pop("image", SourceImage(key="images/u1/a.png", data=png(), content_type="image/png"))
    return GenerationJob(
        job_id="job-1",
        prompt=prompt,
        duration=duration,
        image=image,
        workdir=tmp_path,
        report_progress=recorder.report,
        save_provider_request_id=recorder.save,
        **fields,
    )


async def open_plugin(transport: httpx.AsyncBaseTransport | None, model: type = Veo3Model, **settings):
    plugin = model(settings=FalSettings(**{"key": "test-key", "poll_seconds": 0.01, **settings}), transport=transport)
    plugin.retry_base_delay = 0.001
    await plugin.open()
    return plugin


@pytest.fixture
def fake() -> FakeFal:
    return FakeFal()


@pytest.fixture
def transport(fake: FakeFal, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncBaseTransport:
    return install_in_process(monkeypatch, fake)


@pytest.fixture
async def veo3(transport: httpx.AsyncBaseTransport):
    plugin = await open_plugin(transport)
    yield plugin
    await plugin.close()


@pytest.mark.parametrize(
    ("duration", "fal_duration", "seconds"), [("5s", "6s", 5.0), ("8s", "8s", 8.0), ("10s", "8s", 10.0)]
)
async def test_each_duration_gives_a_real_video_of_that_length(veo3, fake, tmp_path, duration, fal_duration, seconds):
    video = await veo3.generate(make_job(tmp_path, Recorder(fake), duration=duration))
    assert isinstance(video, GeneratedVideo) and video.path.parent == tmp_path
    info = probe_video(video.path)  # decodes every frame
    assert video.duration_seconds == pytest.approx(seconds, abs=0.01) == info.duration_seconds
    assert info.frames == round(seconds * 24) and (info.width, info.height) == (320, 180)
    [submission] = fake.submissions
    assert submission["app"] == "fal-ai/veo3/image-to-video"
    args = submission["arguments"]
    assert args["duration"] == fal_duration and args["prompt"] == "A calm sea at dawn"
    assert args["generate_audio"] is False and args["image_url"].startswith("data:image/png;base64,")
    # The file host must not receive the FAL_KEY.
    assert fake.downloads == [{"request_id": next(iter(fake.requests)), "authorization": None}]
    assert veo3.cost(duration, Veo3Options()) == 750


async def test_request_id_is_saved_before_polling_and_progress_is_reported(veo3, fake, tmp_path):
    recorder = Recorder(fake)
    await veo3.generate(make_job(tmp_path, recorder))
    assert recorder.saved == list(fake.requests) and recorder.polls_when_saved == 0
    positions = [p.queue_position for p in recorder.progress if p.queue_position is not None]
    assert positions == [1, 0]
    messages = [p.message for p in recorder.progress]
    assert "Generating: step 1" in messages and "Generating: step 2" in messages


async def test_options_are_sent_as_fal_inputs_and_unset_ones_left_out(veo3, fake, tmp_path):
    options = Veo3Options(generate_audio=True, resolution="1080p", negative_prompt="blur")
    await veo3.generate(make_job(tmp_path, Recorder(), options=options))
    args = fake.submissions[0]["arguments"]
    assert (args["generate_audio"], args["resolution"], args["negative_prompt"]) == (True, "1080p", "blur")
    assert args["duration"] == "8s" and args["aspect_ratio"] == "auto"
    assert "seed" not in args and "auto_fix" not in args  # None: fal's own default


async def test_presigned_url_is_sent_when_configured(transport, fake, tmp_path):
    plugin = await open_plugin(transport, send_image_url=True)
    assert plugin.wants_image_url
    image = SourceImage(key="k", data=png(), content_type="image/png", url="https://bucket.example/k?sig=1")
    try:
        await plugin.generate(make_job(tmp_path, Recorder(), image=image))
    finally:
        await plugin.close()
    assert fake.submissions[0]["arguments"]["image_url"] == "https://bucket.example/k?sig=1"


@pytest.mark.parametrize(
    ("prompt", "reason"),
    [
        ("[policy] a violent scene", "content policy violation: The content could not be processed"),
        ("[invalid] anything", "Unsupported image: the image could not be decoded"),
        ("[resultpolicy] flagged later", "content policy violation"),
    ],
)
async def test_422_becomes_provider_rejected_with_the_reason(veo3, tmp_path, prompt, reason):
    with pytest.raises(ProviderRejected) as caught:
        await veo3.generate(make_job(tmp_path, Recorder(), prompt=prompt))
    assert from_model_error(caught.value).status_code == 400
    assert caught.value.message.startswith("Veo3 rejected the request: ") and reason in caught.value.message


async def test_oversized_image_is_refused_before_submitting(veo3, fake, tmp_path):
    big = SourceImage(key="k", data=b"\x89PNG" + bytes(8 * 1024 * 1024), content_type="image/png")
    with pytest.raises(ProviderRejected, match="at most 8 MB"):
        await veo3.generate(make_job(tmp_path, Recorder(), image=big))
    assert fake.submissions == []


async def test_5xx_twice_then_success_submits_three_times(veo3, fake, tmp_path):
    video = await veo3.generate(make_job(tmp_path, Recorder(), prompt="[fail:2] waves"))
    assert video.duration_seconds == pytest.approx(8.0, abs=0.01)
    assert len(fake.submissions) == 3 and len(fake.requests) == 1


async def test_status_5xx_is_retried_without_resubmitting(veo3, fake, tmp_path):
    await veo3.generate(make_job(tmp_path, Recorder(), prompt="[statusfail:2] waves"))
    assert len(fake.submissions) == 1


async def test_429_is_retried_by_the_plugin_too(veo3, fake, tmp_path, monkeypatch):
    # fal-client retries 429 itself (10 attempts); turn that off so the plugin's retry is tested.
    monkeypatch.setattr(fal_client.client, "MAX_ATTEMPTS", 1)
    await veo3.generate(make_job(tmp_path, Recorder(), prompt="[throttle:2] waves"))
    assert len(fake.submissions) == 3


async def test_persistent_5xx_fails_after_bounded_retries(veo3, fake, tmp_path):
    with pytest.raises(GenerationFailed) as caught:
        await veo3.generate(make_job(tmp_path, Recorder(), prompt="[fail] waves"))
    assert "HTTP 500" in caught.value.message and "gave up after 3 attempts" in caught.value.message
    assert from_model_error(caught.value).message.startswith("Image-to-video generation failed: ")
    assert len(fake.submissions) == 3


async def test_completed_with_error_is_a_failure(veo3, tmp_path):
    with pytest.raises(GenerationFailed, match="Veo3 backend crashed"):
        await veo3.generate(make_job(tmp_path, Recorder(), prompt="[error] waves"))


async def test_result_without_video_or_too_short_video_fails_clearly(veo3, tmp_path):
    with pytest.raises(GenerationFailed, match="no video URL"):
        await veo3.generate(make_job(tmp_path, Recorder(), prompt="[nourl] waves"))
    with pytest.raises(GenerationFailed, match=r"4\.00 s video for a 6s request; too short to make 5s"):
        await veo3.generate(make_job(tmp_path, Recorder(), prompt="[short] waves", duration="5s"))


async def test_missing_fal_key_fails_plainly(transport, fake, tmp_path):
    plugin = await open_plugin(transport, key=None)
    assert plugin.readiness() == "FAL_KEY is not set"  # the registry refuses it before any charge
    with pytest.raises(GenerationFailed) as caught:
        await plugin.generate(make_job(tmp_path, Recorder()))
    await plugin.close()
    assert from_model_error(caught.value).message == "Image-to-video generation failed: FAL_KEY is not set"
    assert from_model_error(caught.value).status_code == 500 and fake.submissions == []


async def test_rejected_fal_key_says_so(transport, tmp_path):
    plugin = await open_plugin(transport, key="wrong-key")
    with pytest.raises(GenerationFailed, match="rejected the FAL_KEY"):
        await plugin.generate(make_job(tmp_path, Recorder()))
    await plugin.close()


async def test_resume_polls_the_saved_request_and_never_resubmits(veo3, fake, tmp_path):
    earlier = fal_client.AsyncClient(key="test-key")  # stands for the crashed worker's submission
    first = await earlier.submit(
        "fal-ai/veo3/image-to-video",
        {"prompt": "earlier delivery", "duration": "8s", "image_url": "https://bucket.example/a.png"},
    )
    await (await earlier._client).aclose()
    recorder = Recorder(fake)
    video = await veo3.generate(make_job(tmp_path, recorder, provider_request_id=first.request_id))
    assert video.duration_seconds == pytest.approx(8.0, abs=0.01)
    assert len(fake.submissions) == 1 and recorder.saved == []
    assert fake.requests[first.request_id].polls > 0


async def test_overall_timeout_fails_and_cancels_the_request(veo3, fake, tmp_path):
    veo3.timeout_seconds = 0.4  # the plugin stops at half of that, before the worker would
    with pytest.raises(GenerationFailed, match=r"did not finish within 0\.2 s \(fal request \w+\)"):
        # Wrapped as the worker does: the plugin's own deadline must fire first.
        await asyncio.wait_for(veo3.generate(make_job(tmp_path, Recorder(), prompt="[never] waves")), 0.4)
    assert fake.cancelled == list(fake.requests)


def test_classification_of_fal_errors():
    request = httpx.Request("GET", "https://queue.fal.run/x")
    for status in (429, 500, 502, 503):
        response = httpx.Response(status, request=request)
        error = fal_client.FalClientHTTPError("busy", status, {}, response)
        assert isinstance(classify(error, "polling"), RetryableProviderError)
    refused = httpx.ConnectError("refused", request=request)
    assert isinstance(classify(refused, "submitting"), RetryableProviderError)
    not_found = fal_client.FalClientHTTPError("Request not found", 404, {}, httpx.Response(404, request=request))
    assert classify(not_found, "polling").message == "fal.ai answered HTTP 404 while polling: Request not found"
    assert classify(ValueError("a bug"), "polling") is None
    assert describe_detail([{"loc": ["body", "duration"], "msg": "bad", "type": "enum"}]) == "bad (duration)"


# --- The fake as a real HTTPS server in another process ------------------------------------------


@pytest.fixture(scope="module")
def fal_server(tmp_path_factory: pytest.TempPathFactory):
    base_url, ca_path, stop = start_fal_server(tmp_path_factory.mktemp("fal-server"))
    yield base_url, ca_path
    stop()


def server_records(base_url: str, ca_path: Path) -> dict:
    trust = ssl.create_default_context(cafile=str(ca_path))
    return httpx.get(f"{base_url}/_control/submissions", verify=trust).json()


@pytest.mark.subprocess_server
async def test_in_process_plugin_against_https_server(fal_server, tmp_path, monkeypatch):
    base_url, ca_path = fal_server
    # FAL_QUEUE_RUN_HOST is read when fal-client is imported, long before this test: patch its result.
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"{base_url}/")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
    plugin = await open_plugin(None)
    try:
        job = make_job(tmp_path, Recorder(), prompt="[fail:1] https in process", duration="5s")
        video = await plugin.generate(job)
    finally:
        await plugin.close()
    assert video.duration_seconds == pytest.approx(5.0, abs=0.01)
    prompts = [s["arguments"]["prompt"] for s in server_records(base_url, ca_path)["submissions"]]
    assert prompts.count("[fail:1] https in process") == 2


DRIVER = """
import asyncio, json, sys
from pathlib import Path
from models_registry.base import GenerationJob, SourceImage
from models_registry.veo3.plugin import Veo3Model

async def main():
    plugin = Veo3Model()  # FAL_KEY, FAL_POLL_SECONDS: read from the environment
    await plugin.open()
    image = SourceImage(key="k", data=Path(sys.argv[1]).read_bytes(), content_type="image/png")
    job = GenerationJob(job_id="j", prompt="env configured", duration="10s", image=image,
                        workdir=Path(sys.argv[2]))
    video = await plugin.generate(job)
    await plugin.close()
    print(json.dumps({"duration": video.duration_seconds, "path": str(video.path)}))

asyncio.run(main())
"""


@pytest.mark.subprocess_server
def test_fal_client_reaches_the_server_through_env_vars(fal_server, tmp_path):
    base_url, ca_path = fal_server
    host = base_url.removeprefix("https://")
    image = tmp_path / "source.png"
    image.write_bytes(png())
    env = {
        **os.environ,
        "FAL_KEY": "test-key",
        "FAL_POLL_SECONDS": "0.02",
        "FAL_QUEUE_RUN_HOST": host,
        "FAL_RUN_HOST": host,
        "SSL_CERT_FILE": str(ca_path),
    }
    workdir = tmp_path / "work"  # the test's own: removed with it
    workdir.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(image), str(workdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["duration"] == pytest.approx(10.0, abs=0.01)
    assert probe_video(result["path"]).frames == 240
    prompts = [s["arguments"]["prompt"] for s in server_records(base_url, ca_path)["submissions"]]
    assert prompts.count("env configured") == 1


async def test_a_cancelled_job_cancels_its_fal_request(veo3, fake, tmp_path):
    recorder = Recorder(fake)
    running = asyncio.create_task(veo3.generate(make_job(tmp_path, recorder, prompt="[never] waves")))
    while not recorder.saved:
        await asyncio.sleep(0.01)
    running.cancel()  # what the worker does when the job is cancelled
    with pytest.raises(asyncio.CancelledError):
        await running
    await veo3.cancel(recorder.saved[0])  # then the hook, with the saved request id
    assert fake.cancelled == recorder.saved and fake.requests[recorder.saved[0]].cancelled
