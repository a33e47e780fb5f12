"""deploy/kubernetes/, on paper but valid: every built-in resource against the Kubernetes schemas
that the kubernetes-validate package ships (strict: unknown fields are errors), KEDA's resources
against their CRDs' schemas (deploy/schemas/, made strict the same way), and what the deployment
needs from them: probes, a disruption budget, a grace period above SHUTDOWN_GRACE_SECONDS,
scaling on the consumer group's pending and lag counts, the migration as a Job, no secret inline."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import msgspec
import pytest
import yaml

from models_registry.registry import ModelRegistry
from service.core.keys import Keys
from service.core.redis import make_dedicated_redis, make_redis
from service.core.settings import Settings
from service.jobs.messages import JobMessage, JobReply
from service.jobs.stream import JobStream
from tests.conftest import REDIS_URL
from workers.slots import model_limits

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
VERSIONS = ["1.30.0", "1.37.0"]  # the oldest with preStop sleep, and the newest the package knows
KEDA = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication-v1alpha1.json",
}
# The redis-streams scaler's parameters in KEDA v2.20.2 (pkg/scalers/redis_streams_scaler.go and
# redis_scaler.go): a misspelt one would be ignored by KEDA, so it is an error here.
REDIS_STREAMS_PARAMS = {
    "stream", "consumerGroup", "pendingEntriesCount", "streamLength", "lagCount", "activationLagCount",
    "databaseIndex", "enableTLS", "unsafeSsl", "address", "addresses", "host", "hosts", "port", "ports",
    "username", "password", "usernameFromEnv", "passwordFromEnv", "addressFromEnv", "hostFromEnv", "portFromEnv",
}  # fmt: skip


def documents() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [(name, d) for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def by_kind(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def strict(schema: Any) -> Any:
    """The schema with unknown properties forbidden wherever properties are listed (like
    ``kubectl --validate=strict``); CRDs leave them open, KEDA ignores them silently."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


def validate(doc: dict[str, Any], version: str) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in KEDA:
        schema = strict(json.loads((ROOT / "deploy" / "schemas" / KEDA[key]).read_text()))
        jsonschema.Draft7Validator(schema).validate(doc)
    else:
        kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid(version: str) -> None:
    docs = documents()
    assert {d["kind"] for _, d in docs} >= {
        "Deployment", "Service", "PodDisruptionBudget", "Job", "ConfigMap", "ScaledObject", "TriggerAuthentication"
    }  # fmt: skip
    for name, doc in docs:
        try:
            validate(doc, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}")


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Deployment", ["spec", "template", "spec", "containers", 0, "readinesProbe"], {}),
        ("Deployment", ["spec", "replicas"], "two"),
        ("ScaledObject", ["spec", "triggers", 0, "metdata"], {}),
        ("ScaledObject", ["spec", "minReplicaCount"], "one"),
    ],
)
def test_validation_catches_mistakes(kind: str, path: list[Any], value: Any) -> None:
    doc = copy.deepcopy(by_kind(kind, "video-gen-worker" if kind == "ScaledObject" else "video-gen-api"))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(doc, VERSIONS[-1])


def config() -> dict[str, str]:
    return by_kind("ConfigMap", "video-gen-config")["data"]


def pod(name: str) -> dict[str, Any]:
    kind = "Job" if name.endswith("migrate") else "Deployment"
    return by_kind(kind, name)["spec"]["template"]["spec"]


def test_config_holds_settings_and_no_secret() -> None:
    fields = {f.upper() for f in Settings.__struct_fields__}
    assert set(config()) <= fields
    for secretive in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL", "FAL_KEY"):
        assert secretive not in config()
    for _, doc in documents():
        assert doc["kind"] != "Secret", "secrets are made by hand, never committed"
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert not container.get("env"), "settings come from the ConfigMap and the Secret only"


@pytest.mark.parametrize("name", ["video-gen-api", "video-gen-worker", "video-gen-migrate"])
def test_every_pod_runs_the_pinned_image_as_non_root_with_config_and_secrets(name: str) -> None:
    spec = pod(name)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    [container] = spec["containers"]
    assert container["image"] == "video-gen:0.1.0"
    assert container["envFrom"] == [
        {"configMapRef": {"name": "video-gen-config"}},
        {"secretRef": {"name": "video-gen-secrets"}},
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/app/var"} <= mounts


def test_api_probes_service_and_disruption_budget() -> None:
    api = by_kind("Deployment", "video-gen-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [container] = pod("video-gen-api")["containers"]
    assert container["args"] == ["api"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert str(port) == config()["PORT"]
    service = by_kind("Service", "video-gen-api")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    budget = by_kind("PodDisruptionBudget", "video-gen-api")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < api["spec"]["replicas"]


def test_workers_outlast_their_grace_and_have_a_liveness_check() -> None:
    spec = pod("video-gen-worker")
    assert spec["terminationGracePeriodSeconds"] > float(config()["SHUTDOWN_GRACE_SECONDS"])
    [container] = spec["containers"]
    assert container["args"] == ["worker"]
    assert container["livenessProbe"]["exec"]["command"] == ["video-gen", "probe", "worker"]


def test_workers_scale_on_each_models_pending_and_lag() -> None:
    scaled = by_kind("ScaledObject", "video-gen-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "video-gen-worker"
    keys = Keys(config()["REDIS_KEY_PREFIX"])
    triggers = scaled["spec"]["triggers"]
    assert all(t["type"] == "redis-streams" for t in triggers)
    for t in triggers:
        assert t["metadata"]["consumerGroup"] == keys.jobs_group
        assert set(t["metadata"]) <= REDIS_STREAMS_PARAMS, set(t["metadata"]) - REDIS_STREAMS_PARAMS
        auth = by_kind("TriggerAuthentication", t["authenticationRef"]["name"])
        assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"address", "password"}
    # per model (its own stream): one worker per its slots of running jobs, and as many for the waiting ones
    slots = model_limits(ModelRegistry.load(), {}, int(config()["WORKER_CONCURRENCY"]))
    expected = {(keys.queue(m), kind, str(n)) for m, n in slots.items() for kind in ("pendingEntriesCount", "lagCount")}
    found = {
        (t["metadata"]["stream"], kind, t["metadata"][kind])
        for t in triggers
        for kind in ("pendingEntriesCount", "lagCount")
        if kind in t["metadata"]
    }
    assert found == expected and len(triggers) == len(expected)


def test_the_migration_is_a_job() -> None:
    job = by_kind("Job", "video-gen-migrate")
    spec = job["spec"]["template"]["spec"]
    assert spec["containers"][0]["args"] == ["migrate"]
    assert spec["restartPolicy"] in ("OnFailure", "Never")


def test_workers_expose_their_metrics_port() -> None:
    [container] = pod("video-gen-worker")["containers"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert str(ports["metrics"]) == config()["METRICS_PORT"]


async def test_the_group_reports_the_counts_keda_reads(redis_prefix: str) -> None:
    """What the ScaledObject's triggers read (XPENDING's count and XINFO GROUPS' lag, Redis 7+)
    stays right through the service's own stream operations, acknowledged entries deleted by
    ``prune`` included (a deletion after the group's position would leave the lag undefined)."""
    keys = Keys(redis_prefix)
    redis, reader = make_redis(REDIS_URL), make_dedicated_redis(REDIS_URL)
    stream = JobStream(redis, keys, reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    try:
        await stream.ensure_groups(["m"])
        for n in range(6):
            job = JobMessage(
                job_id=f"j{n}", user_id="u", model="m", prompt="p", source_key="images/u/s.png",
                duration="5s", submitted_at=time.time(),
            )  # fmt: skip
            await stream.submit(job)
        claimed = await stream.claim(reader, "w1", {"m": 3}, 100)  # three running
        for d in claimed[:2]:  # two finished
            assert d.job is not None
            reply = JobReply(job_id=d.job.job_id, status_code=200, body=msgspec.Raw(b"{}"))
            await stream.complete(d.ref, d.job, reply)
        await stream.prune([keys.queue("m")], 60_000)
        [group] = await redis.xinfo_groups(keys.queue("m"))
        pending = (await redis.xpending(keys.queue("m"), keys.jobs_group))["pending"]
        assert (pending, group["lag"]) == (1, 3)  # one running, three waiting
        assert await redis.xlen(keys.queue("m")) == 4  # the finished ones were deleted
    finally:
        await reader.aclose()
        await redis.aclose()
