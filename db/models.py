"""Tables for accounts. Each column maps to a category of the privacy policy (section 3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import Identity as Generated
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


def search_document(column: str) -> str:
    """What full-text search matches ``column`` against: its words stemmed as Russian and as
    English (a query is both languages' tsquery, or-ed). The GIN indexes are built over exactly
    this expression (migration 0024), so queries must use it as it is written here."""
    return (
        f"(to_tsvector('russian'::regconfig, {column})"
        f" || to_tsvector('english'::regconfig, {column}))"
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    # 3.1 identifiers
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    username: Mapped[str | None] = mapped_column(String(64))
    profile_name: Mapped[str | None] = mapped_column(String(256))
    # 3.7 settings and flags
    language: Mapped[str] = mapped_column(String(8), server_default="en")
    theme: Mapped[str] = mapped_column(String(16), server_default="auto")
    # An IANA name ("Europe/Moscow"); none until the user or their browser chose one.
    timezone: Mapped[str | None] = mapped_column(String(64))
    features: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    history_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Marketing messages only with this separate opt-in; service notifications always.
    marketing_opt_in: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_blocked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # When Telegram last said the user blocked the bot (nothing is sent until they write again).
    bot_blocked_at: Mapped[datetime | None]
    # 3.6 referral relationships
    referral_code: Mapped[str] = mapped_column(String(32), unique=True)
    invited_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    ref1_count: Mapped[int] = mapped_column(Integer, server_default="0")
    ref2_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # 3.4 current session data
    created_at: Mapped[datetime] = created_at_column()
    last_activity_at: Mapped[datetime | None]
    last_auth_at: Mapped[datetime | None]
    last_auth_platform: Mapped[str | None] = mapped_column(String(16))
    last_auth_device: Mapped[str | None] = mapped_column(String(32))
    last_auth_os: Mapped[str | None] = mapped_column(String(64))
    last_auth_browser: Mapped[str | None] = mapped_column(String(64))
    last_auth_ip: Mapped[str | None] = mapped_column(INET)
    last_auth_user_agent: Mapped[str | None] = mapped_column(String(512))
    # Set when the account was erased: the row stays only for the financial records that law
    # keeps, with nothing left that leads back to the person.
    deleted_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("invited_by IS NULL OR invited_by <> id", name="no_self_invite"),
        CheckConstraint("language IN ('en', 'ru')", name="language_known"),
        Index("ix_users_username_lower", text("lower(username)")),
    )


class Identity(Base):
    """One way to sign in to an account: telegram, email, google or yandex."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(16))
    # Telegram id, lower-cased email, Google `sub` or Yandex `id`.
    subject: Mapped[str] = mapped_column(String(320))
    email: Mapped[str | None] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        UniqueConstraint("provider", "subject"),
        CheckConstraint(
            "provider IN ('telegram', 'email', 'google', 'yandex')", name="provider_known"
        ),
    )


class Consent(Base):
    """The consent log: which policy version a user accepted, when and where."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    policy_version: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(16))
    accepted_at: Mapped[datetime] = created_at_column()


class SignupAttribution(Base):
    """Recorded once, at first registration (policy 3.3)."""

    __tablename__ = "signup_attributions"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    landing_page: Mapped[str | None] = mapped_column(String(512))
    referrer: Mapped[str | None] = mapped_column(String(512))
    utm_source: Mapped[str | None] = mapped_column(String(64))
    utm_medium: Mapped[str | None] = mapped_column(String(64))
    utm_campaign: Mapped[str | None] = mapped_column(String(64))
    utm_term: Mapped[str | None] = mapped_column(String(64))
    utm_content: Mapped[str | None] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(16))
    device_type: Mapped[str | None] = mapped_column(String(32))
    os: Mapped[str | None] = mapped_column(String(64))
    browser: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = created_at_column()


class Balance(Base):
    """A user's rouble balance in kopecks. ``reserved`` is held for requests in flight; the
    constraint makes overspending impossible whatever the concurrency."""

    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("balance >= reserved", name="covers_reserved"),
        CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_range"),
        CheckConstraint("bonus_percent BETWEEN 0 AND 1000", name="bonus_range"),
    )

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[int] = mapped_column(BigInteger, server_default="0")
    reserved: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Individual terms (policy 3.2): a discount on requests and a bonus on top-ups.
    discount_percent: Mapped[int] = mapped_column(Integer, server_default="0")
    bonus_percent: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = created_at_column()


class LedgerEntry(Base):
    """Append-only: the balance is always the sum of a user's entries."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("kind IN ('debit', 'credit', 'refund', 'adjustment')", name="kind_known"),
        CheckConstraint(
            "category IN ('text', 'image', 'video', 'topup', 'referral', 'bonus',"
            " 'subscription', 'other')",
            name="category_known",
        ),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        Index("ix_ledger_entries_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="RESTRICT"), index=False
    )
    kind: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    # Signed kopecks: credits positive, debits negative.
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    # What the provider charged us, and the terms applied on top of it.
    cost: Mapped[int | None] = mapped_column(BigInteger)
    markup_percent: Mapped[int | None] = mapped_column(Integer)
    discount_percent: Mapped[int | None] = mapped_column(Integer)
    model_id: Mapped[str | None] = mapped_column(String(128))
    meta: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = created_at_column()


class Reservation(Base):
    """Money held for a request in flight, settled on its actual usage or released."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('held', 'settled', 'released')", name="status_known"),
        Index("ix_reservations_held", "created_at", postgresql_where=text("status = 'held'")),
        Index("ix_reservations_held_owner", "owner", postgresql_where=text("status = 'held'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="held")
    model_id: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    # The process that holds it (host:pid:random), while its request is in flight; a hold whose
    # owner's heartbeat is gone is released by the sweeper (core/owners.py).
    owner: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = created_at_column()
    closed_at: Mapped[datetime | None]


class Payment(Base):
    """A payment received through Telegram Stars or YooKassa (policy 3.2: payment-system
    identifiers, never card details). One row per provider charge: the unique key is what makes
    a redelivered notification credit nothing."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "external_id"),
        CheckConstraint("provider IN ('stars', 'yookassa')", name="provider_known"),
        CheckConstraint("status IN ('paid', 'refunded')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    provider: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(8))
    # In the provider's units: Stars, or kopecks for roubles.
    amount: Mapped[int] = mapped_column(BigInteger)
    credited: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), server_default="paid")
    created_at: Mapped[datetime] = created_at_column()
    refunded_at: Mapped[datetime | None]


class PrivacyRequest(Base):
    """Exports and deletions asked for: the log the policy promises, and the export rate limit."""

    __tablename__ = "privacy_requests"
    __table_args__ = (
        CheckConstraint("kind IN ('export', 'delete')", name="kind_known"),
        Index("ix_privacy_requests_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = created_at_column()


class Preset(Base):
    """A user's prompt preset: a named system prompt (policy 3.5)."""

    __tablename__ = "presets"

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(64))
    system_prompt: Mapped[str] = mapped_column(String(4000))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_user_id_updated_at", "user_id", "updated_at"),
        # Full-text search over titles, in both languages (core.services.search).
        Index(
            "ix_conversations_search",
            text(search_document("coalesce(title, '')")),
            postgresql_using="gin",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(128))
    # The model its turns use; null: the user's default (their pick, else the menu's).
    model_id: Mapped[str | None] = mapped_column(String(128))
    preset_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("presets.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class ChatMessageRow(Base):
    """Prompts and replies (policy 3.5), each removed 14 days after it was written."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role_known"),
        CheckConstraint(
            "status IN ('complete', 'stopped', 'cut', 'failed', 'undelivered')", name="status_known"
        ),
        CheckConstraint("rating IN (-1, 1)", name="rating_known"),
        CheckConstraint("cost >= 0", name="cost_not_negative"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        Index("ix_messages_expires_at", "expires_at"),
        # Full-text search over what was said, in both languages (core.services.search).
        Index("ix_messages_search", text(search_document("content")), postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    # Hidden reasoning, where the provider returns it.
    reasoning: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="complete")
    is_pinned: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Asked again (regenerated, edited, retried): still shown, marked, but never sent to a model.
    replaced: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # The user's 👍 (1) or 👎 (-1) on a reply.
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    # What the reply was charged, in kopecks (0: free; None: not known).
    cost: Mapped[int | None] = mapped_column(BigInteger)
    # Where the passages a reply cites came from, in the order first cited ("a.pdf, p. 3");
    # None: no document cited (``core.citations.cited``).
    sources: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime]


class Media(Base):
    """A generated image or video (policy 3.5): its metadata here, the file in the media store
    behind a long random key."""

    __tablename__ = "media"
    __table_args__ = (
        CheckConstraint("kind IN ('image', 'video')", name="kind_known"),
        CheckConstraint("status IN ('pending', 'ready', 'failed')", name="status_known"),
        Index("ix_media_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    prompt: Mapped[str] = mapped_column(String(4000))
    model_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    storage_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    mime: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[int | None] = mapped_column(BigInteger)
    provider_data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = created_at_column()


class PromoCode(Base):
    """A promo code: an amount credited at once, or a percentage bonus on the next top-up."""

    __tablename__ = "promo_codes"
    __table_args__ = (
        CheckConstraint("kind IN ('amount', 'percent')", name="kind_known"),
        CheckConstraint("value > 0", name="value_positive"),
        CheckConstraint("kind <> 'percent' OR value <= 100", name="percent_range"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    # Kopecks for an amount, percent for a bonus.
    value: Mapped[int] = mapped_column(BigInteger)
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    per_user: Mapped[int] = mapped_column(Integer, server_default="1")
    redeemed: Mapped[int] = mapped_column(Integer, server_default="0")
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at_column()


class PromoRedemption(Base):
    """Who used which code and what it gave (policy 3.6)."""

    __tablename__ = "promo_redemptions"
    __table_args__ = (
        CheckConstraint("status IN ('credited', 'pending', 'applied')", name="status_known"),
        Index("ix_promo_redemptions_user_id_code_id", "user_id", "code_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("promo_codes.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    # credited: an amount code paid out; pending/applied: a bonus waiting for / used by a top-up.
    status: Mapped[str] = mapped_column(String(16))
    credited: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = created_at_column()


class RequestLog(Base):
    """Technical log of web requests (policy 3.4): time, endpoint, status code; kept 90 days."""

    __tablename__ = "request_log"
    __table_args__ = (Index("ix_request_log_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(8))
    # The route's pattern, not the path: no ids or tokens end up in the log.
    endpoint: Mapped[str] = mapped_column(String(128))
    status: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()


class FreeUsage(Base):
    """Free-tier usage counters per model class and the time of their last reset (policy 3.4)."""

    __tablename__ = "free_usage"
    __table_args__ = (CheckConstraint("used >= 0", name="used_not_negative"),)

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    tier: Mapped[str] = mapped_column(String(32), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, server_default="0")
    reset_at: Mapped[datetime] = created_at_column()


class Subscription(Base):
    """A Stars subscription to a plan (policy 3.7: status and parameters of subscriptions).
    Telegram renews it every period until it is cancelled; the perks apply until
    ``current_period_end``."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'cancelled', 'expired')", name="status_known"),
        Index("ix_subscriptions_user_id_current_period_end", "user_id", "current_period_end"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="RESTRICT"), index=False
    )
    plan: Mapped[str] = mapped_column(String(32))
    # The charge that started it: Telegram's handle for cancelling and re-enabling renewals.
    first_charge_id: Mapped[str] = mapped_column(String(128), unique=True)
    last_charge_id: Mapped[str] = mapped_column(String(128))
    stars: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    current_period_end: Mapped[datetime]
    created_at: Mapped[datetime] = created_at_column()
    cancelled_at: Mapped[datetime | None]


class PaymentOrder(Base):
    """A YooKassa top-up from its creation: the stable Idempotence-Key, the payment id YooKassa
    gave it and its state. The credit itself is a ``payments`` row, written once on success."""

    __tablename__ = "payment_orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('new', 'pending', 'succeeded', 'canceled')", name="status_known"
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    provider: Mapped[str] = mapped_column(String(16), server_default="yookassa")
    # Kopecks.
    amount: Mapped[int] = mapped_column(BigInteger)
    idempotence_key: Mapped[str] = mapped_column(String(64), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), server_default="new")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class AdminAction(Base):
    """The administrative action log: who did what to whom, with the state before and after."""

    __tablename__ = "admin_actions"
    __table_args__ = (Index("ix_admin_actions_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    # The admin's Telegram id (admins are configured by Telegram id).
    admin_telegram_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(32))
    target_user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    target: Mapped[str | None] = mapped_column(String(128))
    before: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    after: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    reason: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = created_at_column()


class SupportThread(Base):
    """A user's support conversation in the admin chat: a forum topic of its own, or (in a plain
    group) the header message that replies hang under."""

    __tablename__ = "support_threads"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    admin_chat_id: Mapped[int] = mapped_column(BigInteger)
    # The forum topic (None in a plain group).
    topic_id: Mapped[int | None] = mapped_column(BigInteger)
    header_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()
    last_message_at: Mapped[datetime] = created_at_column()


class SupportMessage(Base):
    """Which message in the user's chat is which in the admin chat, so replies and edits find
    their way back. Ids only: the text stays in Telegram."""

    __tablename__ = "support_messages"
    __table_args__ = (
        CheckConstraint("direction IN ('in', 'out')", name="direction_known"),
        UniqueConstraint("admin_chat_id", "admin_message_id"),
        Index("ix_support_messages_user_id_user_message_id", "user_id", "user_message_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    # in: from the user to support; out: a support reply to the user.
    direction: Mapped[str] = mapped_column(String(8))
    user_message_id: Mapped[int] = mapped_column(BigInteger)
    admin_chat_id: Mapped[int] = mapped_column(BigInteger)
    admin_message_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()


class Broadcast(Base):
    """A message an administrator sends to many users, delivered by the worker at Telegram's
    pace. ``last_user_id`` is the cursor that lets it resume after a restart."""

    __tablename__ = "broadcasts"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'done', 'cancelled')", name="status_known"
        ),
        CheckConstraint("segment IN ('all', 'marketing', 'ru', 'en')", name="segment_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    admin_telegram_id: Mapped[int] = mapped_column(BigInteger)
    # The message to copy: the admin's own message in their chat with the bot.
    source_chat_id: Mapped[int] = mapped_column(BigInteger)
    source_message_id: Mapped[int] = mapped_column(BigInteger)
    segment: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    last_user_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    total: Mapped[int] = mapped_column(Integer, server_default="0")
    sent: Mapped[int] = mapped_column(Integer, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, server_default="0")
    # The admin's progress message, edited as the broadcast goes.
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None]


class Session(Base):
    """A signed-in session (policy 3.1: session tokens): the refresh token's hash, the device it
    belongs to, and whether it was revoked. Access tokens name their session (``sid``), so
    signing out, "sign out everywhere" and account deletion end them at once."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id_created_at", "user_id", "created_at"),
        Index("ix_sessions_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 of the current refresh token (rotated on each use); the token itself is never kept.
    refresh_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the refresh tokens it replaced, newest first (a bounded number): one of these
    # coming back is a stolen token being used, and ends the session.
    retired_hashes: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), server_default="{}", default=list
    )
    platform: Mapped[str] = mapped_column(String(16))
    device: Mapped[str | None] = mapped_column(String(32))
    os: Mapped[str | None] = mapped_column(String(64))
    browser: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class File(Base):
    """An uploaded document (policy 3.5: name, MIME type, size, SHA-256, indexing state, billed
    tokens). The same content uploaded twice by one user is stored once."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("user_id", "sha256"),
        CheckConstraint("status IN ('queued', 'indexing', 'ready', 'failed')", name="status_known"),
        Index(
            "ix_files_unfinished",
            "updated_at",
            postgresql_where=text("status IN ('queued', 'indexing')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    mime: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    # Why indexing failed, as a machine code the user is shown in words.
    error: Mapped[str | None] = mapped_column(String(32))
    pages: Mapped[int | None] = mapped_column(Integer)
    chunks: Mapped[int] = mapped_column(Integer, server_default="0")
    billed_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    # How many times indexing started; a file interrupted this often is given up (failed).
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # Where the bytes lie in the media store.
    storage_key: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class FileChunk(Base):
    """A passage of a file, indexed for full-text search in English and Russian. Embeddings,
    where the pgvector extension exists, live in ``file_chunk_vectors`` (created by the
    migration only on such servers)."""

    __tablename__ = "file_chunks"
    __table_args__ = (
        Index("ix_file_chunks_tsv_en", "tsv_en", postgresql_using="gin"),
        Index("ix_file_chunks_tsv_ru", "tsv_ru", postgresql_using="gin"),
        Index("ix_file_chunks_file_id_ordinal", "file_id", "ordinal"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("files.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer)
    section: Mapped[str | None] = mapped_column(String(512))
    token_count: Mapped[int] = mapped_column(Integer)
    tsv_en: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english'::regconfig, text)", persisted=True)
    )
    tsv_ru: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('russian'::regconfig, text)", persisted=True)
    )


class FileLink(Base):
    """A file attached to a conversation or to a preset: its passages are searched for each
    request there."""

    __tablename__ = "file_links"
    __table_args__ = (
        CheckConstraint("(conversation_id IS NULL) <> (preset_id IS NULL)", name="one_target"),
        UniqueConstraint("file_id", "conversation_id"),
        UniqueConstraint("file_id", "preset_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("files.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    preset_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("presets.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = created_at_column()


class ShareLink(Base):
    """A public, read-only link to a conversation or a preset. The token is random (at least
    128 bits) and only its SHA-256 is stored; the owner can revoke it and an admin disable it."""

    __tablename__ = "share_links"
    __table_args__ = (
        CheckConstraint("(conversation_id IS NULL) <> (preset_id IS NULL)", name="one_target"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    preset_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("presets.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None]
    # Set when an administrator disabled the link.
    disabled_at: Mapped[datetime | None]
    views: Mapped[int] = mapped_column(Integer, server_default="0")


class InboxUpdate(Base):
    """A Telegram update recorded before Telegram is told it arrived (policy 3.4: it holds the
    person's message). The row lives only until the update has been handled, then it is deleted;
    one that lingers is purged by retention, and a waiting one is exported and erased with its
    sender's data."""

    __tablename__ = "inbox_updates"
    __table_args__ = (Index("ix_inbox_updates_received_at", "received_at"),)

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The sender, for export and erasure (None for updates that name nobody).
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = created_at_column()


class InboxMark(Base):
    """The highest update id a bot has recorded in the inbox: at start-up it is the first offset
    asked of Telegram, so updates recorded and handled (their rows gone) but not yet confirmed
    before a crash are confirmed instead of handled twice."""

    __tablename__ = "inbox_marks"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    last_update_id: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = created_at_column()


class JobRun(Base):
    """One run of a periodic job. A scheduled run is claimed by inserting its row for
    (job, scheduled_for) before it is enqueued, so each tick is enqueued once however many
    schedulers run; the worker fills in the rest. No personal data: names, times, counts."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job", "scheduled_for"),
        Index("ix_job_runs_job_started_at", "job", "started_at"),
        Index("ix_job_runs_job_finished_at", "job", "finished_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Generated(), primary_key=True)
    job: Mapped[str] = mapped_column(String(128))
    # The tick this run belongs to; NULL for a run enqueued by hand.
    scheduled_for: Mapped[datetime | None]
    enqueued_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # queued, running, ok or failed
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    rows_affected: Mapped[int | None] = mapped_column(BigInteger)


class JobAlert(Base):
    """A job reported to the operators as failed or overdue: one row per episode, removed when
    the job succeeds again, so each episode is reported once."""

    __tablename__ = "job_alerts"

    job: Mapped[str] = mapped_column(String(128), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    reported_at: Mapped[datetime] = created_at_column()
