"""The optional comparison libraries (pydantic v2, the official ``raas`` SDK): imported on
demand, so the benchmarks run (and say "not installed") without them."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType


def pydantic_models() -> ModuleType | None:
    """benchmarks._pydantic_models, or None when pydantic v2 is not installed."""
    try:
        import pydantic
    except ImportError:
        return None
    if not pydantic.VERSION.startswith("2."):
        return None
    return importlib.import_module("benchmarks._pydantic_models")


def raas(*modules: str) -> list[ModuleType] | None:
    """Import ``raas`` submodules, or None when raas is not installed.

    ``raas.configuration`` calls ``logging.basicConfig(stream=sys.stdout, level=INFO)`` at
    import, and its controllers log several INFO lines per call: the root logger is put
    back as it was and the ``raas`` loggers are set to WARNING (raas's best case, and no
    noise on our stdout).
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        loaded = [importlib.import_module(m) for m in ("raas", *modules)]
    except ImportError:
        return None
    finally:
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
    logging.getLogger("raas").setLevel(logging.WARNING)
    return loaded[1:]
