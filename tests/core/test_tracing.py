"""Traces: off unless ``OTEL_*`` asks; on, one trace id runs from the API's HTTP span through the
job message to the worker's spans (queue wait, charge, model, upload) and the Redis calls."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.core import tracing
from service.core.tracing import configure_tracing, shutdown_tracing, tracing_wanted
from service.embedded import embedded_stack
from tests.conftest import make_settings
from tests.core.test_request_context import Captured
from tests.factories import TestModels, grant, image_request, seed_image, token_for


def test_off_unless_the_standard_variables_ask() -> None:
    assert not tracing_wanted({})
    assert not tracing_wanted({"OTEL_SERVICE_NAME": "x"})  # a name alone exports nothing
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing_wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert not tracing_wanted({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})


def test_without_a_tracer_provider_the_worker_makes_no_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setitem(tracing._state, "on", None)  # decided afresh, under the patch
    made: list[str] = []
    monkeypatch.setattr(tracing.tracer, "start_span", lambda name, *a, **k: made.append(name))
    monkeypatch.setattr(tracing.tracer, "start_as_current_span", lambda name, *a, **k: made.append(name))
    assert not tracing.tracing_on()
    with tracing.job_span({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, 0.0, job_id="j") as job:
        with tracing.span("generation.charge", model="m") as inner:
            assert not job.is_recording() and not inner.is_recording()
    assert made == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_one_trace_spans_the_api_and_the_worker(
    database_url: str, redis_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exporter = InMemorySpanExporter()
    captured = Captured(capsys)
    configure_tracing("video-gen-test", exporter=exporter)
    try:
        settings = make_settings(database_url, redis_prefix, tmp_path)
        await seed_image(settings)
        async with embedded_stack(settings, registry=TestModels.registry()) as stack:
            await grant("u1", 750)
            async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
                r = await client.post(
                    "/video-gen/image-to-video",
                    json=image_request(),
                    headers={"Authorization": f"Bearer {token_for(settings, 'u1')}"},
                )
                assert r.status_code == 200, r.text
                assert (await client.get("/health/live")).status_code == 200
        spans = exporter.get_finished_spans()
    finally:
        shutdown_tracing()

    [server] = [s for s in spans if s.kind == SpanKind.SERVER and s.name == "POST /video-gen/image-to-video"]
    trace_id = server.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    assert {"job.queued", "job", "generation.charge", "model.generate", "storage.upload"} <= names, names
    [job] = [s for s in in_trace if s.name == "job"]
    assert job.parent is not None and job.attributes["model"] == "local" and job.attributes["delivery"] == 1
    by_id = {s.context.span_id: s for s in in_trace}
    for name in ("generation.charge", "model.generate", "storage.upload"):
        [span] = [s for s in in_trace if s.name == name]
        assert span.parent is not None and by_id[span.parent.span_id] is job  # inside the worker's job span
    # the API's and the worker's Redis commands (redis-py instrumentation) are in it too
    redis_spans = [s for s in in_trace if s.attributes.get("db.system") == "redis"]
    assert len(redis_spans) >= 2, names  # the API's submit and the worker's reply-and-ack
    assert not [s for s in spans if s.kind == SpanKind.SERVER and "/health" in s.name]  # probes are not traced
    # the logs name the trace: the access line and the worker's lines of the job
    hex_id = format(trace_id, "032x")
    [access] = [e for e in captured.named("http.request") if e["path"] == "/video-gen/image-to-video"]
    [done] = captured.named("job.done")
    assert access["trace_id"] == hex_id and done["trace_id"] == hex_id
