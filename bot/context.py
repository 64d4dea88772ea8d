from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.clock import Clock, utcnow
from core.payments.yookassa import YooKassaClient
from core.services.chat import ModelMenu, display_name
from core.services.files import Embedder, FileLimits
from core.services.images import ImageTerms
from core.services.payments import PaymentTerms
from core.services.tariffs import Tariffs
from core.services.videos import VideoTerms
from core.services.voice import SpeechTerms, TranscriptionTerms


@dataclass(frozen=True)
class BotContext:
    """What handlers need to know about the deployment, passed through workflow data."""

    policy_version: str
    policy_url: str
    web_app_url: str
    payment_terms: PaymentTerms
    models: ModelMenu
    # Signs short-lived confirmations (account deletion); never shown or logged.
    secret: str = field(repr=False)
    image_models: tuple[ImageTerms, ...] = ()
    video_models: tuple[VideoTerms, ...] = ()
    # Voice messages are transcribed with this model, and replies read aloud with that one
    # (None: not offered).
    transcription: TranscriptionTerms | None = None
    speech: SpeechTerms | None = None
    admin_ids: frozenset[int] = frozenset()
    # Where support conversations go (a forum supergroup gives each user a topic).
    admin_chat_id: int | None = None
    # Inline mode (`@bot question` in any chat): the operator's switch, off by default.
    inline_mode: bool = False
    tariffs: Tariffs = field(default_factory=lambda: Tariffs(free_limits={}))
    # Rouble top-ups: the client and the amounts offered, in roubles (None: not offered).
    yookassa: YooKassaClient | None = None
    yookassa_packages: tuple[int, ...] = ()
    # Uploaded documents: limits, and the embeddings model for search by meaning (None: words).
    file_limits: FileLimits = field(default_factory=FileLimits)
    embedder: Embedder | None = None
    clock: Clock = utcnow
    # This process, as the owner of the holds it makes (core/owners.py); None outside a service.
    owner: str | None = None
    # Every catalogue model's display name by id (``Catalogue.names``).
    model_names: Mapping[str, str] = field(default_factory=dict)

    def model_name(self, model_id: str) -> str:
        """A model as people read it, in every place the bot names one (a model no longer in
        the catalogue, by its id)."""
        return display_name(self.model_names, model_id, self.models)

    @property
    def public_url(self) -> str:
        """The web app's public address (the Mini App is served at its ``/app``)."""
        return self.web_app_url.removesuffix("/app")
