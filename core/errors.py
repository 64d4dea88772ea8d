"""Domain errors: every failure the product can explain to a user.

Each error has a machine ``code`` and an English ``msgid`` that transports translate through
gettext; ``params`` are formatted into the translated text. Transports map error classes to
their own responses in one place each (the bot's error router, the web app's error middleware).
"""

from __future__ import annotations

from typing import Any, ClassVar

from core.i18n import N_


class DomainError(Exception):
    code: ClassVar[str] = "error"
    msgid: ClassVar[str] = N_("Something went wrong. Please try again later.")

    def __init__(self, detail: str = "", **params: Any) -> None:
        # ``detail`` is for logs and developers only; it is never shown to a user.
        super().__init__(detail or self.code)
        self.detail = detail
        self.params = params


class NotFound(DomainError):
    code = "not_found"
    msgid = N_("Not found.")


class Forbidden(DomainError):
    code = "forbidden"
    msgid = N_("You do not have access to this.")


class InvalidInput(DomainError):
    code = "invalid_input"
    msgid = N_("The request is not valid.")


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"
    msgid = N_("The request's content type is not supported here.")


class UnknownTimeZone(InvalidInput):
    code = "unknown_time_zone"
    msgid = N_(
        "Unknown time zone. Use a name like Europe/Moscow, Asia/Yekaterinburg or America/New_York."
    )


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    msgid = N_("The request is too large.")


class MethodNotAllowed(InvalidInput):
    code = "method_not_allowed"
    msgid = N_("The request is not valid.")


class ConsentRequired(DomainError):
    code = "consent_required"
    msgid = N_("Please accept the privacy policy first.")


class UserBlocked(DomainError):
    code = "user_blocked"
    msgid = N_("Your account is blocked. Contact support if you think this is a mistake.")


class RateLimited(DomainError):
    code = "rate_limited"
    msgid = N_("Too many requests. Please wait a little and try again.")


class Unauthorized(DomainError):
    code = "unauthorized"
    msgid = N_("Please sign in.")


class ServiceUnavailable(DomainError):
    """A dependency (Postgres, Redis) did not answer: nothing was done, the same request can be
    made again in a moment. ``detail`` names the dependency."""

    code = "unavailable"
    msgid = N_("The service is busy for a moment, please try again in a minute.")


class ShuttingDown(DomainError):
    """The process is stopping (a restart or a deploy): new work goes to the next one."""

    code = "shutting_down"
    msgid = N_("The service is restarting. Please try again in a few seconds.")
    retry_after = 5
