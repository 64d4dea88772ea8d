"""Anything no feature handled: a private message gets the main menu, groups get silence."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.context import BotContext
from bot.filters import on_loop
from bot.keyboards import main_menu
from bot.texts import menu_text

router = Router(name="fallback")


@router.message(on_loop(F.chat.type == "private"))
async def on_anything(message: Message, ctx: BotContext) -> None:
    await message.answer(menu_text(), reply_markup=main_menu(ctx.web_app_url))
