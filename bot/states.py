from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class PresetForm(StatesGroup):
    title = State()
    prompt = State()
    new_prompt = State()
