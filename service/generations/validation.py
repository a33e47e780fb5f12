"""Validation messages in class-validator's words.

Clients of the original (NestJS) API parse these sentences, so they are reproduced exactly,
and every problem of a body is reported at once, as class-validator does.
"""

from __future__ import annotations

from typing import Any

from models_registry.options import option_messages
from models_registry.registry import ModelRegistry, options_type
from service.core.settings import Settings
from service.core.validation import has_nul, required_string
from service.webhooks.messages import EVENTS
from service.webhooks.safety import url_problems

ALLOWED = ("id", "prompt", "duration", "projectId", "model", "options", "webhookUrl", "webhookEvents")
MAX_PROJECT_ID_CHARS = 255  # the generation record's column
MAX_OPTIONS_DEPTH = 8  # options are a model's flat settings; deep nesting is an attack, not a setting


def _max_length(body: dict[str, Any], name: str, limit: int) -> list[str]:
    """class-validator's ``@MaxLength(limit)``."""
    value = body.get(name)
    if isinstance(value, str) and len(value) > limit:
        return [f"{name} must be shorter than or equal to {limit} characters"]
    return []


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether ``value`` nests more than ``levels`` containers (stops looking at ``levels``)."""
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if children is None:
        return False
    return levels <= 0 or any(_deeper_than(child, levels - 1) for child in children)


def _clean_strings(body: dict[str, Any]) -> list[str]:
    messages = [f"{name} must not contain null characters" for name in ALLOWED if has_nul(body.get(name))]
    options = body.get("options")
    if isinstance(options, dict) and _deeper_than(options, MAX_OPTIONS_DEPTH):
        messages.append(f"options must not be nested more than {MAX_OPTIONS_DEPTH} levels deep")
    return messages


def _optional_string(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        return [f"{name} must be a string"]
    return []


def _model_duration_options(body: dict[str, Any], registry: ModelRegistry, default_model: str) -> list[str]:
    messages = _optional_string(body, "model")
    model = body.get("model")
    if isinstance(model, str) and model not in registry:
        return [*messages, f"model must be one of the following values: {', '.join(registry.names())}"]
    name = model if isinstance(model, str) else default_model
    if name not in registry:
        return messages
    plugin = registry.get(name)
    duration = body.get("duration")
    if duration is not None:
        if not isinstance(duration, str):
            messages.append("duration must be a string")
        if duration not in plugin.durations:
            messages.append(f"duration must be one of the following values: {', '.join(plugin.durations)}")
    options = body.get("options")
    if isinstance(options, dict):
        messages += option_messages(options_type(plugin), options)
    if (reason := registry.unavailable_reason(name)) is not None:
        messages.append(f"model {name} is not available here: {reason}")
    return messages


def _webhook(body: dict[str, Any], settings: Settings | None) -> list[str]:
    url, events = body.get("webhookUrl"), body.get("webhookEvents")
    messages: list[str] = []
    if events is not None:
        if not isinstance(events, list):
            messages.append("webhookEvents must be an array")
        elif not events:
            messages.append("webhookEvents should not be empty")
        elif any(e not in EVENTS for e in events):
            messages.append(f"each value in webhookEvents must be one of the following values: {', '.join(EVENTS)}")
        if url is None:
            messages.append("webhookUrl should not be empty")
    if url is None:
        return messages
    if settings is None or not settings.webhook_keys:
        return [*messages, "webhookUrl is not accepted: this server has no WEBHOOK_SECRET to sign webhooks with"]
    return messages + url_problems(
        url, allow_http=settings.webhook_allow_http, allow_private=settings.webhook_allow_private
    )


def image_to_video_messages(
    body: Any,
    registry: ModelRegistry,
    default_model: str,
    *,
    max_prompt_chars: int = 2000,
    settings: Settings | None = None,
) -> list[str]:
    """Every validation message for an image-to-video body (empty when it is valid); ``settings``
    say which webhook URLs are accepted (none without them)."""
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    messages = [f"property {key} should not exist" for key in body if key not in ALLOWED]
    messages += required_string(body, "id")
    messages += required_string(body, "prompt")
    messages += _max_length(body, "prompt", max_prompt_chars)
    messages += _model_duration_options(body, registry, default_model)
    messages += _optional_string(body, "projectId")
    messages += _max_length(body, "projectId", MAX_PROJECT_ID_CHARS)
    messages += _clean_strings(body)
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        messages.append("options must be an object")
    messages += _webhook(body, settings)
    return messages
