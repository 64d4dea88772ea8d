"""What a job may use: the worker's narrow view of the deployment.

Everything a process lacks is ``None``; a job that needs it either does nothing (a notice with
no bot to send it) or fails loudly, as its docstring says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from core.clock import Clock, utcnow
from core.media import MediaStore
from core.payments.yookassa import YooKassaClient
from core.ports import Notifier
from core.providers.registry import ProviderRegistry
from core.services import files
from core.services.payments import PaymentTerms
from core.services.reconciliation import StarsSource
from core.services.tariffs import Tariffs
from db.engine import UnitOfWorkFactory

# The daily backup: given the time, it takes one and returns what it did.
Backup = Callable[[datetime], Awaitable[dict[str, int]]]


@dataclass(frozen=True)
class JobDeps:
    uow_factory: UnitOfWorkFactory
    clock: Clock = utcnow
    providers: ProviderRegistry | None = None
    media_store: MediaStore | None = None
    notifier: Notifier | None = None
    video_poll_seconds: float = 5.0
    video_give_up_after: float = 3600.0
    tariffs: Tariffs | None = None
    # Reconciliation: Telegram's Star transactions, YooKassa's payments, who gets the report.
    stars_source: StarsSource | None = None
    yookassa: YooKassaClient | None = None
    admin_chat_ids: tuple[int, ...] = ()
    # With the payment terms, reconciliation also heals: it credits what the providers charged
    # and we lack, and reverses their refunds (without them it only reports).
    payment_terms: PaymentTerms | None = None
    # Broadcasts: messages per second (Telegram allows about 30 in all) and where the run lock
    # lives, so one broadcast never runs twice at once.
    broadcast_rate: float = 25.0
    redis: Redis | None = None
    file_limits: files.FileLimits = dataclasses.field(default_factory=files.FileLimits)
    embedder: files.Embedder | None = None
    # The daily backup (embedded Postgres only).
    backup: Backup | None = None
