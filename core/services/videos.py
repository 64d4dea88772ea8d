"""Video generation: an asynchronous job at the provider, priced through the ledger (held when
submitted, settled when the video is ready, released if it fails), watched by a background job,
delivered through the Notifier."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from core import owners
from core.errors import InvalidInput, NotFound
from core.i18n import N_
from core.media import MediaStore
from core.providers.base import VideoProvider, VideoRequest, VideoStatus
from core.providers.errors import ProviderError
from core.services import billing
from core.text import clean
from db.models import Media, User
from db.uow import UnitOfWork

NOTICE_FAILED = N_("Sorry, the video could not be made. Nothing was charged for it.")


class EmptyVideoPrompt(InvalidInput):
    code = "empty_video_prompt"
    msgid = N_("Describe the video after the command, for example: /video waves on a beach")


@dataclass(frozen=True, slots=True)
class VideoTerms:
    id: str
    provider: str
    provider_model: str
    # Kopecks per second of video, before markup.
    second_price: int
    markup_percent: int = 0
    seconds: int = 8
    size: str = "1280x720"
    # What people see (the catalogue's ``name``); empty: the id is shown.
    name: str = ""

    @property
    def title(self) -> str:
        return self.name or self.id


# The shapes a video can take, as sizes of OpenAI's Videos API.
VIDEO_SIZES = {"16:9": "1280x720", "9:16": "720x1280"}


def aspects(model: VideoTerms) -> tuple[str, ...]:
    """The aspect ratios ``model`` makes, its own size's first."""
    own = next((a for a, size in VIDEO_SIZES.items() if size == model.size), None)
    return tuple(sorted(VIDEO_SIZES, key=lambda a: a != own))


def price_of(model: VideoTerms, discount_percent: int) -> int:
    """Kopecks one video costs the user."""
    return billing.price(
        model.second_price * model.seconds,
        markup_percent=model.markup_percent,
        discount_percent=discount_percent,
    )


class VideoAspectNotOffered(InvalidInput):
    code = "aspect_not_offered"
    msgid = N_("This model cannot make videos of that shape. Please pick another one.")


@dataclass(frozen=True, slots=True)
class VideoState:
    media_id: int
    status: str  # pending, ready, failed
    data: bytes | None = None
    telegram_id: int | None = None
    language: str = "en"
    # What the video shows and who made it, for its caption; what it cost the user.
    prompt: str = ""
    model_id: str = ""
    charged: int = 0


async def submit_video(
    uow: UnitOfWork,
    *,
    provider: VideoProvider,
    user_id: int,
    prompt: str,
    model: VideoTerms,
    now: datetime,
    aspect: str | None = None,
) -> int:
    """Hold the price, start the job at the provider, record it; the media id to watch.
    ``aspect`` (``"9:16"``): the shape, else the model's own size."""
    prompt = clean(prompt).strip()
    if not prompt:
        raise EmptyVideoPrompt("no prompt")
    if aspect is not None and aspect not in VIDEO_SIZES:
        raise VideoAspectNotOffered(f"no {aspect} video")
    size = VIDEO_SIZES[aspect] if aspect is not None else model.size
    balance = await billing.get_balance(uow, user_id)
    cost = model.second_price * model.seconds
    price = price_of(model, balance.discount_percent)
    key = f"video:{user_id}:{secrets.token_hex(8)}"
    hold = None
    if price:
        # Held and committed before the provider is asked.
        async with uow.transaction():
            hold = await billing.reserve(
                uow,
                user_id=user_id,
                amount=price,
                key=f"{key}:hold",
                model_id=model.id,
                # The video job watching the provider settles it, across restarts.
                owner=owners.JOB_OWNER + "video",
            )
    try:
        job = await provider.submit_video(
            VideoRequest(
                model=model.provider_model,
                prompt=prompt[:4000],
                seconds=model.seconds,
                size=size,
            )
        )
    except ProviderError:
        if hold is not None:
            async with uow.transaction():
                await billing.release(uow, reservation_id=hold.id)
        raise
    media = Media(
        user_id=user_id,
        kind="video",
        prompt=prompt[:4000],
        model_id=model.id,
        duration_seconds=model.seconds,
        cost=cost,
        provider_data={
            "job_id": job.id,
            "provider": model.provider,
            "reservation_id": hold.id if hold else None,
            "reserved": price,
            "key": key,
            "discount_percent": balance.discount_percent,
            "markup_percent": model.markup_percent,
            "aspect": aspect or next((a for a, v in VIDEO_SIZES.items() if v == size), None),
        },
        created_at=now,
    )
    uow.session.add(media)
    await uow.session.flush()
    media_id = media.id
    await uow.commit()
    return media_id


async def check_video(
    uow: UnitOfWork, *, provider: VideoProvider, store: MediaStore, media_id: int
) -> VideoState:
    """Ask the provider once; when the video is ready, keep it and charge for it."""
    async with uow.reading():
        media = await uow.session.get(Media, media_id)
        if media is None or media.kind != "video":
            raise NotFound(f"video {media_id}")
        user = await uow.session.get(User, media.user_id)
        telegram_id = user.telegram_id if user else None
        language = user.language if user else "en"
        data = dict(media.provider_data)
        user_id, cost, model_id = media.user_id, media.cost or 0, media.model_id
        about = VideoState(
            media_id,
            media.status,
            None,
            telegram_id,
            language,
            prompt=media.prompt,
            model_id=model_id,
            charged=int(data.get("reserved") or 0) if media.status == "ready" else 0,
        )
        if media.status != "pending":
            return about
    job = await provider.poll_video(str(data["job_id"]))
    if not job.done:
        return about
    hold_id = data.get("reservation_id")
    if job.status is VideoStatus.FAILED:
        async with uow.transaction():
            await uow.session.execute(
                update(Media).where(Media.id == media_id).values(status="failed")
            )
            if hold_id:
                await billing.release(uow, reservation_id=int(hold_id))
        return dataclasses.replace(about, status="failed")
    content = await provider.download_video(str(data["job_id"]))
    key = await store.save(content.data, content.mime)
    async with uow.transaction():
        await uow.session.execute(
            update(Media)
            .where(Media.id == media_id)
            .values(status="ready", storage_key=key, mime=content.mime)
        )
        if hold_id:
            await billing.settle(
                uow,
                reservation=billing.ReservationDTO(
                    int(hold_id), user_id, int(data["reserved"]), "held"
                ),
                amount=int(data["reserved"]),
                category="video",
                key=f"{data['key']}:settle",
                charge=billing.Charge(
                    cost=cost,
                    markup_percent=int(data.get("markup_percent") or 0),
                    discount_percent=int(data.get("discount_percent") or 0),
                    model_id=model_id,
                    meta={"media_id": media_id},
                ),
            )
    return dataclasses.replace(
        about, status="ready", data=content.data, charged=int(data.get("reserved") or 0)
    )
