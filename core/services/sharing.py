"""Public read-only links to a conversation or a preset.

A link is a random token of 192 bits (``secrets.token_urlsafe(24)``); only its SHA-256 is kept,
so the token is handed out once, when the link is made, and a database copy cannot open a link.
Sharing the same conversation or preset again makes a new link: each one is revoked on its own,
and revoking one never breaks a link already passed on elsewhere.

A shared conversation is a snapshot: the page shows the messages written up to the moment the
link was made, never what is said afterwards. It shows role, text and time only: no hidden
reasoning, no model usage, nothing that names the owner. A link that is unknown, revoked by its
owner, disabled by an administrator, or whose conversation or preset is gone answers the same
way: not found.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select, update

from core.errors import InvalidInput, NotFound
from core.i18n import N_
from core.services import audit, presets
from core.services.presets import PresetDTO
from db.models import ChatMessageRow, Conversation, Preset, ShareLink
from db.uow import UnitOfWork

Kind = Literal["conversation", "preset"]

TOKEN_BYTES = 24
# A token as handed out (32 URL-safe characters); anything else cannot be one.
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")
# A token on its own, or the last part of a shared link's path (…/s/<token>).
LINK = re.compile(r"^(?:.*/s/)?([A-Za-z0-9_-]{22,64})/?(?:[?#].*)?$")


class ShareLinkNotFound(NotFound):
    code = "share_link_not_found"
    msgid = N_("This link does not exist or is no longer shared.")


class NotAPresetLink(InvalidInput):
    code = "share_link_not_a_preset"
    msgid = N_("Only a shared preset can be copied.")


@dataclass(frozen=True, slots=True)
class SharedLinkDTO:
    """A link just made. ``token`` is the only copy there is: build the URL from it now."""

    id: int
    kind: Kind
    token: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ShareLinkDTO:
    """One of the owner's links, as listed (the token is not kept, so it is not here)."""

    id: int
    kind: Kind
    target_id: int
    title: str | None
    created_at: datetime
    revoked_at: datetime | None
    disabled_at: datetime | None
    views: int

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.disabled_at is None


@dataclass(frozen=True, slots=True)
class SharedMessage:
    role: str
    content: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SharedView:
    """What the public page shows: for a conversation its messages, for a preset its prompt."""

    kind: Kind
    title: str | None
    created_at: datetime
    messages: tuple[SharedMessage, ...] = ()
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class DisabledLink:
    link_id: int
    owner_id: int
    # False when an administrator had disabled it before.
    changed: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_from(text: str) -> str:
    """The token in a shared link's URL, or a token given on its own."""
    match = LINK.match(text.strip())
    if match is None:
        raise ShareLinkNotFound("not a share link")
    return match.group(1)


def _kind(link: ShareLink) -> Kind:
    return "conversation" if link.conversation_id is not None else "preset"


async def _create(
    uow: UnitOfWork,
    *,
    user_id: int,
    now: datetime,
    conversation_id: int | None = None,
    preset_id: int | None = None,
) -> SharedLinkDTO:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink(
        user_id=user_id,
        token_hash=hash_token(token),
        conversation_id=conversation_id,
        preset_id=preset_id,
        created_at=now,
    )
    uow.session.add(link)
    await uow.session.flush()
    result = SharedLinkDTO(link.id, _kind(link), token, link.created_at)
    await uow.commit()
    return result


async def share_conversation(
    uow: UnitOfWork, *, user_id: int, conversation_id: int, now: datetime
) -> SharedLinkDTO:
    conversation = await uow.session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise NotFound(f"conversation {conversation_id}")
    return await _create(uow, user_id=user_id, now=now, conversation_id=conversation_id)


async def share_preset(
    uow: UnitOfWork, *, user_id: int, preset_id: int, now: datetime
) -> SharedLinkDTO:
    preset = await uow.session.get(Preset, preset_id)
    if preset is None or preset.user_id != user_id:
        raise NotFound(f"preset {preset_id}")
    return await _create(uow, user_id=user_id, now=now, preset_id=preset_id)


async def list_links(uow: UnitOfWork, user_id: int) -> list[ShareLinkDTO]:
    """The user's links, newest first, revoked and disabled ones included."""
    async with uow.reading():
        rows = await uow.session.execute(
            select(ShareLink, func.coalesce(Conversation.title, Preset.title))
            .outerjoin(Conversation, Conversation.id == ShareLink.conversation_id)
            .outerjoin(Preset, Preset.id == ShareLink.preset_id)
            .where(ShareLink.user_id == user_id)
            .order_by(ShareLink.id.desc())
        )
        result = [
            ShareLinkDTO(
                id=link.id,
                kind=_kind(link),
                target_id=link.conversation_id or link.preset_id or 0,
                title=title,
                created_at=link.created_at,
                revoked_at=link.revoked_at,
                disabled_at=link.disabled_at,
                views=link.views,
            )
            for link, title in rows.tuples()
        ]
    return result


async def revoke(uow: UnitOfWork, *, user_id: int, link_id: int, now: datetime) -> None:
    """The owner ends a link; revoking it again changes nothing."""
    async with uow.transaction():
        link = await uow.session.get(ShareLink, link_id, with_for_update=True)
        if link is None or link.user_id != user_id:
            raise ShareLinkNotFound(f"share link {link_id}")
        if link.revoked_at is None:
            link.revoked_at = now


async def disable(
    uow: UnitOfWork, *, admin_telegram_id: int, token: str, now: datetime
) -> DisabledLink:
    """An administrator takes a link down, whoever owns it, with a record in the action log.
    ``token`` is the token or the whole link."""
    token_hash = hash_token(token_from(token))
    async with uow.transaction():
        link = await uow.session.scalar(
            select(ShareLink).where(ShareLink.token_hash == token_hash).with_for_update()
        )
        if link is None:
            raise ShareLinkNotFound("no share link with this token")
        result = DisabledLink(link.id, link.user_id, changed=link.disabled_at is None)
        if not result.changed:
            return result
        revoked = link.revoked_at is not None
        link.disabled_at = now
        await audit.record_admin_action(
            uow,
            admin_telegram_id=admin_telegram_id,
            action="share_off",
            target_user_id=link.user_id,
            # The link's row, never its token: the log must not reopen it.
            target=f"share_link:{link.id}",
            before={"disabled": False, "revoked": revoked},
            after={"disabled": True, "revoked": revoked},
        )
    return result


async def _active_link(uow: UnitOfWork, token: str) -> ShareLink:
    link = None
    if TOKEN.fullmatch(token):
        link = await uow.session.scalar(
            select(ShareLink).where(
                ShareLink.token_hash == hash_token(token),
                ShareLink.revoked_at.is_(None),
                ShareLink.disabled_at.is_(None),
            )
        )
    if link is None:
        raise ShareLinkNotFound("no active share link with this token")
    return link


async def open_shared(uow: UnitOfWork, token: str) -> SharedView:
    """The public view of a link, counted as one more view."""
    async with uow.transaction():
        link = await _active_link(uow, token)
        view: SharedView
        if link.conversation_id is not None:
            conversation = await uow.session.get(Conversation, link.conversation_id)
            if conversation is None:
                raise ShareLinkNotFound("the shared conversation is gone")
            rows = await uow.session.execute(
                select(ChatMessageRow.role, ChatMessageRow.content, ChatMessageRow.created_at)
                .where(
                    ChatMessageRow.conversation_id == conversation.id,
                    ChatMessageRow.created_at <= link.created_at,
                    ChatMessageRow.status != "failed",
                    ChatMessageRow.replaced.is_(False),
                )
                .order_by(ChatMessageRow.id)
            )
            view = SharedView(
                kind="conversation",
                title=conversation.title,
                created_at=link.created_at,
                messages=tuple(SharedMessage(*row) for row in rows.tuples()),
            )
        else:
            preset = await uow.session.get(Preset, link.preset_id)
            if preset is None:
                raise ShareLinkNotFound("the shared preset is gone")
            view = SharedView(
                kind="preset",
                title=preset.title,
                created_at=link.created_at,
                prompt=preset.system_prompt,
            )
        await uow.session.execute(
            update(ShareLink).where(ShareLink.id == link.id).values(views=ShareLink.views + 1)
        )
    return view


async def copy_preset(uow: UnitOfWork, *, user_id: int, token: str, now: datetime) -> PresetDTO:
    """A shared preset becomes one of the user's own (a copy: later edits on either side stay
    apart)."""
    async with uow.reading():
        link = await _active_link(uow, token)
        link_id, preset_id = link.id, link.preset_id
        if preset_id is None:
            raise NotAPresetLink(f"share link {link_id} is a conversation")
        preset = await uow.session.get(Preset, preset_id)
        if preset is None:
            raise ShareLinkNotFound("the shared preset is gone")
        title, prompt = preset.title, preset.system_prompt
    return await presets.create_preset(uow, user_id, title=title, prompt=prompt)
