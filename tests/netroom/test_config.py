from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import Environment, Settings

GOOD_TOKEN = "1234567890:" + "A" * 35


def test_settings_read_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE__URL", "postgresql://db.example/netroom")
    monkeypatch.setenv("REDIS__URL", "redis://cache.example:6379/2")
    monkeypatch.setenv("BOT__TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("BOT__ADMIN_IDS", "[1, 2]")
    monkeypatch.setenv("WEB__PORT", "9000")
    monkeypatch.setenv("DATA_DIR", "/var/lib/netroom")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database.url == "postgresql://db.example/netroom"
    assert settings.redis.url == "redis://cache.example:6379/2"
    assert settings.bot.token is not None
    assert settings.bot.token.get_secret_value() == GOOD_TOKEN
    assert settings.bot.admin_ids == [1, 2]
    assert settings.web.port == 9000
    assert settings.data_dir == Path("/var/lib/netroom")


def test_production_refuses_the_placeholder_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="WEB__JWT_SECRET"):
        Settings(_env_file=None, env=Environment.PRODUCTION, bot={"token": GOOD_TOKEN})  # type: ignore[call-arg]


def test_production_requires_a_webhook_secret_with_a_webhook() -> None:
    with pytest.raises(ValidationError, match="BOT__WEBHOOK_SECRET"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            env=Environment.PRODUCTION,
            web={"jwt_secret": "x" * 40},
            bot={"token": GOOD_TOKEN, "webhook_url": "https://bot.example"},
        )


def test_a_plan_id_fits_the_title_of_its_telegram_invoice() -> None:
    plan = {"stars": 100}
    longest = "p" * 24
    settings = Settings(_env_file=None, payments={"plans": [{**plan, "id": longest}]})  # type: ignore[call-arg]
    # The invoice is titled "NetRoom <Plan>"; Telegram takes titles of up to 32 characters.
    assert len(f"NetRoom {settings.payments.plans[0].id.title()}") <= 32
    with pytest.raises(ValidationError, match="plans"):
        Settings(_env_file=None, payments={"plans": [{**plan, "id": longest + "x"}]})  # type: ignore[call-arg]


def test_secrets_are_masked_in_the_settings_repr() -> None:
    settings = Settings(_env_file=None, bot={"token": GOOD_TOKEN})  # type: ignore[call-arg]
    assert GOOD_TOKEN not in repr(settings)
    assert GOOD_TOKEN not in str(settings.model_dump())


def test_a_bad_token_is_named_but_never_printed(tmp_path: Path) -> None:
    bad = "12345:short-secret-value"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT__", "DATABASE__"))}
    env["BOT__TOKEN"] = bad
    result = subprocess.run(
        [sys.executable, "-m", "netroom", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "BOT__TOKEN" in result.stderr
    assert "short-secret-value" not in result.stderr + result.stdout


def test_a_schedule_override_that_is_no_schedule_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"retention\.purge_expired"):
        Settings(_env_file=None, jobs={"schedule_overrides": {"retention.purge_expired": "often"}})  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, jobs={"schedule_overrides": {"retention.purge_expired": "5m"}}
    )
    assert settings.jobs.schedule_overrides == {"retention.purge_expired": "5m"}
