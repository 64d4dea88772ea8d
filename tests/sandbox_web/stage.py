"""The stage for the page tests: the real sandbox app with the page, and a tiny echo bot built on
the real aiogram Bot and dispatcher, talking to it over HTTP on loopback."""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    ChosenInlineResult,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultArticle,
    InputTextMessageContent,
    KeyboardButton,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
    ReplyKeyboardMarkup,
    WebAppInfo,
)
from aiohttp import web

from sandbox.app import create_app
from sandbox.client import SandboxClient
from sandbox.providers.openai import MP4_BLOB
from sandbox.web import setup_page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MINI_APP_PATH = "/mini-app-under-test"
GATE_TIMEOUT = 10.0
# A page standing in for the Mini App: it shows what it was launched with and what the client
# sent it.
MINI_APP_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Mini App under test</title></head>
<body><pre id="launch"></pre><ol id="received"></ol>
<script>
document.getElementById("launch").textContent = location.search + location.hash;
window.addEventListener("message", (event) => {
  const item = document.createElement("li");
  item.textContent = typeof event.data === "string" ? event.data : JSON.stringify(event.data);
  document.getElementById("received").append(item);
});
window.parent.postMessage(JSON.stringify({eventType: "web_app_ready", eventData: {}}), "*");
</script></body></html>
"""


async def mini_app_page(request: web.Request) -> web.Response:
    return web.Response(text=MINI_APP_HTML, content_type="text/html")


@dataclass
class PageServer:
    url: str
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_page_server(port: int = 0) -> PageServer:
    app = create_app()
    setup_page(app)
    app.router.add_get(MINI_APP_PATH, mini_app_page)
    # A page holds a long-poll open; shutting down must not wait for it.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = next(address[1] for address in runner.addresses)
    return PageServer(url=f"http://127.0.0.1:{bound}", runner=runner)


@dataclass
class Gates:
    """Lets a test hold the bot mid-reply (a draft shown, an action sent) and then let it go."""

    events: dict[int, asyncio.Event] = field(default_factory=dict)

    def event(self, chat_id: int) -> asyncio.Event:
        return self.events.setdefault(chat_id, asyncio.Event())

    def release(self, chat_id: int) -> None:
        self.event(chat_id).set()

    async def wait(self, chat_id: int) -> None:
        await asyncio.wait_for(self.event(chat_id).wait(), GATE_TIMEOUT)


def echo_router(gates: Gates, mini_app_url: str) -> Router:
    router = Router()

    @router.message(CommandStart())
    async def on_start(message: Message, command: CommandObject) -> None:
        invited = f" You came with {html.escape(command.args)}." if command.args else ""
        await message.answer("Welcome! Send me anything." + invited)

    @router.message(Command("keyboard"))
    async def on_keyboard(message: Message) -> None:
        keyboard = ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text="Yes"), KeyboardButton(text="No")]],
            resize_keyboard=True,
            one_time_keyboard=True,
            input_field_placeholder="Yes or no?",
        )
        await message.answer("Pick one", reply_markup=keyboard)

    @router.message(Command("stream"))
    async def on_stream(message: Message, bot: Bot) -> None:
        await bot.send_message_draft(chat_id=message.chat.id, draft_id=7, text="Thinking")
        await bot.send_message_draft(
            chat_id=message.chat.id, draft_id=7, text="Thinking <b>hard</b>"
        )
        await gates.wait(message.chat.id)
        await message.answer("Final answer")

    @router.message(Command("slow"))
    async def on_slow(message: Message, bot: Bot) -> None:
        await bot.send_chat_action(chat_id=message.chat.id, action="typing")
        await gates.wait(message.chat.id)
        await message.answer("Done thinking")

    @router.message(Command("vanish"))
    async def on_vanish(message: Message) -> None:
        doomed = await message.answer("This will vanish")
        await gates.wait(message.chat.id)
        await doomed.delete()
        await message.answer("Gone")

    @router.message(Command("invoice"))
    async def on_invoice(message: Message) -> None:
        await message.answer_invoice(
            title="Stars",
            description="Top up the balance",
            payload="topup-5",
            currency="XTR",
            prices=[LabeledPrice(label="Stars", amount=5)],
        )

    @router.pre_checkout_query()
    async def on_pre_checkout(query: PreCheckoutQuery) -> None:
        await query.answer(ok=True)

    @router.message(F.successful_payment)
    async def on_paid(message: Message) -> None:
        assert message.successful_payment is not None
        await message.answer(f"Thanks for {message.successful_payment.total_amount} stars")

    @router.message(F.document)
    async def on_document(message: Message, bot: Bot) -> None:
        assert message.document is not None
        downloaded = await bot.download(message.document)
        assert downloaded is not None
        content = downloaded.read()
        # Sent back by file_id, as bots resend files they were given.
        await message.answer_document(
            message.document.file_id,
            caption=f"Got {html.escape(message.document.file_name or '')} ({len(content)} bytes)",
        )

    @router.message(F.photo)
    async def on_photo(message: Message) -> None:
        await message.answer(f"Nice photo: {html.escape(message.caption or 'no caption')}")

    @router.message(Command("video"))
    async def on_video(message: Message) -> None:
        await message.answer_video(
            BufferedInputFile(MP4_BLOB, filename="clip.mp4"), caption="A short clip"
        )

    @router.inline_query()
    async def on_inline_query(query: InlineQuery) -> None:
        said = html.escape(query.query)
        result = InlineQueryResultArticle(
            id="echo",
            title=f"Echo {query.query}",
            description="Sent, then edited",
            input_message_content=InputTextMessageContent(message_text=f"Echoing {said}…"),
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[
                    [InlineKeyboardButton(text="Docs", url="https://docs.example.org")]
                ]
            ),
        )
        await query.answer([result], cache_time=0, is_personal=True)

    @router.chosen_inline_result()
    async def on_chosen(chosen: ChosenInlineResult, bot: Bot) -> None:
        if chosen.inline_message_id:
            await bot.edit_message_text(
                inline_message_id=chosen.inline_message_id,
                text=f"Echoed inline: <b>{html.escape(chosen.query)}</b>",
            )

    @router.message(F.text, F.via_bot.is_(None))
    async def on_text(message: Message) -> None:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(text="Ping", callback_data="ping"),
                    InlineKeyboardButton(text="Alert", callback_data="alert"),
                ],
                [InlineKeyboardButton(text="Docs", url="https://docs.example.org/guide")],
                [InlineKeyboardButton(text="Open app", web_app=WebAppInfo(url=mini_app_url))],
            ]
        )
        await message.answer(
            f"Echo: <b>{html.escape(message.text or '')}</b>", reply_markup=keyboard
        )

    @router.callback_query(F.data == "ping")
    async def on_ping(query: CallbackQuery) -> None:
        await query.answer("Pong!")
        if isinstance(query.message, Message):
            await query.message.edit_text(f"{html.escape(query.message.text or '')} (pinged)")

    @router.callback_query(F.data == "alert")
    async def on_alert(query: CallbackQuery) -> None:
        await query.answer("Careful!", show_alert=True)

    return router


@dataclass
class Stage:
    url: str
    token: str
    bot: Bot
    client: SandboxClient
    gates: Gates
    mini_app_url: str

    async def user(self, first_name: str = "Alice", **fields: Any) -> dict[str, Any]:
        return await self.client.create_user(first_name, **fields)
