"""The time zone every time is shown in: /timezone, and its entry in /settings.

Telegram does not tell a bot where its user is, so until they choose, times are shown in a zone
guessed from the interface language (see ``accounts.time_zone_of``). The buttons offer the
common zones for the language; any IANA name can be typed after the command.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import MenuCallback, TimeZoneCallback
from bot.context import BotContext
from bot.filters import Command
from bot.texts import local_time
from core.dto import UserDTO
from core.i18n import N_
from core.services import accounts
from db.uow import UnitOfWork

router = Router(name="timezone")

# Button labels: the place each zone is named after.
PLACES = {
    "Europe/Kaliningrad": N_("Kaliningrad"),
    "Europe/Moscow": N_("Moscow"),
    "Europe/Samara": N_("Samara"),
    "Asia/Yekaterinburg": N_("Yekaterinburg"),
    "Asia/Omsk": N_("Omsk"),
    "Asia/Novosibirsk": N_("Novosibirsk"),
    "Asia/Krasnoyarsk": N_("Krasnoyarsk"),
    "Asia/Irkutsk": N_("Irkutsk"),
    "Asia/Yakutsk": N_("Yakutsk"),
    "Asia/Vladivostok": N_("Vladivostok"),
    "Asia/Magadan": N_("Magadan"),
    "Asia/Kamchatka": N_("Kamchatka"),
    "Europe/London": N_("London"),
    "Europe/Berlin": N_("Berlin"),
    "UTC": N_("UTC"),
    "America/New_York": N_("New York"),
    "America/Chicago": N_("Chicago"),
    "America/Los_Angeles": N_("Los Angeles"),
    "Asia/Dubai": N_("Dubai"),
    "Asia/Kolkata": N_("India"),
    "Asia/Tokyo": N_("Tokyo"),
}
COMMON_ZONES = {
    "ru": (
        "Europe/Kaliningrad",
        "Europe/Moscow",
        "Europe/Samara",
        "Asia/Yekaterinburg",
        "Asia/Omsk",
        "Asia/Novosibirsk",
        "Asia/Krasnoyarsk",
        "Asia/Irkutsk",
        "Asia/Yakutsk",
        "Asia/Vladivostok",
        "Asia/Magadan",
        "Asia/Kamchatka",
        "UTC",
    ),
    "en": (
        "Europe/London",
        "Europe/Berlin",
        "Europe/Moscow",
        "UTC",
        "America/New_York",
        "America/Chicago",
        "America/Los_Angeles",
        "Asia/Dubai",
        "Asia/Kolkata",
        "Asia/Tokyo",
    ),
}


def utc_offset(zone: str, now: datetime) -> str:
    """The zone's offset now, as people write it: UTC+3, UTC+5:30, UTC−5."""
    offset = now.astimezone(ZoneInfo(zone)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "−"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def zone_keyboard(language: str, current: str, now: datetime) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for zone in COMMON_ZONES.get(language, COMMON_ZONES["en"]):
        place = _(PLACES[zone])
        label = place if zone == "UTC" else f"{place} · {utc_offset(zone, now)}"
        builder.button(
            text=("✅ " if zone == current else "") + label,
            callback_data=TimeZoneCallback(zone=zone),
        )
    builder.adjust(2)
    return builder.as_markup()


def zone_text(user: UserDTO, zone: str, now: datetime) -> str:
    lines = [
        _("🕒 Times are shown in <b>{zone}</b>: it is {now} there now.").format(
            zone=escape(zone), now=f"{now.astimezone(ZoneInfo(zone)):%H:%M}"
        )
    ]
    if user.timezone is None:
        lines.append(_("This zone was guessed from your language: choose yours below."))
    lines.append(
        _("Not in the list? Send /timezone with the zone's name, for example {example}.").format(
            example="<code>/timezone Asia/Almaty</code>"
        )
    )
    return "\n".join(lines)


async def _send_picker(bot: Bot, chat_id: int, user: UserDTO, ctx: BotContext) -> None:
    zone = accounts.time_zone_of(user, ctx.tariffs.timezone)
    now = ctx.clock()
    await bot.send_message(
        chat_id, zone_text(user, zone, now), reply_markup=zone_keyboard(user.language, zone, now)
    )


def zone_set_text(zone: str, now: datetime) -> str:
    return _("✅ Time zone: {zone}. Times are now shown in it, for example now: {now}.").format(
        zone=escape(zone), now=local_time(now, zone)
    )


@router.message(Command("timezone"))
async def on_timezone(
    message: Message,
    command: CommandObject,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    typed = (command.args or "").strip()
    if not typed:
        await _send_picker(bot, message.chat.id, user, ctx)
        return
    updated = await accounts.set_timezone(uow, user.id, typed)
    assert updated.timezone is not None
    await message.answer(zone_set_text(updated.timezone, ctx.clock()))


@router.callback_query(MenuCallback.filter(F.action == "timezone"))
async def on_menu_timezone(query: CallbackQuery, bot: Bot, user: UserDTO, ctx: BotContext) -> None:
    await query.answer()
    await _send_picker(bot, query.from_user.id, user, ctx)


@router.callback_query(TimeZoneCallback.filter())
async def on_zone_chosen(
    query: CallbackQuery,
    callback_data: TimeZoneCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    updated = await accounts.set_timezone(uow, user.id, callback_data.zone)
    assert updated.timezone is not None
    now = ctx.clock()
    await query.answer()
    # The same zone tapped again leaves the message as it is ("message is not modified").
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(
                zone_text(updated, updated.timezone, now),
                reply_markup=zone_keyboard(updated.language, updated.timezone, now),
            )
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message:
                raise
    await bot.send_message(query.from_user.id, zone_set_text(updated.timezone, now))
