"""The account pages' JSON API: presets, the gallery, balance and history, referrals, settings,
and Telegram Stars top-ups from the Mini App.

Every route needs the bearer token; every object is looked up together with its owner, so
another user's preset answers 404 exactly like one that never existed.

- ``GET /api/presets`` → ``{presets: [{id, title, system_prompt, active}], active_id}``;
  ``POST /api/presets`` ``{title, system_prompt}`` → 201 preset; ``PUT /api/presets/{id}`` the
  same → preset; ``DELETE /api/presets/{id}`` → 204; ``POST /api/presets/{id}/use``
  → ``{active_id}``; ``DELETE /api/presets/active`` → ``{active_id: null}``.
- ``GET /api/media?before=&limit=`` → ``{media: [{id, kind, prompt, model_id, status,
  created_at, url, mime, width, height, duration_seconds}], next_before}``;
  ``DELETE /api/media/{id}`` → 204 (the record and the file; one still being made: 400).
- ``GET /api/balance`` → balance, reserve, free tier, plan, Star and card packages.
- ``GET /api/transactions?before=&limit=`` → ``{transactions: [...], next_before}``.
- ``GET /api/referrals`` → ``{code, bot_link, app_link, level1, level2, earned_kopecks,
  percents}``.
- ``GET /api/settings``, ``PATCH /api/settings`` ``{language?, theme?, reasoning?,
  web_search?, history_enabled?, marketing_opt_in?, read_aloud?}`` → the settings.
- ``POST /api/payments/stars`` ``{stars}`` → 201 ``{invoice_link}``.
- ``POST /api/subscription`` ``{plan}`` → 201 ``{invoice_link}``; ``PATCH /api/subscription``
  ``{renews}`` → the plan, as in the balance.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from babel.numbers import format_decimal

from core.deeplinks import referral_payload
from core.errors import InvalidInput, NotFound
from core.i18n import N_
from core.services import accounts, billing, chat, images, payments, presets, subscriptions, tariffs
from core.services.presets import PresetDTO
from core.services.tariffs import Plan
from webapp.i18n import translations
from webapp.keys import CONTEXT, WebContext
from webapp.routes.api import MAX_ID, json_body, object_id, user_id_of

SETTINGS = {
    "language": str,
    "theme": str,
    "reasoning": bool,
    "web_search": bool,
    "history_enabled": bool,
    "marketing_opt_in": bool,
    "read_aloud": bool,
}
TRANSACTIONS_PAGE = 20
MEDIA_PAGE = 24


def _int_query(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} is not a number") from exc
    if value < 0:
        raise InvalidInput(f"{name} must not be negative", fields=[name])
    # Ids are bigint: a bound past every id is no bound at all.
    return min(value, MAX_ID)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def money(kopecks: int, language: str) -> str:
    """Roubles as people write them: 1 300,00 ₽ in Russian, ₽1,300.00 in English."""
    value = format_decimal(
        Decimal(kopecks) / 100, format="#,##0.00", locale="ru" if language == "ru" else "en"
    )
    return f"{value} ₽" if language == "ru" else f"₽{value}"


# --- presets -----------------------------------------------------------------------------------


def _preset(preset: PresetDTO, active_id: int | None) -> dict[str, object]:
    return {
        "id": preset.id,
        "title": preset.title,
        "system_prompt": preset.system_prompt,
        "active": preset.id == active_id,
    }


def _preset_fields(body: dict[str, Any]) -> tuple[str, str]:
    title, prompt = body.get("title"), body.get("system_prompt")
    if not isinstance(title, str) or not isinstance(prompt, str):
        raise InvalidInput('expected {"title": ..., "system_prompt": ...}')
    return title, prompt


async def list_presets(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await presets.list_presets(uow, user_id)
        active_id = (await chat.get_prefs(uow, user_id)).preset_id
    return web.json_response(
        {"presets": [_preset(p, active_id) for p in found], "active_id": active_id}
    )


async def create_preset(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    title, prompt = _preset_fields(await json_body(request))
    async with ctx.uow_factory() as uow:
        preset = await presets.create_preset(uow, user_id, title=title, prompt=prompt)
    return web.json_response(_preset(preset, None), status=201)


async def edit_preset(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    preset_id = object_id(request, "preset_id")
    title, prompt = _preset_fields(await json_body(request))
    async with ctx.uow_factory() as uow:
        preset = await presets.edit_preset(
            uow, user_id, preset_id, title=title, prompt=prompt, now=ctx.clock()
        )
        active_id = (await chat.get_prefs(uow, user_id)).preset_id
    return web.json_response(_preset(preset, active_id))


async def delete_preset(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    preset_id = object_id(request, "preset_id")
    async with ctx.uow_factory() as uow:
        await presets.delete_preset(uow, user_id, preset_id)
    return web.Response(status=204)


async def use_preset(request: web.Request) -> web.Response:
    """The preset becomes the instructions of new conversations → ``{"active_id"}``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    preset_id = object_id(request, "preset_id")
    async with ctx.uow_factory() as uow:
        prefs = await presets.use_preset(uow, user_id, preset_id)
    return web.json_response({"active_id": prefs.preset_id})


async def stop_using_presets(request: web.Request) -> web.Response:
    """``DELETE /api/presets/active``: new conversations start without instructions."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        prefs = await presets.use_preset(uow, user_id, None)
    return web.json_response({"active_id": prefs.preset_id})


# --- gallery -----------------------------------------------------------------------------------


def _media(m: images.MediaDTO) -> dict[str, object]:
    return {
        "id": m.id,
        "kind": m.kind,
        "prompt": m.prompt,
        "model_id": m.model_id,
        "status": m.status,
        "created_at": m.created_at.isoformat(),
        "url": f"/media/{m.storage_key}" if m.storage_key else None,
        "mime": m.mime,
        "width": m.width,
        "height": m.height,
        "duration_seconds": m.duration_seconds,
    }


async def list_media(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    limit = _int_query(request, "limit", MEDIA_PAGE) or MEDIA_PAGE
    before = _int_query(request, "before", None)
    async with ctx.uow_factory() as uow:
        found = await images.list_media(uow, user_id, limit=limit, before_id=before)
    full = len(found) == min(limit, images.MEDIA_PAGE_MAX)
    return web.json_response(
        {
            "media": [_media(m) for m in found],
            "next_before": found[-1].id if found and full else None,
        }
    )


async def delete_media(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    media_id = object_id(request, "media_id")
    if ctx.media_store is None:
        raise NotFound("no media store")
    async with ctx.uow_factory() as uow:
        await images.delete_media(uow, ctx.media_store, user_id=user_id, media_id=media_id)
    return web.Response(status=204)


# --- balance -----------------------------------------------------------------------------------


def _state(state: tariffs.TariffState, period: str) -> dict[str, object]:
    return {
        "period": period,
        "next_reset": state.next_reset.isoformat(),
        "allowances": [
            {"tier": a.tier, "limit": a.limit, "used": a.used, "left": a.left}
            for a in state.allowances
            if a.limit > 0
        ],
    }


def _plan(plan: Plan, until: datetime | None, renews: bool) -> dict[str, object]:
    return {
        "id": plan.id,
        "stars": plan.stars,
        "discount_percent": plan.discount_percent,
        "until": _iso(until),
        "renews": renews,
    }


def _plans_purchasable(ctx: WebContext, telegram_id: int | None) -> bool:
    """Plans are paid in Telegram (by the account's own Telegram user) and renewals are told to
    Telegram by the bot: both need the bot here."""
    return (
        ctx.stars_invoice_links is not None
        and ctx.subscription_renewals is not None
        and ctx.payment_terms is not None
        and ctx.tariffs is not None
        and bool(ctx.tariffs.plans)
        and telegram_id is not None
    )


async def show_balance(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    now = ctx.clock()
    async with ctx.uow_factory() as uow:
        balance = await billing.get_balance(uow, user_id)
        state = (
            await tariffs.tariff_state(uow, ctx.tariffs, user_id, now)
            if ctx.tariffs is not None
            else None
        )
        user = await accounts.get_user(uow, user_id)
    plan: dict[str, object] | None = None
    if state is not None and state.plan is not None:
        plan = _plan(state.plan, state.plan_until, state.renews)
    plans = [
        {
            "id": p.id,
            "stars": p.stars,
            "discount_percent": p.discount_percent,
            "free_tier": dict(sorted(p.free_tier.items())),
        }
        for p in (ctx.tariffs.plans if ctx.tariffs is not None else ())
    ]
    stars: dict[str, object] | None = None
    if ctx.payment_terms is not None:
        stars = {
            "packages": [
                {"stars": o.stars, "kopecks": o.kopecks}
                for o in payments.star_offers(ctx.payment_terms)
            ],
            # Invoices are paid in Telegram, by the Telegram account the balance belongs to.
            "purchasable": ctx.stars_invoice_links is not None and user.telegram_id is not None,
        }
    card = (
        {"packages": [{"rub": r, "kopecks": r * 100} for r in ctx.yookassa_packages]}
        if ctx.yookassa is not None and ctx.yookassa_packages
        else None
    )
    return web.json_response(
        {
            "balance_kopecks": balance.balance,
            "reserved_kopecks": balance.reserved,
            "available_kopecks": balance.available,
            "discount_percent": balance.discount_percent,
            "bonus_percent": balance.bonus_percent,
            "free_tier": (
                _state(state, ctx.tariffs.period)
                if state is not None and ctx.tariffs is not None
                else None
            ),
            "plan": plan,
            "plans": plans,
            "plans_purchasable": _plans_purchasable(ctx, user.telegram_id),
            "stars": stars,
            "card": card,
        }
    )


async def list_transactions(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    limit = min(_int_query(request, "limit", TRANSACTIONS_PAGE) or TRANSACTIONS_PAGE, 100)
    before = _int_query(request, "before", None)
    async with ctx.uow_factory() as uow:
        entries = await billing.history(uow, user_id, limit=limit, before_id=before)
    return web.json_response(
        {
            "transactions": [
                {
                    "id": e.id,
                    "kind": e.kind,
                    "category": e.category,
                    "amount_kopecks": e.amount,
                    "balance_after_kopecks": e.balance_after,
                    "model_id": e.model_id,
                    "input_tokens": e.input_tokens,
                    "output_tokens": e.output_tokens,
                    "created_at": _iso(e.created_at),
                    "plan": e.plan,
                }
                for e in entries
            ],
            "next_before": entries[-1].id if len(entries) == limit else None,
        }
    )


async def buy_stars(request: web.Request) -> web.Response:
    """``{"stars": 100}`` → 201 ``{"invoice_link"}`` for ``Telegram.WebApp.openInvoice``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.stars_invoice_links is None or ctx.payment_terms is None:
        raise NotFound("Stars top-ups are not offered here")
    stars = (await json_body(request)).get("stars")
    if not isinstance(stars, int) or isinstance(stars, bool):
        raise InvalidInput('expected {"stars": <package>}')
    async with ctx.uow_factory() as uow:
        user = await accounts.get_user(uow, user_id)
    if user.telegram_id is None:
        raise NotFound(f"user {user_id} has no Telegram account to pay with")
    _ = translations(user.language).gettext
    link = await payments.stars_invoice_link(
        ctx.stars_invoice_links,
        ctx.payment_terms,
        user_id=user_id,
        stars=stars,
        title=_(N_("NetRoom balance top-up")),
        description=_(N_("{amount} on your NetRoom balance, for any model.")).format(
            amount=money(stars * ctx.payment_terms.kopecks_per_star, user.language)
        ),
    )
    return web.json_response({"invoice_link": link}, status=201)


async def subscribe(request: web.Request) -> web.Response:
    """``{"plan": "plus"}`` → 201 ``{"invoice_link"}``: a Stars subscription Telegram renews
    every 30 days until it is cancelled, opened with ``Telegram.WebApp.openInvoice``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.stars_invoice_links is None or ctx.payment_terms is None or ctx.tariffs is None:
        raise NotFound("Stars subscriptions are not offered here")
    plan_id = (await json_body(request)).get("plan")
    if not isinstance(plan_id, str):
        raise InvalidInput('expected {"plan": <plan id>}')
    async with ctx.uow_factory() as uow:
        user = await accounts.get_user(uow, user_id)
        if user.telegram_id is None:
            raise NotFound(f"user {user_id} has no Telegram account to pay with")
        plan, payload = await subscriptions.offer(
            uow, ctx.tariffs, ctx.payment_terms, user_id=user_id, plan_id=plan_id, now=ctx.clock()
        )
    _ = translations(user.language).gettext
    name = plan.id.title()
    link = await ctx.stars_invoice_links(
        title=_(N_("NetRoom {plan}")).format(plan=name),
        description=_(
            N_("Subscription to the {plan} plan for 30 days, renewed until you cancel.")
        ).format(plan=name),
        payload=payload,
        stars=plan.stars,
        subscription_period=subscriptions.PERIOD_SECONDS,
    )
    return web.json_response({"invoice_link": link}, status=201)


async def change_subscription(request: web.Request) -> web.Response:
    """``{"renews": false}`` cancels the renewal of the user's subscription (the plan stays until
    the paid period ends), ``true`` resumes it → the plan."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.subscription_renewals is None or ctx.tariffs is None:
        raise NotFound("subscriptions are not managed here")
    renews = (await json_body(request)).get("renews")
    if not isinstance(renews, bool):
        raise InvalidInput('expected {"renews": true | false}')
    async with ctx.uow_factory() as uow:
        sub = await subscriptions.switch_renewal(
            uow, ctx.subscription_renewals, user_id=user_id, renew=renews, now=ctx.clock()
        )
    # A plan no longer on offer: the Stars it costs, no perks (as the free tier counts it).
    terms = ctx.tariffs.plan(sub.plan) or Plan(sub.plan, sub.stars, {})
    return web.json_response(_plan(terms, sub.current_period_end, sub.status == "active"))


# --- referrals ---------------------------------------------------------------------------------


async def show_referrals(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        info = await accounts.referral_info(uow, user_id)
        earned = await payments.referral_earnings(uow, user_id)
    username = await ctx.resolved_bot_username()
    payload = referral_payload(info.code)
    terms = ctx.payment_terms
    return web.json_response(
        {
            "code": info.code,
            "bot_link": f"https://t.me/{username}?start={payload}" if username else None,
            "app_link": f"https://t.me/{username}?startapp={payload}" if username else None,
            "level1": info.level1,
            "level2": info.level2,
            "earned_kopecks": earned,
            "percents": (
                {"level1": terms.referral_percents[0], "level2": terms.referral_percents[1]}
                if terms is not None
                else None
            ),
        }
    )


# --- settings ----------------------------------------------------------------------------------


def _settings(s: accounts.AccountSettings) -> dict[str, object]:
    return {
        "language": s.language,
        "theme": s.theme,
        "reasoning": s.reasoning,
        "web_search": s.web_search,
        "history_enabled": s.history_enabled,
        "marketing_opt_in": s.marketing_opt_in,
        "read_aloud": s.read_aloud,
        "timezone": s.timezone,
    }


async def show_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await accounts.get_settings(uow, user_id)
    return web.json_response(_settings(found))


async def change_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    body = await json_body(request)
    unknown = set(body) - set(SETTINGS)
    if unknown:
        raise InvalidInput(f"unknown settings {sorted(unknown)}")
    for name, value in body.items():
        if not isinstance(value, SETTINGS[name]):
            raise InvalidInput(f"{name} has the wrong type")
    async with ctx.uow_factory() as uow:
        found = await accounts.update_settings(uow, user_id, **body)
    return web.json_response(_settings(found))


async def set_timezone(request: web.Request) -> web.Response:
    """``{"timezone": "Europe/Moscow"}`` → ``{"timezone": ...}``; an unknown zone is a 400."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    zone = (await json_body(request)).get("timezone")
    if not isinstance(zone, str):
        raise InvalidInput('expected {"timezone": "<IANA name>"}')
    async with ctx.uow_factory() as uow:
        user = await accounts.set_timezone(uow, user_id, zone)
    return web.json_response({"timezone": user.timezone})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/presets", list_presets)
    app.router.add_post("/api/presets", create_preset)
    app.router.add_put(r"/api/presets/{preset_id:\d+}", edit_preset)
    app.router.add_delete(r"/api/presets/{preset_id:\d+}", delete_preset)
    app.router.add_post(r"/api/presets/{preset_id:\d+}/use", use_preset)
    app.router.add_delete("/api/presets/active", stop_using_presets)
    app.router.add_get("/api/media", list_media)
    app.router.add_delete(r"/api/media/{media_id:\d+}", delete_media)
    app.router.add_get("/api/balance", show_balance)
    app.router.add_get("/api/transactions", list_transactions)
    app.router.add_post("/api/payments/stars", buy_stars)
    app.router.add_post("/api/subscription", subscribe)
    app.router.add_patch("/api/subscription", change_subscription)
    app.router.add_get("/api/referrals", show_referrals)
    app.router.add_get("/api/settings", show_settings)
    app.router.add_patch("/api/settings", change_settings)
    app.router.add_put("/api/settings/timezone", set_timezone)
