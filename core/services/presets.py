"""Presets: a user's own system prompts, one of which may instruct new conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from core.errors import InvalidInput, NotFound
from core.services.chat import ChatPrefs, set_prefs, user_of
from core.text import clean
from db.models import Preset, User
from db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class PresetDTO:
    id: int
    title: str
    system_prompt: str


async def create_preset(uow: UnitOfWork, user_id: int, *, title: str, prompt: str) -> PresetDTO:
    title, prompt = clean(title).strip(), clean(prompt).strip()
    if not 1 <= len(title) <= 64 or not 1 <= len(prompt) <= 4000:
        raise InvalidInput("a preset needs a title (1-64) and a prompt (1-4000 characters)")
    async with uow.transaction():
        preset = Preset(user_id=user_id, title=title, system_prompt=prompt)
        uow.session.add(preset)
        await uow.session.flush()
        result = PresetDTO(preset.id, preset.title, preset.system_prompt)
    return result


async def list_presets(uow: UnitOfWork, user_id: int) -> list[PresetDTO]:
    async with uow.reading():
        rows = await uow.session.scalars(
            select(Preset).where(Preset.user_id == user_id).order_by(Preset.id)
        )
        return [PresetDTO(p.id, p.title, p.system_prompt) for p in rows]


async def _own_preset(uow: UnitOfWork, user_id: int, preset_id: int) -> Preset:
    preset = await uow.session.get(Preset, preset_id)
    if preset is None or preset.user_id != user_id:
        raise NotFound(f"preset {preset_id}")
    return preset


async def use_preset(uow: UnitOfWork, user_id: int, preset_id: int | None) -> ChatPrefs:
    """Pick a preset (None: none) for the next conversation. The current one goes on with its
    own instructions: picking starts nothing (a conversation's preset is changed on it)."""
    if preset_id is not None:
        await _own_preset(uow, user_id, preset_id)
    return await set_prefs(uow, user_id, preset_id=preset_id)


async def delete_preset(uow: UnitOfWork, user_id: int, preset_id: int) -> None:
    async with uow.transaction():
        preset = await _own_preset(uow, user_id, preset_id)
        await uow.session.delete(preset)
        user = await user_of(uow, user_id)
        if (user.features or {}).get("preset_id") == preset_id:
            features = {**user.features, "preset_id": None}
            await uow.session.execute(
                update(User).where(User.id == user_id).values(features=features)
            )


async def edit_preset(
    uow: UnitOfWork, user_id: int, preset_id: int, *, title: str, prompt: str, now: datetime
) -> PresetDTO:
    preset = await _own_preset(uow, user_id, preset_id)
    title, prompt = clean(title).strip(), clean(prompt).strip()
    if not 1 <= len(title) <= 64 or not 1 <= len(prompt) <= 4000:
        raise InvalidInput("a preset needs a title (1-64) and a prompt (1-4000 characters)")
    async with uow.transaction():
        preset.title, preset.system_prompt, preset.updated_at = title, prompt, now
        await uow.session.flush()
        result = PresetDTO(preset.id, preset.title, preset.system_prompt)
    return result
