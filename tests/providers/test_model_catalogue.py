"""The model catalogue: the shipped file loads, lookups work, bad files fail naming the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.catalogue import (
    Capability,
    CatalogueError,
    ModelKind,
    ModelUnavailable,
    load_catalogue,
)
from core.providers.registry import CHAT_PROVIDERS
from core.services.chat import display_name

GOOD_TEXT = """
[[models]]
id = "{id}"
provider = "openai"
model = "gpt-x"
name = "GPT X"
kind = "text"
context_window = 1000
input_price_1k = 1
output_price_1k = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(text)
    return path


def test_shipped_catalogue_has_enabled_defaults_for_every_kind() -> None:
    catalogue = load_catalogue()

    for kind in ModelKind:
        default = catalogue.default(kind)
        assert default is not None and default.kind is kind and default.enabled
        assert catalogue.enabled(kind)


def test_shipped_catalogue_offers_text_models_of_every_chat_provider() -> None:
    catalogue = load_catalogue()

    assert {m.provider for m in catalogue.enabled(ModelKind.TEXT)} == CHAT_PROVIDERS


def test_lookup_returns_the_entry_with_its_capabilities_and_prices() -> None:
    entry = load_catalogue().get("claude-sonnet-5.5")

    assert (entry.provider, entry.model, entry.kind) == (
        "anthropic",
        "claude-sonnet-5-5",
        ModelKind.TEXT,
    )
    assert entry.has(Capability.REASONING) and entry.has(Capability.WEB_SEARCH)
    assert entry.context_window == 1_000_000
    assert (entry.input_price_1k, entry.output_price_1k, entry.markup_percent) == (20, 100, 20)


def test_disabled_and_unknown_models_are_unavailable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[defaults]\ntext = "on"\n'
        + GOOD_TEXT.format(id="on")
        + GOOD_TEXT.format(id="off")
        + "enabled = false\n",
    )
    catalogue = load_catalogue(path)

    assert catalogue.find("off") is not None
    with pytest.raises(ModelUnavailable):
        catalogue.get("off")
    with pytest.raises(ModelUnavailable):
        catalogue.get("nowhere")
    assert [m.id for m in catalogue.enabled()] == ["on"]


def test_every_model_has_a_display_name_and_one_gone_is_shown_by_its_id() -> None:
    catalogue = load_catalogue()
    names = catalogue.names()
    # Every kind, enabled or not: the history of a model switched off still reads well.
    assert set(names) == {m.id for m in catalogue.models}
    image = catalogue.default(ModelKind.IMAGE)
    assert image is not None and names[image.id] == image.name != image.id
    assert display_name(names, image.id) == image.name
    assert display_name(names, "gpt-retired") == "gpt-retired"


def test_cost_is_in_kopecks_rounded_up() -> None:
    catalogue = load_catalogue()

    text = catalogue.get("gpt-5.5")  # 50 / 300 kopecks per 1k tokens
    assert text.cost(input_tokens=1000, output_tokens=1000) == 350
    assert text.cost(input_tokens=1, output_tokens=0) == 1
    assert text.cost() == 0
    assert catalogue.get("stable-image-core").cost(images=2) == 600
    assert catalogue.get("sora-2").cost(seconds=8) == 8000
    assert catalogue.get("whisper-1").cost(minutes=2) == 120  # 60 kopecks a minute
    assert catalogue.get("tts-1").cost(characters=1001) == 151  # 150 per 1 000, rounded up


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD_TEXT.format(id="fine")
            + '\n[[models]]\nid = "no-price"\nprovider = "openai"\nmodel = "m"\nname = "M"\n'
            'kind = "text"\ncontext_window = 10\n',
            "models[1] ('no-price'): Value error, a text model needs input_price_1k, "
            "output_price_1k",
        ),
        (
            '[[models]]\nid = "pic"\nprovider = "anthropic"\nmodel = "m"\nname = "M"\n'
            'kind = "image"\nimage_price = 5\n',
            "models[0] ('pic'): Value error, provider 'anthropic' cannot serve image models",
        ),
        (
            GOOD_TEXT.format(id="tiny").replace("context_window = 1000", "context_window = -1"),
            "models[0] ('tiny').context_window: Input should be greater than 0",
        ),
        (
            GOOD_TEXT.format(id="twice") + GOOD_TEXT.format(id="twice"),
            "model id 'twice' appears more than once",
        ),
        (
            '[[models]]\nid = "ears"\nprovider = "openai"\nmodel = "m"\nname = "M"\n'
            'kind = "transcription"\nchars_price_1k = 5\n',
            "models[0] ('ears'): Value error, a transcription model needs minute_price",
        ),
        (
            '[[models]]\nid = "ears"\nprovider = "openai"\nmodel = "m"\nname = "M"\n'
            'kind = "transcription"\nminute_price = 5\nvoice = "alloy"\n',
            "models[0] ('ears'): Value error, voice applies to speech models only",
        ),
        (
            GOOD_TEXT.format(id="typo") + "capabilites = []\n",
            "models[0] ('typo').capabilites: Extra inputs are not permitted",
        ),
        (
            GOOD_TEXT.format(id="skill") + 'capabilities = ["telepathy"]\n',
            "models[0] ('skill').capabilities",
        ),
        (
            GOOD_TEXT.format(id="Bad Id"),
            "models[0] ('Bad Id').id: String should match pattern",
        ),
    ],
    ids=[
        "missing-price",
        "wrong-provider",
        "bad-number",
        "duplicate",
        "transcription-price",
        "voice-not-for-transcription",
        "unknown-field",
        "unknown-capability",
        "bad-id",
    ],
)
def test_invalid_entry_fails_naming_the_entry_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, '[defaults]\ntext = "fine"\n' + text)

    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)

    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_default_pointing_at_a_disabled_model_fails(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[defaults]\ntext = "off"\n' + GOOD_TEXT.format(id="off") + "enabled = false\n"
    )

    with pytest.raises(CatalogueError, match=r"defaults\.text = 'off' is not an enabled text"):
        load_catalogue(path)


def test_file_that_is_not_toml_fails_clearly(tmp_path: Path) -> None:
    path = write(tmp_path, "[[models]\nid = ")

    with pytest.raises(CatalogueError, match="not valid TOML"):
        load_catalogue(path)


def test_missing_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="does not exist"):
        load_catalogue(tmp_path / "nowhere.toml")
