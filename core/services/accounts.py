"""Accounts: registration through Telegram, consent, language, referral relationships."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import available_timezones

from sqlalchemy.exc import IntegrityError

from core.deeplinks import new_referral_code
from core.dto import ClientInfo, ReferralInfo, ReferralOutcome, Registration, StartPayload, UserDTO
from core.errors import DomainError, InvalidInput, NotFound, UnknownTimeZone
from core.i18n import N_
from core.services import chat
from db.models import Identity, SignupAttribution, User
from db.uow import UnitOfWork

LANGUAGES = ("en", "ru")
ACTIVITY_RESOLUTION = timedelta(minutes=5)


def pick_language(language_code: str | None) -> str:
    """Telegram's ``language_code`` (IETF tag) to one of our interface languages."""
    if language_code and language_code.split("-")[0].lower() in ("ru", "uk", "be", "kk"):
        return "ru"
    return "en"


def to_dto(user: User, consent_version: str | None) -> UserDTO:
    return UserDTO(
        id=user.id,
        telegram_id=user.telegram_id,
        username=user.username,
        profile_name=user.profile_name,
        language=user.language,
        theme=user.theme,
        features=dict(user.features or {}),
        history_enabled=user.history_enabled,
        is_blocked=user.is_blocked,
        referral_code=user.referral_code,
        invited_by=user.invited_by,
        ref1_count=user.ref1_count,
        ref2_count=user.ref2_count,
        created_at=user.created_at,
        last_activity_at=user.last_activity_at,
        consent_version=consent_version,
        timezone=user.timezone,
    )


async def _dto(uow: UnitOfWork, user: User) -> UserDTO:
    return to_dto(user, await uow.users.latest_consent_version(user.id))


async def for_update_intake(uow: UnitOfWork, telegram_id: int) -> UserDTO | None:
    """The account of whoever sent an update, in a single round trip."""
    row = await uow.users.lookup_for_update_intake(telegram_id)
    if row is None:
        return None
    features = row.pop("features")
    if isinstance(features, str):
        features = json.loads(features)
    return UserDTO(**row, features=dict(features or {}))


async def get_by_telegram_id(uow: UnitOfWork, telegram_id: int) -> UserDTO | None:
    async with uow.reading():
        found = await uow.users.by_telegram_id_with_consent(telegram_id)
        return None if found is None else to_dto(*found)


async def get_user(uow: UnitOfWork, user_id: int) -> UserDTO:
    user = await uow.users.get(user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    return await _dto(uow, user)


async def register_telegram_user(
    uow: UnitOfWork,
    *,
    telegram_id: int,
    username: str | None,
    first_name: str | None,
    last_name: str | None,
    language_code: str | None,
    payload: StartPayload,
    policy_version: str,
    client: ClientInfo,
) -> Registration:
    """Create the account on acceptance of the policy, or record a renewed acceptance.

    Idempotent: accepting twice (or two taps racing) yields one account and the inviter is
    recorded only at the first registration.
    """
    existing = await uow.users.by_telegram_id(telegram_id, for_update=True)
    if existing is not None:
        return await _accept_again(uow, existing, payload, policy_version, client.platform)

    name = " ".join(part for part in (first_name, last_name) if part) or None
    referral = ReferralOutcome.NONE
    inviter: User | None = None
    if payload.referral_code:
        inviter = await uow.users.by_referral_code(payload.referral_code)
        referral = ReferralOutcome.APPLIED if inviter else ReferralOutcome.UNKNOWN_CODE

    user = User(
        telegram_id=telegram_id,
        username=username,
        profile_name=name[:256] if name else None,
        language=pick_language(language_code),
        referral_code=await _unique_referral_code(uow),
        invited_by=inviter.id if inviter else None,
    )
    try:
        async with uow.session.begin_nested():
            await uow.users.add(user)
    except IntegrityError:
        # A concurrent acceptance created the account first.
        existing = await uow.users.by_telegram_id(telegram_id, for_update=True)
        if existing is None:
            raise
        return await _accept_again(uow, existing, payload, policy_version, client.platform)

    await uow.users.add_identity(
        Identity(user_id=user.id, provider="telegram", subject=str(telegram_id))
    )
    await uow.users.add_consent(user.id, policy_version, client.platform)
    await uow.users.add_attribution(_attribution(user.id, payload, client))
    inviter_dto = None
    if inviter is not None:
        await uow.users.bump_referral_counters(inviter.id, inviter.invited_by)
        inviter_dto = await _dto(uow, inviter)
    await uow.commit()
    return Registration(
        user=to_dto(user, policy_version), created=True, referral=referral, inviter=inviter_dto
    )


async def _accept_again(
    uow: UnitOfWork, user: User, payload: StartPayload, policy_version: str, platform: str
) -> Registration:
    referral = ReferralOutcome.NONE
    if payload.referral_code:
        referral = await _referral_refusal(uow, user, payload.referral_code)
    if await uow.users.latest_consent_version(user.id) != policy_version:
        await uow.users.add_consent(user.id, policy_version, platform)
    await uow.commit()
    return Registration(user=to_dto(user, policy_version), created=False, referral=referral)


async def _referral_refusal(uow: UnitOfWork, user: User, code: str) -> ReferralOutcome:
    """Why a referral code cannot apply to an existing account."""
    if code == user.referral_code:
        return ReferralOutcome.SELF_INVITE
    inviter = await uow.users.by_referral_code(code)
    if inviter is None:
        return ReferralOutcome.UNKNOWN_CODE
    if user.id in await uow.users.inviter_chain(inviter.id):
        return ReferralOutcome.CYCLE
    return ReferralOutcome.ALREADY_REGISTERED


async def check_start_payload(
    uow: UnitOfWork, telegram_id: int, payload: StartPayload
) -> ReferralOutcome:
    """What a deep link would do for this Telegram user, before anything is stored."""
    if not payload.referral_code:
        return ReferralOutcome.NONE
    async with uow.reading():
        user = await uow.users.by_telegram_id(telegram_id)
        if user is not None:
            return await _referral_refusal(uow, user, payload.referral_code)
        inviter = await uow.users.by_referral_code(payload.referral_code)
    return ReferralOutcome.APPLIED if inviter else ReferralOutcome.UNKNOWN_CODE


def _attribution(user_id: int, payload: StartPayload, client: ClientInfo) -> SignupAttribution:
    return SignupAttribution(
        user_id=user_id,
        landing_page=client.landing_page,
        referrer=client.referrer,
        utm_source=payload.utm.get("utm_source"),
        utm_medium=payload.utm.get("utm_medium"),
        utm_campaign=payload.utm.get("utm_campaign"),
        utm_term=payload.utm.get("utm_term"),
        utm_content=payload.utm.get("utm_content"),
        platform=client.platform,
        device_type=client.device_type,
        os=client.os,
        browser=client.browser,
        ip=client.ip,
        user_agent=client.user_agent[:512] if client.user_agent else None,
    )


async def _unique_referral_code(uow: UnitOfWork) -> str:
    for _ in range(8):
        code = new_referral_code()
        if await uow.users.by_referral_code(code) is None:
            return code
    raise RuntimeError("could not find a free referral code")


async def set_language(uow: UnitOfWork, user_id: int, language: str) -> UserDTO:
    if language not in LANGUAGES:
        raise InvalidInput(f"language {language!r}")
    await uow.users.set_fields(user_id, language=language)
    await uow.commit()
    return await get_user(uow, user_id)


# Where a Russian-speaking user most likely reads the clock, until they choose a zone; others get
# the deployment's own zone (the free tier's).
LANGUAGE_ZONES = {"ru": "Europe/Moscow"}
# Entries of the time-zone database that name no place.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@cache
def _zones() -> dict[str, str]:
    """Every IANA zone name, looked up without regard to case ("europe/moscow" is typed too)."""
    return {name.lower(): name for name in available_timezones() - _NOT_ZONES}


def known_time_zone(name: str) -> str | None:
    """The zone's canonical spelling, or None when no such zone exists."""
    return _zones().get(name.strip().lower()) if 0 < len(name) <= 64 else None


def time_zone_of(user: UserDTO, fallback: str) -> str:
    """The zone the user reads times in: their choice, else a guess from their language, else the
    deployment's ``fallback``."""
    return user.timezone or LANGUAGE_ZONES.get(user.language, fallback)


async def set_timezone(uow: UnitOfWork, user_id: int, timezone: str) -> UserDTO:
    """Choose the time zone every time is shown in; an unknown name is refused."""
    zone = known_time_zone(timezone)
    if zone is None:
        raise UnknownTimeZone(f"time zone {timezone[:64]!r}")
    if await uow.users.get(user_id) is None:
        raise NotFound(f"user {user_id}")
    await uow.users.set_fields(user_id, timezone=zone)
    await uow.commit()
    return await get_user(uow, user_id)


async def referral_info(uow: UnitOfWork, user_id: int) -> ReferralInfo:
    async with uow.reading():
        user = await uow.users.get(user_id)
        if user is None:
            raise NotFound(f"user {user_id}")
        info = ReferralInfo(code=user.referral_code, level1=user.ref1_count, level2=user.ref2_count)
    return info


async def record_activity(uow: UnitOfWork, user: UserDTO, *, now: datetime) -> None:
    """Keep `last_activity_at` fresh to five minutes without a write on every message."""
    if user.last_activity_at is not None and now - user.last_activity_at < ACTIVITY_RESOLUTION:
        return
    await uow.users.touch_activity(user.id, now)
    await uow.commit()


async def record_sign_in(
    uow: UnitOfWork, user_id: int, *, client: ClientInfo, now: datetime
) -> None:
    """The latest successful authentication (policy 3.4)."""
    await uow.users.set_fields(
        user_id,
        last_auth_at=now,
        last_auth_platform=client.platform[:16],
        last_auth_device=(client.device_type or None),
        last_auth_os=(client.os or None),
        last_auth_browser=(client.browser or None),
        last_auth_ip=client.ip,
        last_auth_user_agent=client.user_agent[:512] if client.user_agent else None,
        last_activity_at=now,
    )
    await uow.commit()


# --- web accounts (email and password, Google, Yandex) -----------------------------------------


class IdentityTaken(DomainError):
    code = "identity_taken"
    msgid = N_("This sign-in method already belongs to another NetRoom account.")


@dataclass(frozen=True, slots=True)
class NewIdentity:
    provider: str
    # Lower-cased email, Google `sub` or Yandex `id`.
    subject: str
    email: str | None = None
    email_verified: bool = False
    password_hash: str | None = field(default=None, repr=False)


async def register_web_user(
    uow: UnitOfWork,
    *,
    identity: NewIdentity,
    language: str | None,
    profile_name: str | None,
    policy_version: str,
    client: ClientInfo,
) -> UserDTO:
    """A new account for someone signing up on the web, who has accepted the policy: the
    account, its first way to sign in, the consent record and the signup attribution. Commits.
    An identity that already exists is refused (``IdentityTaken``), never attached."""
    user = User(
        telegram_id=None,
        profile_name=profile_name[:256] if profile_name else None,
        language=language if language in LANGUAGES else "en",
        referral_code=await _unique_referral_code(uow),
    )
    try:
        async with uow.session.begin_nested():
            await uow.users.add(user)
            await uow.users.add_identity(
                Identity(
                    user_id=user.id,
                    provider=identity.provider,
                    subject=identity.subject,
                    email=identity.email,
                    email_verified=identity.email_verified,
                    password_hash=identity.password_hash,
                )
            )
    except IntegrityError as exc:
        await uow.rollback()
        raise IdentityTaken(f"{identity.provider} identity exists") from exc
    await uow.users.add_consent(user.id, policy_version, client.platform)
    await uow.users.add_attribution(_attribution(user.id, StartPayload(), client))
    await uow.commit()
    return to_dto(user, policy_version)


async def accept_policy(
    uow: UnitOfWork, user_id: int, *, policy_version: str, platform: str
) -> None:
    """Record acceptance of the current policy by an existing account (no commit)."""
    if await uow.users.latest_consent_version(user_id) != policy_version:
        await uow.users.add_consent(user_id, policy_version, platform)


async def marketing_opt_in(uow: UnitOfWork, user_id: int) -> bool:
    async with uow.reading():
        user = await uow.users.get(user_id)
        opted = bool(user is not None and user.marketing_opt_in)
    return opted


async def set_marketing_opt_in(uow: UnitOfWork, user_id: int, *, opt_in: bool) -> bool:
    """Marketing messages (news, offers) only with this separate consent; service
    notifications are sent whatever it says."""
    await uow.users.set_fields(user_id, marketing_opt_in=opt_in)
    await uow.commit()
    return opt_in


# --- settings from the web app -----------------------------------------------------------------

THEMES = ("auto", "light", "dark")


@dataclass(frozen=True, slots=True)
class AccountSettings:
    language: str
    # auto follows the device (or Telegram's colours inside Telegram).
    theme: str
    reasoning: bool
    web_search: bool
    history_enabled: bool
    marketing_opt_in: bool
    # Replies also come as voice messages in the bot.
    read_aloud: bool = False
    # Messages draw pictures (the bot's image mode; one switch for both).
    image_mode: bool = False
    # None until chosen: the web app then sends the browser's zone.
    timezone: str | None = None


def _settings(user: User) -> AccountSettings:
    features = user.features or {}
    return AccountSettings(
        language=user.language,
        theme=user.theme if user.theme in THEMES else "auto",
        reasoning=bool(features.get("reasoning", False)),
        web_search=bool(features.get("web_search", False)),
        history_enabled=user.history_enabled,
        marketing_opt_in=user.marketing_opt_in,
        read_aloud=bool(features.get("read_aloud", False)),
        image_mode=bool(features.get("image_mode", False)),
        timezone=user.timezone,
    )


async def set_theme(uow: UnitOfWork, user_id: int, theme: str) -> str:
    if theme not in THEMES:
        raise InvalidInput(f"theme {theme!r}")
    await uow.users.set_fields(user_id, theme=theme)
    await uow.commit()
    return theme


async def get_settings(uow: UnitOfWork, user_id: int) -> AccountSettings:
    async with uow.reading():
        user = await uow.users.get(user_id)
        if user is None:
            raise NotFound(f"user {user_id}")
        found = _settings(user)
    return found


async def update_settings(
    uow: UnitOfWork,
    user_id: int,
    *,
    language: str | None = None,
    theme: str | None = None,
    reasoning: bool | None = None,
    web_search: bool | None = None,
    history_enabled: bool | None = None,
    marketing_opt_in: bool | None = None,
    read_aloud: bool | None = None,
    image_mode: bool | None = None,
) -> AccountSettings:
    """Change any of the settings in one transaction; what is not given stays. Turning history
    off clears what is stored, exactly as the bot's switch does."""
    if language is not None and language not in LANGUAGES:
        raise InvalidInput(f"language {language!r}")
    if theme is not None and theme not in THEMES:
        raise InvalidInput(f"theme {theme!r}")
    user = await uow.users.get(user_id, for_update=True)
    if user is None:
        raise NotFound(f"user {user_id}")
    fields: dict[str, object] = {}
    if language is not None:
        fields["language"] = language
    if theme is not None:
        fields["theme"] = theme
    if marketing_opt_in is not None:
        fields["marketing_opt_in"] = marketing_opt_in
    features = {
        name: value
        for name, value in (
            ("reasoning", reasoning),
            ("web_search", web_search),
            ("read_aloud", read_aloud),
            ("image_mode", image_mode),
        )
        if value is not None
    }
    if features:
        fields["features"] = {**(user.features or {}), **features}
    if fields:
        await uow.users.set_fields(user_id, **fields)
    if history_enabled is not None and history_enabled != user.history_enabled:
        # Commits the changes above together with the history switch.
        await chat.set_history(uow, user_id, enabled=history_enabled)
    else:
        await uow.commit()
    return await get_settings(uow, user_id)
