"""The operator's files in ``deploy/``: Prometheus alert rules (checked and unit-tested with
promtool), the Prometheus config, and the Grafana dashboard (valid dashboard JSON whose every query
parses as PromQL and names only series the service exports).

promtool comes with Debian's ``prometheus`` package (``.ci/run`` installs it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from service.core.settings import project_root
from tests.conftest import Api
from tests.factories import grant, image_request, seed_image

DEPLOY = project_root() / "deploy"
DASHBOARD = DEPLOY / "grafana" / "video-gen.json"
METRIC = re.compile(r"\bvideo_gen_[a-z_]+\b")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            raise AssertionError("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


def run(*args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_queries() -> list[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_alert_rules_are_valid_and_fire_when_they_should(promtool: str) -> None:
    run(promtool, "check", "rules", "alerts.yml", cwd=DEPLOY / "prometheus")
    out = run(promtool, "test", "rules", "alerts_test.yml", cwd=DEPLOY / "prometheus")
    assert "SUCCESS" in out
    names = {
        r["alert"]
        for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    assert {"VideoGenQueueStuck", "VideoGenFailureRateHigh", "VideoGenLedgerVerifyFailed"} <= names


def test_the_prometheus_config_is_valid(promtool: str, tmp_path: Path) -> None:
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text().replace("/etc/prometheus/alerts.yml", "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)


def test_the_dashboard_is_a_grafana_dashboard_whose_queries_parse(promtool: str, tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("throughput", "latency", "failures", "queue", "credits"):
        assert topic in titles
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"])
    # Grafana's $__rate_interval is not PromQL: promtool parses each query as a recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": q.replace("$__rate_interval", "5m")}
                    for i, q in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    (tmp_path / "dashboard-rules.yml").write_text(yaml.safe_dump(rules))
    run(promtool, "check", "rules", "dashboard-rules.yml", cwd=tmp_path)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_dashboard_and_alerts_name_only_series_the_service_exports(promtool: str, api: Api) -> None:
    await seed_image(api.settings)
    await grant("u1", 750)
    r = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=api.auth("u1"))
    assert r.status_code == 200, r.text
    await api.client.get("/admin/ledger/verify", headers=api.auth("a", roles=["admin"]))
    scrape = (await api.client.get("/metrics")).text
    run(promtool, "check", "metrics", stdin=scrape)  # Prometheus' own naming rules
    exported = set(METRIC.findall(scrape))
    used = {name for query in dashboard_queries() + alert_queries() for name in METRIC.findall(query)}
    # histograms are queried by their _bucket series; counters without a sample yet still have a TYPE line
    assert used <= exported, used - exported
