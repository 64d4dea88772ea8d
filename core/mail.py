"""Sending email: the port the product needs and its SMTP implementation.

Messages are plain text, already in the reader's language; whoever composes them translates.
Transport failures become ``MailNotSent``; the SMTP password never appears in a log or a repr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

import aiosmtplib

from core.config import EmailSettings
from core.errors import DomainError
from core.i18n import N_

log = logging.getLogger(__name__)


class MailNotSent(DomainError):
    code = "mail_not_sent"
    msgid = N_("We could not send the email right now. Please try again in a few minutes.")


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


@dataclass(frozen=True)
class SmtpMailer:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # True: STARTTLS is required; False: the connection stays plain (a local relay only).
    starttls: bool = True
    timeout: float = 20.0

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2].strip("> "))
        message.set_content(mail.text)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Not the exception's text: it may name the recipient.
            log.warning(
                "mail to the SMTP server %s:%s failed: %s",
                self.host,
                self.port,
                type(exc).__name__,
            )
            raise MailNotSent(type(exc).__name__) from exc


def smtp_mailer(settings: EmailSettings) -> SmtpMailer | None:
    """The configured SMTP server (None: no host, no mail)."""
    if not settings.smtp_host:
        return None
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.from_,
        username=settings.smtp_user,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.starttls,
    )
