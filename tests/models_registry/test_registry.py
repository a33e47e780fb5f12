"""The model registry: what it loads, what it refuses and how the refusal reads.

A plugin that breaks the contract must stop the process with a message naming the package (or
class) and the problem, so most tests here assert on the wording of ``PluginError``. Plugins are
small in-test classes passed as ``extra``; entry points come from fake ``.dist-info`` directories
so that ``ep.dist`` is a real distribution, as it is for an installed package. The checks of one
plugin against the contract are in ``test_validation.py``, which uses the helpers here.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, PathDistribution, entry_points
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import msgspec
import pytest

import models_registry.registry as registry_module
from models_registry.base import ENTRY_POINT_GROUP, GeneratedVideo, GenerationJob
from models_registry.errors import InvalidOptions, UnknownModel, UnsupportedDuration
from models_registry.local.plugin import LocalPanZoomModel
from models_registry.registry import ModelRegistry, PluginError
from models_registry.veo3.plugin import Veo3Model
from service.core.errors import from_model_error

CONTRACT = ("name", "durations", "default_duration", "timeout_seconds", "cost", "generate")


async def _generate(self: Any, job: GenerationJob) -> GeneratedVideo:
    return GeneratedVideo(job.workdir / "out.mp4", 5.0)


def plugin_class(name: str = "good", *, drop: tuple[str, ...] = (), **overrides: Any) -> type:
    """A plain class (subclassing ``ModelPlugin`` is optional) meeting the contract, with overrides.

    ``cost`` may be given as a value (returned for every duration) or as a function of the duration.
    """
    attrs: dict[str, Any] = {
        "name": name,
        "durations": ("5s", "8s"),
        "default_duration": "5s",
        "timeout_seconds": 30,
        "description": "a test model",
        "generate": _generate,
    }
    cost = overrides.pop("cost", lambda d: 10 * int(d[:-1]))
    attrs["cost"] = (lambda self, d, options: cost(d)) if callable(cost) else (lambda self, d, options: cost)
    attrs.update(overrides)
    for attr in drop:
        attrs.pop(attr)
    cls_name = "".join(part.title() for part in re.split(r"\W+", str(name or "nameless"))) + "Model"
    return type(cls_name, (), {"__module__": __name__, "__qualname__": cls_name, **attrs})


def origin_of(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def fake_package(tmp_path: Path, dist_name: str, entries: dict[str, str]) -> PathDistribution:
    """An installed-looking distribution (METADATA + entry_points.txt) in a dist-info directory."""
    info = tmp_path / f"{dist_name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    return PathDistribution(info)


def refusal(*classes: type) -> str:
    """The ``PluginError`` message that loading ``classes`` (and the entry points) stops with."""
    with pytest.raises(PluginError) as caught:
        ModelRegistry.load(extra=classes)
    return str(caught.value)


@pytest.fixture
def only_entry_points(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make the registry see exactly the entry points of the given fake packages."""

    def install(*dists: PathDistribution) -> None:
        def fake(*, group: str) -> list[EntryPoint]:
            return [ep for dist in dists for ep in dist.entry_points if ep.group == group]

        monkeypatch.setattr(registry_module, "entry_points", fake)

    return install


# --- what loads -----------------------------------------------------------------------------------


def test_the_built_in_models_come_from_video_gens_own_entry_points() -> None:
    ours = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.dist and ep.dist.name == "video-gen"}
    assert set(ours) == {"local", "veo3", "veo3-fast", "veo3.1", "veo3.1-fast"}
    registry = ModelRegistry.load()  # no extra: only entry points
    assert isinstance(registry.get("local"), LocalPanZoomModel)
    assert isinstance(registry.get("veo3"), Veo3Model)
    packages = {e.name: e.package for e in registry.catalogue()}
    assert packages["local"] == "video-gen (entry point 'local' = 'models_registry.local.plugin:LocalPanZoomModel')"
    assert packages["veo3"] == "video-gen (entry point 'veo3' = 'models_registry.veo3.plugin:Veo3Model')"


def test_an_entry_point_of_another_package_is_loaded_and_named(
    tmp_path: Path, only_entry_points: Callable[..., None]
) -> None:
    only_entry_points(fake_package(tmp_path, "acme-models", {"acme": "tests.factories:FailingModel"}))
    registry = ModelRegistry.load()
    assert registry.names() == ["failing"]
    [entry] = registry.catalogue()
    assert entry.package == "acme-models (entry point 'acme' = 'tests.factories:FailingModel')"


def test_the_catalogue_lists_every_model_with_its_prices() -> None:
    good = plugin_class("good")
    registry = ModelRegistry.load(extra=[good], group="video_gen.no_such_group")
    assert registry.names() == ["good"]
    assert "good" in registry and "local" not in registry
    [entry] = registry.catalogue()
    assert entry.name == "good"
    assert entry.durations == ("5s", "8s") and entry.default_duration == "5s"
    assert entry.cost == {"5s": 50, "8s": 80}
    assert entry.timeout_seconds == 30.0 and isinstance(entry.timeout_seconds, float)
    assert entry.description == "a test model"
    assert entry.package == origin_of(good)  # no entry point: the class names itself


def test_the_catalogue_is_sorted_by_name_and_includes_entry_points() -> None:
    registry = ModelRegistry.load(extra=[plugin_class("zeta"), plugin_class("alpha")])
    names = [e.name for e in registry.catalogue()]
    assert names == sorted(names) and {"alpha", "zeta", "local", "veo3"} <= set(names)


def test_the_registry_is_read_only() -> None:
    plugins: dict[str, Any] = {"good": plugin_class("good")()}
    registry = ModelRegistry(plugins, {"good": "here"})
    plugins["sneaky"] = object()  # the caller's dict was copied
    assert registry.names() == ["good"]
    assert isinstance(registry._plugins, MappingProxyType)
    with pytest.raises(TypeError):
        registry._plugins["sneaky"] = object()  # type: ignore[index]
    registry.names().append("sneaky")  # a fresh list every time
    assert registry.names() == ["good"]


# --- what loading refuses (the contract's checks of one plugin: test_validation.py) ----------------


def test_a_plugin_that_cannot_be_created_is_named() -> None:
    def __init__(self: Any) -> None:
        raise RuntimeError("needs ACME_API_KEY")

    cls = plugin_class("acme", __init__=__init__)
    assert refusal(cls) == f"model plugin from {origin_of(cls)} could not be created: needs ACME_API_KEY"


def test_duplicate_names_name_both_origins() -> None:
    first, second = plugin_class("twin"), plugin_class("twin")
    second.__qualname__ = "OtherTwinModel"
    assert refusal(first, second) == f"duplicate model name 'twin': {origin_of(second)} and {origin_of(first)}"


def test_a_plugin_cannot_take_a_built_in_name() -> None:
    impostor = plugin_class("local")
    assert refusal(impostor) == (
        f"duplicate model name 'local': {origin_of(impostor)} and "
        "video-gen (entry point 'local' = 'models_registry.local.plugin:LocalPanZoomModel')"
    )


def test_duplicate_names_across_packages_name_both_packages(
    tmp_path: Path, only_entry_points: Callable[..., None]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    only_entry_points(
        fake_package(tmp_path / "a", "acme-models", {"acme": "tests.factories:FailingModel"}),
        fake_package(tmp_path / "b", "rival-models", {"rival": "tests.factories:FailingModel"}),
    )
    assert refusal() == (
        "duplicate model name 'failing': rival-models (entry point 'rival' = 'tests.factories:FailingModel') "
        "and acme-models (entry point 'acme' = 'tests.factories:FailingModel')"
    )


def test_an_entry_point_that_fails_to_import_names_its_package(
    tmp_path: Path, only_entry_points: Callable[..., None]
) -> None:
    only_entry_points(fake_package(tmp_path, "broken-models", {"broken": "video_gen_no_such_module:Model"}))
    with pytest.raises(PluginError) as caught:
        ModelRegistry.load()
    assert str(caught.value) == (
        "model plugin 'broken' from package broken-models failed to import: No module named 'video_gen_no_such_module'"
    )
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_an_entry_point_whose_module_raises_keeps_the_reason(
    tmp_path: Path, only_entry_points: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "video_gen_exploding_plugin.py").write_text('raise RuntimeError("libfoo.so not found")\n')
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.delitem(sys.modules, "video_gen_exploding_plugin", raising=False)
    only_entry_points(
        fake_package(tmp_path, "fine-models", {"fine": "tests.factories:FailingModel"}),
        fake_package(modules, "exploding-models", {"boom": "video_gen_exploding_plugin:Model"}),
    )
    assert refusal() == "model plugin 'boom' from package exploding-models failed to import: libfoo.so not found"


# --- requests against the registry -----------------------------------------------------------------


@pytest.fixture
def registry() -> ModelRegistry:
    other = plugin_class("other", durations=("4s",), default_duration="4s")
    return ModelRegistry.load(extra=[plugin_class("good"), other], group="video_gen.no_such_group")


def test_an_unknown_model_is_a_400_listing_the_installed_names(registry: ModelRegistry) -> None:
    with pytest.raises(UnknownModel) as caught:
        registry.get("sora")
    assert caught.value.known == ["good", "other"]
    http = from_model_error(caught.value)
    assert http.status_code == 400
    assert http.message == ["model must be one of the following values: good, other"]
    with pytest.raises(UnknownModel):
        registry.resolve("sora", "5s")


def test_resolve_refuses_a_duration_the_model_lacks(registry: ModelRegistry) -> None:
    with pytest.raises(UnsupportedDuration) as caught:
        registry.resolve("good", "4s")  # offered by "other", not by "good"
    assert from_model_error(caught.value).message == ["duration must be one of the following values: 5s, 8s"]


def test_resolve_uses_the_models_default_when_no_duration_is_given(registry: ModelRegistry) -> None:
    resolved = registry.resolve("good", None)
    plugin, duration = resolved.plugin, resolved.duration
    assert (plugin.name, duration) == ("good", "5s")
    assert registry.resolve("good", "8s").duration == "8s"
    assert registry.resolve("other", None).duration == "4s"


class TypedOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    quality: Literal["draft", "high"] = "high"
    note: str | None = None


def test_cost_depends_on_the_options_and_the_catalogue_prices_every_value() -> None:
    cls = plugin_class(
        "tiers",
        Options=TypedOptions,
        price_options=("quality",),
        cost=None,
    )
    cls.cost = lambda self, d, options: (10 if options.quality == "draft" else 30) * int(d[:-1])
    registry = ModelRegistry.load(extra=[cls], group="video_gen.no_such_group")
    [entry] = registry.catalogue()
    assert entry.cost == {"5s": 150, "8s": 240}  # the default options
    assert {(p.duration, p.options["quality"]): p.cost for p in entry.prices} == {
        ("5s", "draft"): 50,
        ("8s", "draft"): 80,
        ("5s", "high"): 150,
        ("8s", "high"): 240,
    }
    assert registry.resolve("tiers", "8s", {"quality": "draft"}).cost == 80
    with pytest.raises(InvalidOptions) as caught:
        registry.resolve("tiers", "8s", {"quality": "ultra", "notes": "x"})
    assert caught.value.messages == [
        "options.property notes should not exist",
        "options.quality must be one of the following values: draft, high",
    ]
    assert from_model_error(caught.value).status_code == 400


def test_the_registry_module_still_exports_what_plugins_import_from_it() -> None:
    """``models_registry.registry`` is part of the plugin contract: the names that moved to
    ``catalogue``, ``pricing``, ``validation``, ``options`` and ``errors`` are importable from it."""
    from models_registry import catalogue, errors, options, pricing, validation

    assert registry_module.CatalogueEntry is catalogue.CatalogueEntry
    assert (registry_module.Price, registry_module.price_table) == (pricing.Price, pricing.price_table)
    assert registry_module.validate_plugin is validation.validate_plugin
    assert registry_module.PluginError is errors.PluginError
    assert registry_module.options_type is options.options_type
    assert (registry_module.NoOptions, registry_module.OptionSpec) == (options.NoOptions, options.OptionSpec)
