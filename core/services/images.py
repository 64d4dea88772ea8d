"""Image generation: priced through the same ledger as chats (reserve, then settle or release),
the file kept in the media store, its metadata recorded."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from core.errors import InvalidInput, NotFound
from core.i18n import N_
from core.media import MediaStore
from core.providers.base import ImageProvider, ImageRequest
from core.providers.errors import ProviderError
from core.services import billing
from core.text import clean
from db.models import Media
from db.uow import UnitOfWork

MAX_PROMPT = 4000


class EmptyPrompt(InvalidInput):
    code = "empty_image_prompt"
    msgid = N_("Describe the picture after the command, for example: /image a fox in the snow")


@dataclass(frozen=True, slots=True)
class ImageTerms:
    id: str
    provider: str
    provider_model: str
    # Kopecks per image, before markup.
    image_price: int
    markup_percent: int = 0


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    media_id: int
    data: bytes
    mime: str
    charged: int
    # The media store key; the web app serves the file at /media/<key>.
    storage_key: str


async def generate_image(
    uow: UnitOfWork,
    *,
    store: MediaStore,
    provider: ImageProvider,
    user_id: int,
    prompt: str,
    model: ImageTerms,
    now: datetime,
) -> GeneratedImage:
    prompt = clean(prompt).strip()
    if not prompt:
        raise EmptyPrompt("no prompt")
    if len(prompt) > MAX_PROMPT:
        raise InvalidInput(f"prompt of {len(prompt)} characters")
    balance = await billing.get_balance(uow, user_id)
    price = billing.price(
        model.image_price,
        markup_percent=model.markup_percent,
        discount_percent=balance.discount_percent,
    )
    key = f"image:{user_id}:{secrets.token_hex(8)}"
    reservation = (
        await billing.reserve(
            uow, user_id=user_id, amount=price, key=f"{key}:hold", model_id=model.id
        )
        if price
        else None
    )
    media = Media(user_id=user_id, kind="image", prompt=prompt, model_id=model.id, created_at=now)
    uow.session.add(media)
    await uow.session.flush()
    media_id = media.id
    await uow.commit()
    try:
        result = await provider.generate_image(
            ImageRequest(model=model.provider_model, prompt=prompt)
        )
        storage_key = await store.save(result.data, result.mime)
    except ProviderError:
        async with uow.transaction():
            await uow.session.execute(
                update(Media).where(Media.id == media_id).values(status="failed")
            )
            if reservation is not None:
                await billing.release(uow, reservation_id=reservation.id)
        raise
    await uow.session.execute(
        update(Media)
        .where(Media.id == media_id)
        .values(
            status="ready",
            storage_key=storage_key,
            mime=result.mime,
            width=result.width,
            height=result.height,
            cost=model.image_price,
            provider_data={k: str(v) for k, v in result.provider_data.items()},
        )
    )
    charged = 0
    if reservation is not None:
        entry = await billing.settle(
            uow,
            reservation=reservation,
            amount=price,
            category="image",
            key=f"{key}:settle",
            charge=billing.Charge(
                cost=model.image_price,
                markup_percent=model.markup_percent,
                discount_percent=balance.discount_percent,
                model_id=model.id,
                meta={"media_id": media_id},
            ),
        )
        charged = -entry.amount
    await uow.commit()
    return GeneratedImage(media_id, result.data, result.mime, charged, storage_key)


async def storage_keys(uow: UnitOfWork, user_id: int) -> list[str]:
    rows = await uow.session.scalars(
        select(Media.storage_key).where(Media.user_id == user_id, Media.storage_key.is_not(None))
    )
    return [k for k in rows if k]


# --- the gallery -------------------------------------------------------------------------------

MEDIA_PAGE_MAX = 60


@dataclass(frozen=True, slots=True)
class MediaDTO:
    """A generated image or video as the gallery shows it."""

    id: int
    kind: str
    prompt: str
    model_id: str
    status: str
    created_at: datetime
    # Set once the file is stored: the web app serves it at /media/<key>.
    storage_key: str | None
    mime: str | None
    width: int | None
    height: int | None
    duration_seconds: int | None


async def list_media(
    uow: UnitOfWork, user_id: int, *, limit: int = 24, before_id: int | None = None
) -> list[MediaDTO]:
    """The user's own images and videos, newest first; ``before_id`` pages back."""
    query = select(Media).where(Media.user_id == user_id)
    if before_id is not None:
        query = query.where(Media.id < before_id)
    async with uow.reading():
        rows = await uow.session.scalars(
            query.order_by(Media.id.desc()).limit(min(max(limit, 1), MEDIA_PAGE_MAX))
        )
        found = [
            MediaDTO(
                id=m.id,
                kind=m.kind,
                prompt=m.prompt,
                model_id=m.model_id,
                status=m.status,
                created_at=m.created_at,
                storage_key=m.storage_key if m.status == "ready" else None,
                mime=m.mime,
                width=m.width,
                height=m.height,
                duration_seconds=m.duration_seconds,
            )
            for m in rows
        ]
    return found


class MediaStillPending(InvalidInput):
    code = "media_pending"
    msgid = N_("This video is still being made. You can delete it once it is ready.")


async def delete_media(uow: UnitOfWork, store: MediaStore, *, user_id: int, media_id: int) -> None:
    """The user's own picture or video: the file, then the record. One still being made is
    refused: its hold and the job watching it settle it first.

    The file goes first because its link (``/media/<key>``) is served from the store alone: a
    crash between the two steps leaves a record without a file, which the user can delete
    again, never a file whose link still opens after the user deleted it."""
    async with uow.reading():
        row = await uow.session.get(Media, media_id)
        found = row is not None and row.user_id == user_id
        status, key = (row.status, row.storage_key) if row is not None else (None, None)
    if not found:
        raise NotFound(f"media {media_id} of user {user_id}")
    if status == "pending":
        raise MediaStillPending(f"media {media_id}")
    if key:
        await store.delete(key)
    async with uow.transaction():
        await uow.session.execute(
            delete(Media).where(Media.id == media_id, Media.user_id == user_id)
        )
