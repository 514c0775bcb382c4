"""The production settings docker-compose.yml sets pass Django's deployment checks."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

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
