"""Reprs that hold up on half-built objects.

A constructor that refuses an argument raises with ``self`` in its frame's locals; a
traceback rendered with captured locals (``traceback.TracebackException(capture_locals=
True)``, rich, loguru's ``diagnose``) then calls ``repr(self)`` before the attributes
that repr reads exist. On Python 3.11 that AttributeError replaces the traceback itself,
so the user never sees the ValidationError that explains the mistake.

Secrets render the same way everywhere: :data:`REDACTED`. A :class:`HeaderValue` is a
header value (a ``str``) whose repr is redacted, a :class:`SecretBytes` a request body
(``bytes``) whose repr is redacted, and a :class:`Sealed` a secret text held masked,
which only :meth:`Sealed.reveal` gives back. They live on this bottom layer so that both
credentials, ``_auth`` (HTTP Basic) and ``_oauth`` (bearer tokens), share them.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

__all__ = ["REDACTED", "HeaderValue", "Sealed", "SecretBytes", "tolerant_repr"]

REDACTED = "<redacted>"

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


class HeaderValue(str):
    """A header value whose repr is redacted; its text (``str()``) is the real value.

    Not picklable; a copy (``copy.copy``/``deepcopy``, as aioresponses makes of a
    request's arguments) is the value itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        return REDACTED

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a secret header value cannot be pickled")

    def __copy__(self) -> HeaderValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> HeaderValue:
        return self


class SecretBytes(bytes):
    """A request body holding a secret (a form with a client secret): ``bytes`` whose
    repr is redacted (with its size). Not picklable; a copy is the value itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{REDACTED} ({len(self)} bytes)"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a secret body cannot be pickled")

    def __copy__(self) -> SecretBytes:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretBytes:
        return self


class Sealed:
    """A secret text (a client secret, a password, an access token) held masked: XORed
    with a random pad of its own, so no attribute of it is the text.

    ``repr()``, ``str()`` and ``format()`` give ``<redacted>``; pickling raises TypeError;
    a copy is the object itself; equality is identity. :meth:`reveal` is the only way back
    to the text: call it inside the expression that needs it, so no frame keeps it in a
    local."""

    __slots__ = ("_mask", "_masked", "_size")

    def __init__(self, text: str) -> None:
        raw = text.encode("utf-8")
        self._size = len(raw)
        self._mask = int.from_bytes(secrets.token_bytes(self._size), "big")
        self._masked = int.from_bytes(raw, "big") ^ self._mask

    def reveal(self) -> str:
        """The text."""
        return (self._masked ^ self._mask).to_bytes(self._size, "big").decode("utf-8")

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the secret replaced by ``<redacted>`` (for a
        server's message that might echo it)."""
        return text.replace(self.reveal(), REDACTED) if self._size else text

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a secret cannot be pickled")

    def __copy__(self) -> Sealed:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Sealed:
        return self
