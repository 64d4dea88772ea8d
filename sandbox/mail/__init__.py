"""A local SMTP server that keeps every mail it receives, for reading back over HTTP.

It listens on a free port of 127.0.0.1 while the sandbox runs (``GET /sandbox/api/mail/server``
says which). Any login is accepted and no TLS is offered: point a client at it with STARTTLS
off. Control API: ``GET /sandbox/api/mail?to=<address>`` lists the mails to an address (all
mails without ``to``), oldest first; ``DELETE /sandbox/api/mail`` forgets them.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

HOST = "127.0.0.1"


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    subject: str
    text: str
    headers: dict[str, str]
    received_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.sender,
            "to": self.recipients,
            "subject": self.subject,
            "text": self.text,
            "headers": self.headers,
            "received_at": self.received_at,
        }


@dataclass
class MailBox:
    mails: list[ReceivedMail] = field(default_factory=list)
    host: str = HOST
    port: int = 0

    def to(self, address: str | None) -> list[ReceivedMail]:
        if address is None:
            return list(self.mails)
        wanted = address.strip().lower()
        return [m for m in self.mails if wanted in (r.lower() for r in m.recipients)]


MAILBOX = web.AppKey("mailbox", MailBox)


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    return str(body.get_content())


class _Handler:
    def __init__(self, box: MailBox) -> None:
        self.box = box

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.box.mails.append(
            ReceivedMail(
                sender=str(envelope.mail_from or ""),
                recipients=[str(r) for r in envelope.rcpt_tos],
                subject=str(parsed.get("Subject", "")),
                text=_text(parsed),
                headers={k: str(v) for k, v in parsed.items()},
                received_at=time.time(),
            )
        )
        return "250 Message accepted for delivery"


def _any_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    return AuthResult(success=True)


async def smtp_ctx(app: web.Application) -> AsyncIterator[None]:
    box = app[MAILBOX]
    handler = _Handler(box)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="sandbox.mail",
            enable_SMTPUTF8=True,
            authenticator=_any_login,
            auth_require_tls=False,
            loop=loop,
        ),
        box.host,
        box.port,
    )
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def list_mail(request: web.Request) -> web.Response:
    box = request.app[MAILBOX]
    mails = box.to(request.query.get("to"))
    return web.json_response({"mails": [m.to_json() for m in mails]})


async def clear_mail(request: web.Request) -> web.Response:
    request.app[MAILBOX].mails.clear()
    return web.json_response({"ok": True})


async def server_info(request: web.Request) -> web.Response:
    box = request.app[MAILBOX]
    return web.json_response({"host": box.host, "port": box.port})


def setup_mail(app: web.Application) -> MailBox:
    box = MailBox()
    app[MAILBOX] = box
    app.cleanup_ctx.append(smtp_ctx)
    app.router.add_get("/sandbox/api/mail", list_mail)
    app.router.add_delete("/sandbox/api/mail", clear_mail)
    app.router.add_get("/sandbox/api/mail/server", server_info)
    return box
