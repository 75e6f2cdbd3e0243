"""docker-compose.yml validates, refuses to start without its passwords, and every
service has a healthcheck; the Prometheus configuration and rules pass promtool."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
REQUIRED = {
    "POSTGRES_PASSWORD": "pg-secret-1", "MINIO_ROOT_USER": "minio-admin", "MINIO_ROOT_PASSWORD": "minio-secret-1",
    "FACESEARCH_TOKEN_KEY": "k" * 43 + "=", "KAFKA_CLUSTER_ID": "MkU3OEVBNTcwNTJENDM2Qk", "FACESEARCH_DOMAIN": "faces.example.org",
    "ACME_EMAIL": "ops@example.org", "GRAFANA_ADMIN_USER": "admin", "GRAFANA_ADMIN_PASSWORD": "grafana-secret-1",
    "METRICS_TOKEN_FILE": "/dev/null",
}
STATEFUL = {"postgres", "kafka", "etcd", "minio", "milvus", "prometheus", "grafana"}


def compose(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose missing: apt-get install -y docker-compose (compose validation did NOT run)")
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED} | env
    return subprocess.run([binary, "-f", str(COMPOSE), *args], capture_output=True, text=True, env=clean, cwd=ROOT)


def test_compose_validates_with_every_secret_set():
    result = compose(REQUIRED, "config", "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_refuses_to_start_without_a_secret(missing):
    result = compose({k: v for k, v in REQUIRED.items() if k != missing}, "config", "--quiet")
    assert result.returncode != 0 and missing in result.stderr, result.stderr


def test_every_service_has_a_healthcheck_and_state_has_volumes():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"postgres", "kafka", "milvus", "etcd", "minio", "api", "relay", "projections", "worker", "proxy",
            "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service and service["healthcheck"].get("test"), f"{name} has no healthcheck"
    for name in STATEFUL:
        assert any(str(v).split(":")[0] in spec["volumes"] for v in services[name].get("volumes", [])), f"{name} keeps no volume"
    worker = services["worker"]["deploy"]
    assert "replicas" in worker and worker["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert services["proxy"]["ports"] and "443:443" in services["proxy"]["ports"]
    assert "api" not in {p.split(":")[0] for p in services["proxy"]["ports"]}
    assert "ports" not in services["api"], "the API is reached only through the TLS proxy"


def test_no_default_passwords():
    text = COMPOSE.read_text()
    for variable in REQUIRED:
        assert f"${{{variable}:-" not in text, f"{variable} has a default"


def test_prometheus_config_and_rules_pass_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: apt-get install -y prometheus (config check did NOT run)")
    rules = subprocess.run([promtool, "check", "rules", str(ROOT / "deploy/prometheus/alerts.yml")], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    (tmp_path / "token").write_text("t")
    config = config.replace("/etc/prometheus/alerts.yml", str(ROOT / "deploy/prometheus/alerts.yml"))
    config = config.replace("/run/secrets/metrics_token", str(tmp_path / "token"))
    (tmp_path / "prometheus.yml").write_text(config)
    checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
