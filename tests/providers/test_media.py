"""Image and video adapters against the sandbox fakes over HTTP."""

from __future__ import annotations

import pytest

from core.providers.base import ImageRequest, VideoRequest, VideoStatus
from core.providers.errors import (
    ContentFiltered,
    ProviderBadRequest,
    ProviderRateLimited,
)
from core.providers.registry import ProviderRegistry
from tests.providers.conftest import Fake, Sleeps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_openai_image_is_a_png_of_the_asked_size_with_token_usage(
    fake: Fake, registry: ProviderRegistry
) -> None:
    result = await registry.image("openai").generate_image(
        ImageRequest(model="gpt-image-2", prompt="a red fox in snow", size="512x256")
    )

    assert result.data.startswith(PNG_MAGIC)
    assert (result.mime, result.width, result.height) == ("image/png", 512, 256)
    assert result.usage is not None
    assert result.usage.input_tokens == 5
    assert result.usage.output_tokens == 1056
    (sent,) = await fake.requests("openai")
    assert sent["json"] == {
        "model": "gpt-image-2",
        "prompt": "a red fox in snow",
        "n": 1,
        "size": "512x256",
    }


async def test_dalle_image_is_asked_for_inline_data(fake: Fake, registry: ProviderRegistry) -> None:
    result = await registry.image("openai").generate_image(
        ImageRequest(model="dall-e-3", prompt="a lighthouse", size="256x256")
    )

    assert result.data.startswith(PNG_MAGIC)
    assert result.provider_data["revised_prompt"] == "a lighthouse"
    (sent,) = await fake.requests("openai")
    assert sent["json"]["response_format"] == "b64_json"


async def test_openai_image_refused_by_the_safety_system_is_content_filtered(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await fake.script(provider="openai", model="gpt-image-2", fault={"kind": "content_filtered"})

    with pytest.raises(ContentFiltered):
        await registry.image("openai").generate_image(
            ImageRequest(model="gpt-image-2", prompt="something forbidden")
        )


async def test_stability_image_carries_seed_and_finish_reason_from_headers(
    fake: Fake, registry: ProviderRegistry
) -> None:
    result = await registry.image("stability").generate_image(
        ImageRequest(
            model="stable-image-core",
            prompt="a city at night",
            negative_prompt="blur",
            aspect_ratio="16:9",
            seed=42,
        )
    )

    assert result.data.startswith(PNG_MAGIC)
    assert (result.width, result.height, result.seed) == (1344, 768, 42)
    assert result.provider_data["finish_reason"] == "SUCCESS"
    assert result.provider_data["request_id"]
    (sent,) = await fake.requests("stability")
    assert sent["path"] == "/stability/v2beta/stable-image/generate/core"
    assert sent["headers"]["content-type"].startswith("multipart/form-data")
    assert sent["headers"]["accept"] == "image/*"
    assert sent["headers"]["authorization"] == "Bearer sk-sandbox-stability"
    assert sent["form"] == {
        "prompt": "a city at night",
        "output_format": "png",
        "aspect_ratio": "16:9",
        "negative_prompt": "blur",
        "seed": "42",
        "none": "",
    }


async def test_stability_sd3_models_name_the_model_in_the_form(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await registry.image("stability").generate_image(
        ImageRequest(model="sd3.5-large", prompt="a meadow")
    )

    (sent,) = await fake.requests("stability")
    assert sent["path"].endswith("/generate/sd3")
    assert sent["form"]["model"] == "sd3.5-large"


@pytest.mark.parametrize("error_type", [None, "CONTENT_FILTERED"], ids=["403", "finish-reason"])
async def test_stability_moderation_is_content_filtered(
    fake: Fake, registry: ProviderRegistry, error_type: str | None
) -> None:
    await fake.script(
        provider="stability", fault={"kind": "content_filtered", "error_type": error_type}
    )

    with pytest.raises(ContentFiltered):
        await registry.image("stability").generate_image(
            ImageRequest(model="stable-image-ultra", prompt="something forbidden")
        )


async def test_stability_rate_limit_is_retried_then_reported(
    fake: Fake, registry: ProviderRegistry, sleeps: Sleeps
) -> None:
    await fake.script(provider="stability", fault={"kind": "429"}, times=3)

    with pytest.raises(ProviderRateLimited) as caught:
        await registry.image("stability").generate_image(
            ImageRequest(model="stable-image-core", prompt="a meadow")
        )

    assert caught.value.params["retry_after"] is None
    assert len(sleeps) == 2
    assert len(await fake.requests("stability")) == 3


async def test_video_job_goes_from_queued_through_in_progress_to_a_downloadable_mp4(
    fake: Fake, registry: ProviderRegistry
) -> None:
    video = registry.video()

    job = await video.submit_video(
        VideoRequest(model="sora-2", prompt="waves on a beach", seconds=8, size="1280x720")
    )
    assert (job.status, job.progress, job.seconds, job.size) == (
        VideoStatus.QUEUED,
        0,
        8,
        "1280x720",
    )
    first = await video.poll_video(job.id)
    assert (first.status, first.progress, first.done) == (VideoStatus.IN_PROGRESS, 50, False)
    second = await video.poll_video(job.id)
    assert (second.status, second.progress, second.done) == (VideoStatus.COMPLETED, 100, True)
    content = await video.download_video(job.id)

    assert content.mime == "video/mp4"
    assert content.data[4:8] == b"ftyp"
    sent = await fake.requests("openai")
    assert [(r["method"], r["path"]) for r in sent] == [
        ("POST", "/openai/v1/videos"),
        ("GET", f"/openai/v1/videos/{job.id}"),
        ("GET", f"/openai/v1/videos/{job.id}"),
        ("GET", f"/openai/v1/videos/{job.id}/content"),
    ]
    assert sent[0]["json"] == {
        "model": "sora-2",
        "prompt": "waves on a beach",
        "seconds": "8",
        "size": "1280x720",
    }


async def test_video_blocked_by_moderation_fails_with_content_filtered(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await fake.script(
        provider="openai", model="sora-2", fault={"kind": "content_filtered"}, video_polls=1
    )
    video = registry.video()

    job = await video.submit_video(VideoRequest(model="sora-2", prompt="something forbidden"))
    done = await video.poll_video(job.id)

    assert done.status is VideoStatus.FAILED
    assert isinstance(done.error, ContentFiltered)


async def test_video_download_before_completion_is_refused(
    fake: Fake, registry: ProviderRegistry
) -> None:
    video = registry.video()
    job = await video.submit_video(VideoRequest(model="sora-2", prompt="clouds"))

    with pytest.raises(ProviderBadRequest):
        await video.download_video(job.id)
