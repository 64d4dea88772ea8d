"""The deployment: what the settings say this installation offers, worked out once per process.

The catalogue and the model menus made from it, the tariffs, the payment terms, the file limits,
the embeddings model, where operator reports go, the hold times and the daily backup are built
here once from Settings and Resources, and each transport gets its narrow view of them: the bot
a BotContext, the web app a WebContext, the worker its JobDeps. The bot and the web app so offer
the same models on the same terms, and nothing is computed twice.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from bot.context import BotContext
from core import owners
from core.catalogue import Catalogue, load_catalogue
from core.config import Settings
from core.mail import smtp_mailer
from core.media import LocalMediaStore, MediaStore
from core.oauth import oauth_client
from core.ports import JobQueue, Notifier
from core.security.initdata import InitDataVerifier
from core.services.auth import LoginLimits
from core.services.chat import ModelMenu
from core.services.files import Embedder, FileLimits
from core.services.images import ImageTerms
from core.services.payments import InvoiceLinks, PaymentTerms
from core.services.reconciliation import StarsSource
from core.services.subscriptions import RenewalSwitch
from core.services.tariffs import Plan, Tariffs
from core.services.videos import VideoTerms
from core.services.voice import SpeechTerms, TranscriptionTerms
from netroom.backup import BackupPlan, scheduled_backup
from netroom.backup import directory as backup_directory
from netroom.models import (
    image_models,
    model_menu,
    speech_model,
    transcription_model,
    video_models,
)
from netroom.resources import Resources
from webapp.keys import WebContext
from worker.deps import Backup, JobDeps


def web_app_url(settings: Settings) -> str:
    return settings.web.public_url.rstrip("/") + "/app"


def payment_terms(settings: Settings) -> PaymentTerms:
    p = settings.payments
    return PaymentTerms.build(
        kopecks_per_star=p.kopecks_per_star,
        star_packages=p.star_packages,
        referral_level1_percent=p.referral_level1_percent,
        referral_level2_percent=p.referral_level2_percent,
        signing_secret=settings.web.jwt_secret.get_secret_value(),
    )


def tariffs(settings: Settings) -> Tariffs:
    return Tariffs(
        free_limits=dict(settings.free_tier.limits),
        period=settings.free_tier.period,
        timezone=settings.free_tier.timezone,
        plans=tuple(
            Plan(p.id, p.stars, dict(p.free_tier), p.discount_percent)
            for p in settings.payments.plans
        ),
    )


def file_limits(settings: Settings) -> FileLimits:
    f = settings.files
    return FileLimits(
        max_bytes=f.max_file_mb * 1024 * 1024,
        quota_bytes=f.quota_mb * 1024 * 1024,
        max_pages=f.max_pages,
        max_chars=f.max_chars,
        context_tokens=f.context_tokens,
        embeddings_price_1k=f.embeddings_price_1k,
        index_deadline=timedelta(seconds=f.index_deadline_seconds),
        index_attempts=f.index_attempts,
        read_memory_mb=f.read_memory_mb,
        read_cpu_seconds=f.read_cpu_seconds,
    )


def embedder(settings: Settings, resources: Resources) -> Embedder | None:
    f = settings.files
    if f.embeddings_provider not in ("openai", "mistral", "openrouter", "deepseek"):
        return None
    return resources.providers.embeddings(
        f.embeddings_provider, model=f.embeddings_model, dimensions=f.embeddings_dimensions
    )


def backup_plan(settings: Settings, resources: Resources) -> BackupPlan | None:
    """Daily backups where Postgres is embedded (and so nobody else backs it up)."""
    if settings.database.url is not None or not settings.backup.daily:
        return None
    return BackupPlan(
        database_url=resources.endpoints.database_url,
        data_dir=settings.data_dir,
        directory=backup_directory(settings),
        keep=settings.backup.keep,
    )


def daily_backup(settings: Settings, resources: Resources) -> Backup | None:
    """The worker's daily backup job, where there is a plan for one."""
    plan = backup_plan(settings, resources)
    return None if plan is None else functools.partial(scheduled_backup, plan)


def admin_chats(settings: Settings) -> tuple[int, ...]:
    """Where operator reports go: the admin chat, else each admin."""
    if settings.bot.admin_chat_id is not None:
        return (settings.bot.admin_chat_id,)
    return tuple(settings.bot.admin_ids)


def hold_times(settings: Settings) -> owners.HoldTimes:
    h = settings.holds
    return owners.HoldTimes(
        heartbeat_ttl=timedelta(seconds=h.heartbeat_ttl_seconds),
        sweep_every=timedelta(seconds=h.sweep_seconds),
        ownerless_after=timedelta(seconds=h.ownerless_seconds),
    )


@dataclass(frozen=True)
class Deployment:
    """Built once per process (``Deployment.build``); each transport takes its view of it."""

    settings: Settings
    resources: Resources
    catalogue: Catalogue
    models: ModelMenu
    image_models: tuple[ImageTerms, ...]
    video_models: tuple[VideoTerms, ...]
    # Voice messages to text, and replies read aloud (None: not offered).
    transcription: TranscriptionTerms | None
    speech: SpeechTerms | None
    # Every catalogue model's display name by id: what people read instead of ids.
    model_names: Mapping[str, str]
    payment_terms: PaymentTerms
    tariffs: Tariffs
    file_limits: FileLimits
    embedder: Embedder | None
    admin_chat_ids: tuple[int, ...]
    hold_times: owners.HoldTimes
    backup: Backup | None
    media_store: MediaStore

    @classmethod
    def build(cls, settings: Settings, resources: Resources) -> Deployment:
        catalogue = load_catalogue(settings.catalogue_path)
        sandbox = resources.sandbox_providers
        menu = model_menu(catalogue, resources.providers, sandbox=sandbox)
        return cls(
            settings=settings,
            resources=resources,
            catalogue=catalogue,
            models=menu,
            image_models=image_models(catalogue, resources.providers, sandbox=sandbox),
            video_models=video_models(catalogue, resources.providers, sandbox=sandbox),
            transcription=transcription_model(catalogue, resources.providers, sandbox=sandbox),
            speech=speech_model(catalogue, resources.providers, sandbox=sandbox),
            model_names=catalogue.names(),
            payment_terms=payment_terms(settings),
            tariffs=tariffs(settings),
            file_limits=file_limits(settings),
            embedder=embedder(settings, resources),
            admin_chat_ids=admin_chats(settings),
            hold_times=hold_times(settings),
            backup=daily_backup(settings, resources),
            media_store=LocalMediaStore(settings.data_dir / "media"),
        )

    def bot_context(self, *, owner: str | None = None) -> BotContext:
        """The bot's view."""
        s = self.settings
        return BotContext(
            policy_version=s.policy.version,
            policy_url=s.policy_url,
            web_app_url=web_app_url(s),
            payment_terms=self.payment_terms,
            secret=s.web.jwt_secret.get_secret_value(),
            models=self.models,
            model_names=self.model_names,
            image_models=self.image_models,
            video_models=self.video_models,
            transcription=self.transcription,
            speech=self.speech,
            admin_ids=frozenset(s.bot.admin_ids),
            admin_chat_id=s.bot.admin_chat_id,
            inline_mode=s.bot.inline_mode,
            file_limits=self.file_limits,
            embedder=self.embedder,
            tariffs=self.tariffs,
            yookassa=self.resources.yookassa,
            yookassa_packages=tuple(s.yookassa.packages),
            owner=owner,
        )

    def web_context(
        self,
        *,
        init_data: InitDataVerifier | None = None,
        app_framers: tuple[str, ...] = ("https://web.telegram.org",),
        jobs: JobQueue | None = None,
        stars_invoice_links: InvoiceLinks | None = None,
        subscription_renewals: RenewalSwitch | None = None,
        bot_username_lookup: Callable[[], Awaitable[str | None]] | None = None,
        owner: str | None = None,
        bot_api_probe: Callable[[], Awaitable[object]] | None = None,
        metrics_refreshers: tuple[Callable[[], Awaitable[None]], ...] = (),
    ) -> WebContext:
        """The web app's view; what only a bot can do (invoice links, renewals, its username)
        is given by the caller that has one."""
        s, r = self.settings, self.resources
        return WebContext(
            uow_factory=r.uow_factory,
            redis=r.redis,
            public_url=s.web.public_url,
            policy_version=s.policy.version,
            policy_date=s.policy.date.isoformat(),
            init_data=init_data,
            jwt_secret=s.web.jwt_secret.get_secret_value(),
            media_store=self.media_store,
            trusted_proxy_header=s.web.trusted_proxy_header,
            trusted_proxies=tuple(s.web.trusted_proxies),
            app_framers=app_framers,
            yookassa=r.yookassa,
            yookassa_packages=tuple(s.yookassa.packages),
            yookassa_networks=tuple(s.yookassa.notification_networks),
            payment_terms=self.payment_terms,
            jobs=jobs,
            file_limits=self.file_limits,
            access_ttl=timedelta(seconds=s.auth.access_ttl_seconds),
            session_ttl=timedelta(days=s.auth.session_ttl_days),
            email_confirmation=s.auth.email_confirmation,
            confirmation_ttl=timedelta(hours=s.auth.confirmation_ttl_hours),
            login_limits=LoginLimits(
                per_account=s.auth.max_failures_per_account,
                per_ip=s.auth.max_failures_per_ip,
                window=timedelta(minutes=s.auth.lockout_minutes),
                slow_after=s.auth.slow_down_after,
                slow_delay=timedelta(seconds=s.auth.slow_down_seconds),
            ),
            mailer=smtp_mailer(s.email),
            oauth=oauth_client(s.oauth, r.http),
            models=self.models,
            model_names=self.model_names,
            providers=r.providers,
            tariffs=self.tariffs,
            embedder=self.embedder,
            image_models=self.image_models,
            video_models=self.video_models,
            transcription=self.transcription,
            read_aloud_offered=self.speech is not None,
            stars_invoice_links=stars_invoice_links,
            subscription_renewals=subscription_renewals,
            bot_username_lookup=bot_username_lookup,
            owner=owner,
            bot_api_probe=bot_api_probe,
            metrics_token=s.metrics.token.get_secret_value() if s.metrics.token else None,
            metrics_refreshers=metrics_refreshers,
        )

    def job_deps(
        self, *, notifier: Notifier | None = None, stars_source: StarsSource | None = None
    ) -> JobDeps:
        """The worker's view; the bot, where the process has one, is the notifier and the
        source of Telegram's Star transactions."""
        r = self.resources
        return JobDeps(
            uow_factory=r.uow_factory,
            providers=r.providers,
            media_store=self.media_store,
            notifier=notifier,
            tariffs=self.tariffs,
            stars_source=stars_source,
            yookassa=r.yookassa,
            admin_chat_ids=self.admin_chat_ids,
            payment_terms=self.payment_terms,
            redis=r.redis,
            file_limits=self.file_limits,
            embedder=self.embedder,
            backup=self.backup,
        )
