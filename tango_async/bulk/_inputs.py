"""Reading the input file of a bulk order job: CSV or JSON Lines, one order per row.

``read_orders()`` returns one ``InputRow`` per data row: the ``CreateOrderRequest`` it
stands for, or every ``RowError`` found in it (type errors of every cell first, then the
first documented rule ``prepare_order()`` finds broken). Problems with the file as a whole
(missing, unreadable, not UTF-8, no orders, unknown columns, wrong format) raise
``InputFileError``; nothing else is raised (bar ValidationError for a bad ``max_amount``).

CSV headers name the request's fields in snake_case, dotted for nesting
(``recipient.address.postal_code``), plus ``custom_fields.<name>`` columns; an empty cell
means "not given". JSON Lines hold one order per line in the API's wire JSON (camelCase,
``externalRefID``). The request returned is the order as read; ``prepare_order()`` has
checked it but its inferred fields (``delivery_method``) are not filled in.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from .._constants import DEFAULT_MAX_AMOUNT
from .._exceptions import TangoError, ValidationError
from .._logs import escape
from .._validation import check_max_amount, prepare_order
from ..types.orders import CreateOrderRequest

__all__ = [
    "InputFileError",
    "InputRow",
    "RowError",
    "detect_format",
    "file_digest",
    "read_orders",
]

Format = Literal["csv", "jsonl"]

_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_CUSTOM = "custom_fields"
_CHUNK = 1 << 20


class InputFileError(TangoError, ValueError):
    """The file as a whole cannot be read: missing, empty, no header, unknown columns,
    wrong format, bad encoding."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with one data row.

    ``row`` is 1-based (CSV: the record after the header is row 1; JSON Lines: line 1 is
    row 1). ``field`` is snake_case and dotted (``recipient.email``), ``""`` when the row
    as a whole cannot be read.
    """

    row: int
    field: str
    rule: str

    def __str__(self) -> str:
        if self.field:
            return f"row {self.row}, {self.field}: {self.rule}"
        return f"row {self.row}: {self.rule}"


@dataclass(frozen=True, slots=True)
class InputRow:
    """One data row: its request (None when it has errors) and its errors (empty if valid)."""

    row: int
    request: CreateOrderRequest | None
    errors: tuple[RowError, ...]


# --- the shape of a request, read off the models ------------------------------------------

_Kind = Literal["str", "bool", "amount", "datetime", "mapping", "struct", "other"]


@dataclass(frozen=True, slots=True)
class _Field:
    name: str  # snake_case attribute
    wire: str  # wire (JSON) name
    kind: _Kind
    type: Any  # the annotation (a Struct type when kind == "struct")
    required: bool


def _kind(tp: Any) -> tuple[_Kind, Any]:
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) in (Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return "struct", tp
    if tp is str:
        return "str", tp
    if tp is bool:
        return "bool", tp
    if tp is datetime:
        return "datetime", tp
    if get_origin(tp) is dict:
        return "mapping", tp
    if Decimal in args:
        return "amount", tp
    return "other", tp


def _fields_of(struct: type[msgspec.Struct]) -> dict[str, _Field]:
    out: dict[str, _Field] = {}
    for f in msgspec.structs.fields(struct):
        kind, tp = _kind(f.type)
        out[f.encode_name] = _Field(f.name, f.encode_name, kind, tp, f.required)
    return out


_SHAPES: dict[type[msgspec.Struct], dict[str, _Field]] = {}


def _shape(struct: type[msgspec.Struct]) -> dict[str, _Field]:
    shape = _SHAPES.get(struct)
    if shape is None:
        shape = _SHAPES[struct] = _fields_of(struct)
    return shape


def _csv_columns(
    struct: type[msgspec.Struct], prefix: str = ""
) -> Iterator[tuple[str, tuple[str, ...], _Field]]:
    """(column name, path of attribute names, leaf field) for every CSV column, in order."""
    for f in _shape(struct).values():
        if f.kind == "struct":
            for col, path, leaf in _csv_columns(f.type, f"{prefix}{f.name}."):
                yield col, (f.name, *path), leaf
        elif f.kind != "mapping":
            yield f"{prefix}{f.name}", (f.name,), f


_COLUMNS: dict[str, tuple[tuple[str, ...], _Field]] = {
    col: (path, leaf) for col, path, leaf in _csv_columns(CreateOrderRequest)
}
_KNOWN = ", ".join([*_COLUMNS, f"{_CUSTOM}.<name>"])


# --- cell and value conversions -----------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_DATETIME_RULE = "must be an ISO 8601 date-time with a timezone offset, e.g. 2025-12-31T23:59:59Z"


class _CellError(Exception):
    def __init__(self, rule: str) -> None:
        self.rule = rule


def _parse_amount(text: str) -> Decimal:
    s = text.strip()
    if not _NUMBER.fullmatch(s):
        low = s.lower().lstrip("+-")
        if low in ("nan", "snan", "inf", "infinity"):
            raise _CellError("must be a finite number")
        raise _CellError(f"must be a number like 10.00 (got {text!r})")
    try:
        return Decimal(s)
    except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
        raise _CellError(f"must be a number like 10.00 (got {text!r})") from None


def _parse_bool(text: str) -> bool:
    s = text.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise _CellError(f"must be true or false (or yes/no, 1/0), not {text!r}")


def _parse_datetime(text: str) -> datetime:
    s = text.strip()
    if s[-1:] == "z":
        s = s[:-1] + "Z"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise _CellError(f"{_DATETIME_RULE} (got {text!r})") from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise _CellError("must include a timezone offset, e.g. 2025-12-31T23:59:59Z or +02:00")
    return dt


def _parse_cell(field: _Field, text: str) -> Any:
    if field.kind == "amount":
        return _parse_amount(text)
    if field.kind == "bool":
        return _parse_bool(text)
    if field.kind == "datetime":
        return _parse_datetime(text)
    if field.kind in ("str", "other"):
        if field.kind == "other":
            try:
                return msgspec.convert(text, field.type, strict=False)
            except msgspec.ValidationError as e:
                raise _CellError(_msgspec_rule(e)) from None
        return text
    raise _CellError("cannot be given in a CSV cell")  # pragma: no cover


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover


def _check_json_value(field: _Field, value: Any) -> Any:
    """The value to hand to msgspec for one JSON leaf, or _CellError."""
    if field.kind == "str":
        if not isinstance(value, str):
            raise _CellError(f"must be a string, not {_json_type(value)}")
        return value
    if field.kind == "bool":
        if not isinstance(value, bool):
            raise _CellError(f"must be true or false, not {_json_type(value)}")
        return value
    if field.kind == "amount":
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise _CellError(f"must be a JSON number, not {_json_type(value)}")
        # Decimal(int) keeps 10 as 10: msgspec would turn an int into the float 10.0.
        return Decimal(value) if isinstance(value, int) else value
    if field.kind == "datetime":
        if not isinstance(value, str):
            raise _CellError(f"{_DATETIME_RULE}, not {_json_type(value)}")
        return _parse_datetime(value)
    if field.kind == "mapping":
        if not isinstance(value, dict):
            raise _CellError(f"must be an object, not {_json_type(value)}")
        return value
    try:
        return msgspec.convert(value, field.type)
    except msgspec.ValidationError as e:
        raise _CellError(_msgspec_rule(e)) from None


# --- msgspec errors -----------------------------------------------------------------------

_AT = re.compile(r" - at `(\$[^`]*)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


def _msgspec_rule(e: msgspec.ValidationError) -> str:
    return _AT.sub("", str(e))


def _msgspec_field(e: msgspec.ValidationError) -> str:
    """``$.recipient.address.streetLine1`` -> ``recipient.address.street_line1``."""
    m = _AT.search(str(e))
    if not m:
        return ""
    struct: type[msgspec.Struct] | None = CreateOrderRequest
    names: list[str] = []
    for key, index in _PATH_PART.findall(m.group(1)[1:]):
        part = key or index.strip("'\"")
        f = _shape(struct).get(part) if struct is not None else None
        names.append(f.name if f is not None else part)
        struct = f.type if f is not None and f.kind == "struct" else None
    return ".".join(names)


# --- building requests --------------------------------------------------------------------


def _finish(
    row: int,
    request: CreateOrderRequest | None,
    errors: list[RowError],
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
) -> InputRow:
    if request is not None and not errors:
        try:
            prepare_order(request, max_amount=max_amount)
        except ValidationError as e:
            errors.append(RowError(row, e.field, e.rule))
    if errors:
        return InputRow(row, None, tuple(errors))
    return InputRow(row, request, ())


def _csv_row(
    row: int,
    cells: list[str],
    columns: list[tuple[str, tuple[str, ...], _Field | None]],
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
) -> InputRow:
    errors: list[RowError] = []
    # Nested values by attribute path; a nested object exists once one of its cells is given.
    tree: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for text, (col, path, field) in zip(cells, columns, strict=True):
        if not text.strip():
            continue
        if field is None:  # custom_fields.<name>
            custom[path[0]] = text
            continue
        try:
            value = _parse_cell(field, text)
        except _CellError as e:
            errors.append(RowError(row, col, e.rule))
            value = None
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    if custom:
        tree[_CUSTOM] = custom
    _check_required(CreateOrderRequest, tree, "", errors, row)
    if errors:
        return InputRow(row, None, tuple(errors))
    return _finish(row, _construct(CreateOrderRequest, tree), errors, max_amount)


def _check_required(
    struct: type[msgspec.Struct],
    tree: dict[str, Any],
    prefix: str,
    errors: list[RowError],
    row: int,
) -> None:
    for f in _shape(struct).values():
        value = tree.get(f.name)
        if f.kind == "struct" and isinstance(value, dict):
            _check_required(f.type, value, f"{prefix}{f.name}.", errors, row)
        elif f.required and f.name not in tree:
            errors.append(RowError(row, prefix + f.name, "is required"))


def _construct(struct: type[msgspec.Struct], tree: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    shape = {f.name: f for f in _shape(struct).values()}
    for name, value in tree.items():
        f = shape[name]
        kwargs[name] = _construct(f.type, value) if f.kind == "struct" else value
    return struct(**kwargs)


def _check_json_object(
    struct: type[msgspec.Struct],
    obj: dict[str, Any],
    prefix: str,
    errors: list[RowError],
    row: int,
) -> dict[str, Any]:
    """Check ``obj`` (wire keys) against ``struct``: unknown keys, missing required fields
    and the type of every value. Returns a copy ready for ``msgspec.convert``."""
    shape = _shape(struct)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        f = shape.get(key)
        if f is None:  # (the key as a field name escaped: it may hold anything JSON can)
            errors.append(RowError(row, prefix + escape(key), _unknown_key_rule(key, shape)))
            continue
        field = prefix + f.name
        if value is None:
            if f.required:
                errors.append(RowError(row, field, "is required (got null)"))
            else:
                out[key] = None
            continue
        if f.kind == "struct":
            if not isinstance(value, dict):
                errors.append(RowError(row, field, f"must be an object, not {_json_type(value)}"))
                continue
            out[key] = _check_json_object(f.type, value, field + ".", errors, row)
            continue
        try:
            out[key] = _check_json_value(f, value)
        except _CellError as e:
            errors.append(RowError(row, field, e.rule))
    for f in shape.values():
        if f.required and f.wire not in obj:
            errors.append(RowError(row, prefix + f.name, f"is required (JSON key {f.wire!r})"))
    return out


def _unknown_key_rule(key: str, shape: dict[str, _Field]) -> str:
    hint = ""
    squashed = key.replace("_", "").lower()
    for f in shape.values():
        if f.wire.lower() == squashed or f.name.replace("_", "") == squashed:
            hint = f"; did you mean {f.wire!r}?"
            break
    wires = ", ".join(f.wire for f in shape.values())
    return f"unknown JSON key {key!r} (keys are the API's camelCase names: {wires}){hint}"


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"the JSON key {k!r} appears twice in one object")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _jsonl_row(row: int, line: str, max_amount: Decimal = DEFAULT_MAX_AMOUNT) -> InputRow:
    try:
        obj = json.loads(
            line, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_pairs
        )
    except _DuplicateKey as e:
        return InputRow(row, None, (RowError(row, "", str(e)),))
    except ValueError as e:  # json.JSONDecodeError and the NaN / Infinity refusal
        return InputRow(row, None, (RowError(row, "", f"is not valid JSON: {e}"),))
    except RecursionError:
        return InputRow(row, None, (RowError(row, "", "is nested too deeply"),))
    if not isinstance(obj, dict):
        return InputRow(
            row, None, (RowError(row, "", f"must be a JSON object, not {_json_type(obj)}"),)
        )
    errors: list[RowError] = []
    checked = _check_json_object(CreateOrderRequest, obj, "", errors, row)
    if errors:
        return InputRow(row, None, tuple(errors))
    try:
        request = msgspec.convert(checked, CreateOrderRequest)
    except msgspec.ValidationError as e:  # pragma: no cover - the checks above come first
        return InputRow(row, None, (RowError(row, _msgspec_field(e), _msgspec_rule(e)),))
    return _finish(row, request, errors, max_amount)


# --- files --------------------------------------------------------------------------------


def detect_format(path: str | Path) -> Format:
    """``csv`` for ``.csv``; ``jsonl`` for ``.jsonl``, ``.ndjson`` and ``.json``."""
    p = Path(path)
    fmt = _SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise InputFileError(
            f"{p}: cannot tell the format from the suffix {p.suffix!r}: use .csv, .jsonl, "
            ".ndjson or .json, or pass format='csv' or format='jsonl'"
        )
    return fmt


def file_digest(path: str | Path) -> str:
    """The SHA-256 (hex) of the file's bytes, read in chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise _os_error(Path(path), e) from None
    return h.hexdigest()


def read_orders(
    path: str | Path,
    *,
    format: Format | None = None,
    max_amount: Decimal | int = DEFAULT_MAX_AMOUNT,
) -> list[InputRow]:
    """Every data row of a CSV or JSON Lines order file, with its request or its errors.

    ``format`` defaults to the one the suffix names (see ``detect_format``). An amount
    above ``max_amount`` (pass the client's ``max_amount``) is a row error. Raises
    ``InputFileError`` when the file as a whole cannot be read (ValidationError for a bad
    ``max_amount``); row problems are returned in ``InputRow.errors``.
    """
    limit = check_max_amount(max_amount)
    p = Path(path)
    fmt = detect_format(p) if format is None else format
    if fmt not in ("csv", "jsonl"):
        raise InputFileError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
    try:
        with open(p, encoding="utf-8-sig", newline="" if fmt == "csv" else None) as f:
            rows = _read_csv(p, f, limit) if fmt == "csv" else _read_jsonl(p, f, limit)
    except UnicodeDecodeError:
        raise InputFileError(
            f"{p}: is not UTF-8 text ({_where_not_utf8(p)}); save it as UTF-8"
        ) from None
    except OSError as e:
        raise _os_error(p, e) from None
    if not rows:
        raise InputFileError(f"{p}: has no orders")
    return rows


def _where_not_utf8(p: Path) -> str:
    """Where the first byte that is not UTF-8 is (UTF-8 never uses byte 0x0A inside a
    character, so decoding line by line finds it exactly)."""
    offset = 0
    try:
        with open(p, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    return (
                        f"line {number}, byte offset {offset + e.start}: "
                        f"{raw[e.start : e.start + 1]!r}"
                    )
                offset += len(raw)
    except OSError:
        pass
    return "an undecodable byte"


def _os_error(p: Path, e: OSError) -> InputFileError:
    if isinstance(e, FileNotFoundError):
        return InputFileError(f"{p}: no such file")
    if isinstance(e, IsADirectoryError):
        return InputFileError(f"{p}: is a directory, not a file")
    if isinstance(e, PermissionError):
        return InputFileError(f"{p}: permission denied")
    return InputFileError(f"{p}: cannot be read: {e.strerror or e}")


def _read_csv(p: Path, lines: Iterable[str], max_amount: Decimal) -> list[InputRow]:
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)  # blank lines before the header
        if header is None:
            raise InputFileError(f"{p}: has no orders (the file is empty)")
        columns = _csv_header(p, header)
        rows: list[InputRow] = []
        for number, cells in enumerate(reader, 1):
            if not any(c.strip() for c in cells):
                continue  # a blank line, or a row of empty cells: no order, number kept
            if len(cells) != len(columns):
                rule = f"has {len(cells)} cells but the header has {len(columns)} columns"
                rows.append(InputRow(number, None, (RowError(number, "", rule),)))
                continue
            rows.append(_csv_row(number, cells, columns, max_amount))
    except csv.Error as e:
        raise InputFileError(f"{p}: is not valid CSV (line {reader.line_num}): {e}") from None
    return rows


def _csv_header(p: Path, header: list[str]) -> list[tuple[str, tuple[str, ...], _Field | None]]:
    names = [h.strip() for h in header]
    if names and names[0][:1] in ("{", "["):
        raise InputFileError(
            f"{p}: looks like JSON, not CSV; name it .jsonl or pass format='jsonl'"
        )
    columns: list[tuple[str, tuple[str, ...], _Field | None]] = []
    unknown: list[str] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
        known = _COLUMNS.get(name)
        if known is not None:
            columns.append((name, known[0], known[1]))
        elif name.startswith(_CUSTOM + ".") and name[len(_CUSTOM) + 1 :]:
            columns.append((name, (name[len(_CUSTOM) + 1 :],), None))
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(_unknown_column(u) for u in unknown)
        raise InputFileError(
            f"{p}: unknown column{'s' if len(unknown) > 1 else ''} {shown}; known columns: {_KNOWN}"
        )
    if duplicates:
        raise InputFileError(
            f"{p}: column{'s' if len(duplicates) > 1 else ''} "
            f"{', '.join(map(repr, duplicates))} appear{'' if len(duplicates) > 1 else 's'} "
            "more than once in the header"
        )
    return columns


def _unknown_column(name: str) -> str:
    squashed = name.replace("_", "").replace(".", "").lower()
    for col in _COLUMNS:
        if col.replace("_", "").replace(".", "").lower() == squashed:
            return f"{name!r} (did you mean {col!r}?)"
    return repr(name)


def _read_jsonl(p: Path, lines: Iterable[str], max_amount: Decimal) -> list[InputRow]:
    rows: list[InputRow] = []
    first = True
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if first:
            first = False
            if text.startswith("["):
                raise InputFileError(
                    f"{p}: holds a JSON array; expected JSON Lines: one order object per line"
                )
            if text == "{":
                raise InputFileError(
                    f"{p}: holds pretty-printed JSON; expected JSON Lines: each order object "
                    "on a single line"
                )
        rows.append(_jsonl_row(number, text, max_amount))
    return rows
