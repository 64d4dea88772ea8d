"""Onboarding through the real bot and the sandbox: consent, language, menu, deep links."""

from __future__ import annotations

import json

from sqlalchemy import select

from core.services import accounts
from db.models import SignupAttribution
from tests.bot.conftest import (
    BOT_USERNAME,
    POLICY_VERSION,
    WEB_APP_URL,
    BotHarness,
    PersonFactory,
    buttons,
    text_of,
)


async def _account(harness: BotHarness, telegram_id: int):  # type: ignore[no-untyped-def]
    async with harness.uow_factory() as uow:
        return await accounts.get_by_telegram_id(uow, telegram_id)


async def test_start_asks_for_consent_and_stores_nothing_before_it(
    harness: BotHarness, person: PersonFactory
) -> None:
    alice = await person("Alice")
    [consent] = await alice.say("/start")
    text = text_of(consent)
    assert "privacy policy" in text
    assert "14 days" in text
    # The rights the policy grants are named by the commands that exercise them.
    assert "/export" in text and "/delete" in text
    links = [e for e in consent["message"]["entities"] if e["type"] == "text_link"]
    assert [link["url"] for link in links] == ["http://netroom.test/privacy/"]
    assert [b["text"] for b in buttons(consent)] == ["✅ Accept"]
    assert await _account(harness, alice.id) is None


async def test_nothing_works_until_the_policy_is_accepted(
    harness: BotHarness, person: PersonFactory
) -> None:
    bob = await person("Bob")
    [reply] = await bob.say("/referral")
    assert "accept our privacy policy" in text_of(reply)
    assert await _account(harness, bob.id) is None


async def test_accepting_registers_and_shows_the_menu_with_the_mini_app(
    harness: BotHarness, person: PersonFactory
) -> None:
    carol = await person("Carol")
    [consent] = await carol.say("/start")
    welcome, menu = await carol.accept(consent)
    assert "Thank you, Carol" in text_of(welcome)
    web_apps = [b["web_app"]["url"] for b in buttons(menu) if "web_app" in b]
    assert web_apps == [WEB_APP_URL]
    account = await _account(harness, carol.id)
    assert account is not None
    assert not account.needs_consent(POLICY_VERSION)
    transcript = await harness.client.transcript(carol.id)
    consent_now = next(
        m for m in transcript["messages"] if m["message_id"] == consent["message_id"]
    )
    assert consent_now["reply_markup"] is None  # the Accept button is gone
    answers = transcript["callback_answers"]
    assert [a["text"] for a in answers] == ["Accepted"]
    [bot_info] = [b for b in await harness.client.bots() if b["username"] == BOT_USERNAME]
    assert bot_info["menu_buttons"][str(carol.id)]["web_app"]["url"] == WEB_APP_URL


async def test_after_consent_messages_reach_the_features(
    harness: BotHarness, person: PersonFactory
) -> None:
    dave = await person("Dave")
    [consent] = await dave.say("/start")
    await dave.accept(consent)
    [menu] = await dave.say("/menu")
    assert "What would you like to do?" in text_of(menu)


async def test_russian_telegram_users_get_russian_texts_and_can_switch(
    harness: BotHarness, person: PersonFactory
) -> None:
    ivan = await person("Иван", language_code="ru")
    [consent] = await ivan.say("/start")
    assert "политику конфиденциальности" in text_of(consent)
    assert [b["text"] for b in buttons(consent)] == ["✅ Принять"]
    await ivan.accept(consent)
    [prompt] = await ivan.say("/language")
    assert text_of(prompt) == "Выберите язык интерфейса:"
    english = next(b for b in buttons(prompt) if b["text"].endswith("English"))
    [menu] = await ivan.tap(prompt, english["callback_data"])
    assert "What would you like to do?" in text_of(menu)
    account = await _account(harness, ivan.id)
    assert account is not None
    assert account.language == "en"


async def test_commands_are_set_in_both_languages(harness: BotHarness) -> None:
    [bot_info] = [b for b in await harness.client.bots() if b["username"] == BOT_USERNAME]
    by_language = {c["language_code"]: c["commands"] for c in bot_info["commands"]}
    assert {c["command"] for c in by_language[""]} >= {"start", "menu", "referral", "privacy"}
    russian = {c["command"]: c["description"] for c in by_language["ru"]}
    assert russian["referral"] == "Пригласить друзей"
    assert json.loads(bot_info["commands"][0]["scope"]) == {"type": "default"}


async def test_referral_chain_records_inviters_and_counts_two_levels(
    harness: BotHarness, person: PersonFactory
) -> None:
    anna = await person("Anna")
    await anna.accept((await anna.say("/start"))[0])
    [info] = await anna.say("/referral")
    text = text_of(info)
    start_link = next(word for word in text.split() if word.startswith("https://t.me/"))
    assert start_link.startswith(f"https://t.me/{BOT_USERNAME}?start=ref_")
    payload = start_link.split("?start=", 1)[1]

    boris = await person("Boris")
    [consent] = await boris.say(f"/start {payload}")
    after = await harness.client.last_seq()
    welcome, _ = await boris.accept(consent)
    assert "friend's invitation" in text_of(welcome)
    notice = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message", chat_id=anna.id, after=after
    )
    assert "A friend joined NetRoom" in text_of(notice)

    [boris_info] = await boris.say("/referral")
    boris_payload = text_of(boris_info).split("?start=", 1)[1].split()[0]
    clara = await person("Clara")
    await clara.accept((await clara.say(f"/start {boris_payload}"))[0])

    a = await _account(harness, anna.id)
    b = await _account(harness, boris.id)
    c = await _account(harness, clara.id)
    assert a is not None and b is not None and c is not None
    assert (b.invited_by, c.invited_by) == (a.id, b.id)
    [anna_info] = await anna.say("/referral")
    assert "Joined through your link: 1" in text_of(anna_info)
    assert "Joined through your friends' links: 1" in text_of(anna_info)


async def test_own_referral_link_is_refused_politely(
    harness: BotHarness, person: PersonFactory
) -> None:
    eve = await person("Eve")
    await eve.accept((await eve.say("/start"))[0])
    [info] = await eve.say("/referral")
    payload = text_of(info).split("?start=", 1)[1].split()[0]
    notice, menu = await eve.say(f"/start {payload}", replies=2)
    assert "your own invitation link" in text_of(notice)
    assert "What would you like to do?" in text_of(menu)
    account = await _account(harness, eve.id)
    assert account is not None
    assert account.invited_by is None


async def test_inviting_back_ones_inviter_is_refused_as_a_cycle(
    harness: BotHarness, person: PersonFactory
) -> None:
    frank = await person("Frank")
    await frank.accept((await frank.say("/start"))[0])
    frank_code = text_of((await frank.say("/referral"))[0]).split("?start=", 1)[1].split()[0]
    gina = await person("Gina")
    await gina.accept((await gina.say(f"/start {frank_code}"))[0])
    gina_code = text_of((await gina.say("/referral"))[0]).split("?start=", 1)[1].split()[0]
    notice, _ = await frank.say(f"/start {gina_code}", replies=2)
    assert "a friend you invited yourself" in text_of(notice)
    account = await _account(harness, frank.id)
    assert account is not None
    assert account.invited_by is None


async def test_unknown_referral_code_is_ignored_politely(
    harness: BotHarness, person: PersonFactory
) -> None:
    hugo = await person("Hugo")
    [consent] = await hugo.say("/start ref_zzzzzzzzzz")
    welcome, _ = await hugo.accept(consent)
    assert "not valid any more" in text_of(welcome)
    account = await _account(harness, hugo.id)
    assert account is not None
    assert account.invited_by is None


async def test_garbage_payloads_are_ignored_and_never_an_error(
    harness: BotHarness, person: PersonFactory
) -> None:
    for payload in ["<b>x</b>", "x" * 80, "ref_" + "é" * 10, "'; DROP TABLE users; --"]:
        someone = await person("Zed")
        [consent] = await someone.say(f"/start {payload}")
        assert "privacy policy" in text_of(consent)
        welcome, _ = await someone.accept(consent)
        assert "Thank you, Zed" in text_of(welcome)
        account = await _account(harness, someone.id)
        assert account is not None
        assert account.invited_by is None


async def test_campaign_tags_are_recorded_in_signup_attribution(
    harness: BotHarness, person: PersonFactory
) -> None:
    iris = await person("Iris")
    await iris.accept((await iris.say("/start src_vk__med_post__cmp_autumn"))[0])
    account = await _account(harness, iris.id)
    assert account is not None
    async with harness.uow_factory() as uow:
        row = (
            await uow.session.execute(select(SignupAttribution).filter_by(user_id=account.id))
        ).scalar_one()
        assert (row.utm_source, row.utm_medium, row.utm_campaign, row.platform) == (
            "vk",
            "post",
            "autumn",
            "telegram",
        )
