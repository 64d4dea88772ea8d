from __future__ import annotations

import json
import secrets
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core.deeplinks import parse_start_payload
from core.dto import ClientInfo
from core.services import accounts, billing, payments, privacy
from core.services.privacy import DeleteLinkExpired, ExportTooSoon
from db import models
from db.base import Base
from db.models import Identity
from db.uow import UnitOfWork
from tests.core.test_payments import TERMS
from tests.factories import register, telegram_id

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_every_column_about_a_user_is_exported_or_excluded_with_a_reason() -> None:
    assert models.User.__table__.metadata is Base.metadata
    exported: dict[str, set[str]] = {}
    for table, _, columns in privacy.iter_plan():
        exported.setdefault(table, set()).update(columns)
    undecided: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        refers_to_user = table.name == "users" or any(
            fk.column.table.name == "users" for fk in table.foreign_keys
        )
        if not refers_to_user:
            continue
        decided = exported.get(table.name, set()) | set(privacy.NOT_EXPORTED.get(table.name, {}))
        missing = {c.name for c in table.columns} - decided
        if missing:
            undecided[table.name] = missing
    assert undecided == {}, "export or exclude (with a reason) every column"
    for reasons in privacy.NOT_EXPORTED.values():
        assert all(reason.strip() for reason in reasons.values())


async def _rich_user(uow: UnitOfWork) -> tuple[int, dict[str, str]]:
    """A user with data in every category the policy lists."""
    tg = telegram_id()
    username = "privacy_" + secrets.token_hex(4)
    result = await accounts.register_telegram_user(
        uow,
        telegram_id=tg,
        username=username,
        first_name="Priya",
        last_name="Vasquez",
        language_code="en",
        payload=parse_start_payload("src_news"),
        policy_version="2026-11-01",
        client=ClientInfo(platform="web", ip="203.0.113.99", user_agent="Agent/7.7 unique"),
    )
    user_id = result.user.id
    email = f"{username}@mail.test"
    uow.session.add(
        Identity(
            user_id=user_id,
            provider="email",
            subject=email,
            email=email,
            password_hash="scrypt$secret-hash",
        )
    )
    await uow.session.flush()
    payload = payments.invoice_payload(TERMS, user_id=user_id, stars=50)
    await payments.record_stars_payment(
        uow,
        TERMS,
        telegram_id=tg,
        charge_id="charge-" + secrets.token_hex(6),
        payload=payload,
        currency="XTR",
        total_amount=50,
    )
    await billing.debit(
        uow, user_id=user_id, amount=1_000, category="text", key="spend-" + secrets.token_hex(6)
    )
    markers = {
        "telegram id": str(tg),
        "username": username,
        "name": "Priya Vasquez",
        "email": email,
        "ip": "203.0.113.99",
        "user agent": "Agent/7.7 unique",
    }
    return user_id, markers


async def test_json_export_holds_every_category_and_no_password_hash(uow: UnitOfWork) -> None:
    user_id, markers = await _rich_user(uow)
    export = await privacy.export_user(uow, user_id, fmt="json", now=NOW)
    with export.data:
        document = json.loads(export.data.read())
    categories = document["categories"]
    assert set(categories) == set(privacy.EXPORTED)
    assert categories["account"][0]["username"] == markers["username"]
    assert categories["identities"][1]["email"] == markers["email"]
    assert categories["signup_attribution"][0]["utm_source"] == "news"
    assert categories["signup_attribution"][0]["ip"] == markers["ip"]
    assert [t["amount"] for t in categories["transactions"]] == [6_500, -1_000]
    assert categories["payments"][0]["external_id"].startswith("charge-")
    assert "secret-hash" not in json.dumps(document)


async def test_zip_export_has_one_csv_per_category(uow: UnitOfWork) -> None:
    user_id, markers = await _rich_user(uow)
    export = await privacy.export_user(uow, user_id, fmt="zip", now=NOW)
    with export.data, zipfile.ZipFile(export.data) as archive:
        names = set(archive.namelist())
        assert names == {f"{c}.csv" for c in privacy.EXPORTED}
        identities = archive.read("identities.csv").decode()
    assert markers["email"] in identities
    assert "secret-hash" not in identities


async def test_exports_are_limited_to_one_an_hour(uow: UnitOfWork) -> None:
    user_id, _ = await _rich_user(uow)
    (await privacy.export_user(uow, user_id, fmt="json", now=NOW)).data.close()
    with pytest.raises(ExportTooSoon):
        await privacy.export_user(uow, user_id, fmt="zip", now=NOW + timedelta(minutes=30))
    later = await privacy.export_user(uow, user_id, fmt="zip", now=NOW + timedelta(minutes=61))
    later.data.close()


async def test_deletion_leaves_nothing_that_leads_back_to_the_person(uow: UnitOfWork) -> None:
    user_id, markers = await _rich_user(uow)
    balance_before = (await billing.get_balance(uow, user_id)).balance
    await privacy.delete_user(uow, user_id, now=NOW)
    for table in Base.metadata.sorted_tables:
        rows = (await uow.session.execute(text(f'SELECT t::text FROM "{table.name}" t'))).all()  # noqa: S608
        dump = "\n".join(r[0] for r in rows)
        for what, marker in markers.items():
            assert marker not in dump, f"{what} left in {table.name}"
    # The financial records stay, intact and consistent.
    assert (await billing.get_balance(uow, user_id)).balance == balance_before
    assert await billing.check_consistency(uow, user_id)
    assert len(await billing.history(uow, user_id)) == 2


async def test_signing_in_after_deletion_creates_a_new_account(uow: UnitOfWork) -> None:
    tg = telegram_id()
    old = (await register(uow, tg_id=tg)).user
    await privacy.delete_user(uow, old.id, now=NOW)
    again = await register(uow, tg_id=tg)
    assert again.created
    assert again.user.id != old.id
    assert (await billing.get_balance(uow, again.user.id)).balance == 0


def test_delete_confirmation_expires_and_belongs_to_one_user() -> None:
    token = privacy.delete_token(7, secret="s", now=NOW)
    privacy.check_delete_token(token, 7, secret="s", now=NOW + timedelta(minutes=9))
    with pytest.raises(DeleteLinkExpired):
        privacy.check_delete_token(token, 7, secret="s", now=NOW + timedelta(minutes=11))
    with pytest.raises(DeleteLinkExpired):
        privacy.check_delete_token(token, 8, secret="s", now=NOW)
    with pytest.raises(DeleteLinkExpired):
        privacy.check_delete_token("garbage", 7, secret="s", now=NOW)
    assert len(f"del:{token}".encode()) <= 64
