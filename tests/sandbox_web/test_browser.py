"""A person at the sandbox page, in headless Chromium, chatting with the echo bot."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import struct
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice
from playwright.async_api import FilePayload, Locator, Page, expect

from sandbox.client import SandboxClient
from tests.sandbox_web.stage import MINI_APP_PATH, Stage, start_page_server


def user_item(page: Page, user: dict[str, Any]) -> Locator:
    return page.locator(f'[data-testid="user-item"][data-user-id="{user["id"]}"]')


def bot_messages(page: Page) -> Locator:
    return page.locator('[data-testid="message"][data-from="bot"]')


def user_messages(page: Page) -> Locator:
    return page.locator('[data-testid="message"][data-from="user"]')


async def open_as(page: Page, stage: Stage, user: dict[str, Any]) -> None:
    await page.goto(stage.url + "/")
    await expect(page.get_by_test_id("connection-status")).to_have_text("Online")
    await user_item(page, user).click()
    await expect(page.get_by_test_id("composer-input")).to_be_enabled()


async def say(page: Page, text: str) -> None:
    await page.get_by_test_id("composer-input").fill(text)
    await page.get_by_test_id("composer-input").press("Enter")


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\x00\xff" * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def init_data_is_signed(init_data: str, token: str) -> bool:
    fields = dict(parse_qsl(init_data, keep_blank_values=True))
    received = fields.pop("hash", "")
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    expected = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(received, expected)


async def launch_data(page: Page) -> dict[str, str]:
    """What the framed Mini App was launched with: query and fragment parameters."""
    frame = page.frame_locator('[data-testid="miniapp-frame"]')
    launch = frame.locator("#launch")
    await expect(launch).to_contain_text("tgWebAppData")
    text = await launch.inner_text()
    parts = urlsplit(text)
    return {**dict(parse_qsl(parts.query)), **dict(parse_qsl(parts.fragment))}


async def test_created_user_is_picked_and_remembered_after_reload(page: Page, stage: Stage) -> None:
    await page.goto(stage.url + "/")
    await page.get_by_test_id("new-user-toggle").click()
    await page.get_by_test_id("user-first-name").fill("Boris")
    await page.get_by_test_id("user-username").fill("@boris_sandbox")
    await page.get_by_test_id("user-language").select_option("ru")
    await page.get_by_test_id("user-premium").check()
    await page.get_by_test_id("user-create").click()

    picked = page.locator('[data-testid="user-item"][aria-pressed="true"]')
    await expect(picked).to_contain_text("Boris")
    await expect(picked).to_contain_text("@boris_sandbox · ru · Premium")
    user_id = int(await picked.get_attribute("data-user-id") or 0)
    created = [u for u in await stage.client.users() if u["id"] == user_id]
    assert created[0]["language_code"] == "ru" and created[0]["is_premium"] is True

    await page.reload()
    await expect(page.locator('[data-testid="user-item"][aria-pressed="true"]')).to_have_attribute(
        "data-user-id", str(user_id)
    )
    await expect(page.get_by_test_id("chat-title")).to_contain_text("Boris")


async def test_typed_message_gets_the_bot_reply_with_text_shown_as_typed(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Alice")
    await open_as(page, stage, user)

    await say(page, "hi <b>there</b> & bye")

    mine = user_messages(page).last
    await expect(mine.get_by_test_id("message-text")).to_have_text("hi <b>there</b> & bye")
    assert await mine.locator("b").count() == 0
    reply = bot_messages(page).last
    await expect(reply.get_by_test_id("message-text")).to_have_text("Echo: hi <b>there</b> & bye")
    await expect(reply.locator("b")).to_have_text("hi <b>there</b> & bye")
    await expect(page.get_by_test_id("composer-input")).to_have_value("")


async def test_shift_enter_writes_a_new_line_instead_of_sending(page: Page, stage: Stage) -> None:
    user = await stage.user("Nina")
    await open_as(page, stage, user)
    box = page.get_by_test_id("composer-input")

    await box.type("one")
    await box.press("Shift+Enter")
    await box.type("two")
    await expect(box).to_have_value("one\ntwo")
    await box.press("Enter")

    await expect(bot_messages(page).last.get_by_test_id("message-text")).to_have_text(
        "Echo: one\ntwo"
    )


async def test_callback_button_shows_the_answer_and_the_edited_message(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Carol")
    await open_as(page, stage, user)
    await say(page, "knock")
    reply = bot_messages(page).last
    await expect(reply).to_contain_text("Echo: knock")

    await reply.get_by_role("button", name="Ping").click()

    await expect(page.get_by_test_id("toast").filter(has_text="Pong!")).to_be_visible()
    edited = bot_messages(page).last
    await expect(edited.get_by_test_id("message-text")).to_have_text("Echo: knock (pinged)")
    await expect(edited.get_by_test_id("edited-mark")).to_be_visible()
    assert await edited.get_by_test_id("inline-button").count() == 0


async def test_callback_answer_with_show_alert_opens_an_alert(page: Page, stage: Stage) -> None:
    user = await stage.user("Dan")
    await open_as(page, stage, user)
    await say(page, "warn me")
    await bot_messages(page).last.get_by_role("button", name="Alert").click()

    dialog = page.get_by_test_id("alert-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.get_by_test_id("alert-text")).to_have_text("Careful!")
    await page.get_by_test_id("alert-ok").click()
    await expect(dialog).to_be_hidden()


async def test_url_button_opens_its_link_in_a_new_tab(page: Page, stage: Stage) -> None:
    user = await stage.user("Eve")
    await open_as(page, stage, user)
    await say(page, "links")

    link = bot_messages(page).last.get_by_role("link", name="Docs")
    await expect(link).to_have_attribute("href", "https://docs.example.org/guide")
    await expect(link).to_have_attribute("target", "_blank")


async def test_streaming_draft_shows_until_the_final_message_replaces_it(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Fiona")
    await open_as(page, stage, user)

    await say(page, "/stream")

    draft = page.get_by_test_id("draft-bubble")
    await expect(draft).to_have_count(1)
    await expect(draft.get_by_test_id("draft-text")).to_have_text("Thinking hard")
    await expect(draft.locator("b")).to_have_text("hard")
    stage.gates.release(user["id"])
    await expect(bot_messages(page).last).to_contain_text("Final answer")
    await expect(draft).to_have_count(0)


async def test_typing_indicator_shows_until_the_reply_arrives(page: Page, stage: Stage) -> None:
    user = await stage.user("Gleb")
    await open_as(page, stage, user)

    await say(page, "/slow")

    indicator = page.get_by_test_id("typing-indicator")
    await expect(indicator).to_be_visible()
    await expect(indicator).to_contain_text("Echo is typing")
    stage.gates.release(user["id"])
    await expect(bot_messages(page).last).to_contain_text("Done thinking")
    await expect(indicator).to_be_hidden()


async def test_message_deleted_by_the_bot_disappears(page: Page, stage: Stage) -> None:
    user = await stage.user("Hana")
    await open_as(page, stage, user)

    await say(page, "/vanish")
    await expect(bot_messages(page).filter(has_text="This will vanish")).to_have_count(1)
    stage.gates.release(user["id"])

    await expect(bot_messages(page).last).to_contain_text("Gone")
    await expect(bot_messages(page).filter(has_text="This will vanish")).to_have_count(0)


async def test_reply_keyboard_button_sends_its_text_and_one_time_keyboard_hides(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Ivan")
    await open_as(page, stage, user)
    await say(page, "/keyboard")

    keyboard = page.get_by_test_id("reply-keyboard")
    await expect(keyboard).to_be_visible()
    await expect(page.get_by_test_id("composer-input")).to_have_attribute(
        "placeholder", "Yes or no?"
    )
    await keyboard.get_by_role("button", name="Yes").click()

    await expect(user_messages(page).last).to_contain_text("Yes")
    await expect(bot_messages(page).last).to_contain_text("Echo: Yes")
    await expect(keyboard).to_be_hidden()


async def test_command_hints_list_the_commands_in_the_users_language(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Olga", language_code="ru")
    await open_as(page, stage, user)

    await page.get_by_test_id("composer-input").fill("/st")

    hints = page.get_by_test_id("command-hint")
    await expect(hints).to_have_count(2)
    await expect(hints.first).to_contain_text("/start")
    await expect(hints.first).to_contain_text("Запустить бота")
    await hints.first.click()
    await expect(user_messages(page).last).to_contain_text("/start")
    await expect(bot_messages(page).last).to_contain_text("Welcome! Send me anything.")


async def test_attached_file_is_sent_as_a_document_and_the_bots_file_downloads(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Kate")
    await open_as(page, stage, user)

    await page.get_by_test_id("file-input").set_input_files(
        files=FilePayload(name="note.txt", mimeType="text/plain", buffer=b"hello file")
    )

    await expect(user_messages(page).last.get_by_test_id("document-link")).to_have_text("note.txt")
    reply = bot_messages(page).last
    await expect(reply).to_contain_text("Got note.txt (10 bytes)")
    link = reply.get_by_test_id("document-link")
    await expect(link).to_have_text("note.txt")
    href = await link.get_attribute("href")
    assert href is not None
    download = await page.request.get(stage.url + href if href.startswith("/") else href)
    assert await download.body() == b"hello file"


async def test_attached_image_is_sent_as_a_photo_with_the_typed_caption(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Lev")
    await open_as(page, stage, user)
    await page.get_by_test_id("composer-input").fill("my cat")

    await page.get_by_test_id("file-input").set_input_files(
        files=FilePayload(name="cat.png", mimeType="image/png", buffer=tiny_png())
    )

    photo = user_messages(page).last.get_by_test_id("message-photo")
    await expect(photo).to_be_visible()
    assert await photo.evaluate("img => img.naturalWidth") == 2
    await expect(bot_messages(page).last).to_contain_text("Nice photo: my cat")


async def test_menu_button_opens_the_mini_app_with_signed_launch_data(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Mila")
    await open_as(page, stage, user)

    menu = page.get_by_test_id("menu-button")
    await expect(menu).to_have_text("Open NetRoom")
    await menu.click()
    await expect(page.get_by_test_id("miniapp-panel")).to_be_visible()
    await page.get_by_test_id("miniapp-start-param").fill("ref42")
    await page.get_by_test_id("miniapp-relaunch").click()

    frame = page.frame_locator('[data-testid="miniapp-frame"]')
    await expect(frame.locator("#launch")).to_contain_text("start_param")
    data = await launch_data(page)
    assert init_data_is_signed(data["tgWebAppData"], stage.token)
    launched = dict(parse_qsl(data["tgWebAppData"]))
    assert json.loads(launched["user"])["id"] == user["id"]
    assert launched["start_param"] == "ref42"
    assert json.loads(data["tgWebAppThemeParams"])["button_color"].startswith("#")
    src = await page.get_by_test_id("miniapp-frame").get_attribute("src")
    await expect(page.get_by_test_id("miniapp-open-tab")).to_have_attribute("href", src or "")
    await expect(page.get_by_test_id("miniapp-log")).to_contain_text("web_app_ready")


async def test_web_app_inline_button_opens_the_mini_app_as_the_user(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Pavel")
    await open_as(page, stage, user)
    await say(page, "app please")

    await bot_messages(page).last.get_by_role("button", name="Open app").click()

    data = await launch_data(page)
    assert init_data_is_signed(data["tgWebAppData"], stage.token)
    assert json.loads(dict(parse_qsl(data["tgWebAppData"]))["user"])["id"] == user["id"]
    await page.get_by_test_id("miniapp-close").click()
    await expect(page.get_by_test_id("miniapp-panel")).to_be_hidden()


async def test_pay_button_pays_the_invoice_once_the_bot_confirms(page: Page, stage: Stage) -> None:
    user = await stage.user("Tom")
    await open_as(page, stage, user)
    await say(page, "/invoice")
    invoice = bot_messages(page).last

    await invoice.get_by_role("button", name="Pay").click()
    await page.get_by_test_id("checkout-pay").click()

    await expect(
        page.get_by_test_id("toast").filter(has_text="Payment succeeded: ⭐ 5")
    ).to_be_visible()
    await expect(bot_messages(page).last).to_contain_text("Thanks for 5 stars")


async def test_cancelled_checkout_pays_nothing(page: Page, stage: Stage) -> None:
    user = await stage.user("Uma")
    await open_as(page, stage, user)
    await say(page, "/invoice")
    await bot_messages(page).last.get_by_role("button", name="Pay").click()

    await page.get_by_test_id("checkout-cancel").click()

    await expect(page.get_by_test_id("alert-dialog")).to_be_hidden()
    await say(page, "still here")
    await expect(bot_messages(page).last).to_contain_text("Echo: still here")
    texts = [m["text"] or "" for m in (await stage.client.transcript(user["id"]))["messages"]]
    assert not [t for t in texts if t.startswith("Thanks")]


async def test_invoice_opened_by_the_mini_app_is_paid_and_reported_back(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Vera")
    await open_as(page, stage, user)
    await say(page, "/start")
    await expect(bot_messages(page).last).to_contain_text("Welcome!")
    link = await stage.bot.create_invoice_link(
        title="Plus",
        description="A month of Plus",
        payload="plus-1",
        currency="XTR",
        prices=[LabeledPrice(label="Plus", amount=7)],
    )
    slug = link.rsplit("$", 1)[-1]
    await page.get_by_test_id("menu-button").click()
    await launch_data(page)
    frame = next(f for f in page.frames if MINI_APP_PATH in f.url)

    await frame.evaluate(
        """slug => parent.postMessage(
            JSON.stringify({eventType: "web_app_open_invoice", eventData: {slug}}), "*")""",
        slug,
    )
    await page.get_by_test_id("checkout-pay").click()

    received = page.frame_locator('[data-testid="miniapp-frame"]').locator("#received")
    await expect(received).to_contain_text('"eventType":"invoice_closed"')
    await expect(received).to_contain_text('"status":"paid"')
    await expect(bot_messages(page).last).to_contain_text("Thanks for 7 stars")


async def test_group_chat_shows_messages_of_its_members(page: Page, stage: Stage) -> None:
    alice = await stage.user("Rita")
    bob = await stage.user("Sam")
    await open_as(page, stage, alice)
    await page.get_by_test_id("new-group-toggle").click()
    await page.get_by_test_id("group-title").fill("Book club")
    members = page.get_by_test_id("group-members")
    await members.get_by_label("Sam").check()
    await page.get_by_test_id("group-create").click()

    await expect(page.get_by_test_id("chat-title")).to_have_text("Book club")
    group_id = int(
        await page.locator('[data-testid="group-item"][aria-pressed="true"]').get_attribute(
            "data-chat-id"
        )
        or 0
    )
    await stage.client.send_text(group_id, "hello from Sam", from_user_id=bob["id"])
    other = page.locator('[data-testid="message"][data-from="user"]').filter(
        has_text="hello from Sam"
    )
    await expect(other).to_contain_text("Sam")
    await say(page, "hello from Rita")
    await expect(user_messages(page).filter(has_text="hello from Rita")).to_have_count(1)


async def test_page_reconnects_to_a_restarted_sandbox_and_shows_its_new_world(
    page: Page, page_errors: list[str]
) -> None:
    servers = [await start_page_server()]
    try:
        port = int(servers[0].url.rsplit(":", 1)[1])
        before = await create_user(servers[0].url, "Before")
        await page.goto(servers[0].url + "/")
        status = page.get_by_test_id("connection-status")
        await expect(status).to_have_text("Online")
        await page.locator(f'[data-testid="user-item"][data-user-id="{before}"]').click()
        await say(page, "said before the restart")
        await expect(user_messages(page)).to_have_count(1)

        await servers.pop().stop()
        await expect(status).to_have_text("Reconnecting…")
        servers.append(await start_page_server(port))
        after = await create_user(servers[0].url, "After")

        await expect(status).to_have_text("Online", timeout=15_000)
        await expect(page.locator(f'[data-user-id="{after}"]')).to_be_visible()
        await expect(page.locator(f'[data-user-id="{before}"]')).to_have_count(0)
        await expect(page.get_by_test_id("chat-placeholder")).to_be_visible()
        await expect(page.get_by_test_id("message")).to_have_count(0)
    finally:
        await page.close()
        for server in servers:
            await server.stop()
    # The browser reports the refused connections while the sandbox was down.
    page_errors[:] = [e for e in page_errors if "ERR_CONNECTION_REFUSED" not in e]


async def create_user(url: str, first_name: str) -> int:
    """A user in a sandbox with a bot registered (messages need a bot to go to)."""
    async with SandboxClient(url) as client:
        await client.register_bot(f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}")
        return int((await client.create_user(first_name))["id"])


async def test_a_start_link_from_the_bot_starts_it_with_the_payload(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Lena")
    await open_as(page, stage, user)
    await say(page, "/start")
    await expect(bot_messages(page).last).to_contain_text("Welcome!")
    me = await stage.bot.me()
    await stage.bot.send_message(
        user["id"], f"Invite friends: https://t.me/{me.username}?start=ref42"
    )
    link = bot_messages(page).last.get_by_role("link")
    await expect(link).to_have_text(f"https://t.me/{me.username}?start=ref42")
    await link.click()
    # As in Telegram: the bot's chat, and /start with the link's payload.
    await expect(user_messages(page).last).to_contain_text("/start ref42")
    await expect(bot_messages(page).last).to_contain_text("You came with ref42.")
    assert len(page.context.pages) == 1


async def test_an_invoice_link_in_a_message_opens_the_checkout_and_pays(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Ivan")
    await open_as(page, stage, user)
    await say(page, "/start")
    await expect(bot_messages(page).last).to_contain_text("Welcome!")
    link = await stage.bot.create_invoice_link(
        title="Plus",
        description="A month of Plus",
        payload="plus-1",
        currency="XTR",
        prices=[LabeledPrice(label="Plus", amount=7)],
    )
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Subscribe", url=link)],
            [
                InlineKeyboardButton(
                    text="Share", url="https://t.me/share/url?url=https%3A%2F%2Fx.test&text=Hi"
                )
            ],
        ]
    )
    await stage.bot.send_message(user["id"], "Plans", reply_markup=keyboard)
    await bot_messages(page).last.get_by_role("link", name="Subscribe").click()
    await page.get_by_test_id("checkout-pay").click()
    await expect(bot_messages(page).last).to_contain_text("Thanks for 7 stars")
    # The share sheet: what would be shared, and a way to copy it.
    await bot_messages(page).nth(-2).get_by_role("link", name="Share").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Hi")
    await expect(dialog).to_contain_text("https://x.test")
    await page.get_by_test_id("share-close").click()
    assert len(page.context.pages) == 1


async def test_inline_mode_offers_the_bots_result_and_the_sent_message_is_edited(
    page: Page, stage: Stage
) -> None:
    user = await stage.user("Ines")
    await open_as(page, stage, user)
    await page.get_by_test_id("composer-input").fill("@echo_sandbox_bot hello there")
    result = page.get_by_test_id("inline-result")
    await expect(result).to_have_count(1)
    await expect(result).to_contain_text("Echo hello there")
    await result.click()
    await expect(page.get_by_test_id("composer-input")).to_have_value("")
    await expect(user_messages(page).last).to_contain_text("Echoed inline: hello there")
    await expect(user_messages(page).last.get_by_test_id("message-via")).to_have_text(
        "via @echo_sandbox_bot"
    )


async def test_a_video_from_the_bot_plays_in_the_chat(page: Page, stage: Stage) -> None:
    user = await stage.user("Vic")
    await open_as(page, stage, user)
    await say(page, "/video")
    video = bot_messages(page).last.get_by_test_id("message-video")
    await expect(video).to_be_visible()
    width = (
        "v => v.readyState >= 1 ? v.videoWidth : new Promise(r => {"
        " v.addEventListener('loadedmetadata', () => r(v.videoWidth));"
        " v.addEventListener('error', () => r(0)); })"
    )
    assert await video.evaluate(width) == 320
