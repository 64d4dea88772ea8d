"""Lean processes: what a `netroom` process loads only when it uses it.

aiogram builds the validators of all its Telegram types (about 450 pydantic models) when
``aiogram.types`` is imported: about 100 MB and two seconds in every process that touches the
Bot API, though a bot meets a handful of those types. ``defer_telegram_types`` has each built on
its first use instead, resolving its names exactly as aiogram's own rebuild does (the
``aiogram.types`` namespace). This leans on pydantic's build of a ``defer_build`` model on first
use: tests/netroom/test_lean.py builds every type, method and response that way, so an upgrade
of aiogram or pydantic that breaks it fails there first. Heavy libraries of our own code paths
(document readers, charts, templates) are imported inside the functions that use them; the same
test keeps each entry module from loading them.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

from pydantic import BaseModel

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def defer_telegram_types() -> None:
    """Import aiogram's types without building their validators; pydantic builds each one the
    first time it validates or serialises (a model declared with ``defer_build``, as aiogram
    declares every type). Call before anything imports aiogram; afterwards it does nothing."""
    if "aiogram.types" in sys.modules:
        return
    deferred: list[tuple[type[BaseModel], dict[str, Any]]] = []
    rebuild = BaseModel.__dict__["model_rebuild"]

    def remember(cls: type[BaseModel], **kwargs: Any) -> bool | None:
        namespace = kwargs.get("_types_namespace")
        if namespace is None or kwargs.get("force"):
            return rebuild.__func__(cls, **kwargs)
        deferred.append((cls, namespace))
        return None

    BaseModel.model_rebuild = classmethod(remember)  # type: ignore[assignment,method-assign]
    try:
        # Imported for the rebuilds they make meanwhile.
        import aiogram.methods
        import aiogram.types  # noqa: F401
    finally:
        BaseModel.model_rebuild = rebuild  # type: ignore[method-assign]
    if not deferred:
        return
    namespace = deferred[0][1]
    for cls, _ in deferred:
        # pydantic's build on first use resolves forward references in this namespace (one
        # dictionary, shared by all).
        cls.__pydantic_parent_namespace__ = namespace
    # A model is also built inside another (a type in a method, in a response): there pydantic
    # resolves its names in its own module, where aiogram imports them for type checkers only.
    # Each module of a type or a method gets the names that the annotations of its models and
    # of the models they inherit from use, and it lacks.
    for name, module in list(sys.modules.items()):
        if not name.startswith(("aiogram.types.", "aiogram.methods.")) or module is None:
            continue
        scope = module.__dict__
        for value in list(scope.values()):
            if not isinstance(value, type) or value.__module__ != name:
                continue
            for ancestor in value.__mro__:
                for annotation in inspect.get_annotations(ancestor).values():
                    for word in _NAME.findall(str(annotation)):
                        if word not in scope and word in namespace:
                            scope[word] = namespace[word]
