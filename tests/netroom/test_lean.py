"""Lean processes (netroom/lean.py): each role's entry modules leave the heavy libraries to the
code paths that use them, and aiogram's Telegram types, deferred, all still build when met.

Each check runs in a fresh interpreter: this one has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Loaded only by the code that needs them: document readers, charts, Office/PDF writers.
HEAVY = ("lxml", "pypdf", "PIL", "numpy", "matplotlib", "charset_normalizer", "docx", "fpdf")


def _run(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_each_role_loads_only_its_own_and_no_entry_module_a_heavy_library() -> None:
    found = _run(
        f"""
        import json, sys
        from netroom.cli import main  # the `netroom` command
        from netroom.lean import defer_telegram_types
        defer_telegram_types()
        import netroom.processes
        # The bot role does not load the web app (templates), the web role not the handlers.
        roles = {{m: m in sys.modules for m in ("jinja2", "webapp.app", "bot.dispatcher")}}
        for entry in ("bot.dispatcher", "webapp.app", "netroom.jobs"):
            __import__(entry)
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps({{"roles": roles, "heavy": heavy}}))
        """
    )
    assert found == {
        "roles": {"jinja2": False, "webapp.app": False, "bot.dispatcher": False},
        "heavy": [],
    }


def test_deferred_telegram_types_are_built_when_first_met_whatever_the_order() -> None:
    found = _run(
        """
        import asyncio, json, sys
        from netroom.lean import defer_telegram_types
        defer_telegram_types()
        import aiogram.methods as methods
        import aiogram.types as types
        from aiogram.methods.base import Response, TelegramMethod

        deferred = not types.Message.__pydantic_complete__

        async def build_all():
            failed = []
            # Methods first: each builds the types inside it before they are built themselves.
            for module in (methods, types):
                for name in module.__all__:
                    model = getattr(module, name)
                    if not isinstance(model, type) or model is TelegramMethod:
                        continue
                    if not hasattr(model, "model_rebuild"):
                        continue
                    try:
                        model.__pydantic_validator__.validate_python
                        if module is methods and issubclass(model, TelegramMethod):
                            Response[model.__returning__].__pydantic_validator__.validate_python
                        if not model.__pydantic_complete__:
                            failed.append(name)
                    except Exception as exc:
                        failed.append(f"{name}: {exc}"[:200])
            update = types.Update.model_validate({
                "update_id": 1,
                "callback_query": {
                    "id": "1", "chat_instance": "c", "data": "d",
                    "from": {"id": 7, "is_bot": False, "first_name": "Ina"},
                    "message": {"message_id": 5, "date": 1700000000, "text": "q",
                                "chat": {"id": 7, "type": "private"}},
                },
            })
            return failed, type(update.callback_query.message).__name__

        failed, message = asyncio.run(build_all())
        print(json.dumps({"deferred": deferred, "failed": failed, "message": message}))
        """
    )
    assert found == {"deferred": True, "failed": [], "message": "Message"}
