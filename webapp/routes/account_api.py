"""The account pages' JSON API: presets, balance and history, referrals, settings, and Telegram
Stars top-ups from the Mini App (the gallery is ``gallery_api``).

Every route needs the bearer token; every object is looked up together with its owner, so
another user's preset answers 404 exactly like one that never existed.

- ``GET /api/presets`` → ``{presets: [{id, title, system_prompt, active}], active_id}``;
  ``POST /api/presets`` ``{title, system_prompt}`` → 201 preset; ``PUT /api/presets/{id}`` the
  same → preset; ``DELETE /api/presets/{id}`` → 204; ``POST /api/presets/{id}/use``
  → ``{active_id}``; ``DELETE /api/presets/active`` → ``{active_id: null}``.
- ``GET /api/balance`` → balance, reserve, free tier, plan, Star and card packages.
- ``GET /api/transactions?before=&limit=`` → ``{transactions: [...], next_before}``.
- ``GET /api/referrals`` → ``{code, bot_link, app_link, level1, level2, earned_kopecks,
  percents}``.
- ``GET /api/settings``, ``PATCH /api/settings`` ``{language?, theme?, reasoning?,
  web_search?, history_enabled?, marketing_opt_in?, read_aloud?, image_mode?}`` → the settings.
- ``POST /api/payments/stars`` ``{stars}`` → 201 ``{invoice_link}``.
- ``POST /api/subscription`` ``{plan}`` → 201 ``{invoice_link}``; ``PATCH /api/subscription``
  ``{renews}`` → the plan, as in the balance.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from core.deeplinks import referral_payload
from core.errors import NotFound
from core.i18n import N_, money
from core.services import accounts, billing, chat, payments, presets, subscriptions, tariffs
from core.services.presets import PresetDTO
from core.services.tariffs import Plan
from webapp.contract import (
    TIME,
    Answer,
    Body,
    Cursor,
    Id,
    Out,
    PathParams,
    Query,
    add_routes,
    operation,
)
from webapp.i18n import translations
from webapp.keys import CONTEXT, WebContext
from webapp.routes.api import user_id_of

TRANSACTIONS_PAGE = 20
TAGS = ("account",)


# --- the contract --------------------------------------------------------------------------------


class Preset(Out):
    id: int
    title: str
    system_prompt: str
    active: bool = Field(description="In use for new chats.")


class Presets(Out):
    presets: list[Preset]
    active_id: int | None


class PresetFields(Body):
    title: Annotated[str, Field(min_length=1, max_length=64)]
    system_prompt: Annotated[str, Field(min_length=1, max_length=4000)]


class PresetPath(PathParams):
    preset_id: Id


class ActivePreset(Out):
    active_id: int | None


class Page(Query):
    limit: Cursor | None = Field(None, description="At most this many.")
    before: Cursor | None = Field(
        None, description="Only items older than this id (the previous page's next_before)."
    )


class Allowance(Out):
    tier: str
    limit: int
    used: int
    left: int


class FreeTier(Out):
    period: str
    next_reset: TIME
    allowances: list[Allowance]


class CurrentPlan(Out):
    id: str
    stars: int = Field(description="Stars every 30 days.")
    discount_percent: int
    until: TIME | None
    renews: bool = Field(description="False once the renewal is cancelled.")


class OfferedPlan(Out):
    id: str
    stars: int
    discount_percent: int
    free_tier: dict[str, int]


class StarPackage(Out):
    stars: int
    kopecks: int


class StarOffers(Out):
    packages: list[StarPackage]
    purchasable: bool


class CardPackage(Out):
    rub: int
    kopecks: int


class CardOffers(Out):
    packages: list[CardPackage]


class Balance(Out):
    balance_kopecks: int = Field(description="Money in kopecks (1/100 rouble).")
    reserved_kopecks: int
    available_kopecks: int
    discount_percent: int
    bonus_percent: int
    free_tier: FreeTier | None
    plan: CurrentPlan | None
    plans: list[OfferedPlan]
    plans_purchasable: bool = Field(
        description="Plans can be bought and their renewal changed here (with Telegram)."
    )
    stars: StarOffers | None
    card: CardOffers | None


class Transaction(Out):
    id: int
    kind: str
    category: str | None
    amount_kopecks: int
    balance_after_kopecks: int | None
    model_id: str | None
    model_name: str | None = Field(
        description="The model as people read it (its display name; its id once the catalogue "
        "no longer has it)."
    )
    input_tokens: int | None
    output_tokens: int | None
    created_at: TIME | None
    plan: str | None = Field(None, description="The plan a subscription entry paid for.")


class Transactions(Out):
    transactions: list[Transaction]
    next_before: int | None


class BuyStars(Body):
    stars: Annotated[int, Field(ge=1, le=1_000_000, description="One of the offered packages.")]


class InvoiceLink(Out):
    invoice_link: str


class Subscribe(Body):
    plan: Annotated[str, Field(max_length=64, description="The id of a plan on offer.")]


class Renewal(Body):
    renews: bool


class Percents(Out):
    level1: int
    level2: int


class ReferralInfo(Out):
    code: str
    bot_link: str | None
    app_link: str | None
    level1: int
    level2: int
    earned_kopecks: int
    percents: Percents | None


class Settings(Out):
    language: str
    theme: str
    reasoning: bool
    web_search: bool
    history_enabled: bool
    marketing_opt_in: bool
    read_aloud: bool = Field(description="Replies also come as voice messages in the bot.")
    image_mode: bool = Field(
        description="Messages draw pictures instead of being answered (here and in the bot)."
    )
    timezone: str | None = Field(
        description="The IANA time zone times are shown in; null until chosen. Set with "
        "PUT /api/settings/timezone."
    )


class TimeZoneChange(Body):
    timezone: Annotated[str, Field(min_length=1, max_length=64, description="An IANA name.")]


class TimeZone(Out):
    timezone: str


class SettingsChange(Body):
    """Any subset of the settings; an unknown one is refused."""

    model_config = Body.model_config | {"extra": "forbid"}
    language: Literal["en", "ru"] | None = None
    theme: Literal["auto", "light", "dark"] | None = None
    reasoning: bool | None = None
    web_search: bool | None = None
    history_enabled: bool | None = None
    marketing_opt_in: bool | None = None
    read_aloud: bool | None = None
    image_mode: bool | None = None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --- presets -----------------------------------------------------------------------------------


def _preset(preset: PresetDTO, active_id: int | None) -> dict[str, object]:
    return {
        "id": preset.id,
        "title": preset.title,
        "system_prompt": preset.system_prompt,
        "active": preset.id == active_id,
    }


@operation(
    "GET",
    "/api/presets",
    summary="The user's presets and the one in use",
    responses={200: Answer("OK.", Presets)},
    tags=TAGS,
)
async def list_presets(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await presets.list_presets(uow, user_id)
        active_id = (await chat.get_prefs(uow, user_id)).preset_id
    return web.json_response(
        {"presets": [_preset(p, active_id) for p in found], "active_id": active_id}
    )


@operation(
    "POST",
    "/api/presets",
    summary="Create a preset",
    responses={201: Answer("Created.", Preset)},
    tags=TAGS,
)
async def create_preset(request: web.Request, body: PresetFields) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        preset = await presets.create_preset(
            uow, user_id, title=body.title, prompt=body.system_prompt
        )
    return web.json_response(_preset(preset, None), status=201)


@operation(
    "PUT",
    r"/api/presets/{preset_id:\d+}",
    summary="Edit a preset",
    responses={200: Answer("Edited.", Preset)},
    tags=TAGS,
)
async def edit_preset(request: web.Request, path: PresetPath, body: PresetFields) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        preset = await presets.edit_preset(
            uow,
            user_id,
            path.preset_id,
            title=body.title,
            prompt=body.system_prompt,
            now=ctx.clock(),
        )
        active_id = (await chat.get_prefs(uow, user_id)).preset_id
    return web.json_response(_preset(preset, active_id))


@operation(
    "DELETE",
    r"/api/presets/{preset_id:\d+}",
    summary="Delete a preset",
    responses={204: Answer("Deleted.")},
    tags=TAGS,
)
async def delete_preset(request: web.Request, path: PresetPath) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        await presets.delete_preset(uow, user_id, path.preset_id)
    return web.Response(status=204)


@operation(
    "POST",
    r"/api/presets/{preset_id:\d+}/use",
    summary="Use a preset for new conversations",
    responses={200: Answer("In use.", ActivePreset)},
    tags=TAGS,
)
async def use_preset(request: web.Request, path: PresetPath) -> web.Response:
    """The preset becomes the instructions of new conversations → ``{"active_id"}``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        prefs = await presets.use_preset(uow, user_id, path.preset_id)
    return web.json_response({"active_id": prefs.preset_id})


@operation(
    "DELETE",
    "/api/presets/active",
    summary="New conversations start without a preset",
    responses={200: Answer("None in use.", ActivePreset)},
    tags=TAGS,
)
async def stop_using_presets(request: web.Request) -> web.Response:
    """``DELETE /api/presets/active``: new conversations start without instructions."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        prefs = await presets.use_preset(uow, user_id, None)
    return web.json_response({"active_id": prefs.preset_id})


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


@operation(
    "GET",
    "/api/balance",
    summary="Balance, free-tier allowances, plan and the top-up offers",
    responses={200: Answer("OK.", Balance)},
    tags=TAGS,
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


@operation(
    "GET",
    "/api/transactions",
    summary="Ledger entries, newest first",
    responses={200: Answer("OK.", Transactions)},
    tags=TAGS,
)
async def list_transactions(request: web.Request, query: Page) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    limit = min(query.limit or TRANSACTIONS_PAGE, 100)
    before = query.before
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
                    "model_name": ctx.model_name(e.model_id),
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


@operation(
    "POST",
    "/api/payments/stars",
    summary="A Telegram Stars invoice link for Telegram.WebApp.openInvoice",
    responses={201: Answer("Created.", InvoiceLink)},
    errors={404: "Stars top-ups are not offered, or no Telegram account to pay with."},
    tags=("payments",),
)
async def buy_stars(request: web.Request, body: BuyStars) -> web.Response:
    """``{"stars": 100}`` → 201 ``{"invoice_link"}`` for ``Telegram.WebApp.openInvoice``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.stars_invoice_links is None or ctx.payment_terms is None:
        raise NotFound("Stars top-ups are not offered here")
    stars = body.stars
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


@operation(
    "POST",
    "/api/subscription",
    summary="A Telegram Stars subscription invoice link (renewed every 30 days) for openInvoice",
    responses={201: Answer("Created.", InvoiceLink)},
    errors={
        404: "No such plan, or no Telegram account to pay with.",
        409: "A subscription is already active.",
    },
    tags=("payments",),
)
async def subscribe(request: web.Request, body: Subscribe) -> web.Response:
    """``{"plan": "plus"}`` → 201 ``{"invoice_link"}``: a Stars subscription Telegram renews
    every 30 days until it is cancelled, opened with ``Telegram.WebApp.openInvoice``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.stars_invoice_links is None or ctx.payment_terms is None or ctx.tariffs is None:
        raise NotFound("Stars subscriptions are not offered here")
    plan_id = body.plan
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


@operation(
    "PATCH",
    "/api/subscription",
    summary="Cancel (false) or resume (true) the renewal of the user's subscription",
    responses={200: Answer("The plan.", CurrentPlan)},
    errors={
        404: "The user has no active subscription.",
        502: "Telegram did not accept the change; nothing changed.",
    },
    description="Telegram is told first; the plan stays active until the paid period ends.",
    tags=("payments",),
)
async def change_subscription(request: web.Request, body: Renewal) -> web.Response:
    """``{"renews": false}`` cancels the renewal of the user's subscription (the plan stays until
    the paid period ends), ``true`` resumes it → the plan."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.subscription_renewals is None or ctx.tariffs is None:
        raise NotFound("subscriptions are not managed here")
    renews = body.renews
    async with ctx.uow_factory() as uow:
        sub = await subscriptions.switch_renewal(
            uow, ctx.subscription_renewals, user_id=user_id, renew=renews, now=ctx.clock()
        )
    # A plan no longer on offer: the Stars it costs, no perks (as the free tier counts it).
    terms = ctx.tariffs.plan(sub.plan) or Plan(sub.plan, sub.stars, {})
    return web.json_response(_plan(terms, sub.current_period_end, sub.status == "active"))


# --- referrals ---------------------------------------------------------------------------------


@operation(
    "GET",
    "/api/referrals",
    summary="Referral code, links, counts and earnings",
    responses={200: Answer("OK.", ReferralInfo)},
    tags=TAGS,
)
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
        "image_mode": s.image_mode,
        "timezone": s.timezone,
    }


@operation(
    "GET",
    "/api/settings",
    summary="Account settings",
    responses={200: Answer("OK.", Settings)},
    tags=TAGS,
)
async def show_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await accounts.get_settings(uow, user_id)
    return web.json_response(_settings(found))


@operation(
    "PATCH",
    "/api/settings",
    summary="Change some account settings",
    responses={200: Answer("The settings now.", Settings)},
    tags=TAGS,
)
async def change_settings(request: web.Request, body: SettingsChange) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    async with ctx.uow_factory() as uow:
        found = await accounts.update_settings(uow, user_id, **changes)
    return web.json_response(_settings(found))


@operation(
    "PUT",
    "/api/settings/timezone",
    summary="The time zone every time is shown in, here and in the bot",
    responses={200: Answer("The zone now, in its canonical spelling.", TimeZone)},
    errors={400: "Not a known IANA time zone."},
    tags=TAGS,
)
async def set_timezone(request: web.Request, body: TimeZoneChange) -> web.Response:
    """``{"timezone": "Europe/Moscow"}`` → ``{"timezone": ...}``; an unknown zone is a 400."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        user = await accounts.set_timezone(uow, user_id, body.timezone)
    return web.json_response({"timezone": user.timezone})


def setup(app: web.Application) -> None:
    add_routes(
        app,
        list_presets,
        create_preset,
        edit_preset,
        delete_preset,
        use_preset,
        stop_using_presets,
        show_balance,
        list_transactions,
        buy_stars,
        subscribe,
        change_subscription,
        show_referrals,
        show_settings,
        change_settings,
        set_timezone,
    )
