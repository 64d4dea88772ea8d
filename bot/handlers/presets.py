"""Prompt presets: create, edit, delete and pick them from the bot."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import PresetCallback
from bot.context import BotContext
from bot.filters import Command, on_loop
from bot.states import PresetForm
from core.dto import UserDTO
from core.services import chat
from core.services import presets as preset_book
from db.uow import UnitOfWork

router = Router(name="presets")
router.message.filter(on_loop(F.chat.type == "private"))


def presets_keyboard(
    presets: list[preset_book.PresetDTO], current: int | None
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for preset in presets:
        mark = "• " if preset.id == current else ""
        builder.button(
            text=f"{mark}{preset.title}", callback_data=PresetCallback(action="use", id=preset.id)
        )
        builder.button(text="✏️", callback_data=PresetCallback(action="edit", id=preset.id))
        builder.button(text="🗑", callback_data=PresetCallback(action="delete", id=preset.id))
    builder.button(text=_("➕ New preset"), callback_data=PresetCallback(action="new"))
    if current is not None:
        builder.button(text=_("✖️ No preset"), callback_data=PresetCallback(action="none"))
    builder.adjust(*([3] * len(presets)), 1, 1)
    return builder.as_markup()


async def _show(bot: Bot, chat_id: int, uow: UnitOfWork, user: UserDTO) -> None:
    presets = await preset_book.list_presets(uow, user.id)
    prefs = await chat.get_prefs(uow, user.id)
    text = (
        _("📝 Your presets. The one you pick is the model's instructions in new conversations.")
        if presets
        else _("📝 You have no presets yet. A preset is a set of instructions for the model.")
    )
    await bot.send_message(chat_id, text, reply_markup=presets_keyboard(presets, prefs.preset_id))


@router.message(Command("presets"))
async def show_presets(message: Message, bot: Bot, uow: UnitOfWork, user: UserDTO) -> None:
    await _show(bot, message.chat.id, uow, user)


@router.callback_query(PresetCallback.filter(F.action == "new"))
async def on_new(query: CallbackQuery, bot: Bot, state: FSMContext) -> None:
    await query.answer()
    await state.set_state(PresetForm.title)
    await bot.send_message(query.from_user.id, _("Send a short title for the preset."))


@router.message(StateFilter(PresetForm.title), on_loop(F.text))
async def on_title(message: Message, state: FSMContext) -> None:
    title = (message.text or "").strip()
    if not 1 <= len(title) <= 64 or title.startswith("/"):
        await message.answer(_("A title is 1 to 64 characters. Send it again."))
        return
    await state.update_data(preset_title=title)
    await state.set_state(PresetForm.prompt)
    await message.answer(_("Now send the instructions for the model."))


@router.message(StateFilter(PresetForm.prompt), on_loop(F.text))
async def on_prompt(
    message: Message, bot: Bot, state: FSMContext, uow: UnitOfWork, user: UserDTO
) -> None:
    data = await state.get_data()
    preset = await preset_book.create_preset(
        uow, user.id, title=str(data.get("preset_title", "")), prompt=message.text or ""
    )
    await state.clear()
    await preset_book.use_preset(uow, user.id, preset.id)
    await message.answer(
        _("✅ Preset «{title}» saved and picked for your next conversation.").format(
            title=preset.title
        )
    )


@router.callback_query(PresetCallback.filter(F.action == "edit"))
async def on_edit(
    query: CallbackQuery, callback_data: PresetCallback, bot: Bot, state: FSMContext
) -> None:
    await query.answer()
    await state.set_state(PresetForm.new_prompt)
    await state.update_data(preset_id=callback_data.id)
    await bot.send_message(query.from_user.id, _("Send the new instructions for this preset."))


@router.message(StateFilter(PresetForm.new_prompt), on_loop(F.text))
async def on_new_prompt(
    message: Message, state: FSMContext, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    data = await state.get_data()
    presets = {p.id: p for p in await preset_book.list_presets(uow, user.id)}
    current = presets.get(int(data.get("preset_id", 0)))
    await state.clear()
    if current is None:
        await message.answer(_("This preset no longer exists."))
        return
    await preset_book.edit_preset(
        uow, user.id, current.id, title=current.title, prompt=message.text or "", now=ctx.clock()
    )
    await message.answer(_("✅ Preset «{title}» updated.").format(title=current.title))


@router.callback_query(PresetCallback.filter(F.action.in_({"use", "none", "delete"})))
async def on_pick(
    query: CallbackQuery,
    callback_data: PresetCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
) -> None:
    if callback_data.action == "delete":
        await preset_book.delete_preset(uow, user.id, callback_data.id)
        await query.answer(_("Deleted."))
    else:
        await preset_book.use_preset(
            uow, user.id, callback_data.id if callback_data.action == "use" else None
        )
        await query.answer(_("Picked for your next conversation."))
    if query.message is not None:
        presets = await preset_book.list_presets(uow, user.id)
        prefs = await chat.get_prefs(uow, user.id)
        await bot.edit_message_reply_markup(
            chat_id=query.from_user.id,
            message_id=query.message.message_id,
            reply_markup=presets_keyboard(presets, prefs.preset_id),
        )
