"""The web model picker's data: the models grouped by provider (in order), each with its
capabilities, a typical request's price and free class, and the classes explained in the
reader's language (the bot's /model says the same; see ``core.model_guide``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from core.i18n import FREE_PER_PERIOD, TIER_NAMES
from core.model_guide import ModelGuide, free_class


def picker_json(
    guide: ModelGuide, gettext: Callable[[str], str], names: Mapping[str, str]
) -> dict[str, object]:
    def tier(tier_id: str) -> str:
        return gettext(TIER_NAMES[tier_id]) if tier_id in TIER_NAMES else tier_id

    models = []
    for group in guide.groups:
        for item in group.models:
            model = item.terms
            cls = free_class(guide, model)
            models.append(
                {
                    "id": model.id,
                    "name": names.get(model.id) or model.title,
                    "provider": model.provider,
                    "provider_name": group.name,
                    "vision": model.vision,
                    "reasoning": model.reasoning,
                    "web_search": model.web_search,
                    "price_hint_kopecks": item.request_price,
                    "free_tier": cls.tier if cls is not None else None,
                }
            )
    classes = []
    for cls in guide.free_classes:
        allowance = gettext(FREE_PER_PERIOD[guide.period]).format(
            count=cls.limit, tier=tier(cls.tier)
        )
        explanation = (
            gettext("{hint}; {allowance}").format(hint=gettext(cls.hint), allowance=allowance)
            if cls.hint
            else allowance
        )
        classes.append({"id": cls.tier, "name": tier(cls.tier), "explanation": explanation})
    return {"models": models, "free_classes": classes}
