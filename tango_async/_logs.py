"""TANGO_LOG=debug|info turns on the ``tango_async`` logger for a quick look."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("tango_async")


def setup_logging() -> None:
    """Attach a stderr handler at the level TANGO_LOG names, once, if it names one."""
    level = os.environ.get("TANGO_LOG", "").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        return
    logger.setLevel(level)
    if not any(getattr(h, "_tango_async", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        handler._tango_async = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
