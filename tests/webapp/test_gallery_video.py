"""A made video in the web gallery: its tile shows the first frame (not a blank tile), it plays in
the viewer's player, and /media serves it in byte ranges as video players ask."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from playwright.async_api import Browser, expect

from db.models import Media
from sandbox.providers.openai import MP4_BLOB
from tests.webapp.test_browser_pages import Account, Stage, open_app, screenshot, stage

__all__ = ["stage"]


async def _made_video(stage: Stage, account: Account) -> str:
    key = await stage.store.save(MP4_BLOB, "video/mp4")
    async with stage.factory() as uow, uow.transaction():
        uow.session.add(
            Media(
                user_id=account.user_id,
                kind="video",
                prompt="A sun rolling across an evening sky",
                model_id="sora-2",
                status="ready",
                storage_key=key,
                mime="video/mp4",
                duration_seconds=3,
                created_at=datetime.now(UTC),
            )
        )
    return key


@pytest.mark.parametrize("phone", [True, False], ids=["phone", "desktop"])
async def test_a_made_video_shows_its_first_frame_and_plays_in_the_gallery(
    browser: Browser, stage: Stage, errors: list[str], phone: bool
) -> None:
    vera = await stage.account("Vera")
    await _made_video(stage, vera)
    device = "phone" if phone else "desktop"
    context, page = await open_app(browser, stage, vera, errors, phone=phone)
    try:
        await page.get_by_test_id("tab-gallery" if phone else "nav-gallery").click()
        tile = page.get_by_test_id("tile-video")
        await expect(tile).to_have_count(1)
        # A decoded frame, so the tile is a picture of the video, not an empty box.
        frame = (
            "v => v.readyState >= 2 ? v.videoWidth : new Promise(r => {"
            " v.addEventListener('loadeddata', () => r(v.videoWidth));"
            " v.addEventListener('error', () => r(0)); })"
        )
        assert await tile.evaluate(frame) == 320
        await screenshot(page, f"{device}-gallery-video")

        await page.get_by_test_id("media").click()
        player = page.get_by_test_id("viewer-video")
        await expect(player).to_be_visible()
        assert await player.evaluate("v => v.controls") is True
        played = (
            "async v => { v.muted = true; await v.play();"
            " await new Promise(r => {"
            " const t = () => (v.currentTime > 0.5 ? r() : setTimeout(t, 50)); t(); });"
            " return v.currentTime; }"
        )
        assert await player.evaluate(played) > 0.5
        await screenshot(page, f"{device}-gallery-video-player")
    finally:
        await context.close()


async def test_media_answers_byte_ranges_for_video_players(stage: Stage) -> None:
    vera = await stage.account("Ranger")
    key = await _made_video(stage, vera)
    async with httpx.AsyncClient() as http:
        whole = await http.get(f"{stage.url}/media/{key}")
        assert whole.status_code == 200
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.content == MP4_BLOB
        part = await http.get(f"{stage.url}/media/{key}", headers={"Range": "bytes=0-99"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 0-99/{len(MP4_BLOB)}"
        assert part.content == MP4_BLOB[:100]
        tail = await http.get(f"{stage.url}/media/{key}", headers={"Range": "bytes=-10"})
        assert tail.status_code == 206
        assert tail.content == MP4_BLOB[-10:]
        beyond = await http.get(
            f"{stage.url}/media/{key}", headers={"Range": f"bytes={len(MP4_BLOB) + 5}-"}
        )
        assert beyond.status_code == 416
