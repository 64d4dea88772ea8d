"""Watching a video a provider is making, and delivering it (or the failure) to its user."""

from __future__ import annotations

import asyncio

from core.services import videos
from db.models import Media
from worker.deps import JobDeps


async def watch_video(deps: JobDeps, media_id: int) -> str:
    """Poll the provider until the video is ready or failed, then deliver it: in Telegram to a
    user who has it (the gallery shows it to everyone, web-only users too)."""
    if deps.providers is None or deps.media_store is None:
        raise RuntimeError("this worker cannot make videos (no providers or no media store)")
    started = asyncio.get_running_loop().time()
    while True:
        async with deps.uow_factory() as uow:
            async with uow.reading():
                media = await uow.session.get(Media, media_id)
                provider_name = str((media.provider_data or {}).get("provider")) if media else ""
            state = await videos.check_video(
                uow,
                provider=deps.providers.video(provider_name),
                store=deps.media_store,
                media_id=media_id,
            )
        if state.status != "pending" or (
            asyncio.get_running_loop().time() - started > deps.video_give_up_after
        ):
            break
        await asyncio.sleep(deps.video_poll_seconds)
    if state.telegram_id is None or deps.notifier is None:
        return state.status
    if state.status == "ready" and state.data is not None:
        await deps.notifier.send_video(
            telegram_id=state.telegram_id,
            data=state.data,
            file_name=f"netroom-{media_id}.mp4",
            prompt=state.prompt,
            model_id=state.model_id,
            charged=state.charged,
            language=state.language,
        )
    elif state.status == "failed":
        await deps.notifier.send_notice(
            telegram_id=state.telegram_id, msgid=videos.NOTICE_FAILED, language=state.language
        )
    return state.status
