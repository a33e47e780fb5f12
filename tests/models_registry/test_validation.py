"""A plugin checked against the contract as the registry loads it (``models_registry.validation``):
what is refused and how the refusal reads, one ``PluginError`` naming the plugin and the problem."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin
from models_registry.registry import ModelRegistry
from tests.models_registry.test_registry import CONTRACT, TypedOptions, origin_of, plugin_class, refusal


@pytest.mark.parametrize("attr", CONTRACT)
def test_a_missing_attribute_is_named(attr: str) -> None:
    cls = plugin_class("partial", drop=(attr,))
    assert refusal(cls) == f"model plugin from {origin_of(cls)} has no {attr!r}"


def test_a_model_plugin_subclass_still_has_to_declare_name_and_durations() -> None:
    class Forgetful(ModelPlugin):
        async def generate(self, job: GenerationJob) -> GeneratedVideo:
            raise NotImplementedError

    assert refusal(Forgetful) == f"model plugin from {origin_of(Forgetful)} has no 'name'"


@pytest.mark.parametrize("name", ["", None, 7])
def test_the_name_must_be_a_non_empty_string(name: object) -> None:
    cls = plugin_class(name)  # type: ignore[arg-type]
    assert refusal(cls) == f"model plugin from {origin_of(cls)}: name must be a non-empty string"


@pytest.mark.parametrize("durations", [(), []])
def test_a_model_must_offer_a_duration(durations: object) -> None:
    cls = plugin_class("empty", durations=durations, default_duration="5s")
    assert refusal(cls) == f"model plugin 'empty' from {origin_of(cls)} offers no durations"


@pytest.mark.parametrize("bad", ["5", "5sec", "s", "-5s", "five", "5.5s", " 5s", 5])
def test_durations_are_whole_seconds_spelled_like_the_api(bad: object) -> None:
    cls = plugin_class("odd", durations=("5s", bad))
    assert refusal(cls) == f"model plugin 'odd' from {origin_of(cls)}: bad duration {bad!r}"


def test_the_default_duration_must_be_offered() -> None:
    cls = plugin_class("nodefault", default_duration="10s")
    message = f"model plugin 'nodefault' from {origin_of(cls)}: default duration '10s' is not one of ['5s', '8s']"
    assert refusal(cls) == message


def test_generate_must_be_async() -> None:
    def generate(self: Any, job: GenerationJob) -> GeneratedVideo:
        return GeneratedVideo(job.workdir / "out.mp4", 5.0)

    cls = plugin_class("blocking", generate=generate)
    assert refusal(cls) == f"model plugin 'blocking' from {origin_of(cls)}: generate must be async"


def test_durations_given_as_one_string_are_named() -> None:
    cls = plugin_class("comma", durations=("8s"), default_duration="8s")
    message = f"model plugin 'comma' from {origin_of(cls)}: durations must be a tuple of strings, not the string '8s'"
    assert refusal(cls) == message


@pytest.mark.parametrize("timeout", [0, -1, "60", None, True])
def test_the_timeout_must_be_a_positive_number(timeout: object) -> None:
    cls = plugin_class("slow", timeout_seconds=timeout)
    message = f"model plugin 'slow' from {origin_of(cls)}: timeout_seconds must be a positive number, not {timeout!r}"
    assert refusal(cls) == message


def test_a_subclass_must_implement_generate() -> None:
    class Lazy(ModelPlugin):
        name = "lazy"
        durations = ("5s",)
        default_duration = "5s"

        def cost(self, duration: str, options: object) -> int:
            return 1

    assert refusal(Lazy) == f"model plugin 'lazy' from {origin_of(Lazy)}: generate is not implemented"


@pytest.mark.parametrize("cost", [-1, 1.5, 750.0, "750", True, None])
def test_cost_must_be_a_non_negative_int_for_every_duration(cost: object) -> None:
    cls = plugin_class("pricey", cost=lambda d: 100 if d == "5s" else cost)
    assert refusal(cls) == f"model plugin 'pricey' from {origin_of(cls)}: cost('8s', {{}}) must be an int >= 0"


def test_a_free_model_is_allowed() -> None:
    registry = ModelRegistry.load(extra=[plugin_class("free", cost=0)], group="video_gen.no_such_group")
    assert registry.catalogue()[0].cost == {"5s": 0, "8s": 0}


def test_a_cost_rule_that_raises_names_the_plugin() -> None:
    class Unpriced(ModelPlugin):  # inherits ModelPlugin.cost, which raises NotImplementedError
        name, durations, default_duration = "unpriced", ("5s",), "5s"

        async def generate(self, job: GenerationJob) -> GeneratedVideo:
            raise NotImplementedError

    message = (
        f"model plugin 'unpriced' from {origin_of(Unpriced)}: cost(duration, options) failed: NotImplementedError()"
    )
    assert refusal(Unpriced) == message


class LooseOptions(msgspec.Struct):
    quality: str = "high"


def test_options_must_forbid_unknown_fields() -> None:
    cls = plugin_class("loose", Options=LooseOptions)
    assert refusal(cls) == (
        f"model plugin 'loose' from {origin_of(cls)}: Options: Options must forbid unknown fields "
        "(forbid_unknown_fields=True): a typo must not be charged"
    )


def test_a_price_option_must_be_an_enumeration() -> None:
    cls = plugin_class("priced", Options=TypedOptions, price_options=("note",))
    assert "must be a Literal or a bool" in refusal(cls)
