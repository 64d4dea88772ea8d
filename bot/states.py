from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class PresetForm(StatesGroup):
    title = State()
    prompt = State()
    new_prompt = State()


class SupportForm(StatesGroup):
    # Messages go to support until the user finishes or sends a command.
    open = State()
