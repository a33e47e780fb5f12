"""compose.yaml, checked without a container engine: valid against the Compose Specification's
JSON schema (vendored in deploy/schemas/), and what a deployment needs from it holds: pinned
images, no secret written in the file, only the API published, a healthcheck on every long-running
service, .env reaching the processes, links that resolve from outside, the migration first."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from service.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "api", "worker")
SECRET = re.compile(r"PASSWORD|SECRET|_KEY$|_KEY_ID$|TOKEN")
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?[^}]+\}$")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def with_defaults(value: str) -> str:
    """``value`` as compose interpolates it when .env sets nothing optional (``${X:-d}`` -> ``d``)."""
    return INTERPOLATION.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else m[0], value)


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "deploy/schemas/compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The check can fail: a misspelt key is caught."""
    schema = json.loads((ROOT / "deploy/schemas/compose-spec.json").read_text())
    broken = {**compose, "services": {**compose["services"], "api": {**compose["services"]["api"], "helthcheck": {}}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_images_are_pinned_by_version(services: dict[str, dict[str, Any]]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.match(r"^v?\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
    for name in APP_SERVICES:
        assert services[name]["image"] == f"video-gen:{version}"
        assert services[name]["build"] == "."
    assert not any("minio" in s["image"] for s in services.values())


def _env_items(service: dict[str, Any]) -> list[tuple[str, str]]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return [tuple(item.split("=", 1)) for item in env]  # type: ignore[misc]
    return [(k, str(v)) for k, v in env.items()]


def test_no_secret_is_written_in_the_file(services: dict[str, dict[str, Any]]) -> None:
    """Every secret is required from .env (``${X:?...}``): no literal, no default to fall back on."""
    text = (ROOT / "compose.yaml").read_text()
    for match in INTERPOLATION.finditer(text):
        if SECRET.search(match["name"]):
            assert match["op"] == ":?", f"${{{match['name']}}} must be required, not {match[0]}"
    for name, service in services.items():
        for key, value in _env_items(service):
            if SECRET.search(key):
                assert REQUIRED.match(value), f"{name}: {key} is not taken from .env"
            for url in re.findall(r"\w+://[^\s]+", value):
                if "@" in url:  # credentials in a URL: the password part must be interpolated
                    password = url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
                    assert REQUIRED.match(password), f"{name}: {key} has a password written in it"
        command = service.get("command") or []
        for i, arg in enumerate(command[:-1]):
            if "pass" in str(arg).lower():
                assert REQUIRED.match(str(command[i + 1])), f"{name}: {arg} is written in the file"
    for word in ("video-gen-secret", "minioadmin", "changeme", "dev-secret"):
        assert word not in text


def test_only_the_api_is_published(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            published = with_defaults(str(port))
            if name == "api":
                assert re.fullmatch(r"\d+(-\d+)?:8000", published), published
            else:
                assert published.startswith("127.0.0.1:"), f"{name} publishes {published} beyond loopback"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        if service.get("restart") == "no":  # a one-shot job: others wait for it to complete
            assert check.get("disable") is True
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "video-gen", "probe", "worker"]
    assert services["api"]["healthcheck"]["test"] == ["CMD", "video-gen", "probe", "api"]


def test_the_migration_runs_once_before_the_api_and_workers(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        for infra in ("redis", "postgres", "seaweedfs"):
            assert needs[infra]["condition"] == "service_healthy", f"{name} does not wait for {infra}"


def test_env_wiring(services: dict[str, dict[str, Any]]) -> None:
    """.env reaches every process; compose's own variables are real settings; links resolve outside."""
    fields = {name.upper() for name in Settings.__struct_fields__}
    for name in APP_SERVICES:
        service = services[name]
        assert service["env_file"] == ".env"
        env = dict(_env_items(service))
        unknown = {k for k in env if k not in fields and not k.startswith("AWS_")}
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
        # Inside: the processes reach S3 by its service name. Outside: links name a public address.
        assert env["S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
        assert with_defaults(env["S3_PUBLIC_ENDPOINT_URL"]) == "http://127.0.0.1:8333"
        assert with_defaults(env["PUBLIC_URL"]) == "http://127.0.0.1:8000"
        assert env["HOST"] == "0.0.0.0" and env["PORT"] == "8000"
        assert "@postgres:5432/" in env["DATABASE_URL"] and "@redis:6379/" in env["REDIS_URL"]
        assert env["STORAGE_URL"] == "s3://videos"
    seaweed = services["seaweedfs"]
    assert "-bucket=videos" in seaweed["command"]
    assert with_defaults(seaweed["ports"][0]) == "127.0.0.1:8333:8333"


def test_workers_get_longer_to_stop_than_their_grace(services: dict[str, dict[str, Any]]) -> None:
    grace = float(dict(_env_items(services["worker"]))["SHUTDOWN_GRACE_SECONDS"])
    stop = services["worker"]["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > grace


def test_redis_keeps_an_append_only_file(services: dict[str, dict[str, Any]]) -> None:
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"


def test_env_example_documents_every_setting_and_compose_variable() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M))
    missing = {name.upper() for name in Settings.__struct_fields__} - documented
    assert not missing, f".env.example does not mention {sorted(missing)}"
    compose_vars = {m["name"] for m in INTERPOLATION.finditer((ROOT / "compose.yaml").read_text())}
    assert compose_vars <= documented, f".env.example does not mention {sorted(compose_vars - documented)}"
