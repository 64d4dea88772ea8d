"""The /model message: the text models grouped by provider, each with its capability marks, the
price of a typical request and its free class, then what the marks and the classes mean. The
same message is edited in place when a model is picked, text and keyboard alike."""

from __future__ import annotations

from html import escape

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import ModelCallback
from bot.texts import money, tier_name
from core.i18n import FREE_PER_PERIOD
from core.model_guide import ModelGuide, PickerModel, free_class
from core.services.chat import ModelTerms

VISION, REASONING, WEB_SEARCH, FREE = "👁", "🧠", "🌐", "🎁"


def marks(model: ModelTerms) -> str:
    return "".join(
        mark
        for mark, has in (
            (VISION, model.vision),
            (REASONING, model.reasoning),
            (WEB_SEARCH, model.web_search),
        )
        if has
    )


def _price(item: PickerModel, guide: ModelGuide, language: str) -> str:
    if item.request_price == 0:
        return _("free")
    return "~" + money(item.request_price, language)


def _line(item: PickerModel, guide: ModelGuide, current: str, language: str) -> str:
    model = item.terms
    name = escape(model.title)
    parts = [f"<b>{name}</b>" if model.id == current else name]
    if m := marks(model):
        parts.append(m)
    parts.append("· " + _price(item, guide, language))
    if (cls := free_class(guide, model)) is not None:
        parts.append(f"· {FREE} {escape(tier_name(cls.tier))}")
    return ("▶️ " if model.id == current else "• ") + " ".join(parts)


def picker_text(guide: ModelGuide, current: ModelTerms, language: str) -> str:
    lines = [_("🤖 Current model: <b>{model}</b>").format(model=escape(current.title))]
    for group in guide.groups:
        lines.append("")
        lines.append(f"<b>{escape(group.name)}</b>")
        lines.extend(_line(item, guide, current.id, language) for item in group.models)
    lines.append("")
    lines.append(
        _(
            "{vision} sees pictures · {reasoning} reasons before answering · {web} searches the web"
        ).format(vision=VISION, reasoning=REASONING, web=WEB_SEARCH)
    )
    lines.append(_("Prices are for a typical request: about 500 tokens in and 500 out."))
    if guide.free_classes:
        explained = _(
            "{free} Free classes: these models answer free up to the allowance, then at the price "
            "shown."
        )
        lines.append(explained.format(free=FREE))
        for cls in guide.free_classes:
            allowance = _(FREE_PER_PERIOD[guide.period]).format(
                count=cls.limit, tier=escape(tier_name(cls.tier))
            )
            if cls.hint:
                lines.append(
                    _("• <b>{tier}</b>: {hint}; {allowance}").format(
                        tier=escape(tier_name(cls.tier)), hint=_(cls.hint), allowance=allowance
                    )
                )
            else:
                lines.append(
                    _("• <b>{tier}</b>: {allowance}").format(
                        tier=escape(tier_name(cls.tier)), allowance=allowance
                    )
                )
    lines.append("")
    lines.append(_("Pick a model:"))
    return "\n".join(lines)


def picker_keyboard(guide: ModelGuide, current: str, language: str) -> InlineKeyboardMarkup:
    """One button a model, in the text's order: a bullet on the current one."""
    builder = InlineKeyboardBuilder()
    for group in guide.groups:
        for item in group.models:
            model = item.terms
            label = " ".join(
                part
                for part in (
                    ("• " if model.id == current else "") + model.title,
                    marks(model),
                    "· " + _price(item, guide, language),
                    FREE if free_class(guide, model) is not None else "",
                )
                if part
            )
            builder.button(text=label, callback_data=ModelCallback(id=model.id))
    builder.adjust(1)
    return builder.as_markup()
