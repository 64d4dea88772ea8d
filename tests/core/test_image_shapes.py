"""A shape asked for in the app reaches each provider in its own terms: OpenAI's image models a
size from their own short list, Stability an aspect ratio; a shape a model cannot draw is refused
before anything is held."""

from __future__ import annotations

import pytest

from core.services.images import AspectNotOffered, ImageTerms, aspects, request_for
from core.services.videos import VideoTerms
from core.services.videos import aspects as video_aspects

GPT = ImageTerms("gpt-image-2", "openai", "gpt-image-2", 700)
DALLE3 = ImageTerms("dall-e-3", "openai", "dall-e-3", 400)
DALLE2 = ImageTerms("dall-e-2", "openai", "dall-e-2", 200)
STABLE = ImageTerms("sd3.5-large", "stability", "sd3.5-large", 650)


@pytest.mark.parametrize(
    ("model", "aspect", "size"),
    [
        (GPT, "1:1", "1024x1024"),
        (GPT, "3:2", "1536x1024"),
        (GPT, "2:3", "1024x1536"),
        (DALLE3, "16:9", "1792x1024"),
        (DALLE3, "9:16", "1024x1792"),
        (DALLE2, "1:1", "1024x1024"),
        (STABLE, "16:9", None),
        (STABLE, "2:3", None),
    ],
)
def test_the_shape_reaches_each_provider_in_its_own_terms(
    model: ImageTerms, aspect: str, size: str | None
) -> None:
    request = request_for(model, "a fox", aspect)
    assert (request.size, request.aspect_ratio, request.model) == (
        size,
        aspect,
        model.provider_model,
    )


def test_each_model_offers_only_the_shapes_it_draws_square_first() -> None:
    assert aspects(GPT) == ("1:1", "3:2", "2:3")
    assert aspects(DALLE3) == ("1:1", "16:9", "9:16")
    assert aspects(DALLE2) == ("1:1",)
    assert aspects(STABLE) == ("1:1", "3:2", "2:3", "16:9", "9:16")
    with pytest.raises(AspectNotOffered):
        request_for(DALLE2, "a fox", "16:9")


def test_a_video_model_offers_its_own_shape_first() -> None:
    assert video_aspects(VideoTerms("sora-2", "video", "sora-2", 100)) == ("16:9", "9:16")
    portrait = VideoTerms("sora-2", "video", "sora-2", 100, size="720x1280")
    assert video_aspects(portrait) == ("9:16", "16:9")
