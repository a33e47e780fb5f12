"""The model plugin contract: what a plugin package imports (and all it imports of video-gen).

``from models_registry import ModelPlugin, GenerationJob, GeneratedVideo, ProviderRejected, ...``;
the PyAV helpers are in ``models_registry.video``. The service maps the errors to its HTTP answers
in one place; a plugin never imports ``service``.
"""

from models_registry.base import (
    ENTRY_POINT_GROUP,
    GeneratedVideo,
    GenerationJob,
    ModelPlugin,
    Progress,
    SourceImage,
    parse_duration,
)
from models_registry.errors import (
    GenerationFailed,
    InvalidOptions,
    ModelError,
    ModelUnavailable,
    ProviderRejected,
    UnknownModel,
    UnsupportedDuration,
)
from models_registry.options import NoOptions
from models_registry.settings import PluginSettingsError, read_settings

__all__ = [
    "ENTRY_POINT_GROUP",
    "GeneratedVideo",
    "GenerationFailed",
    "GenerationJob",
    "InvalidOptions",
    "ModelError",
    "ModelPlugin",
    "ModelUnavailable",
    "NoOptions",
    "PluginSettingsError",
    "Progress",
    "ProviderRejected",
    "SourceImage",
    "UnknownModel",
    "UnsupportedDuration",
    "parse_duration",
    "read_settings",
]
