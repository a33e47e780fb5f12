"""The errors of the plugin contract: what a plugin (or the registry) raises on purpose.

The service maps each to its HTTP answer in one place (``service.core.errors.from_model_error``):

| raised                 | the client gets                                           |
| ---------------------- | --------------------------------------------------------- |
| ``ProviderRejected``   | 400 with the message (the input was refused), refunded    |
| ``GenerationFailed``   | the spec's 500 ``Image-to-video generation failed: ...``, refunded |
| ``UnknownModel``       | 400 ``model must be one of the following values: ...``    |
| ``UnsupportedDuration``| 400 ``duration must be one of the following values: ...`` |
| ``InvalidOptions``     | 400 listing every problem of ``options``                  |
| ``ModelUnavailable``   | 400 ``model veo3 is not available here: FAL_KEY is not set`` |

Any other exception from ``generate`` also fails the job with the spec's 500, refunded.

``PluginError`` is not a request's error: a plugin that fails to load or validate stops the process.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of every error of the plugin contract; ``message`` is what the client may read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProviderRejected(ModelError):
    """The provider refused the input (content policy, validation): the client's to fix."""


class GenerationFailed(ModelError):
    """The generation did not produce a video (provider error, timeout, bad output)."""


class UnknownModel(ModelError):
    """A model name no installed plugin has; ``known`` lists the names that exist."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"model must be one of the following values: {', '.join(known)}")
        self.name, self.known = name, known


class UnsupportedDuration(ModelError):
    """A duration the model does not offer; ``offered`` lists the ones it does."""

    def __init__(self, duration: str, offered: tuple[str, ...]) -> None:
        super().__init__(f"duration must be one of the following values: {', '.join(offered)}")
        self.duration, self.offered = duration, offered


class InvalidOptions(ModelError):
    """The request's ``options`` do not fit the model's ``Options``; ``messages`` lists every problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


class ModelUnavailable(ModelError):
    """An installed model that cannot run here (a missing key...): refused before any charge."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"model {name} is not available here: {reason}")
        self.name, self.reason = name, reason


class PluginError(RuntimeError):
    """A plugin failed to load or validate (``models_registry.validation``, ``ModelRegistry.load``)."""
