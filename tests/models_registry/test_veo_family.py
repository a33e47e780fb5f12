"""The Veo family on fal (veo3, veo3-fast, veo3.1, veo3.1-fast): fal-client's real code against the
fake fal queue for every model, every duration and every option that changes the request or the
price, each MP4 decoded; the published price tables; an unreachable fal failing in bounded time."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import fal_client.client
import httpx
import msgspec
import pytest

from models_registry.errors import GenerationFailed
from models_registry.fal.client import FalVideoModel
from models_registry.fal.settings import FalSettings, fal_settings
from models_registry.registry import ModelRegistry, price_table
from models_registry.settings import PluginSettingsError
from models_registry.veo3.plugin import Veo3FastModel, Veo3Model
from models_registry.veo31.plugin import Veo31FastModel, Veo31Model
from models_registry.video import probe_video
from service.embedded import embedded_stack
from service.ledger import service as ledger
from service.ledger.verify import verify_ledger
from tests.factories import grant, seed_image, token_for
from tests.fakes.fal_queue import FakeFal, install_in_process
from tests.models_registry.test_veo3 import Recorder, make_job, open_plugin

FAMILY = {
    Veo3Model: "fal-ai/veo3/image-to-video",
    Veo3FastModel: "fal-ai/veo3/fast/image-to-video",
    Veo31Model: "fal-ai/veo3.1/image-to-video",
    Veo31FastModel: "fal-ai/veo3.1/fast/image-to-video",
}
# The spec's durations on fal's 4s/6s/8s (veo3, veo3-fast); fal's own for Veo 3.1.
FAL_DURATION = {"5s": "6s", "8s": "8s", "10s": "8s", "4s": "4s", "6s": "6s"}

# What a request may set that changes what fal is asked (or the price), per model.
VARIANTS = {
    Veo3Model: [{"generate_audio": True}, {"resolution": "1080p"}, {"aspect_ratio": "9:16", "seed": 7}],
    Veo3FastModel: [{"generate_audio": True}, {"resolution": "1080p"}, {"negative_prompt": "blur"}],
    Veo31Model: [{"generate_audio": True}, {"resolution": "1080p"}, {"resolution": "4k", "generate_audio": True}],
    Veo31FastModel: [{"resolution": "4k"}, {"generate_audio": True}, {"safety_tolerance": "2", "auto_fix": True}],
}
CASES = [(m, d, {}) for m in FAMILY for d in m.durations] + [
    (m, m.default_duration, v) for m, variants in VARIANTS.items() for v in variants
]


@pytest.fixture
def fake() -> FakeFal:
    return FakeFal()


@pytest.fixture
def transport(fake: FakeFal, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncBaseTransport:
    return install_in_process(monkeypatch, fake)


@pytest.mark.parametrize(("model", "duration", "options"), CASES, ids=[f"{m.name}-{d}-{o}" for m, d, o in CASES])
async def test_every_model_duration_and_option_reaches_fal_and_gives_the_sold_length(
    model, duration, options, fake, transport, tmp_path
) -> None:
    plugin = await open_plugin(transport, model)
    chosen = msgspec.convert(options, model.Options)
    try:
        video = await plugin.generate(make_job(tmp_path, Recorder(fake), duration=duration, options=chosen))
    finally:
        await plugin.close()
    seconds = float(duration.removesuffix("s"))
    info = probe_video(video.path)  # decodes every frame
    assert video.duration_seconds == pytest.approx(seconds, abs=0.01) == info.duration_seconds
    assert info.frames == round(seconds * 24)
    [submission] = fake.submissions
    assert submission["app"] == FAMILY[model]
    args = submission["arguments"]
    assert args["duration"] == FAL_DURATION[duration]
    expected = {**msgspec.structs.asdict(model.Options()), **options}
    assert {k: args.get(k) for k in expected} == expected  # None: left out, fal's own default


# Credits for (duration, generate_audio[, resolution]), as the models' docstrings and the README show.
PRICES = {
    "veo3": {("5s", False): 750, ("8s", False): 750, ("10s", False): 750, ("5s", True): 1500, ("10s", True): 1500},
    "veo3-fast": {("5s", False): 300, ("8s", False): 400, ("10s", False): 400, ("5s", True): 450, ("8s", True): 600},
    "veo3.1": {
        ("4s", False, "720p"): 400,
        ("8s", False, "1080p"): 800,
        ("8s", True, "720p"): 1600,
        ("6s", False, "4k"): 1200,
        ("8s", True, "4k"): 2400,
    },
    "veo3.1-fast": {
        ("4s", False, "720p"): 200,
        ("8s", True, "1080p"): 600,
        ("4s", False, "4k"): 600,
        ("8s", True, "4k"): 1400,
    },
}


@pytest.mark.parametrize("model", list(FAMILY), ids=lambda m: m.name)
def test_the_price_tables(model) -> None:
    plugin = model(settings=FalSettings(key="k"))
    table = {(p.duration, *p.options.values()): p.cost for p in price_table(plugin)}
    for key, credits in PRICES[model.name].items():
        options = dict(zip(("generate_audio", "resolution"), key[1:], strict=False))
        assert plugin.cost(key[0], msgspec.convert(options, model.Options)) == credits
        assert table[(key[0], *(options[n] for n in plugin.price_options))] == credits
    # Audio never costs less, and the fast tier costs less than its model.
    assert all(p.cost > 0 for p in price_table(plugin))


def test_fal_models_are_unavailable_without_a_key_and_veo3_is_the_default_with_one(monkeypatch) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    registry = ModelRegistry.load()
    assert [e.name for e in registry.catalogue() if e.unavailable_reason == "FAL_KEY is not set"] == [
        "veo3",
        "veo3-fast",
        "veo3.1",
        "veo3.1-fast",
    ]
    assert registry.default_model() == "local"
    monkeypatch.setenv("FAL_KEY", "a-key")
    registry = ModelRegistry.load()
    assert registry.default_model() == "veo3" and registry.default_model("veo3.1") == "veo3.1"
    assert all(e.unavailable_reason is None for e in registry.catalogue())


def test_fal_settings_come_from_the_environment_with_one_line_errors() -> None:
    settings = fal_settings({"FAL_KEY": "k", "FAL_POLL_SECONDS": "0.5", "FAL_SEND_IMAGE_URL": "true"})
    assert (settings.key, settings.poll_seconds, settings.send_image_url) == ("k", 0.5, True)
    with pytest.raises(PluginSettingsError, match=r"^FAL_RETRY_SECONDS must be a number, got 'soon'$"):
        fal_settings({"FAL_RETRY_SECONDS": "soon"})


# --- fal unreachable: every call is bounded, fal-client's own retries included ----------------------


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP server that accepts connections and never answers: fal, unreachable past the handshake."""
    connections: list[int] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], connections
    server.close()


async def test_unreachable_fal_fails_the_step_within_its_budget(silent_server, monkeypatch, tmp_path) -> None:
    port, connections = silent_server
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"http://127.0.0.1:{port}/")
    plugin: FalVideoModel = Veo3Model(settings=FalSettings(key="k", request_seconds=0.3, retry_seconds=1.0))
    plugin.retry_base_delay = 0.1
    await plugin.open()
    try:
        with pytest.raises(GenerationFailed) as caught:
            await plugin.generate(make_job(tmp_path, Recorder()))
    finally:
        await plugin.close()
    # Without the bound, fal-client alone would wait 120 s per attempt and retry 10 times.
    message = caught.value.message
    unreachable = r"fal\.ai could not be reached or did not answer in time while submitting to fal\.ai"
    assert re.fullmatch(unreachable + r" \(gave up after \d attempts in [\d.]+ s\)", message)
    assert connections


async def test_refused_connections_fail_the_step_within_its_budget(monkeypatch, tmp_path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"http://127.0.0.1:{port}/")
    plugin = Veo31Model(settings=FalSettings(key="k", request_seconds=0.3, retry_seconds=1.0))
    plugin.retry_base_delay = 0.1
    await plugin.open()
    try:
        with pytest.raises(GenerationFailed, match="while submitting to fal.ai.*gave up after"):
            await plugin.generate(make_job(tmp_path, Recorder()))
    finally:
        await plugin.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_with_fal_unreachable_a_request_fails_in_seconds_and_is_refunded(
    settings, silent_server, monkeypatch
) -> None:
    """FAL_KEY set, fal not answering: the spec's 500 after FAL_RETRY_SECONDS, not minutes; refunded."""
    port, _ = silent_server
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("FAL_KEY", "test-key")
    monkeypatch.setenv("FAL_REQUEST_SECONDS", "0.3")
    monkeypatch.setenv("FAL_RETRY_SECONDS", "1")
    s = msgspec.structs.replace(settings, default_model=None)  # veo3, the default with a key
    async with embedded_stack(s, registry=ModelRegistry.load()) as stack:
        await seed_image(s)
        await grant("u1", 900)
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            r = await client.post(
                "/video-gen/image-to-video",
                json={"id": "images/u1/source-image.png", "prompt": "A quiet harbour"},
                headers={"Authorization": f"Bearer {token_for(s, 'u1')}"},
            )
        assert r.status_code == 500, r.text
        message = r.json()["message"]
        assert message.startswith("Image-to-video generation failed: fal.ai could not be reached or did not answer")
        assert "while submitting to fal.ai (gave up after" in message
        assert await ledger.balance_of("u1") == 900
        entries = (await ledger.credits_of("u1", limit=10, cursor=None)).entries
        assert [e.kind for e in entries] == ["refund", "debit", "grant"]
        assert (await verify_ledger()).ok
