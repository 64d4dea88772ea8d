"""Balance, history and top-ups with Telegram Stars."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from aiogram.utils.i18n import gettext as _

from bot.callbacks import HistoryCallback, MenuCallback, TopUpCallback
from bot.context import BotContext
from bot.keyboards import history_keyboard, top_up_keyboard
from bot.texts import (
    balance_text,
    history_text,
    invoice_description,
    invoice_title,
    money,
    pay_support_text,
    topped_up_text,
)
from core.dto import UserDTO
from core.errors import DomainError
from core.services import billing, payments, promo
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="money")
HISTORY_PAGE = 10


async def _balance_view(
    uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> tuple[str, InlineKeyboardMarkup]:
    balance = await billing.get_balance(uow, user.id)
    recent = await billing.history(uow, user.id, limit=5)
    await uow.end_read()
    offers = payments.star_offers(ctx.payment_terms)
    return (
        balance_text(balance, recent, user.language),
        top_up_keyboard(offers, user.language),
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
        provider_token="",
    )


@router.pre_checkout_query(flags={"consent_free": True})
async def on_pre_checkout(query: PreCheckoutQuery, uow: UnitOfWork, ctx: BotContext) -> None:
    # Telegram waits 10 seconds for this answer: check and answer, nothing else.
    try:
        await payments.check_stars_checkout(
            uow,
            ctx.payment_terms,
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


@router.message(F.successful_payment, flags={"consent_free": True})
async def on_successful_payment(
    message: Message, uow: UnitOfWork, ctx: BotContext, user: UserDTO | None
) -> None:
    """Credited once per charge, however often Telegram delivers this message."""
    payment = message.successful_payment
    assert payment is not None and message.from_user is not None
    top_up = await payments.record_stars_payment(
        uow,
        ctx.payment_terms,
        telegram_id=message.from_user.id,
        charge_id=payment.telegram_payment_charge_id,
        payload=payment.invoice_payload,
        currency=payment.currency,
        total_amount=payment.total_amount,
    )
    if not top_up.applied:
        log.info("payment %s delivered again; already credited", top_up.payment_id)
        return
    account = await billing.get_balance(uow, top_up.user_id)
    await uow.end_read()
    language = user.language if user is not None else "en"
    await message.answer(topped_up_text(top_up.credited, account.balance, language))


@router.message(Command("history"))
async def show_history(message: Message, uow: UnitOfWork, user: UserDTO) -> None:
    entries = await billing.history(uow, user.id, limit=HISTORY_PAGE + 1)
    await uow.end_read()
    page, older = entries[:HISTORY_PAGE], entries[HISTORY_PAGE:]
    await message.answer(
        history_text(page, user.language),
        reply_markup=history_keyboard(page[-1].id if older else None),
    )


@router.callback_query(HistoryCallback.filter())
async def on_history_page(
    query: CallbackQuery, callback_data: HistoryCallback, bot: Bot, uow: UnitOfWork, user: UserDTO
) -> None:
    entries = await billing.history(
        uow, user.id, limit=HISTORY_PAGE + 1, before_id=callback_data.before or None
    )
    await uow.end_read()
    page, older = entries[:HISTORY_PAGE], entries[HISTORY_PAGE:]
    await query.answer()
    await bot.send_message(
        query.from_user.id,
        history_text(page, user.language),
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
