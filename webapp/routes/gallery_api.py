"""The gallery's JSON API: the user's pictures and videos, and making new ones from the web app.

- ``GET /api/media?before=&limit=`` → ``{media: [...], next_before}``, newest first;
  ``GET /api/media/{id}`` → one (polled while a video is being made);
  ``DELETE /api/media/{id}`` → 204 (the record and the file; one still being made: 400).
- ``GET /api/media/options`` → the image and video models on offer, each with its price for
  this user (discount applied), the shapes it makes, and the money available.
- ``POST /api/media/images`` ``{prompt, model_id?, aspect, count}`` → 201 ``{media, failed,
  charged_kopecks, balance_kopecks}``: ``count`` pictures of one prompt (variations), held
  together and charged for those made; ``POST /api/media/{id}/more`` ``{count}`` makes more like
  an existing picture (its prompt, model and shape).
- ``POST /api/media/videos`` ``{prompt, model_id?, aspect}`` → 201 the video, ``pending``; the
  worker watches the provider, and the video turns ``ready`` (or ``failed``, costing nothing).

Money is held before a provider is asked: without enough, 402 and nothing is held.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field

from core.errors import InvalidInput, NotFound
from core.i18n import N_
from core.services import billing, images, videos
from webapp.contract import TIME, Answer, Body, Id, Out, PathParams, add_routes, operation
from webapp.keys import CONTEXT, WebContext
from webapp.routes.account_api import Page
from webapp.routes.api import user_id_of

MEDIA_PAGE = 24
TAGS = ("gallery",)


class NotOffered(NotFound):
    code = "not_offered"
    msgid = N_("Making pictures or videos is not set up on this server yet.")


class ModelNotOffered(InvalidInput):
    code = "model_not_offered"
    msgid = N_("This model is not available here. Please pick another one.")


# --- the contract --------------------------------------------------------------------------------


class Media(Out):
    id: int
    kind: Literal["image", "video"]
    prompt: str
    model_id: str | None
    model_name: str | None = Field(
        description="The model as people read it (its display name; its id once the catalogue "
        "no longer has it)."
    )
    status: Literal["pending", "ready", "failed"]
    created_at: TIME
    url: str | None
    mime: str | None
    width: int | None
    height: int | None
    duration_seconds: float | None
    aspect: str | None = Field(None, description='The shape asked for, e.g. "3:2".')


class MediaPage(Out):
    media: list[Media]
    next_before: int | None


class MediaPath(PathParams):
    media_id: Id


class ImageModel(Out):
    id: str
    name: str
    price_kopecks: int = Field(description="One picture, for this user (discount applied).")
    aspects: list[str] = Field(description='The shapes it draws, square ("1:1") first.')


class VideoModel(Out):
    id: str
    name: str
    price_kopecks: int = Field(description="One video, for this user (discount applied).")
    seconds: int
    aspects: list[str] = Field(description="The shapes it makes, its usual one first.")


class Options(Out):
    images: list[ImageModel]
    videos: list[VideoModel]
    max_count: int = Field(description="Pictures of one prompt at a time.")
    available_kopecks: int
    discount_percent: int


Prompt = Annotated[str, Field(min_length=1, max_length=images.MAX_PROMPT)]
Count = Annotated[int, Field(ge=1, le=images.MAX_VARIATIONS)]
ModelId = Annotated[str, Field(min_length=1, max_length=64)]
ImageAspect = Literal["1:1", "3:2", "2:3", "16:9", "9:16"]


class NewImages(Body):
    prompt: Prompt
    model_id: ModelId | None = Field(None, description="One of the options; none: the first.")
    aspect: ImageAspect = "1:1"
    count: Count = 1


class MoreImages(Body):
    count: Count = 1


class Made(Out):
    media: list[Media]
    failed: int = Field(description="Pictures the provider could not make; not charged.")
    charged_kopecks: int
    balance_kopecks: int


class NewVideo(Body):
    prompt: Prompt
    model_id: ModelId | None = Field(None, description="One of the options; none: the first.")
    aspect: Literal["16:9", "9:16"] | None = Field(None, description="None: the model's own.")


# --- the gallery ---------------------------------------------------------------------------------


def _media(m: images.MediaDTO, ctx: WebContext) -> dict[str, object]:
    return {
        "id": m.id,
        "kind": m.kind,
        "prompt": m.prompt,
        "model_id": m.model_id,
        "model_name": ctx.model_name(m.model_id),
        "status": m.status,
        "created_at": m.created_at.isoformat(),
        "url": f"/media/{m.storage_key}" if m.storage_key else None,
        "mime": m.mime,
        "width": m.width,
        "height": m.height,
        "duration_seconds": m.duration_seconds,
        "aspect": m.aspect,
    }


@operation(
    "GET",
    "/api/media",
    summary="Generated images and videos, newest first",
    responses={200: Answer("OK.", MediaPage)},
    tags=TAGS,
)
async def list_media(request: web.Request, query: Page) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    limit = query.limit or MEDIA_PAGE
    before = query.before
    async with ctx.uow_factory() as uow:
        found = await images.list_media(uow, user_id, limit=limit, before_id=before)
    full = len(found) == min(limit, images.MEDIA_PAGE_MAX)
    return web.json_response(
        {
            "media": [_media(m, ctx) for m in found],
            "next_before": found[-1].id if found and full else None,
        }
    )


@operation(
    "GET",
    r"/api/media/{media_id:\d+}",
    summary="One picture or video (a video being made is polled here until it is ready)",
    responses={200: Answer("OK.", Media)},
    errors={404: "No such media of this account."},
    tags=TAGS,
)
async def show_media(request: web.Request, path: MediaPath) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await images.get_media(uow, user_id=user_id, media_id=path.media_id)
    return web.json_response(_media(found, ctx))


@operation(
    "DELETE",
    r"/api/media/{media_id:\d+}",
    summary="Delete one's own picture or video (the record and the file)",
    responses={204: Answer("Deleted.")},
    errors={400: "Still being made.", 404: "No such media of this account."},
    tags=TAGS,
)
async def delete_media(request: web.Request, path: MediaPath) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.media_store is None:
        raise NotFound("no media store")
    async with ctx.uow_factory() as uow:
        await images.delete_media(uow, ctx.media_store, user_id=user_id, media_id=path.media_id)
    return web.Response(status=204)


# --- making pictures and videos ----------------------------------------------------------------


def _videos_offered(ctx: WebContext) -> tuple[videos.VideoTerms, ...]:
    # A video is watched by the worker: without a queue none is offered.
    return ctx.video_models if ctx.jobs is not None else ()


def _image_model(ctx: WebContext, model_id: str | None) -> images.ImageTerms:
    if not ctx.image_models or ctx.providers is None or ctx.media_store is None:
        raise NotOffered("no image models")
    if model_id is None:
        return ctx.image_models[0]
    found = next((m for m in ctx.image_models if m.id == model_id), None)
    if found is None:
        raise ModelNotOffered(f"image model {model_id!r}")
    return found


@operation(
    "GET",
    "/api/media/options",
    summary="The picture and video models on offer, their prices for this user and shapes",
    responses={200: Answer("OK.", Options)},
    tags=TAGS,
)
async def show_options(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        balance = await billing.get_balance(uow, user_id)
    discount = balance.discount_percent
    drawn = ctx.image_models if ctx.providers is not None and ctx.media_store else ()
    made = _videos_offered(ctx) if ctx.providers is not None and ctx.media_store else ()
    return web.json_response(
        {
            "images": [
                {
                    "id": m.id,
                    "name": m.title,
                    "price_kopecks": images.price_of(m, discount),
                    "aspects": list(images.aspects(m)),
                }
                for m in drawn
            ],
            "videos": [
                {
                    "id": m.id,
                    "name": m.title,
                    "price_kopecks": videos.price_of(m, discount),
                    "seconds": m.seconds,
                    "aspects": list(videos.aspects(m)),
                }
                for m in made
            ],
            "max_count": images.MAX_VARIATIONS,
            "available_kopecks": balance.available,
            "discount_percent": discount,
        }
    )


async def _draw(
    request: web.Request, *, prompt: str, model_id: str | None, aspect: str, count: int
) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    model = _image_model(ctx, model_id)
    assert ctx.providers is not None and ctx.media_store is not None  # checked with the model
    async with ctx.uow_factory() as uow:
        made = await images.generate_images(
            uow,
            store=ctx.media_store,
            provider=ctx.providers.image(model.provider),
            user_id=user_id,
            prompt=prompt,
            model=model,
            now=ctx.clock(),
            aspect=aspect,
            count=count,
        )
        found = [
            await images.get_media(uow, user_id=user_id, media_id=p.media_id) for p in made.pictures
        ]
        balance = await billing.get_balance(uow, user_id)
    return web.json_response(
        {
            "media": [_media(m, ctx) for m in found],
            "failed": made.failed,
            "charged_kopecks": made.charged,
            "balance_kopecks": balance.available,
        },
        status=201,
    )


_DRAW_ERRORS = {
    400: "No prompt, a shape the model does not draw, or the provider failed (nothing charged).",
    402: "Not enough money for all the pictures asked for; nothing was held.",
    404: "Pictures are not made on this server.",
}


@operation(
    "POST",
    "/api/media/images",
    summary="Draw 1-4 pictures of one prompt (charged for those made)",
    responses={201: Answer("Made; each is in the gallery.", Made)},
    errors=_DRAW_ERRORS,
    tags=TAGS,
)
async def create_images(request: web.Request, body: NewImages) -> web.Response:
    return await _draw(
        request, prompt=body.prompt, model_id=body.model_id, aspect=body.aspect, count=body.count
    )


@operation(
    "POST",
    r"/api/media/{media_id:\d+}/more",
    summary="More pictures like one of the user's: its prompt, model and shape again",
    responses={201: Answer("Made; each is in the gallery.", Made)},
    errors={**_DRAW_ERRORS, 404: "No such picture of this account, or its model is gone."},
    tags=TAGS,
)
async def more_like(request: web.Request, path: MediaPath, body: MoreImages) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        source = await images.get_media(uow, user_id=user_id, media_id=path.media_id)
    if source.kind != "image":
        raise NotFound(f"media {source.id} is no picture")
    if not any(m.id == source.model_id for m in ctx.image_models):
        raise NotOffered(f"image model {source.model_id!r} is gone")
    return await _draw(
        request,
        prompt=source.prompt,
        model_id=source.model_id,
        aspect=source.aspect or images.SQUARE,
        count=body.count,
    )


@operation(
    "POST",
    "/api/media/videos",
    summary="Start a video; the worker finishes it and it turns ready in the gallery",
    responses={201: Answer("Being made.", Media)},
    errors={
        400: "No prompt, or the provider refused it (nothing charged).",
        402: "Not enough money for the video; nothing was held.",
        404: "Videos are not made on this server.",
    },
    tags=TAGS,
)
async def create_video(request: web.Request, body: NewVideo) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    offered = _videos_offered(ctx)
    if not offered or ctx.providers is None or ctx.media_store is None or ctx.jobs is None:
        raise NotOffered("no video models")
    model = offered[0]
    if body.model_id is not None:
        chosen = next((m for m in offered if m.id == body.model_id), None)
        if chosen is None:
            raise ModelNotOffered(f"video model {body.model_id!r}")
        model = chosen
    async with ctx.uow_factory() as uow:
        media_id = await videos.submit_video(
            uow,
            provider=ctx.providers.video(model.provider),
            user_id=user_id,
            prompt=body.prompt,
            model=model,
            now=ctx.clock(),
            aspect=body.aspect,
        )
        await ctx.jobs.enqueue("videos.watch", media_id=media_id)
        found = await images.get_media(uow, user_id=user_id, media_id=media_id)
    return web.json_response(_media(found, ctx), status=201)


def setup(app: web.Application) -> None:
    add_routes(
        app,
        list_media,
        show_options,
        show_media,
        delete_media,
        create_images,
        more_like,
        create_video,
    )
