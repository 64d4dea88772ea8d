from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class ConsentCallback(CallbackData, prefix="consent"):
    version: str


class MenuCallback(CallbackData, prefix="menu"):
    action: str


class LanguageCallback(CallbackData, prefix="lang"):
    code: str


class TopUpCallback(CallbackData, prefix="topup"):
    stars: int


class YooKassaCallback(CallbackData, prefix="yk"):
    rub: int


class PlanCallback(CallbackData, prefix="plan"):
    # buy, cancel, resume
    action: str
    id: str = ""


class ExportCallback(CallbackData, prefix="export"):
    fmt: str


class DeclineCallback(CallbackData, prefix="decline"):
    version: str


class DeleteCallback(CallbackData, prefix="del"):
    # A signed, short-lived confirmation; empty: cancelled.
    token: str


class HistoryCallback(CallbackData, prefix="hist"):
    # Entries older than this id (0: the newest page).
    before: int


class ModelCallback(CallbackData, prefix="model"):
    id: str


class SettingCallback(CallbackData, prefix="set"):
    name: str


class StopCallback(CallbackData, prefix="stop"):
    turn: str


class PresetCallback(CallbackData, prefix="preset"):
    # use, edit, delete, new, none
    action: str
    id: int = 0


class MarketingCallback(CallbackData, prefix="mkt"):
    opt_in: bool


class RedoCallback(CallbackData, prefix="redo"):
    # A message of the turn to ask again (its prompt), and the model by its place in the menu
    # (-1: the one that answered; ids may be too long for callback data).
    m: int
    k: int = -1


class RedoModelsCallback(CallbackData, prefix="redom"):
    m: int


class RateCallback(CallbackData, prefix="rate"):
    m: int
    # 1: 👍, -1: 👎
    v: int


class CostCallback(CallbackData, prefix="cost"):
    m: int


class ReplacedCallback(CallbackData, prefix="replaced"):
    m: int


class TimeZoneCallback(CallbackData, prefix="tz"):
    # An IANA name such as "Asia/Yekaterinburg".
    zone: str


class LinkCallback(CallbackData, prefix="link"):
    # yes or no
    action: str
    code: str
