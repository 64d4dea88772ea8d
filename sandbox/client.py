"""A typed client for the sandbox's control API, for tests, benchmarks and scripts."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import httpx

Event = dict[str, Any]


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that are not None (the control API's defaults apply to the others)."""
    return {k: v for k, v in fields.items() if v is not None}


class SandboxClient:
    def __init__(self, base_url: str, *, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._own = http is None
        self.http = http or httpx.AsyncClient(timeout=40)

    async def __aenter__(self) -> SandboxClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"{self.base_url}/sandbox/api{path}", **kwargs)
        if response.status_code >= 400:
            raise SandboxError(response.status_code, response.text)
        return response.json()

    # --- people and bots ------------------------------------------------------------------

    async def create_user(self, first_name: str = "Alice", **fields: Any) -> dict[str, Any]:
        data = await self._call("POST", "/users", json={"first_name": first_name, **fields})
        return dict(data["user"])

    async def users(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/users"))["users"])

    async def block(self, user_id: int, blocked: bool = True) -> None:
        await self._call("POST", f"/users/{user_id}/block", json={"blocked": blocked})

    async def create_group(
        self,
        title: str,
        member_ids: list[int],
        *,
        chat_type: str | None = None,
        is_forum: bool | None = None,
        owner_id: int | None = None,
        admin_ids: list[int] | None = None,
        bot_admin: bool | None = None,
        bot_rights: dict[str, bool] | None = None,
        with_bot: bool | None = None,
    ) -> dict[str, Any]:
        """A group (``chat_type`` "group", the default) or a supergroup; see the control API
        for who is an administrator by default."""
        body = {"title": title, "member_ids": member_ids} | _given(
            type=chat_type,
            is_forum=is_forum,
            owner_id=owner_id,
            admin_ids=admin_ids,
            bot_admin=bot_admin,
            bot_rights=bot_rights,
            with_bot=with_bot,
        )
        data = await self._call("POST", "/groups", json=body)
        return dict(data["chat"])

    async def create_forum(
        self,
        title: str,
        member_ids: list[int],
        *,
        owner_id: int | None = None,
        admin_ids: list[int] | None = None,
        bot_rights: dict[str, bool] | None = None,
    ) -> dict[str, Any]:
        """A forum supergroup; bots are administrators with every right unless ``bot_rights``."""
        return await self.create_group(
            title,
            member_ids,
            chat_type="supergroup",
            is_forum=True,
            owner_id=owner_id,
            admin_ids=admin_ids,
            bot_rights=bot_rights,
        )

    async def groups(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/groups"))["groups"])

    async def set_admin(
        self,
        chat_id: int,
        *,
        user_id: int | None = None,
        bot_id: int | None = None,
        rights: dict[str, bool] | None = None,
        is_admin: bool = True,
    ) -> dict[str, Any]:
        """Promote (or demote) a person, or a bot when ``user_id`` is None; returns the
        ChatMember."""
        body = {"is_admin": is_admin} | _given(user_id=user_id, bot_id=bot_id, rights=rights)
        data = await self._call("POST", f"/chats/{chat_id}/admins", json=body)
        return dict(data["member"])

    async def register_bot(
        self, token: str, username: str | None = None, first_name: str | None = None
    ) -> dict[str, Any]:
        body = {"token": token, "username": username, "first_name": first_name}
        return dict((await self._call("POST", "/bots", json=body))["bot"])

    async def bots(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/bots"))["bots"])

    # --- acting as a user -----------------------------------------------------------------

    async def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        from_user_id: int | None = None,
        reply_to_message_id: int | None = None,
        bot_id: int | None = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        body = {"text": text} | _given(
            bot_id=bot_id,
            from_user_id=from_user_id,
            reply_to_message_id=reply_to_message_id,
            message_thread_id=message_thread_id,
        )
        return dict(await self._call("POST", f"/chats/{chat_id}/messages", json=body))

    async def send_texts(
        self, texts: Sequence[tuple[int, str]], *, bot_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Each (chat id, text) sent by that private chat's person, all at the same instant."""
        body = {
            "messages": [
                {"chat_id": chat_id, "text": text} | _given(bot_id=bot_id)
                for chat_id, text in texts
            ]
        }
        return list((await self._call("POST", "/messages", json=body))["messages"])

    async def send_document(
        self,
        chat_id: int,
        file_name: str,
        content: bytes,
        mime_type: str = "application/octet-stream",
        *,
        caption: str | None = None,
        from_user_id: int | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "file_name": file_name,
            "mime_type": mime_type,
            "content_base64": base64.b64encode(content).decode(),
            "caption": caption,
        } | _given(
            from_user_id=from_user_id,
            reply_to_message_id=reply_to_message_id,
            message_thread_id=message_thread_id,
            bot_id=bot_id,
        )
        return dict(await self._call("POST", f"/chats/{chat_id}/documents", json=body))

    async def send_photo(
        self,
        chat_id: int,
        content: bytes,
        *,
        caption: str | None = None,
        from_user_id: int | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        body = {"content_base64": base64.b64encode(content).decode(), "caption": caption} | _given(
            from_user_id=from_user_id,
            reply_to_message_id=reply_to_message_id,
            message_thread_id=message_thread_id,
            bot_id=bot_id,
        )
        return dict(await self._call("POST", f"/chats/{chat_id}/photos", json=body))

    async def send_voice(
        self,
        chat_id: int,
        content: bytes,
        *,
        duration: int,
        mime_type: str = "audio/ogg",
        caption: str | None = None,
        from_user_id: int | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """A voice note recorded in the chat (Telegram gives its duration in seconds)."""
        body = {
            "content_base64": base64.b64encode(content).decode(),
            "duration": duration,
            "mime_type": mime_type,
            "caption": caption,
        } | _given(
            from_user_id=from_user_id,
            reply_to_message_id=reply_to_message_id,
            message_thread_id=message_thread_id,
            bot_id=bot_id,
        )
        return dict(await self._call("POST", f"/chats/{chat_id}/voices", json=body))

    async def send_audio(
        self,
        chat_id: int,
        content: bytes,
        *,
        duration: int,
        file_name: str = "audio.mp3",
        mime_type: str = "audio/mpeg",
        title: str | None = None,
        caption: str | None = None,
        from_user_id: int | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """An audio file sent to the chat."""
        body = {
            "content_base64": base64.b64encode(content).decode(),
            "duration": duration,
            "file_name": file_name,
            "mime_type": mime_type,
            "title": title,
            "caption": caption,
        } | _given(
            from_user_id=from_user_id,
            reply_to_message_id=reply_to_message_id,
            message_thread_id=message_thread_id,
            bot_id=bot_id,
        )
        return dict(await self._call("POST", f"/chats/{chat_id}/audios", json=body))

    async def edit_message(
        self,
        chat_id: int,
        message_id: int,
        *,
        text: str | None = None,
        caption: str | None = None,
        from_user_id: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """The person edits their message's ``text`` (or ``caption``); the bot gets
        ``edited_message``. Returns ``{message, update_id}``."""
        body = _given(text=text, caption=caption, from_user_id=from_user_id, bot_id=bot_id)
        path = f"/chats/{chat_id}/messages/{message_id}/edit"
        return dict(await self._call("POST", path, json=body))

    async def forward(
        self,
        chat_id: int,
        from_chat_id: int,
        message_id: int,
        *,
        from_user_id: int | None = None,
        message_thread_id: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """The person forwards a message into ``chat_id``. Returns ``{message, update_id}``."""
        body = {"from_chat_id": from_chat_id, "message_id": message_id} | _given(
            from_user_id=from_user_id, message_thread_id=message_thread_id, bot_id=bot_id
        )
        return dict(await self._call("POST", f"/chats/{chat_id}/forwards", json=body))

    # --- forum topics, as a person --------------------------------------------------------

    async def create_topic(
        self,
        chat_id: int,
        name: str,
        *,
        from_user_id: int,
        icon_color: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """Returns ``{topic, message, update_id}``."""
        body = {"name": name, "from_user_id": from_user_id} | _given(
            icon_color=icon_color, bot_id=bot_id
        )
        return dict(await self._call("POST", f"/chats/{chat_id}/topics", json=body))

    async def edit_topic(
        self,
        chat_id: int,
        message_thread_id: int,
        *,
        from_user_id: int,
        name: str | None = None,
        icon_custom_emoji_id: str | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        body = {"from_user_id": from_user_id} | _given(
            name=name, icon_custom_emoji_id=icon_custom_emoji_id, bot_id=bot_id
        )
        return await self._topic_action(chat_id, message_thread_id, "edit", body)

    async def close_topic(
        self, chat_id: int, message_thread_id: int, *, from_user_id: int, bot_id: int | None = None
    ) -> dict[str, Any]:
        body = {"from_user_id": from_user_id} | _given(bot_id=bot_id)
        return await self._topic_action(chat_id, message_thread_id, "close", body)

    async def reopen_topic(
        self, chat_id: int, message_thread_id: int, *, from_user_id: int, bot_id: int | None = None
    ) -> dict[str, Any]:
        body = {"from_user_id": from_user_id} | _given(bot_id=bot_id)
        return await self._topic_action(chat_id, message_thread_id, "reopen", body)

    async def delete_topic(
        self, chat_id: int, message_thread_id: int, *, from_user_id: int, bot_id: int | None = None
    ) -> dict[str, Any]:
        body = {"from_user_id": from_user_id} | _given(bot_id=bot_id)
        return await self._topic_action(chat_id, message_thread_id, "delete", body)

    async def _topic_action(
        self, chat_id: int, message_thread_id: int, action: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        path = f"/chats/{chat_id}/topics/{message_thread_id}/{action}"
        return dict(await self._call("POST", path, json=body))

    # --- Stars ----------------------------------------------------------------------------

    async def pay(
        self,
        chat_id: int,
        *,
        message_id: int | None = None,
        invoice_link: str | None = None,
        from_user_id: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """Tap Pay on an invoice message or link; the pre-checkout query goes to the bot."""
        body = _given(
            message_id=message_id,
            invoice_link=invoice_link,
            from_user_id=from_user_id,
            bot_id=bot_id,
        )
        return dict(await self._call("POST", f"/chats/{chat_id}/pay", json=body))

    async def renew_subscription(
        self, chat_id: int, telegram_payment_charge_id: str, *, bot_id: int | None = None
    ) -> dict[str, Any]:
        """Pay the next period; returns ``{message, update_id, telegram_payment_charge_id,
        subscription_expiration_date}``. A canceled subscription raises SandboxError (409)."""
        body = {"telegram_payment_charge_id": telegram_payment_charge_id} | _given(bot_id=bot_id)
        return dict(await self._call("POST", f"/chats/{chat_id}/renew-subscription", json=body))

    async def cancel_subscription(
        self,
        chat_id: int,
        telegram_payment_charge_id: str,
        *,
        is_canceled: bool = True,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """The person cancels (or re-enables) the renewal; returns the subscription."""
        body = {
            "telegram_payment_charge_id": telegram_payment_charge_id,
            "is_canceled": is_canceled,
        } | _given(bot_id=bot_id)
        data = await self._call("POST", f"/chats/{chat_id}/cancel-subscription", json=body)
        return dict(data["subscription"])

    async def tap(
        self, chat_id: int, message_id: int, data: str, *, from_user_id: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"message_id": message_id, "data": data}
        if from_user_id is not None:
            body["from_user_id"] = from_user_id
        return dict(await self._call("POST", f"/chats/{chat_id}/callbacks", json=body))

    async def inline_query(
        self, from_user_id: int, query: str, *, chat_type: str | None = None
    ) -> dict[str, Any]:
        """The person types ``@bot query``: ``{inline_query_id, update_id}``."""
        body: dict[str, Any] = {"from_user_id": from_user_id, "query": query}
        if chat_type is not None:
            body["chat_type"] = chat_type
        return dict(await self._call("POST", "/inline-queries", json=body))

    async def inline_answer(self, inline_query_id: str) -> dict[str, Any] | None:
        """The bot's answer to an inline query (None: not answered)."""
        found = await self._call("GET", f"/inline-queries/{inline_query_id}")
        return found["answer"]

    async def choose_inline_result(
        self, inline_query_id: str, result_id: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """The person sends a result: ``{message, inline_message_id, update_id}``."""
        body: dict[str, Any] = {"result_id": result_id}
        if chat_id is not None:
            body["chat_id"] = chat_id
        return dict(
            await self._call("POST", f"/inline-queries/{inline_query_id}/choose", json=body)
        )

    async def initdata(
        self, user_id: int, *, start_param: str | None = None, url: str | None = None
    ) -> dict[str, Any]:
        body = {"user_id": user_id, "start_param": start_param, "url": url}
        return dict(await self._call("POST", "/initdata", json=body))

    # --- reading --------------------------------------------------------------------------

    async def transcript(self, chat_id: int) -> dict[str, Any]:
        return dict(await self._call("GET", f"/chats/{chat_id}"))

    async def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        messages = (await self.transcript(chat_id))["messages"]
        return [m for m in messages if m["is_bot_message"] and not m["deleted"]]

    async def events(
        self, *, after: int = 0, chat_id: int | None = None, wait: float = 0
    ) -> tuple[list[Event], int]:
        params: dict[str, Any] = {"after": after, "timeout": wait}
        if chat_id is not None:
            params["chat_id"] = chat_id
        data = await self._call("GET", "/events", params=params)
        return list(data["events"]), int(data["last_seq"])

    async def last_seq(self) -> int:
        return (await self.events(after=1 << 62))[1]

    async def wait_for(
        self,
        predicate: Callable[[Event], bool],
        *,
        chat_id: int | None = None,
        after: int = 0,
        wait: float = 10,
    ) -> Event:
        """The first event after ``after`` that satisfies ``predicate``, waiting up to ``wait``
        seconds; TimeoutError lists what was seen instead."""
        deadline = time.monotonic() + wait
        seen: list[Event] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [(e["type"], e.get("message", {}).get("text")) for e in seen]
                raise TimeoutError(f"no matching event in {wait}s; saw {kinds}")
            batch, _ = await self.events(after=after, chat_id=chat_id, wait=min(remaining, 5))
            for event in batch:
                seen.append(event)
                after = max(after, event["seq"])
                if predicate(event):
                    return event

    # --- faults ---------------------------------------------------------------------------

    async def fault(self, method: str, error_code: int, **fields: Any) -> None:
        await self._call(
            "POST", "/faults", json={"method": method, "error_code": error_code, **fields}
        )

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")


class SandboxError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
