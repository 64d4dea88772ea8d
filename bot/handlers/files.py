"""Documents: send one to the bot and ask about it. The file is checked, kept once per user and
content, indexed on the worker, and attached to the current conversation; /files lists them, and
attaches, detaches or deletes each."""

from __future__ import annotations

import io
import logging
from html import escape

from aiogram import Bot, F, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.context import BotContext
from bot.filters import Command, on_loop
from core.documents import DocumentTooLarge
from core.dto import UserDTO
from core.media import MediaStore
from core.ports import JobQueue
from core.services import chat, conversations, files
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="files")
STATUS = {
    "queued": "⏳",
    "indexing": "⏳",
    "ready": "✅",
    "failed": "❌",
}


class FilesCallback(CallbackData, prefix="files"):
    # attach, detach, delete
    action: str
    id: int


@router.message(on_loop(F.document & (F.chat.type == "private")))
async def on_document(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    media_store: MediaStore,
    jobs: JobQueue,
) -> None:
    document = message.document
    assert document is not None
    limits = ctx.file_limits
    if document.file_size is not None and document.file_size > limits.max_bytes:
        raise DocumentTooLarge(
            f"{document.file_size} bytes", limit_mb=limits.max_bytes // (1024 * 1024)
        )
    buffer = io.BytesIO()
    await bot.download(document, destination=buffer)
    name = document.file_name or "document"
    stored = await files.upload(
        uow,
        media_store,
        user_id=user.id,
        name=name,
        data=buffer.getvalue(),
        limits=limits,
        now=ctx.clock(),
    )
    # A conversation started for a file follows the user's default model, as any other.
    conversation_id = await conversations.current_conversation(
        uow, user.id, title=f"📄 {stored.name}"
    )
    await files.attach(uow, user_id=user.id, file_id=stored.id, conversation_id=conversation_id)
    if stored.new:
        await jobs.enqueue("files.index", file_id=stored.id)
        await message.reply(
            _("📄 Got {name}. Reading it now; I will tell you when it is ready.").format(
                name=escape(stored.name)
            )
        )
    elif stored.retried:
        await jobs.enqueue("files.index", file_id=stored.id)
        await message.reply(
            _(
                "📄 I could not read {name} last time. Trying again; I will tell you how it went."
            ).format(name=escape(stored.name))
        )
    else:
        await message.reply(
            _("📄 You sent {name} before. It is attached to this chat.").format(
                name=escape(stored.name)
            )
        )


def _files_view(found: list[files.FileDTO]) -> tuple[str, InlineKeyboardMarkup | None]:
    if not found:
        return _("You have no documents yet. Send a PDF, a Word document or a text file."), None
    lines = [_("📚 <b>Your documents</b> (📎 attached to this chat):"), ""]
    builder = InlineKeyboardBuilder()
    for f in found:
        mark = "📎 " if f.attached else ""
        size = f"{f.size / 1024:.0f} KB" if f.size < 1024 * 1024 else f"{f.size / 1048576:.1f} MB"
        lines.append(f"{STATUS.get(f.status, '')} {mark}{escape(f.name)} · {size}")
        if f.status == "ready":
            if f.attached:
                builder.button(
                    text=_("Detach {name}").format(name=f.name[:24]),
                    callback_data=FilesCallback(action="detach", id=f.id),
                )
            else:
                builder.button(
                    text=_("Attach {name}").format(name=f.name[:24]),
                    callback_data=FilesCallback(action="attach", id=f.id),
                )
        builder.button(
            text=_("🗑 {name}").format(name=f.name[:24]),
            callback_data=FilesCallback(action="delete", id=f.id),
        )
    builder.adjust(2)
    return "\n".join(lines), builder.as_markup()


async def _send_files(bot: Bot, chat_id: int, uow: UnitOfWork, user: UserDTO) -> None:
    prefs = chat.prefs_from(user.features, history_enabled=user.history_enabled)
    found = await files.list_files(uow, user.id, conversation_id=prefs.conversation_id)
    text, markup = _files_view(found)
    await bot.send_message(chat_id, text, reply_markup=markup)


@router.message(Command("files"))
async def show_files(message: Message, bot: Bot, uow: UnitOfWork, user: UserDTO) -> None:
    await _send_files(bot, message.chat.id, uow, user)


@router.callback_query(FilesCallback.filter())
async def on_files_action(
    query: CallbackQuery,
    callback_data: FilesCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    media_store: MediaStore,
) -> None:
    if callback_data.action == "delete":
        await files.delete_file(uow, media_store, user_id=user.id, file_id=callback_data.id)
        note = _("Deleted, with everything indexed from it.")
    else:
        conversation_id = await conversations.current_conversation(uow, user.id, title="📄")
        if callback_data.action == "attach":
            await files.attach(
                uow, user_id=user.id, file_id=callback_data.id, conversation_id=conversation_id
            )
            note = _("Attached to this chat.")
        else:
            await files.detach(
                uow, user_id=user.id, file_id=callback_data.id, conversation_id=conversation_id
            )
            note = _("Detached from this chat.")
    await query.answer(note)
    prefs = await chat.get_prefs(uow, user.id)
    found = await files.list_files(uow, user.id, conversation_id=prefs.conversation_id)
    text, markup = _files_view(found)
    await bot.send_message(query.from_user.id, text, reply_markup=markup)
