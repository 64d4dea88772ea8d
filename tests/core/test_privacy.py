from __future__ import annotations

import json
import secrets
import tempfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from core.deeplinks import parse_start_payload
from core.dto import ClientInfo
from core.media import LocalMediaStore
from core.services import (
    accounts,
    admin,
    billing,
    conversations,
    files,
    payments,
    presets,
    privacy,
    redo,
    sessions,
    support,
    tariffs,
)
from core.services.privacy import DeleteLinkExpired, ExportTooSoon
from db import models
from db.base import Base
from db.models import File, Identity, ShareLink
from db.uow import UnitOfWork
from tests.core.test_payments import TERMS
from tests.factories import register, telegram_id

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STORE_DIR = Path(tempfile.mkdtemp(prefix="netroom-privacy-"))
STORE = LocalMediaStore(STORE_DIR)


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
    async with uow.transaction():
        await billing.debit(
            uow, user_id=user_id, amount=1_000, category="text", key="spend-" + secrets.token_hex(6)
        )
    # Content: a conversation with a message, a preset, an uploaded document and its index,
    # a share link, support threads, a session, free-tier use and an admin's note.
    conversation = await conversations.current_conversation(
        uow, user_id, title="Diary", model_id="m"
    )
    await uow.chats.append_message(
        conversation_id=conversation,
        user_id=user_id,
        role="user",
        content="Secret diary entry 4242",
        reasoning=None,
        model_id="m",
        input_tokens=None,
        output_tokens=None,
        status="complete",
        created_at=NOW,
        expires_at=NOW + timedelta(days=14),
    )
    await uow.commit()
    preset = await presets.create_preset(
        uow, user_id, title="Mine", prompt="Preset prompt of Priya 7373"
    )
    uow.session.add(ShareLink(user_id=user_id, token_hash="ab" * 32, preset_id=preset.id))
    uploaded = await files.upload(
        uow,
        STORE,
        user_id=user_id,
        name="orchard.txt",
        data=b"Classified orchard ledger 5151 with enough words to index.",
        limits=files.FileLimits(),
        now=NOW,
    )
    await files.index(
        uow, STORE, file_id=uploaded.id, limits=files.FileLimits(), embedder=None, now=NOW
    )
    await sessions.open_session(
        uow,
        user_id=user_id,
        client=ClientInfo(platform="web", ip="203.0.113.99", user_agent="Agent/7.7 unique"),
        now=NOW,
        ttl=timedelta(days=30),
    )
    await support.save_thread(
        uow, user_id=user_id, admin_chat_id=-100777, topic_id=55, header_message_id=56, now=NOW
    )
    await support.record_message(
        uow,
        user_id=user_id,
        direction="in",
        user_message_id=10,
        admin_chat_id=-100777,
        admin_message_id=57,
        now=NOW,
    )
    await admin.adjust_balance(
        uow,
        admin_telegram_id=1,
        user_id=user_id,
        amount=100,
        reason=f"asked by @{username}",
        key="adjust-" + secrets.token_hex(6),
    )
    await tariffs.take_free_use(
        uow,
        tariffs.Tariffs(free_limits={"basic": 5}),
        user_id=user_id,
        tier="basic",
        plan=None,
        now=NOW,
    )
    await uow.commit()
    markers = {
        "telegram id": str(tg),
        "username": username,
        "name": "Priya Vasquez",
        "email": email,
        "ip": "203.0.113.99",
        "user agent": "Agent/7.7 unique",
        "message": "Secret diary entry 4242",
        "preset": "Preset prompt of Priya 7373",
        "document": "Classified orchard ledger 5151",
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
    assert [t["amount_kopecks"] for t in categories["transactions"]] == [6_500, -1_000, 100]
    assert categories["payments"][0]["external_id"].startswith("charge-")
    assert "secret-hash" not in json.dumps(document)


async def test_json_export_is_pretty_printed_with_money_named_for_its_unit(
    uow: UnitOfWork,
) -> None:
    user_id, _ = await _rich_user(uow)
    export = await privacy.export_user(uow, user_id, fmt="json", now=NOW)
    with export.data:
        raw = export.data.read().decode()
    document = json.loads(raw)
    # One field a line, indented: readable in any text editor.
    assert '\n  "categories": {\n    "account": [\n      {\n        "id": ' in raw
    assert "kopecks" in document["units"]["*_kopecks"]
    balance = document["categories"]["balance"][0]
    assert {"balance_kopecks", "reserved_kopecks"} <= set(balance)
    assert "balance" not in balance and "amount" not in document["categories"]["transactions"][0]
    payment = document["categories"]["payments"][0]
    assert {"amount_minor_units", "credited_kopecks", "currency"} <= set(payment)


async def test_html_transcript_shows_the_chats_escaped_and_runs_nothing(uow: UnitOfWork) -> None:
    user_id, markers = await _rich_user(uow)
    conversation = await conversations.current_conversation(
        uow, user_id, title="Diary", model_id="m"
    )
    await uow.chats.append_message(
        conversation_id=conversation,
        user_id=user_id,
        role="assistant",
        content='<script>alert("x")</script> & <img src=x onerror=alert(1)> $x^2$',
        reasoning="thinking <b>hard</b>",
        model_id="gpt-test",
        input_tokens=None,
        output_tokens=None,
        status="complete",
        created_at=NOW + timedelta(seconds=1),
        expires_at=NOW + timedelta(days=14),
        sources=["<notes>.pdf, p. 2", "plan.md › Goals"],
    )
    await uow.chats.append_message(
        conversation_id=conversation,
        user_id=user_id,
        role="assistant",
        content="An older answer.",
        reasoning=None,
        model_id="gpt-retired",
        input_tokens=None,
        output_tokens=None,
        status="complete",
        created_at=NOW + timedelta(seconds=2),
        expires_at=NOW + timedelta(days=14),
    )
    await uow.commit()
    labels = {"You": "Вы", "Assistant": "Ассистент", "Sources: {sources}": "Источники: {sources}"}
    export = await privacy.export_user(
        uow,
        user_id,
        fmt="html",
        now=NOW,
        translate=lambda s: labels.get(s, s),
        language="ru",
        model_names={"gpt-test": "GPT <Test>"},
    )
    assert (export.file_name, export.mime) == ("netroom-chats.html", "text/html; charset=utf-8")
    with export.data:
        page = export.data.read().decode()
    assert page.startswith("<!doctype html>") and '<html lang="ru">' in page
    assert "<h2>Diary</h2>" in page and markers["message"] in page
    # Models by their display names; one no longer in the catalogue by its id.
    assert ">Вы · " in page and ">Ассистент · GPT &lt;Test&gt; · " in page
    assert ">Ассистент · gpt-retired · " in page and "gpt-test" not in page
    # The sources a reply cited, under it.
    assert "Источники: &lt;notes&gt;.pdf, p. 2; plan.md › Goals" in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x" in page
    assert "thinking &lt;b&gt;hard&lt;/b&gt;" in page
    # Nothing runs and nothing is fetched, whatever the messages held.
    assert "<script" not in page and "<img" not in page
    assert "default-src 'none'" in page
    assert export.rows == 3
    # The JSON export holds them with the message.
    document = await privacy.export_user(uow, user_id, fmt="json", now=NOW)
    with document.data:
        messages = json.loads(document.data.read())["categories"]["messages"]
    assert [m["sources"] for m in messages] == [
        None,
        ["<notes>.pdf, p. 2", "plan.md › Goals"],
        None,
    ]


async def test_html_transcript_tells_times_in_the_users_zone_and_names_it(
    uow: UnitOfWork,
) -> None:
    user_id, _ = await _rich_user(uow)
    conversation = await conversations.current_conversation(uow, user_id, title="Zones")
    await uow.chats.append_message(
        conversation_id=conversation,
        user_id=user_id,
        role="user",
        content="What time is it?",
        reasoning="",
        model_id=None,
        input_tokens=None,
        output_tokens=None,
        status="complete",
        created_at=NOW + timedelta(minutes=7),
        expires_at=NOW + timedelta(days=14),
    )
    await uow.commit()
    await accounts.set_timezone(uow, user_id, "Asia/Tokyo")
    export = await privacy.export_user(
        uow, user_id, fmt="html", now=NOW, fallback_zone="Europe/Moscow"
    )
    with export.data:
        page = export.data.read().decode()
    # 12:00 UTC is 21:00 in Tokyo; the message 7 minutes later.
    assert "Exported 2026-11-24 21:00 (Asia/Tokyo); times are in that zone." in page
    assert "You · 2026-11-24 21:07</div>" in page
    # Without a zone of their own, the deployment's zone stands in (named as well).
    async with uow.transaction():
        await uow.users.set_fields(user_id, timezone=None)
    later = await privacy.export_user(
        uow, user_id, fmt="html", now=NOW + timedelta(hours=2), fallback_zone="Europe/Moscow"
    )
    with later.data:
        assert "Exported 2026-11-24 17:00 (Europe/Moscow)" in later.data.read().decode()


async def test_zip_export_has_one_csv_per_category(uow: UnitOfWork) -> None:
    user_id, markers = await _rich_user(uow)
    export = await privacy.export_user(uow, user_id, fmt="zip", now=NOW)
    with export.data, zipfile.ZipFile(export.data) as archive:
        names = set(archive.namelist())
        assert names == {f"{c}.csv" for c in privacy.EXPORTED}
        identities = archive.read("identities.csv").decode()
    assert markers["email"] in identities
    assert "secret-hash" not in identities


async def test_exports_are_limited_to_one_an_hour_in_each_format(uow: UnitOfWork) -> None:
    user_id, _ = await _rich_user(uow)
    (await privacy.export_user(uow, user_id, fmt="json", now=NOW)).data.close()
    # Another format right after the first is not refused.
    soon = NOW + timedelta(minutes=1)
    (await privacy.export_user(uow, user_id, fmt="zip", now=soon)).data.close()
    (await privacy.export_user(uow, user_id, fmt="html", now=soon)).data.close()
    for fmt in privacy.FORMATS:
        with pytest.raises(ExportTooSoon):
            await privacy.export_user(uow, user_id, fmt=fmt, now=NOW + timedelta(minutes=30))
    later = await privacy.export_user(uow, user_id, fmt="json", now=NOW + timedelta(minutes=61))
    later.data.close()


async def test_deletion_leaves_nothing_that_leads_back_to_the_person(uow: UnitOfWork) -> None:
    user_id, markers = await _rich_user(uow)
    balance_before = (await billing.get_balance(uow, user_id)).balance
    keys = list(await uow.session.scalars(select(File.storage_key).where(File.user_id == user_id)))
    assert all((STORE_DIR / k[:2] / k).exists() for k in keys)
    await privacy.delete_user(uow, user_id, now=NOW, store=STORE)
    for table in Base.metadata.sorted_tables:
        rows = (await uow.session.execute(text(f'SELECT t::text FROM "{table.name}" t'))).all()  # noqa: S608
        dump = "\n".join(r[0] for r in rows)
        for what, marker in markers.items():
            assert marker not in dump, f"{what} left in {table.name}"
    # The financial records stay, intact and consistent.
    assert (await billing.get_balance(uow, user_id)).balance == balance_before
    assert await billing.check_consistency(uow, user_id)
    assert len(await billing.history(uow, user_id)) == 3
    # Nothing of theirs is left in the file store either.
    assert keys and not [k for k in keys if (STORE_DIR / k[:2] / k).exists()]


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


async def test_a_replys_rating_and_cost_are_exported_and_deleted_with_the_account(
    uow: UnitOfWork,
) -> None:
    user_id, _ = await _rich_user(uow)
    conversation = await conversations.current_conversation(
        uow, user_id, title="Diary", model_id="m"
    )
    reply_id = await uow.chats.append_message(
        conversation_id=conversation,
        user_id=user_id,
        role="assistant",
        content="A rated reply",
        reasoning=None,
        model_id="m",
        input_tokens=10,
        output_tokens=20,
        status="complete",
        created_at=NOW,
        expires_at=NOW + timedelta(days=14),
        cost=137,
    )
    await uow.commit()
    assert await redo.rate_reply(uow, user_id, reply_id, rating=-1) == reply_id
    export = await privacy.export_user(uow, user_id, fmt="json", now=NOW)
    with export.data:
        exported = json.loads(export.data.read())["categories"]["messages"]
    [rated] = [m for m in exported if m["id"] == reply_id]
    assert (rated["rating"], rated["cost"], rated["replaced"]) == (-1, 137, False)
    await privacy.delete_user(uow, user_id, now=NOW, store=STORE)
    left = await uow.session.scalars(
        select(models.ChatMessageRow.id).where(models.ChatMessageRow.user_id == user_id)
    )
    assert list(left) == []
