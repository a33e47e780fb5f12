"""OpenTelemetry traces: configured by the standard ``OTEL_*`` variables, off when none is set.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``) is set, unless ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none``. The SDK itself reads the rest (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, the exporter's endpoint, headers, timeout).

What is traced: the API's requests (Litestar's own OpenTelemetry plugin, ``service.app``),
redis-py, asyncpg and httpx (fal-client's calls) everywhere, and in a worker one ``job`` span per
delivery with ``job.queued`` (the time on the stream), ``generation.charge``, ``model.generate``
and ``storage.upload`` inside it. The job message carries the W3C trace context of the request
that queued it (``JobMessage.trace_context``), so one trace runs from the HTTP request through the
queue to the provider calls and the upload. Off, every call here is OpenTelemetry's no-op.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

tracer = trace.get_tracer("video_gen")
_ENABLING = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER")
_state: dict[str, Any] = {}


def tracing_wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("OTEL_TRACES_EXPORTER", "") == "none":
        return False
    return any(env.get(name) for name in _ENABLING)


def configure_tracing(service_name: str, *, exporter: Any = None) -> Any:
    """Install the SDK's tracer provider and the redis, asyncpg and httpx instrumentations, once per
    process; returns the provider, or None when tracing is off. ``exporter`` (tests: an in-memory
    one) replaces the one the variables name and exports each span as it ends."""
    if "provider" in _state:
        return _state["provider"]
    if exporter is None and not tracing_wanted():
        return None
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter_from_env()))
    trace.set_tracer_provider(provider)
    instrumentors = [RedisInstrumentor(), AsyncPGInstrumentor(), HTTPXClientInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    _state.update(provider=provider, instrumentors=instrumentors)
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the exporter, remove the instrumentations (a process's end; tests)."""
    provider = _state.pop("provider", None)
    for instrumentor in _state.pop("instrumentors", []):
        instrumentor.uninstrument()
    if provider is not None:
        provider.shutdown()


def _exporter_from_env() -> Any:
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*


def current_context() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``...), for a job message; {} when
    nothing is traced."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def tracing_on() -> bool:
    """Whether a tracer provider is installed (ours, or one an auto-instrumentation set up):
    without one every span is a no-op, and the worker's hot path skips making them."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Span]:
    """``tracer.start_as_current_span(name)``, or nothing at all when tracing is off."""
    if not tracing_on():
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


@contextmanager
def job_span(carrier: Mapping[str, str], submitted_at: float, **attributes: Any) -> Iterator[Span]:
    """The span of one delivery of a job, a child of the request that queued it, preceded by a
    ``job.queued`` span from ``submitted_at`` (Unix time) to now."""
    if not tracing_on():
        yield trace.INVALID_SPAN
        return
    parent = propagate.extract(dict(carrier))
    now_ns = time.time_ns()
    queued = tracer.start_span(
        "job.queued", context=parent, kind=SpanKind.CONSUMER, start_time=min(int(submitted_at * 1e9), now_ns)
    )
    queued.end(end_time=now_ns)
    with tracer.start_as_current_span("job", context=parent, kind=SpanKind.CONSUMER, attributes=attributes) as span:
        yield span


def trace_ids() -> dict[str, str]:
    """The current ``trace_id`` and ``span_id`` (hex, as trace backends show them); {} untraced."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current ``trace_id`` and ``span_id`` on each line, when traced."""
    for key, value in trace_ids().items():
        event_dict.setdefault(key, value)
    return event_dict
