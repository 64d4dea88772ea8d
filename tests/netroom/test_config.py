from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import Environment, Settings

GOOD_TOKEN = "1234567890:" + "A" * 35
REAL_SECRET = "k" * 48


def test_settings_read_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE__URL", "postgresql://db.example/netroom")
    monkeypatch.setenv("REDIS__URL", "redis://cache.example:6379/2")
    monkeypatch.setenv("BOT__TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("BOT__ADMIN_IDS", "[1, 2]")
    monkeypatch.setenv("WEB__PORT", "9000")
    monkeypatch.setenv("DATA_DIR", "/var/lib/netroom")
    monkeypatch.setenv("WEB__JWT_SECRET", REAL_SECRET)
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


@pytest.mark.parametrize("env", [Environment.DEV, Environment.SANDBOX])
@pytest.mark.parametrize(
    "secret", ["dev-only-secret", "change-me", "short-but-random-Zq8", "dev-" + "x" * 40]
)
def test_a_real_bot_token_refuses_a_placeholder_jwt_secret_whatever_env(
    env: Environment, secret: str
) -> None:
    with pytest.raises(ValidationError, match="WEB__JWT_SECRET") as caught:
        Settings(  # type: ignore[call-arg]
            _env_file=None, env=env, bot={"token": GOOD_TOKEN}, web={"jwt_secret": secret}
        )
    # What the command line prints: the message, never the value.
    [error] = caught.value.errors(include_input=False, include_url=False)
    assert "secrets.token_urlsafe" in error["msg"]
    assert secret not in str(error)


def test_a_public_web_address_refuses_the_default_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="WEB__JWT_SECRET"):
        Settings(_env_file=None, web={"public_url": "https://netroom.example.com"})  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "hook_secret", [None, "replace-with-a-random-string-of-A-Za-z0-9_-", "abc"]
)
def test_webhook_mode_outside_the_sandbox_refuses_a_missing_or_weak_secret(
    hook_secret: str | None,
) -> None:
    bot: dict[str, object] = {"token": GOOD_TOKEN, "webhook_url": "https://bot.example"}
    if hook_secret is not None:
        bot["webhook_secret"] = hook_secret
    with pytest.raises(ValidationError, match="BOT__WEBHOOK_SECRET"):
        Settings(_env_file=None, bot=bot, web={"jwt_secret": REAL_SECRET})  # type: ignore[call-arg]


def test_the_local_sandbox_starts_with_the_development_defaults() -> None:
    # A token for a Bot API on this machine (the sandbox) and loopback addresses only.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot={
            "token": GOOD_TOKEN,
            "api_base": "http://127.0.0.1:8081",
            "webhook_url": "http://127.0.0.1:8080",
        },
    )
    assert not settings.reachable_from_outside
    assert settings.web.jwt_secret.get_secret_value() == "dev-only-secret"


def test_real_secrets_outside_the_sandbox_are_accepted() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot={
            "token": GOOD_TOKEN,
            "webhook_url": "https://bot.example",
            "webhook_secret": "Hq3_" + "z" * 28,
        },
        web={"jwt_secret": REAL_SECRET, "public_url": "https://netroom.example.com"},
    )
    assert settings.reachable_from_outside


def test_the_service_with_a_real_token_and_the_placeholder_secret_refuses_to_start(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT__", "DATABASE__", "WEB__", "REDIS__")) and k != "ENV"
    }
    env |= {
        "BOT__TOKEN": GOOD_TOKEN,
        "BOT__WEBHOOK_URL": "https://bot.example",
        "BOT__WEBHOOK_SECRET": "Hq3_" + "z" * 28,
        "WEB__JWT_SECRET": "dev-only-secret",
        "DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "netroom", "web"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "WEB__JWT_SECRET" in result.stderr
    assert "token_urlsafe" in result.stderr
    assert GOOD_TOKEN not in result.stderr + result.stdout
    # Refused before anything was started or created.
    assert not (tmp_path / "data").exists()


def test_a_plan_id_fits_the_title_of_its_telegram_invoice() -> None:
    plan = {"stars": 100}
    longest = "p" * 24
    settings = Settings(_env_file=None, payments={"plans": [{**plan, "id": longest}]})  # type: ignore[call-arg]
    # The invoice is titled "NetRoom <Plan>"; Telegram takes titles of up to 32 characters.
    assert len(f"NetRoom {settings.payments.plans[0].id.title()}") <= 32
    with pytest.raises(ValidationError, match="plans"):
        Settings(_env_file=None, payments={"plans": [{**plan, "id": longest + "x"}]})  # type: ignore[call-arg]


def test_secrets_are_masked_in_the_settings_repr() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, bot={"token": GOOD_TOKEN}, web={"jwt_secret": REAL_SECRET}
    )
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


def test_the_app_may_be_framed_by_the_sandboxs_client_only_when_the_bot_runs_on_it() -> None:
    from netroom.processes import BotLink, app_framers

    telegram = BotLink(GOOD_TOKEN, "https://api.telegram.org")
    sandbox = BotLink(GOOD_TOKEN, "http://127.0.0.1:8081/")
    assert app_framers(telegram) == ("https://web.telegram.org",)
    assert app_framers(None) == ("https://web.telegram.org",)
    assert app_framers(sandbox) == ("https://web.telegram.org", "http://127.0.0.1:8081")
