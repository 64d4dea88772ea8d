"""Image generation: priced through the same ledger as chats (reserve, then settle or release),
the file kept in the media store, its metadata recorded.

Several pictures from one prompt (variations) are held together, asked of the provider at once,
and settled in one entry for the pictures made: a picture the provider failed to make costs
nothing, and the rest of the hold goes back."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from core.clock import utcnow
from core.errors import InvalidInput, NotFound
from core.i18n import N_
from core.media import MediaStore
from core.providers.base import ImageProvider, ImageRequest, ImageResult
from core.providers.errors import ProviderError
from core.services import billing
from core.text import clean
from db.models import Media
from db.uow import UnitOfWork

MAX_PROMPT = 4000
# Pictures from one prompt at a time.
MAX_VARIATIONS = 4
SQUARE = "1:1"
# What each kind of provider takes for an aspect: OpenAI's image models a size from a short list
# (GPT image: 1024x1024, 1536x1024, 1024x1536; DALL·E 3: 1024x1024, 1792x1024, 1024x1792;
# DALL·E 2: square only), Stability an aspect ratio.
GPT_IMAGE_SIZES = {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"}
DALLE3_SIZES = {"1:1": "1024x1024", "16:9": "1792x1024", "9:16": "1024x1792"}
DALLE2_SIZES = {"1:1": "1024x1024"}
STABILITY_ASPECTS = ("1:1", "3:2", "2:3", "16:9", "9:16")


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
    # What people see (the catalogue's ``name``); empty: the id is shown.
    name: str = ""

    @property
    def title(self) -> str:
        return self.name or self.id


def _sizes(model: ImageTerms) -> dict[str, str | None]:
    if model.provider == "stability":
        return dict.fromkeys(STABILITY_ASPECTS)
    if model.provider_model.startswith("dall-e-3"):
        return dict(DALLE3_SIZES)
    if model.provider_model.startswith("dall-e"):
        return dict(DALLE2_SIZES)
    return dict(GPT_IMAGE_SIZES)


def aspects(model: ImageTerms) -> tuple[str, ...]:
    """The aspect ratios (``"3:2"``) ``model`` can draw, square first."""
    return tuple(_sizes(model))


class AspectNotOffered(InvalidInput):
    code = "aspect_not_offered"
    msgid = N_("This model cannot draw pictures of that shape. Please pick another one.")


def request_for(model: ImageTerms, prompt: str, aspect: str) -> ImageRequest:
    """The provider's request for one picture of ``aspect``: a size for OpenAI's models, an
    aspect ratio for Stability's."""
    sizes = _sizes(model)
    if aspect not in sizes:
        raise AspectNotOffered(f"{model.id} draws no {aspect}")
    return ImageRequest(
        model=model.provider_model, prompt=prompt, size=sizes[aspect], aspect_ratio=aspect
    )


def price_of(model: ImageTerms, discount_percent: int) -> int:
    """Kopecks one picture costs the user."""
    return billing.price(
        model.image_price, markup_percent=model.markup_percent, discount_percent=discount_percent
    )


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    media_id: int
    data: bytes
    mime: str
    charged: int
    # The media store key; the web app serves the file at /media/<key>.
    storage_key: str


@dataclass(frozen=True, slots=True)
class GeneratedImages:
    """Pictures made from one prompt; ``failed`` more were asked for and cost nothing."""

    pictures: tuple[GeneratedImage, ...]
    failed: int
    charged: int


async def generate_image(
    uow: UnitOfWork,
    *,
    store: MediaStore,
    provider: ImageProvider,
    user_id: int,
    prompt: str,
    model: ImageTerms,
    now: datetime,
    aspect: str = SQUARE,
) -> GeneratedImage:
    """One picture (the bot's /image and image mode); a provider failure is raised."""
    made = await generate_images(
        uow,
        store=store,
        provider=provider,
        user_id=user_id,
        prompt=prompt,
        model=model,
        now=now,
        aspect=aspect,
    )
    return made.pictures[0]


async def generate_images(
    uow: UnitOfWork,
    *,
    store: MediaStore,
    provider: ImageProvider,
    user_id: int,
    prompt: str,
    model: ImageTerms,
    now: datetime,
    aspect: str = SQUARE,
    count: int = 1,
) -> GeneratedImages:
    """``count`` pictures of ``prompt``: the price of all held first (not enough money: nothing
    held, ``InsufficientFunds``), the provider asked for each at once, each one made stored and
    recorded, and one charge settled for those made. When none could be made, the first
    provider error is raised and nothing is charged."""
    prompt = clean(prompt).strip()
    if not prompt:
        raise EmptyPrompt("no prompt")
    if len(prompt) > MAX_PROMPT:
        raise InvalidInput(f"prompt of {len(prompt)} characters")
    if not 1 <= count <= MAX_VARIATIONS:
        raise InvalidInput(f"{count} pictures at once")
    request = request_for(model, prompt, aspect)
    balance = await billing.get_balance(uow, user_id)
    price = price_of(model, balance.discount_percent)
    key = f"image:{user_id}:{secrets.token_hex(8)}"
    reservation = (
        await billing.reserve(
            uow, user_id=user_id, amount=price * count, key=f"{key}:hold", model_id=model.id
        )
        if price
        else None
    )
    rows = [
        Media(
            user_id=user_id,
            kind="image",
            prompt=prompt,
            model_id=model.id,
            provider_data={"aspect": aspect},
            created_at=now,
        )
        for _ in range(count)
    ]
    uow.session.add_all(rows)
    await uow.session.flush()
    media_ids = [m.id for m in rows]
    await uow.commit()

    async def draw_one() -> tuple[ImageResult, str]:
        result = await provider.generate_image(request)
        return result, await store.save(result.data, result.mime)

    outcomes = await asyncio.gather(*(draw_one() for _ in media_ids), return_exceptions=True)
    made = [
        (media_id, outcome)
        for media_id, outcome in zip(media_ids, outcomes, strict=True)
        if not isinstance(outcome, BaseException)
    ]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    unexpected = next((e for e in errors if not isinstance(e, ProviderError)), None)
    failed_ids = [
        i for i, o in zip(media_ids, outcomes, strict=True) if isinstance(o, BaseException)
    ]
    async with uow.transaction():
        if failed_ids:
            await uow.session.execute(
                update(Media).where(Media.id.in_(failed_ids)).values(status="failed")
            )
        for media_id, (result, storage_key) in made:
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
                    provider_data={
                        **{k: str(v) for k, v in result.provider_data.items()},
                        "aspect": aspect,
                    },
                )
            )
        charged = 0
        if reservation is not None:
            # Settling nothing gives the whole hold back and records no entry.
            entry = await billing.settle(
                uow,
                reservation=reservation,
                amount=price * len(made),
                category="image",
                key=f"{key}:settle",
                charge=billing.Charge(
                    cost=model.image_price * len(made),
                    markup_percent=model.markup_percent,
                    discount_percent=balance.discount_percent,
                    model_id=model.id,
                    meta={"media_ids": [media_id for media_id, _ in made]},
                ),
            )
            charged = -entry.amount
    if unexpected is not None:
        raise unexpected
    if not made:
        raise errors[0]
    each = charged // len(made)
    return GeneratedImages(
        pictures=tuple(
            GeneratedImage(media_id, result.data, result.mime, each, storage_key)
            for media_id, (result, storage_key) in made
        ),
        failed=len(errors),
        charged=charged,
    )


async def storage_keys(uow: UnitOfWork, user_id: int) -> list[str]:
    rows = await uow.session.scalars(
        select(Media.storage_key).where(Media.user_id == user_id, Media.storage_key.is_not(None))
    )
    return [k for k in rows if k]


# --- the gallery -------------------------------------------------------------------------------

MEDIA_PAGE_MAX = 60
# A picture is drawn within the request that asked for it (the provider's read timeout and the
# retries included). One still "being made" after this was abandoned by a process that stopped
# (its hold came back through core.owners): it shows as failed and can be deleted.
IMAGE_ABANDONED_AFTER = timedelta(minutes=10)


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
    # The shape asked for ("3:2"), when it was made from the web app.
    aspect: str | None = None


def _status(m: Media, now: datetime) -> str:
    abandoned = m.kind == "image" and m.created_at < now - IMAGE_ABANDONED_AFTER
    return "failed" if m.status == "pending" and abandoned else m.status


def _dto(m: Media, now: datetime) -> MediaDTO:
    return MediaDTO(
        id=m.id,
        kind=m.kind,
        prompt=m.prompt,
        model_id=m.model_id,
        status=_status(m, now),
        created_at=m.created_at,
        storage_key=m.storage_key if m.status == "ready" else None,
        mime=m.mime,
        width=m.width,
        height=m.height,
        duration_seconds=m.duration_seconds,
        aspect=(m.provider_data or {}).get("aspect"),
    )


async def get_media(uow: UnitOfWork, *, user_id: int, media_id: int) -> MediaDTO:
    """One of the user's own pictures or videos (another user's: ``NotFound``)."""
    async with uow.reading():
        row = await uow.session.get(Media, media_id)
        found = _dto(row, utcnow()) if row is not None and row.user_id == user_id else None
    if found is None:
        raise NotFound(f"media {media_id} of user {user_id}")
    return found


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
        now = utcnow()
        found = [_dto(m, now) for m in rows]
    return found


class MediaStillPending(InvalidInput):
    code = "media_pending"
    msgid = N_("This video is still being made. You can delete it once it is ready.")


async def delete_media(uow: UnitOfWork, store: MediaStore, *, user_id: int, media_id: int) -> None:
    """The user's own picture or video: the file, then the record. One still being made is
    refused: its hold and the request or job making it settle it first (a picture abandoned by a
    stopped process is not being made: see ``IMAGE_ABANDONED_AFTER``).

    The file goes first because its link (``/media/<key>``) is served from the store alone: a
    crash between the two steps leaves a record without a file, which the user can delete
    again, never a file whose link still opens after the user deleted it."""
    async with uow.reading():
        row = await uow.session.get(Media, media_id)
        found = row is not None and row.user_id == user_id
        status = _status(row, utcnow()) if row is not None else None
        key = row.storage_key if row is not None else None
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
