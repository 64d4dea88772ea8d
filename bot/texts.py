"""User-visible texts built from the gettext catalogue; placeholders filled after translation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import gettext as _

from bot.context import BotContext
from core.dto import ReferralInfo, ReferralOutcome
from core.i18n import FREE_PER_PERIOD, N_, TIER_HINTS, TIER_NAMES, money
from core.services.billing import BalanceDTO, EntryDTO
from core.services.tariffs import Plan, TariffState


def consent_text(ctx: BotContext, *, renewed: bool) -> str:
    head = (
        _("📄 Our privacy policy has changed. Please read it and accept it to keep using NetRoom.")
        if renewed
        else _("👋 Welcome to NetRoom: many AI models in one chat.")
    )
    summary = _(
        "Before we start, please accept our privacy policy. In short:\n"
        "• we keep your Telegram ID, name, language and settings;\n"
        "• your messages are stored for 14 days, then deleted;\n"
        "• your requests go only to the developer of the model you choose;\n"
        "• payments go through YooKassa and Telegram Stars, we never see card details;\n"
        "• /export sends you a copy of your data and /delete deletes your account at any time;\n"
        "  support (/support) helps with anything else.\n"
        "The service is for adults (18+)."
    )
    link = _('Full text: <a href="{url}">privacy policy</a>').format(url=escape(ctx.policy_url))
    return f"{head}\n\n{summary}\n\n{link}"


def welcome_text(name: str | None) -> str:
    if name:
        return _("✅ Thank you, {name}! You are all set.").format(name=escape(name))
    return _("✅ Thank you! You are all set.")


def menu_text() -> str:
    return _("What would you like to do? Open NetRoom to chat with AI models.")


def referral_outcome_text(outcome: ReferralOutcome) -> str | None:
    texts = {
        ReferralOutcome.APPLIED: _("🤝 You joined by a friend's invitation."),
        ReferralOutcome.UNKNOWN_CODE: _(
            "This invitation link is not valid any more, but you are welcome all the same."
        ),
        ReferralOutcome.SELF_INVITE: _("This is your own invitation link: share it with friends."),
        ReferralOutcome.CYCLE: _("You cannot join through a friend you invited yourself."),
        ReferralOutcome.ALREADY_REGISTERED: _(
            "You already have an account, so this invitation cannot be applied."
        ),
    }
    return texts.get(outcome)


def referral_text(
    info: ReferralInfo, link: str, earned: int, language: str, percents: tuple[int, int]
) -> str:
    how = _(
        "Your share of your friends' top-ups: {level1}%; of their friends' top-ups: {level2}%."
    ).format(level1=percents[0], level2=percents[1])
    return _(
        "👥 <b>Invite friends</b>\n\n"
        "{how}\n\n"
        "Your link: {link}\n\n"
        "Joined through your link: {level1}\n"
        "Joined through your friends' links: {level2}\n"
        "Earned from their top-ups: {earned}"
    ).format(
        how=how,
        link=escape(link),
        level1=info.level1,
        level2=info.level2,
        earned=money(earned, language),
    )


def invite_message() -> str:
    """What a shared invitation says beside the link."""
    return _("Chat with every leading AI model in NetRoom")


def invited_friend_text() -> str:
    return _("🎉 A friend joined NetRoom through your link.")


def language_prompt() -> str:
    return _("Choose the interface language:")


def language_set_text() -> str:
    return _("Language changed.")


def privacy_text(ctx: BotContext) -> str:
    return _(
        "🔒 <b>Your data</b>\n\n"
        "We keep your account and settings, your messages for 14 days, payment records as the "
        "law requires, and technical logs for up to 90 days.\n"
        "You have the right to a copy of your data, to correct it, to delete your account and to "
        "withdraw consent: /export gives you a copy of your data, /delete erases your account, and "
        "support helps with the rest.\n\n"
        'Policy version {version}: <a href="{url}">full text</a>'
    ).format(version=escape(ctx.policy_version), url=escape(ctx.policy_url))


def generic_error_text() -> str:
    return _("Something went wrong. Please try again later.")


CATEGORY_NAMES = {
    "text": N_("text model"),
    "image": N_("image"),
    "video": N_("video"),
    "topup": N_("top-up"),
    "referral": N_("referral earning"),
    "bonus": N_("bonus"),
    "subscription": N_("subscription"),
    "other": N_("other"),
}


def tier_name(tier: str) -> str:
    """A free-tier class in the reader's language; an id we have no name for as it is."""
    return _(TIER_NAMES[tier]) if tier in TIER_NAMES else tier


def tier_hints(tiers: Iterable[str]) -> str | None:
    """What the classes named mean, as one line (None: none of them has a hint)."""
    told = [
        _("<b>{tier}</b>: {hint}").format(tier=escape(tier_name(t)), hint=_(TIER_HINTS[t]))
        for t in dict.fromkeys(tiers)
        if t in TIER_HINTS
    ]
    return _("Classes: {classes}.").format(classes="; ".join(told)) if told else None


def plan_name(plan_id: str) -> str:
    return plan_id.title()


def entry_what(entry: EntryDTO) -> str:
    """What an entry was for. A plan bought with Stars is two entries: the Stars coming in and
    the plan's charge going out."""
    if entry.category == "subscription" and entry.plan:
        if entry.amount > 0:
            return _("paid in Stars for plan {plan}").format(plan=escape(plan_name(entry.plan)))
        return _("plan {plan}, 30 days").format(plan=escape(plan_name(entry.plan)))
    return _(CATEGORY_NAMES.get(entry.category, CATEGORY_NAMES["other"]))


def entry_line(
    entry: EntryDTO, language: str, timezone: str, model_name: Callable[[str], str]
) -> str:
    sign = "+" if entry.amount > 0 else "−"
    when = (
        f"{entry.created_at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M}"
        if entry.created_at
        else ""
    )
    model = f" · {escape(model_name(entry.model_id))}" if entry.model_id else ""
    return f"{when} {sign}{money(abs(entry.amount), language)} · {entry_what(entry)}{model}"


def local_time(moment: datetime, timezone: str) -> str:
    """A moment in the reader's zone, with the zone named."""
    return f"{moment.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} ({timezone})"


def times_in_text(timezone: str) -> str:
    return _("Times are in {zone}; /timezone changes it.").format(zone=escape(timezone))


def tariff_lines(state: TariffState | None, timezone: str) -> list[str]:
    if state is None:
        return []
    lines: list[str] = []
    if state.plan is not None and state.plan_until is not None:
        lines.append(
            (
                _("⭐️ Plan {plan}, paid in Stars every 30 days. Renews on {date}.")
                if state.renews
                else _("⭐️ Plan {plan}: active until {date}, renewal cancelled.")
            ).format(
                plan=escape(plan_name(state.plan.id)),
                date=local_time(state.plan_until, timezone),
            )
        )
    if state.allowances:
        left = ", ".join(
            f"{escape(tier_name(a.tier))} {a.left}/{a.limit}"
            for a in state.allowances
            if a.limit > 0
        )
        if left:
            lines.append(_("🎁 Free requests left: {left}.").format(left=left))
            hints = tier_hints(a.tier for a in state.allowances if a.limit > 0)
            if hints:
                lines.append(hints)
            lines.append(
                _("Free requests renew: {when}").format(when=local_time(state.next_reset, timezone))
            )
    return lines


def balance_text(
    balance: BalanceDTO,
    entries: list[EntryDTO],
    language: str,
    state: TariffState | None = None,
    timezone: str = "UTC",
    model_name: Callable[[str], str] = str,
) -> str:
    lines = [_("💰 <b>Balance:</b> {amount}").format(amount=money(balance.balance, language))]
    if balance.reserved:
        lines.append(
            _("Held for requests in progress: {amount}").format(
                amount=money(balance.reserved, language)
            )
        )
    lines.extend(tariff_lines(state, timezone))
    if entries:
        lines.append("")
        lines.append(_("Recent transactions:"))
        lines.extend(entry_line(e, language, timezone, model_name) for e in entries)
    lines.append("")
    lines.append(_("Top up:"))
    return "\n".join(lines)


def plans_text(plans: tuple[Plan, ...], language: str, period: str) -> str:
    lines = [_("⭐️ <b>Subscription plans</b>, paid in Telegram Stars every 30 days:"), ""]
    for plan in plans:
        perks = [
            _(FREE_PER_PERIOD[period]).format(count=n, tier=escape(tier_name(tier)))
            for tier, n in sorted(plan.free_tier.items())
        ]
        if plan.discount_percent:
            perks.append(
                _("discount on paid requests: {percent}%").format(percent=plan.discount_percent)
            )
        lines.append(
            _("<b>{plan}</b> · ⭐️ {stars}: {perks}").format(
                plan=escape(plan_name(plan.id)), stars=plan.stars, perks="; ".join(perks)
            )
        )
    hints = tier_hints(tier for plan in plans for tier in sorted(plan.free_tier))
    if hints:
        lines.append(hints)
    lines.append("")
    lines.append(_("You can cancel renewal at any time in /subscribe."))
    return "\n".join(lines)


def history_text(
    entries: list[EntryDTO], language: str, timezone: str, model_name: Callable[[str], str]
) -> str:
    """Ledger lines, each paid request with the model by its display name (``model_name``)."""
    if not entries:
        return _("No transactions yet.")
    return "\n".join(
        [
            _("🧾 <b>Transactions</b>"),
            times_in_text(timezone),
            "",
            *(entry_line(e, language, timezone, model_name) for e in entries),
        ]
    )


def invoice_title(stars: int) -> str:
    return _("NetRoom balance top-up")


def invoice_description(kopecks: int, language: str) -> str:
    return _("{amount} on your NetRoom balance, for any model.").format(
        amount=money(kopecks, language)
    )


def topped_up_text(credited: int, balance: int, language: str) -> str:
    return _("✅ Payment received: {credited} added. Balance: {balance}.").format(
        credited=money(credited, language), balance=money(balance, language)
    )


def referral_earning_text(amount: int, level: int, language: str) -> str:
    if level == 1:
        text = _("💸 A friend you invited topped up their balance: you earned {amount}.")
    else:
        text = _(
            "💸 A friend of a friend you invited topped up their balance: you earned {amount}."
        )
    return text.format(amount=money(amount, language)) + "\n" + _("See /referral.")


def pay_support_text() -> str:
    return _(
        "💳 <b>Payment support</b>\n\n"
        "If a payment went wrong, send /support with the date and amount of the payment; "
        "we answer within 10 business days. Telegram Stars payments can be refunded to the "
        "Stars balance they came from. Your payments are listed in /history."
    )


# Telegram's caption limit is 1,024 characters; the prompt gives way.
CAPTION_PROMPT_CHARS = 800


def media_caption(mark: str, model: str, charged: int, prompt: str, language: str) -> str:
    """A picture's or video's caption: the model (its display name) and price, then the prompt
    it was made from."""
    head = f"{mark} {escape(model)}"
    if charged:
        head += " · " + money(charged, language)
    if len(prompt) > CAPTION_PROMPT_CHARS:
        prompt = prompt[: CAPTION_PROMPT_CHARS - 1].rstrip() + "…"
    return f"{head}\n<i>{escape(prompt)}</i>" if prompt else head
