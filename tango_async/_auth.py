"""The platform credential, kept out of reach of reprs, tracebacks and pickles.

A :class:`Credential` holds the HTTP Basic ``Authorization`` value masked (XORed with a
random pad of its own), so no attribute of it is the key or its Basic token; its repr,
str and format are redacted, and it cannot be pickled or copied into another object.
:meth:`Credential.build` returns (never raises) the ValidationError of a bad name or key,
so the constructor that received the key can drop it before raising.
The transport turns it into a header value only inside the expression that hands the
headers to aiohttp (:meth:`Credential.headers`), so no frame of ours holds it in a local.

That value is a :class:`HeaderValue` (defined in ``_repr``, shared with ``_oauth``): a
``str`` (aiohttp writes it as it is) whose repr is redacted. aiohttp keeps it in its
request headers, the ``headers`` of its ``request_info``, its tracing parameters and the
locals of its own frames; every one of them renders it by repr (a traceback with
captured locals, rich, loguru's ``diagnose``, ``print(request_info)``), and so shows
``<redacted>``. Only an explicit ``str(value)`` or concatenation gives the text back,
which is what writing the header needs.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any, NoReturn

from ._exceptions import ValidationError
from ._repr import REDACTED, HeaderValue

__all__ = ["REDACTED", "Credential", "HeaderValue"]


class Credential:
    """A platform's HTTP Basic credential: ``Basic base64(name:key)``, masked in memory.

    ``repr()``, ``str()`` and ``format()`` give ``Credential(<redacted>)``; pickling raises
    TypeError; equality is identity. :meth:`headers` is the only way to the value."""

    __slots__ = ("_mask", "_masked", "_size")

    def __init__(self, authorization: bytes) -> None:
        self._size = len(authorization)
        self._mask = int.from_bytes(secrets.token_bytes(self._size), "big")
        self._masked = int.from_bytes(authorization, "big") ^ self._mask

    @classmethod
    def build(cls, platform_name: object, platform_key: object) -> Credential | ValidationError:
        """The credential of ``platform_name`` and ``platform_key``, or the ValidationError
        to raise: returned, not raised, so that no traceback holds a frame whose locals
        show the key (the caller drops its own reference, then raises). Never raises."""
        try:
            if not platform_name or not isinstance(platform_name, str):
                return ValidationError(
                    "platform_name", "is required: pass it or set TANGO_PLATFORM_NAME"
                )
            if not platform_key or not isinstance(platform_key, str):
                return ValidationError(
                    "platform_key", "is required: pass it or set TANGO_PLATFORM_KEY"
                )
            if ":" in platform_name:
                return ValidationError("platform_name", "must not contain ':' (HTTP Basic auth)")
            try:
                pair = f"{platform_name}:{platform_key}".encode()
            except UnicodeEncodeError:  # a lone surrogate: returned, so no chain holds it
                return ValidationError("platform_key", "must be valid Unicode text")
            return cls(b"Basic " + base64.b64encode(pair))
        except Exception:  # pragma: no cover - nothing above raises on str input
            return ValidationError("platform_key", "cannot be encoded")

    def headers(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with the ``Authorization`` header added, its value a HeaderValue."""
        value = (self._masked ^ self._mask).to_bytes(self._size, "big").decode("ascii")
        return {**base, "Authorization": HeaderValue(value)}

    def __repr__(self) -> str:
        return f"Credential({REDACTED})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Credential cannot be pickled")

    def __copy__(self) -> Credential:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Credential:
        return self
