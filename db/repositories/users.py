from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.driver import driver_of
from db.models import Consent, Identity, SignupAttribution, User


class UsersRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, *, for_update: bool = False) -> User | None:
        stmt = select(User).where(User.id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_telegram_id(self, telegram_id: int, *, for_update: bool = False) -> User | None:
        stmt = select(User).where(User.telegram_id == telegram_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_telegram_id_with_consent(self, telegram_id: int) -> tuple[User, str | None] | None:
        """The account and the policy version it last accepted, in one round trip (this runs
        for every update the bot receives)."""
        latest = (
            select(Consent.policy_version)
            .where(Consent.user_id == User.id)
            .order_by(Consent.accepted_at.desc(), Consent.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        row = (
            await self.session.execute(select(User, latest).where(User.telegram_id == telegram_id))
        ).first()
        return None if row is None else (row[0], row[1])

    async def lookup_for_update_intake(self, telegram_id: int) -> dict[str, Any] | None:
        """The account behind an incoming update and its latest consent, as one statement on
        the unit of work's own connection: outside a transaction it commits on its own, so the
        hottest read of the bot costs one round trip instead of three."""
        driver = await driver_of(self.session)
        row = await driver.fetchrow(
            """
            SELECT u.id, u.telegram_id, u.username, u.profile_name, u.language, u.theme,
                   u.features, u.history_enabled, u.is_blocked, u.referral_code, u.invited_by,
                   u.ref1_count, u.ref2_count, u.created_at, u.last_activity_at, u.timezone,
                   (SELECT c.policy_version FROM consents c WHERE c.user_id = u.id
                    ORDER BY c.accepted_at DESC, c.id DESC LIMIT 1) AS consent_version
            FROM users u WHERE u.telegram_id = $1
            """,
            telegram_id,
        )
        return None if row is None else dict(row)

    async def by_referral_code(self, code: str) -> User | None:
        stmt = select(User).where(User.referral_code == code)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def add_identity(self, identity: Identity) -> None:
        self.session.add(identity)
        await self.session.flush()

    async def identities(self, user_id: int) -> list[Identity]:
        stmt = select(Identity).where(Identity.user_id == user_id).order_by(Identity.id)
        return list((await self.session.execute(stmt)).scalars())

    async def add_consent(self, user_id: int, policy_version: str, platform: str) -> None:
        self.session.add(Consent(user_id=user_id, policy_version=policy_version, platform=platform))
        await self.session.flush()

    async def latest_consent_version(self, user_id: int) -> str | None:
        stmt = (
            select(Consent.policy_version)
            .where(Consent.user_id == user_id)
            .order_by(Consent.accepted_at.desc(), Consent.id.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add_attribution(self, attribution: SignupAttribution) -> None:
        self.session.add(attribution)
        await self.session.flush()

    async def attribution(self, user_id: int) -> SignupAttribution | None:
        return await self.session.get(SignupAttribution, user_id)

    async def inviter_chain(self, user_id: int, depth: int = 64) -> list[int]:
        """Ids of the user's inviter, the inviter's inviter, and so on (nearest first)."""
        rows = await self.session.execute(
            text(
                """
                WITH RECURSIVE chain(id, invited_by, depth) AS (
                    SELECT id, invited_by, 0 FROM users WHERE id = :user_id
                    UNION ALL
                    SELECT u.id, u.invited_by, c.depth + 1
                    FROM users u JOIN chain c ON u.id = c.invited_by
                    WHERE c.depth < :depth
                )
                SELECT id FROM chain WHERE depth > 0 ORDER BY depth
                """
            ),
            {"user_id": user_id, "depth": depth},
        )
        return [row[0] for row in rows]

    async def bump_referral_counters(self, level1_id: int, level2_id: int | None) -> None:
        await self.session.execute(
            update(User).where(User.id == level1_id).values(ref1_count=User.ref1_count + 1)
        )
        if level2_id is not None:
            await self.session.execute(
                update(User).where(User.id == level2_id).values(ref2_count=User.ref2_count + 1)
            )

    async def set_fields(self, user_id: int, **values: Any) -> None:
        await self.session.execute(update(User).where(User.id == user_id).values(**values))

    async def touch_activity(self, user_id: int, now: datetime) -> None:
        """One statement on the unit of work's connection: outside a transaction it commits on
        its own, in one round trip instead of three."""
        driver = await driver_of(self.session)
        await driver.execute("UPDATE users SET last_activity_at = $2 WHERE id = $1", user_id, now)

    async def scrub_technical_data(self, cutoff: datetime) -> int:
        """Forget IP addresses and User-Agents recorded before ``cutoff``; rows affected."""
        signups = await self.session.execute(
            update(SignupAttribution)
            .where(
                SignupAttribution.created_at < cutoff,
                (SignupAttribution.ip.is_not(None)) | (SignupAttribution.user_agent.is_not(None)),
            )
            .values(ip=None, user_agent=None)
        )
        logins = await self.session.execute(
            update(User)
            .where(
                User.last_auth_at < cutoff,
                (User.last_auth_ip.is_not(None)) | (User.last_auth_user_agent.is_not(None)),
            )
            .values(last_auth_ip=None, last_auth_user_agent=None)
        )
        return int(signups.rowcount or 0) + int(logins.rowcount or 0)  # type: ignore[attr-defined]
