"""The production settings docker-compose.yml sets pass Django's deployment checks."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_defines_the_production_services():
    services = compose()["services"]
    assert {"postgres", "redis", "web", "worker"} <= set(services)
    for name in ["postgres", "redis", "web", "worker"]:
        assert "healthcheck" in services[name], name
    assert "container_name" not in services["worker"]  # must scale with --scale worker=N
    assert "ports" not in services["worker"]


def test_production_settings_pass_check_deploy(tmp_path):
    # Resolve "${NAME:-default}" the way docker compose does when NAME is unset.
    environment = {
        key: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
        for key, value in compose()["x-pawa-env"].items()
    }
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_urlsafe(50))
    environment.update(SECRET_KEY_FILE=str(secret), PAWA_VAR_DIR=str(tmp_path))
    env = dict(os.environ, **environment)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests, never in production
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


SCALABLE = ["worker", "worker-gpu"]


def test_workers_scale_with_no_fixed_name_or_port():
    services = compose()["services"]
    assert not [name for name, service in services.items() if "container_name" in service]
    for name in SCALABLE:
        assert "ports" not in services[name], name
        assert "hostname" not in services[name], name  # one hostname would give every copy one Celery name
    web_port = services["web"]["ports"][0]
    assert web_port.startswith("${PAWA_BIND:-127.0.0.1}:"), web_port  # only the TLS proxy in front reaches it


def test_the_gpu_worker_is_a_profile_with_a_device_reservation():
    gpu = compose()["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["environment"]["PAWA_DEVICE"] == "cuda"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "--queues" in gpu["command"]
    assert all("profiles" not in compose()["services"][name] for name in ["postgres", "redis", "web", "worker"])


def test_databases_and_models_live_in_named_volumes_with_healthchecks():
    document = compose()
    services, volumes = document["services"], document["volumes"]

    def named(service: str, target: str) -> str:
        mounts = [v.split(":") for v in services[service].get("volumes", [])]
        sources = [source for source, mounted, *_ in mounts if mounted == target]
        assert sources and sources[0] in volumes, (service, target, mounts)
        return sources[0]

    assert named("postgres", "/var/lib/postgresql/data") != named("redis", "/data")
    models_dir = re.search(r"PAWA_MODELS_DIR=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)
    assert document["x-pawa-env"]["PAWA_MODELS_DIR"] == models_dir
    shared = {named(name, models_dir) for name in ["migrate", "web", "worker", "worker-gpu"]}
    assert len(shared) == 1  # one models volume for every app container
    for name in ["postgres", "redis", "web", "worker", "worker-gpu"]:
        assert {"test", "interval", "retries"} <= set(services[name]["healthcheck"]), name
    for name in ["web", "worker", "worker-gpu"]:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_scrapers_outside_the_container_can_be_let_in():
    environment = compose()["x-pawa-env"]
    assert {"PAWA_METRICS_ALLOW", "PAWA_METRICS_TOKEN", "PAWA_LOG_FORMAT"} <= set(environment)


@pytest.mark.django_db
def test_the_deploy_guide_is_in_both_languages_and_linked_from_the_docs(client):
    english = client.get("/docs/deploy/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    swahili = client.get("/docs/deploy/", HTTP_ACCEPT_LANGUAGE="sw").content.decode()
    assert "Deploying PAWA" in english and "Usambazaji wa PAWA" in swahili
    for body in (english, swahili):
        assert "proxy_set_header Upgrade $http_upgrade;" in body  # websocket upgrade through the TLS proxy
        assert "pg_dump" in body and "manage.py migrate" in body and "/metrics" in body
        assert re.search(r"smollm2-135m-instruct</code></td><td>\d+ MiB</td><td>\d+ MiB", body)  # measured sizes
    for language in ("en", "sw"):
        assert 'href="/docs/deploy/"' in client.get("/docs/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
