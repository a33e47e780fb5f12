"""Validation messages in class-validator's words.

Clients of the original (NestJS) API parse these sentences, so they are reproduced exactly,
and every problem of a body is reported at once, as class-validator does.
"""

from __future__ import annotations

from typing import Any

from models_registry.options import option_messages
from models_registry.registry import ModelRegistry, options_type
from service.core.validation import required_string

ALLOWED = ("id", "prompt", "duration", "projectId", "model", "options")


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


def image_to_video_messages(body: Any, registry: ModelRegistry, default_model: str) -> list[str]:
    """Every validation message for an image-to-video body (empty when it is valid)."""
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    messages = [f"property {key} should not exist" for key in body if key not in ALLOWED]
    messages += required_string(body, "id")
    messages += required_string(body, "prompt")
    messages += _model_duration_options(body, registry, default_model)
    messages += _optional_string(body, "projectId")
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        messages.append("options must be an object")
    return messages
