"""Balance, history and top-ups with Telegram Stars."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.filters import CommandObject
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from aiogram.utils.i18n import gettext as _

from bot.callbacks import (
    HistoryCallback,
    MenuCallback,
    PlanCallback,
    TopUpCallback,
    YooKassaCallback,
)
from bot.context import BotContext
from bot.filters import Command, on_loop
from bot.keyboards import (
    history_keyboard,
    pay_link_keyboard,
    plans_keyboard,
    subscription_keyboard,
    top_up_keyboard,
)
from bot.stars import renewal_switch
from bot.texts import (
    balance_text,
    history_text,
    invoice_description,
    invoice_title,
    local_time,
    money,
    pay_support_text,
    plan_name,
    plans_text,
    tariff_lines,
    topped_up_text,
)
from core.dto import UserDTO
from core.errors import DomainError, NotFound
from core.ports import JobQueue
from core.services import (
    accounts,
    billing,
    payments,
    promo,
    stars,
    subscriptions,
    tariffs,
    yookassa_topups,
)
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="money")
HISTORY_PAGE = 10


def _zone(user: UserDTO | None, ctx: BotContext) -> str:
    """The zone the user reads times in (the deployment's own for someone unknown)."""
    return (
        ctx.tariffs.timezone if user is None else accounts.time_zone_of(user, ctx.tariffs.timezone)
    )


async def _balance_view(
    uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> tuple[str, InlineKeyboardMarkup]:
    balance = await billing.get_balance(uow, user.id)
    recent = await billing.history(uow, user.id, limit=5)
    state = await tariffs.tariff_state(uow, ctx.tariffs, user.id, ctx.clock())
    offers = payments.star_offers(ctx.payment_terms)
    return (
        balance_text(balance, recent, user.language, state, _zone(user, ctx), ctx.model_name),
        top_up_keyboard(
            offers,
            user.language,
            rubles=ctx.yookassa_packages if ctx.yookassa is not None else (),
            plans=bool(ctx.tariffs.plans),
        ),
    )


@router.message(Command("balance", "topup"))
async def show_balance(message: Message, uow: UnitOfWork, user: UserDTO, ctx: BotContext) -> None:
    text, keyboard = await _balance_view(uow, user, ctx)
    await message.answer(text, reply_markup=keyboard)


@router.callback_query(MenuCallback.filter(F.action == "balance"))
async def on_menu_balance(
    query: CallbackQuery, bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    await query.answer()
    text, keyboard = await _balance_view(uow, user, ctx)
    await bot.send_message(query.from_user.id, text, reply_markup=keyboard)


@router.callback_query(TopUpCallback.filter())
async def on_top_up(
    query: CallbackQuery,
    callback_data: TopUpCallback,
    bot: Bot,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    terms = ctx.payment_terms
    payload = payments.invoice_payload(terms, user_id=user.id, stars=callback_data.stars)
    kopecks = callback_data.stars * terms.kopecks_per_star
    await query.answer()
    await bot.send_invoice(
        chat_id=query.from_user.id,
        title=invoice_title(callback_data.stars),
        description=invoice_description(kopecks, user.language),
        payload=payload,
        currency="XTR",
        prices=[LabeledPrice(label=f"{callback_data.stars} ⭐️", amount=callback_data.stars)],
        provider_token="",  # nosec B106 # Stars take no provider token
    )


@router.callback_query(YooKassaCallback.filter())
async def on_yookassa(
    query: CallbackQuery,
    callback_data: YooKassaCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    """A card payment through YooKassa: the user pays on YooKassa's page."""
    await query.answer()
    if ctx.yookassa is None or callback_data.rub not in ctx.yookassa_packages:
        await bot.send_message(query.from_user.id, _("This top-up is not offered any more."))
        return
    amount = callback_data.rub * 100
    checkout = await yookassa_topups.start_top_up(
        uow,
        ctx.yookassa,
        user_id=user.id,
        amount=amount,
        packages=tuple(rub * 100 for rub in ctx.yookassa_packages),
        public_url=ctx.public_url,
        description=invoice_description(amount, user.language),
        now=ctx.clock(),
    )
    await bot.send_message(
        query.from_user.id,
        _(
            "💳 Pay {amount} by card on YooKassa's page. The balance is topped up as soon as the "
            "payment goes through."
        ).format(amount=money(amount, user.language)),
        reply_markup=pay_link_keyboard(
            _("Pay {amount}").format(amount=money(amount, user.language)), checkout.confirmation_url
        ),
    )


@router.message(Command("subscribe"))
async def show_plans(message: Message, uow: UnitOfWork, user: UserDTO, ctx: BotContext) -> None:
    await _send_plans(message.bot, message.chat.id, uow, user, ctx)


@router.callback_query(MenuCallback.filter(F.action == "plans"))
async def on_menu_plans(
    query: CallbackQuery, bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    await query.answer()
    await _send_plans(bot, query.from_user.id, uow, user, ctx)


async def _send_plans(
    bot: Bot | None, chat_id: int, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    assert bot is not None
    # A subscriber sees their plan, even one no longer on offer, and can cancel its renewal.
    state = await tariffs.tariff_state(uow, ctx.tariffs, user.id, ctx.clock())
    if state.plan is not None:
        lines = tariff_lines(state, _zone(user, ctx))
        await bot.send_message(
            chat_id, "\n".join(lines), reply_markup=subscription_keyboard(state.renews)
        )
        return
    if not ctx.tariffs.plans:
        await bot.send_message(chat_id, _("There are no subscription plans on this server."))
        return
    await bot.send_message(
        chat_id,
        plans_text(ctx.tariffs.plans, user.language, ctx.tariffs.period),
        reply_markup=plans_keyboard(ctx.tariffs.plans),
    )


@router.callback_query(PlanCallback.filter(F.action == "buy"))
async def on_buy_plan(
    query: CallbackQuery,
    callback_data: PlanCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    plan, payload = await subscriptions.offer(
        uow,
        ctx.tariffs,
        ctx.payment_terms,
        user_id=user.id,
        plan_id=callback_data.id,
        now=ctx.clock(),
    )
    await query.answer()
    link = await bot.create_invoice_link(
        title=_("NetRoom {plan}").format(plan=plan.id.title()),
        description=_(
            "Subscription to the {plan} plan for 30 days, renewed until you cancel."
        ).format(plan=plan.id.title()),
        payload=payload,
        currency="XTR",
        prices=[LabeledPrice(label=plan.id.title(), amount=plan.stars)],
        subscription_period=subscriptions.PERIOD_SECONDS,
    )
    await bot.send_message(
        query.from_user.id,
        _("⭐️ {plan}: {stars} Stars every 30 days.").format(plan=plan.id.title(), stars=plan.stars),
        reply_markup=pay_link_keyboard(
            _("Subscribe for ⭐️ {stars}").format(stars=plan.stars), link
        ),
    )


@router.callback_query(PlanCallback.filter(F.action.in_({"cancel", "resume"})))
async def on_plan_renewal(
    query: CallbackQuery,
    callback_data: PlanCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    renew = callback_data.action == "resume"
    # Telegram first: only what Telegram accepted is recorded.
    current = await subscriptions.switch_renewal(
        uow, renewal_switch(bot), user_id=user.id, renew=renew, now=ctx.clock()
    )
    await query.answer()
    until = local_time(current.current_period_end, _zone(user, ctx))
    await bot.send_message(
        query.from_user.id,
        (
            _("🔁 Renewal is on again. The plan stays active until {until} and then renews.")
            if renew
            else _("Renewal cancelled. The plan stays active until {until}.")
        ).format(until=until),
        reply_markup=subscription_keyboard(renew),
    )


@router.pre_checkout_query(flags={"consent_free": True})
async def on_pre_checkout(query: PreCheckoutQuery, uow: UnitOfWork, ctx: BotContext) -> None:
    # Telegram waits 10 seconds for this answer: check and answer, nothing else.
    try:
        await stars.check_checkout(
            uow,
            ctx.payment_terms,
            ctx.tariffs,
            telegram_id=query.from_user.id,
            payload=query.invoice_payload,
            currency=query.currency,
            total_amount=query.total_amount,
        )
    except DomainError as exc:
        log.warning("pre-checkout refused: %s (%s)", exc.code, exc.detail)
        await query.answer(ok=False, error_message=_(exc.msgid))
        return
    await query.answer(ok=True)


@router.message(on_loop(F.successful_payment), flags={"consent_free": True})
async def on_successful_payment(
    message: Message, uow: UnitOfWork, ctx: BotContext, user: UserDTO | None, jobs: JobQueue
) -> None:
    """Credited once per charge, however often Telegram delivers this message."""
    payment = message.successful_payment
    assert payment is not None and message.from_user is not None
    expires = payment.subscription_expiration_date
    recorded = await stars.record_payment(
        uow,
        ctx.payment_terms,
        ctx.tariffs,
        telegram_id=message.from_user.id,
        charge_id=payment.telegram_payment_charge_id,
        payload=payment.invoice_payload,
        currency=payment.currency,
        total_amount=payment.total_amount,
        subscription_expires_at=(
            datetime.fromtimestamp(expires, UTC) if expires is not None else None
        ),
        first_of_subscription=not payment.is_recurring or bool(payment.is_first_recurring),
        now=ctx.clock(),
    )
    if not recorded.applied:
        log.info("charge %s delivered again; already recorded", payment.telegram_payment_charge_id)
        return
    language = user.language if user is not None else "en"
    if recorded.subscription is not None:
        sub = recorded.subscription
        await message.answer(
            _("⭐️ Plan {plan} is active until {until}. Thank you!").format(
                plan=plan_name(sub.plan),
                until=local_time(sub.current_period_end, _zone(user, ctx)),
            )
        )
        return
    assert recorded.top_up is not None
    # The inviters hear what it earned them (from the worker: their chats, their limits).
    await jobs.enqueue("payments.notify_referral_earnings", payment_id=recorded.top_up.payment_id)
    account = await payments.balance_of(uow, recorded.user_id)
    await message.answer(topped_up_text(recorded.top_up.credited, account.balance, language))


@router.message(on_loop(F.refunded_payment), flags={"consent_free": True})
async def on_refunded_payment(message: Message, uow: UnitOfWork, ctx: BotContext) -> None:
    """A Stars payment was refunded: its credit and the referral earnings it brought go back."""
    refunded = message.refunded_payment
    assert refunded is not None
    try:
        refund = await payments.refund_payment(
            uow, provider="stars", external_id=refunded.telegram_payment_charge_id, now=ctx.clock()
        )
    except NotFound:
        log.warning("refund of a charge never recorded: %s", refunded.telegram_payment_charge_id)
        return
    log.info(
        "stars charge refunded: payment %s, %d taken back", refund.payment_id, refund.taken_back
    )


@router.message(Command("history"))
async def show_history(message: Message, uow: UnitOfWork, user: UserDTO, ctx: BotContext) -> None:
    entries = await payments.history_of(uow, user.id, limit=HISTORY_PAGE + 1)
    page, older = entries[:HISTORY_PAGE], entries[HISTORY_PAGE:]
    await message.answer(
        history_text(page, user.language, _zone(user, ctx), ctx.model_name),
        reply_markup=history_keyboard(page[-1].id if older else None),
    )


@router.callback_query(HistoryCallback.filter())
async def on_history_page(
    query: CallbackQuery,
    callback_data: HistoryCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    entries = await payments.history_of(
        uow, user.id, limit=HISTORY_PAGE + 1, before_id=callback_data.before or None
    )
    page, older = entries[:HISTORY_PAGE], entries[HISTORY_PAGE:]
    await query.answer()
    await bot.send_message(
        query.from_user.id,
        history_text(page, user.language, _zone(user, ctx), ctx.model_name),
        reply_markup=history_keyboard(page[-1].id if older else None),
    )


@router.message(Command("paysupport"), flags={"consent_free": True})
async def show_pay_support(message: Message) -> None:
    await message.answer(pay_support_text())


@router.message(Command("promo"))
async def on_promo(
    message: Message, command: CommandObject, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    if not command.args:
        await message.answer(_("Send the code after the command, for example: /promo WELCOME"))
        return
    result = await promo.redeem(uow, user_id=user.id, code=command.args, now=ctx.clock())
    if result.kind == "amount":
        await message.answer(
            _("🎁 {amount} added to your balance.").format(
                amount=money(result.value, user.language)
            )
        )
    else:
        await message.answer(
            _("🎁 Your next top-up gets a {percent}% bonus.").format(percent=result.value)
        )
