"""One output format for every command (issue 16): amounts as plain decimals, timestamps
as RFC 3339 in UTC ending in ``Z``, in tables, CSV and JSON alike. The rules are the bulk
layer's (:mod:`tango_async.bulk._format`), which the CLI shares."""

from __future__ import annotations

from ..bulk._format import format_amount, format_time

__all__ = ["format_amount", "format_time"]
