"""Frozen results of use cases. Transports render these; they never see ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class UserDTO:
    id: int
    telegram_id: int | None
    username: str | None
    profile_name: str | None
    language: str
    theme: str
    features: dict[str, Any]
    history_enabled: bool
    is_blocked: bool
    referral_code: str
    invited_by: int | None
    ref1_count: int
    ref2_count: int
    created_at: datetime
    last_activity_at: datetime | None = None
    consent_version: str | None = None
    # The chosen IANA time zone; None until chosen (see accounts.time_zone_of).
    timezone: str | None = None

    def needs_consent(self, current_version: str) -> bool:
        return self.consent_version != current_version


class ReferralOutcome(StrEnum):
    NONE = "none"
    APPLIED = "applied"
    UNKNOWN_CODE = "unknown_code"
    SELF_INVITE = "self_invite"
    CYCLE = "cycle"
    ALREADY_REGISTERED = "already_registered"


@dataclass(frozen=True, slots=True)
class Registration:
    user: UserDTO
    created: bool
    referral: ReferralOutcome
    # Who invited the new account, so they can be told a friend joined.
    inviter: UserDTO | None = None


@dataclass(frozen=True, slots=True)
class StartPayload:
    referral_code: str | None = None
    utm: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.referral_code is None and not self.utm


@dataclass(frozen=True, slots=True)
class ReferralInfo:
    code: str
    level1: int
    level2: int


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a sign-in came from (policy 3.3 and 3.4)."""

    platform: str
    device_type: str | None = None
    os: str | None = None
    browser: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    landing_page: str | None = None
    referrer: str | None = None
