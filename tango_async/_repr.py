"""Reprs that hold up on half-built objects.

A constructor that refuses an argument raises with ``self`` in its frame's locals; a
traceback rendered with captured locals (``traceback.TracebackException(capture_locals=
True)``, rich, loguru's ``diagnose``) then calls ``repr(self)`` before the attributes
that repr reads exist. On Python 3.11 that AttributeError replaces the traceback itself,
so the user never sees the ValidationError that explains the mistake.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

__all__ = ["tolerant_repr"]

C = TypeVar("C", bound=type)


def tolerant_repr(cls: C) -> C:
    """Class decorator: ``repr()`` of an instance whose ``__init__`` did not get far enough
    is ``ClassName(not constructed)``, not an AttributeError."""
    inner: Callable[[object], str] = cls.__repr__  # type: ignore[assignment]

    @functools.wraps(inner)
    def __repr__(self: object) -> str:
        try:
            return inner(self)
        except AttributeError:
            return f"{type(self).__name__}(not constructed)"

    cls.__repr__ = __repr__  # type: ignore[assignment]
    return cls
