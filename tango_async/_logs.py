"""The package logger, whose records render every value escaped; TANGO_LOG=debug|info.

Every record of the ``tango_async`` logger passes :class:`EscapeFilter` before any
handler sees it (a filter on the logger itself, added when the package is imported, so
it covers every call site, present and future, whatever handlers the application
attaches to it or to the root logger). A value logged as an argument (``%s``, ``%r``)
that holds a character a log line cannot show as itself (a control character, a line or
paragraph separator, any non-printable character: ``str.isprintable()`` is False) is
rendered repr-style, quoted and escaped (``'a\\r\\nINFO ok'``); a printable value is
rendered as it is. Numbers are left alone (``%d``, ``%.2f``). So no user or server value
(an externalRefID, a request ID header, an error message from the server) can end a log
line and forge the next one. A message that is not a constant with arguments (an
f-string, an exception object) is escaped the same way, without quotes.
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["EscapeFilter", "escape", "escape_lines", "logger", "setup_logging"]

logger = logging.getLogger("tango_async")


def escape(text: str) -> str:
    """``text`` as it is if every character is printable, else its repr: one line, with
    each control or other non-printable character escaped (``'\\n'``, ``'\\x1b'``)."""
    return text if text.isprintable() else repr(text)


def escape_lines(text: str) -> str:
    """``text`` for a terminal: its line breaks kept, each line :func:`escape`-d, so that
    no value inside (an ANSI escape sequence, a CR that rewrites the line) reaches the
    screen raw."""
    if text.isprintable():
        return text
    return "\n".join(escape(line) for line in text.split("\n"))


class Escaped:
    """A log argument whose ``str`` and ``repr`` are :func:`escape`-d (computed only when
    a handler formats the record)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape(str(self.value))

    def __repr__(self) -> str:
        return escape(repr(self.value))


def _escaped(arg: object) -> object:
    if arg is None or isinstance(arg, (numbers.Number, Escaped)):
        return arg  # numbers print as digits; %d and %f need them unwrapped
    return Escaped(arg)


class EscapeFilter(logging.Filter):
    """Escape a record's arguments (and a message that is not a plain format string) so
    that it renders on one line without control characters. Never drops a record."""

    tango_async_escape = True

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, Mapping):
            record.args = {k: _escaped(v) for k, v in args.items()}
        elif isinstance(args, tuple) and args:
            record.args = tuple(_escaped(a) for a in args)
        msg = record.msg
        if isinstance(msg, str):
            if not msg.isprintable():
                record.msg = repr(msg)[1:-1]  # escaped, its %-specifiers intact
        elif not isinstance(msg, Escaped):
            record.msg = Escaped(msg)
        return True


def _install(target: logging.Logger) -> None:
    """Add the filter to ``target`` unless one is there (a reloaded module's included)."""
    if not any(getattr(f, "tango_async_escape", False) for f in target.filters):
        target.addFilter(EscapeFilter())


_install(logger)


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
