"""Times in the bot are shown in the user's zone (/timezone, the settings' entry, or a guess from
the language), and the plan, its period and the free-tier reset read as one story in ru and en.
The real dispatcher against the sandbox."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from core.services import billing
from tests.bot.conftest import BotHarness, Person, PersonFactory, buttons, text_of


async def _onboard(person: PersonFactory, name: str, language: str = "en") -> Person:
    someone: Person = await person(name, language_code=language)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    return someone


async def _top_up(harness: BotHarness, telegram_id: int, amount: int) -> datetime:
    """A credit on the user's ledger; when the database recorded it."""
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(telegram_id)
        assert user is not None
        async with uow.transaction():
            entry = await billing.credit(
                uow,
                user_id=user.id,
                amount=amount,
                category="bonus",
                key=f"tz-test:{telegram_id}:{amount}",
            )
    assert entry.created_at is not None
    return entry.created_at


def _shown(moment: datetime, zone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}"


async def test_history_times_follow_the_chosen_zone_and_name_it(
    harness: BotHarness, person: PersonFactory
) -> None:
    lee = await _onboard(person, "Lee")
    at = await _top_up(harness, lee.id, 12_300)
    [done] = await lee.say("/timezone asia/yekaterinburg")
    assert "Time zone: Asia/Yekaterinburg" in text_of(done)
    [history] = await lee.say("/history")
    text = text_of(history)
    assert "Times are in Asia/Yekaterinburg" in text
    assert f"{_shown(at, 'Asia/Yekaterinburg')} +₽123.00 · bonus" in text
    # Yekaterinburg is five hours ahead of UTC all year: the UTC time is not what is shown.
    assert _shown(at, "UTC") not in text


async def test_times_default_to_moscow_for_russian_speakers_until_they_choose(
    harness: BotHarness, person: PersonFactory
) -> None:
    olga = await _onboard(person, "Ольга", "ru")
    at = await _top_up(harness, olga.id, 5_000)
    [history] = await olga.say("/history")
    assert "Время указано по поясу Europe/Moscow; сменить: /timezone." in text_of(history)
    assert _shown(at, "Europe/Moscow") in text_of(history)
    [picker] = await olga.say("/timezone")
    assert "выбран по языку интерфейса" in text_of(picker)
    labels = [b["text"] for b in buttons(picker)]
    assert "✅ Москва · UTC+3" in labels
    assert "Екатеринбург · UTC+5" in labels and "Камчатка · UTC+12" in labels


async def test_the_settings_entry_picks_a_zone_from_the_buttons(
    harness: BotHarness, person: PersonFactory
) -> None:
    ivan = await _onboard(person, "Иван", "ru")
    [settings] = await ivan.say("/settings")
    [entry] = [b for b in buttons(settings) if b["text"] == "🕒 Часовой пояс"]
    [picker] = await ivan.tap(settings, entry["callback_data"])
    [vladivostok] = [b for b in buttons(picker) if b["text"].startswith("Владивосток")]
    [done] = await ivan.tap(picker, vladivostok["callback_data"])
    assert "Часовой пояс: Asia/Vladivostok" in text_of(done)
    # The free tier's reset is shown in the chosen zone, named, and called what it is.
    [balance] = await ivan.say("/balance")
    text = text_of(balance)
    assert re.search(r"Бесплатные запросы обновятся: \S+ \S+ \(Asia/Vladivostok\)", text)
    assert "Следующее продление" not in text and "basic" not in text
    assert "Осталось бесплатных запросов: базовые 1/1." in text


async def test_an_unknown_zone_is_refused_and_nothing_changes(
    harness: BotHarness, person: PersonFactory
) -> None:
    max_ = await _onboard(person, "Max")
    [refused] = await max_.say("/timezone Mars/Olympus_Mons")
    assert "Unknown time zone" in text_of(refused)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(max_.id)
        assert user is not None and user.timezone is None


async def test_plans_promise_free_requests_per_actual_period_in_russian(
    harness: BotHarness, person: PersonFactory
) -> None:
    anna = await _onboard(person, "Анна", "ru")
    [plans] = await anna.say("/subscribe")
    text = text_of(plans)
    assert "3 бесплатных запросов в день (базовые модели)" in text
    assert "basic" not in text and "за период" not in text
