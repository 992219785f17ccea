"""Reading the input file of a bulk order job: CSV or JSON Lines, one order per row.

``read_orders()`` returns one ``InputRow`` per data row: the ``CreateOrderRequest`` it
stands for, or every ``RowError`` found in it (type errors of every cell first, then every
documented rule ``prepare_order()`` finds broken, field by field: see
:func:`_rule_errors`). A row is numbered by the line of the file it starts on (CSV: the
header is line 1, and a quoted value holding a line break makes a record span lines;
JSON Lines: its line), as an editor or a spreadsheet numbers it. Problems with the file as a whole
(missing, unreadable, not UTF-8, no orders, unknown columns, wrong format) raise
``InputFileError``; nothing else is raised (bar ValidationError for a bad ``max_amount``).

CSV headers name the request's fields in snake_case, dotted for nesting
(``recipient.address.postal_code``), plus ``custom_fields.<name>`` columns; an empty cell
means "not given". JSON Lines hold one order per line in the API's wire JSON (camelCase,
``externalRefID``), checked by msgspec (every error of a line, in the order of its keys,
under the snake_case field names). The request returned is the order as read;
``prepare_order()`` has checked it but its inferred fields (``delivery_method``) are not
filled in. A row keeps what that check returned, so a bulk job does not check it again
(``checked_request``).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import json
import os
import re
import stat
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
    "checked_request",
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
# A line longer than this is no order file (a binary file, /dev/zero): refused before it
# is read whole into memory. (Far above any valid row: a CSV cell is at most 131,072
# characters, csv's field limit.)
MAX_LINE = 1 << 24


class InputFileError(TangoError, ValueError):
    """The file as a whole cannot be read: missing, empty, no header, unknown columns,
    wrong format, bad encoding."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with one data row.

    ``row`` is the line of the file the row starts on, from 1 (CSV: the header is line 1,
    so the first data row is usually row 2; a record whose quoted value holds a line break
    spans lines and is numbered by its first; JSON Lines: the line). ``field`` is
    snake_case and dotted (``recipient.email``), ``""`` when the row as a whole cannot be
    read.
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
    """One data row: its request (None when it has errors) and its errors (empty if valid).

    ``row`` is the file line it starts on (see :class:`RowError`). ``record`` is its
    ordinal as tango-async 0.1 numbered rows (CSV: the record after the header is 1; JSON
    Lines: the line), which 0.1's row-number externalRefIDs (``submit_many(job_id=)``)
    are made of; None for a row built by hand (its ``row`` is used)."""

    row: int
    request: CreateOrderRequest | None
    errors: tuple[RowError, ...]
    # (request, what prepare_order() returned for it, the max_amount it was checked
    # against, the request's JSON then) for a row read_orders() checked, so that a job
    # checks each row once: see checked_request(). None for a row built by hand.
    _checked: tuple[CreateOrderRequest, CreateOrderRequest, Decimal, bytes] | None = (
        dataclasses.field(default=None, repr=False, compare=False)
    )
    record: int | None = dataclasses.field(default=None, repr=False, compare=False)


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
# The columns every order needs (a nested object's own, e.g. recipient.address.city, are
# needed only when the object is given)
_REQUIRED_COLUMNS = tuple(
    col for col, (path, leaf) in _COLUMNS.items() if len(path) == 1 and leaf.required
)


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


# --- msgspec errors -----------------------------------------------------------------------

_AT = re.compile(r" - at `(\$[^`]*)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


def _msgspec_rule(e: msgspec.ValidationError) -> str:
    return _AT.sub("", str(e))


def _msgspec_path(e: msgspec.ValidationError) -> list[str]:
    """The wire names (and indexes) of the path msgspec's error ends with (``[]``: the
    row as a whole). Its last `` - at `$...` `` is msgspec's own, after any text of ours."""
    m = _AT.search(str(e))
    if not m:
        return []
    return [key or index.strip("'\"") for key, index in _PATH_PART.findall(m.group(1)[1:])]


def _msgspec_field(e: msgspec.ValidationError) -> str:
    """``$.recipient.address.streetLine1`` -> ``recipient.address.street_line1``."""
    struct: type[msgspec.Struct] | None = CreateOrderRequest
    names: list[str] = []
    for part in _msgspec_path(e):
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
    *,
    record: int | None = None,
) -> InputRow:
    """The row of ``request``: checked against every documented rule (every field
    broken, see :func:`_rule_errors`). ``errors`` are those found reading the row; then
    ``request`` is what was read with a stand-in for each value found wrong (so the rest
    is checked too), and the row is invalid whatever the rules say."""
    if request is None:
        return InputRow(row, None, tuple(errors), record=record)
    wire, broken = _rule_errors(row, request, max_amount, known=[e.field for e in errors])
    errors = [*errors, *broken]
    if errors or wire is None:
        return InputRow(row, None, tuple(errors), record=record)
    seen = _snapshot(request)
    checked = None if seen is None else (request, wire, max_amount, seen)
    return InputRow(row, request, (), _checked=checked, record=record)


# --- every broken rule of a row -----------------------------------------------------------
#
# prepare_order() stops at the first rule broken. To report every field of a row that
# breaks one, the field it names is replaced (an optional one taken out, a required one
# given a stand-in that meets its rules) and the request checked again, until it passes;
# each pass takes one field out, so it ends. Stand-ins are the most lenient values (a
# country outside US and CA, whose postal and region rules are the loosest), so they add
# no error of their own. Once the delivery method is in doubt (delivery_method or
# send_email broken), the rules that depend on it (what a method requires) are not
# reported: the method the row meant is not known.

_STAND_INS: dict[str, Any] = {
    "customer_identifier": "placeholder",
    "account_identifier": "placeholder",
    "utid": "U000000",
    "amount": Decimal(1),
    "first_name": "Placeholder",
    "last_name": "Placeholder",
    "email": "placeholder@example.com",
    "mobile_number": "+12025550143",
    "street_line1": "1 Placeholder Street",
    "city": "Placeholder",
    "state_or_province": "NY",
    "postal_code": "10001",
    "country": "GB",
}
_METHOD_FIELDS = frozenset({"delivery_method", "send_email"})


def _unreadable(row: int) -> list[RowError]:
    """The error of a row that cannot be read as an order and has no other (never a row
    without a request and without an error: it would be dropped silently)."""
    return [RowError(row, "", "cannot be read as an order")]


_MAX_RULE_PASSES = 100  # more than a request has fields


def _rule_errors(
    row: int, request: CreateOrderRequest, max_amount: Decimal, *, known: Iterable[str] = ()
) -> tuple[CreateOrderRequest | None, list[RowError]]:
    """What ``prepare_order`` returns for ``request`` (None if a rule is broken) and every
    rule broken, one error per field (see the comment above). Fields in ``known`` (errors
    already found in them while reading) are not reported again."""
    skip = set(known)
    doubt = bool(skip & _METHOD_FIELDS)
    errors: list[RowError] = []
    tried: set[str] = set()
    for _ in range(_MAX_RULE_PASSES):
        try:
            wire = prepare_order(request, max_amount=max_amount)
        except ValidationError as e:
            field, rule = e.field, e.rule
            depends = doubt and (
                "delivery" in rule or (field.startswith("recipient") and "required" in rule)
            )
            if field not in skip and field not in tried and not depends:
                errors.append(RowError(row, field, rule))  # one error a field
            if field in tried:  # no stand-in helped: stop here
                return None, errors
            tried.add(field)
            doubt = doubt or field in _METHOD_FIELDS
            replaced = _without(request, field, rule)
            if replaced is None:
                return None, errors
            request = replaced
            continue
        return (None if errors or skip else wire), errors
    return None, errors  # pragma: no cover - each pass replaces a field


def _without(request: CreateOrderRequest, field: str, rule: str) -> CreateOrderRequest | None:
    """``request`` with the value of ``field`` (a dotted path) replaced by its stand-in,
    or taken out when it has none and is optional (for the model and for the rule broken:
    "is required..."); None when neither can be (a whole recipient or address missing)."""
    names = field.split(".")
    chain: list[msgspec.Struct] = [request]
    node: Any = request
    for i, name in enumerate(names):
        if not isinstance(node, msgspec.Struct) or name not in node.__struct_fields__:
            names = names[:i]  # e.g. custom_fields.<key>: take the whole attribute out
            break
        if i < len(names) - 1:
            node = getattr(node, name)
            chain.append(node)
    if not names:
        return None
    chain = chain[: len(names)]
    leaf = names[-1]
    parent = chain[-1]
    required = leaf not in _optional_fields(type(parent)) or rule.startswith("is required")
    value: Any = None  # an optional value is taken out, unless it has a stand-in
    if leaf in _STAND_INS:  # (taking out an email may break "EMAIL delivery needs one")
        value = _STAND_INS[leaf]
        if getattr(parent, leaf) == value:  # the stand-in itself is refused: give up
            return None
    elif required:
        return None
    new: Any = msgspec.structs.replace(parent, **{leaf: value})
    for struct, name in zip(reversed(chain[:-1]), reversed(names[:-1]), strict=True):
        new = msgspec.structs.replace(struct, **{name: new})
    result: CreateOrderRequest = new
    return result


def _optional_fields(struct: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(f.name for f in _shape(struct).values() if not f.required)


def checked_request(item: InputRow, max_amount: object) -> CreateOrderRequest | None:
    """What ``prepare_order(item.request, max_amount=max_amount)`` returns, without running
    it again, for a row ``read_orders`` checked against that ``max_amount``; None for any
    other row (one with errors, one built by hand or changed with ``dataclasses.replace``,
    one read with another ``max_amount``): check that one with ``prepare_order``.

    A request changed in place after reading (its Structs are mutable: a raised amount,
    an edited email) is told by its JSON, which no longer matches the one checked, and
    gets None: it is checked again, so no edit can slip past the rules or ``max_amount``."""
    checked = item._checked
    if checked is None or checked[0] is not item.request or item.errors:
        return None
    limit = checked[2]
    if isinstance(max_amount, bool) or not isinstance(max_amount, (Decimal, int)):
        return None
    if max_amount != limit or _snapshot(item.request) != checked[3]:
        return None
    return checked[1]


_SNAPSHOT = msgspec.json.Encoder(decimal_format="number", order="sorted")


def _snapshot(request: CreateOrderRequest) -> bytes | None:
    """The request's JSON, every field in a fixed order: equal bytes, equal request."""
    try:
        return _SNAPSHOT.encode(request)
    except (TypeError, ValueError, msgspec.EncodeError):
        return None


def _csv_row(
    row: int,
    cells: list[str],
    columns: list[tuple[str, tuple[str, ...], _Field | None]],
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
    *,
    record: int | None = None,
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
            if not field.required:  # left out, so the rest of the row is checked
                continue
            value = _STAND_INS.get(field.name)
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    if custom:
        tree[_CUSTOM] = custom
    _check_required(CreateOrderRequest, tree, "", errors, row)
    try:
        request = _construct(CreateOrderRequest, tree)
    except (TypeError, ValueError):  # a required value with no stand-in: only what was found
        return InputRow(row, None, tuple(errors or _unreadable(row)), record=record)
    return _finish(row, request, errors, max_amount, record=record)


def _check_required(
    struct: type[msgspec.Struct],
    tree: dict[str, Any],
    prefix: str,
    errors: list[RowError],
    row: int,
) -> None:
    """Report every required field missing from ``tree`` and give it its stand-in (so
    the rest of the row can be checked: see :func:`_rule_errors`)."""
    for f in _shape(struct).values():
        value = tree.get(f.name)
        if f.kind == "struct" and isinstance(value, dict):
            _check_required(f.type, value, f"{prefix}{f.name}.", errors, row)
        elif f.required and f.name not in tree:
            errors.append(RowError(row, prefix + f.name, "is required"))
            if f.name in _STAND_INS:
                tree[f.name] = _STAND_INS[f.name]
        elif f.required and tree[f.name] is None and f.name in _STAND_INS:
            tree[f.name] = _STAND_INS[f.name]


def _construct(struct: type[msgspec.Struct], tree: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    shape = {f.name: f for f in _shape(struct).values()}
    for name, value in tree.items():
        f = shape[name]
        kwargs[name] = _construct(f.type, value) if f.kind == "struct" else value
    return struct(**kwargs)


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


# --- JSON Lines: msgspec checks each line ---------------------------------------------------
#
# A line is parsed by ``json`` (numbers as exact Decimals; duplicate keys, NaN and Infinity
# refused), then converted by msgspec into input-row Structs: the request models' fields
# under their wire names, unknown keys forbidden, the amount and the expiration date as
# checked values (_JsonAmount, _JsonInstant, whose rules _dec_hook applies). msgspec stops
# at the first error: the reader names its field (snake_case, dotted) and rule, takes the
# value out (a required one is replaced by a placeholder) and converts again, so a row
# reports every error, in the order of its keys. Bounded: each pass takes out a known key,
# a run of unknown keys or the missing keys of one object, and duplicate keys are refused.


class _Checked:
    """A JSON value _dec_hook has checked and converted (msgspec wants its own type back)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _JsonAmount(_Checked):
    """An amount: a JSON number (not true/false), as an exact Decimal."""


class _JsonInstant(_Checked):
    """An expiration date: an ISO 8601 string with a timezone offset, as an aware datetime."""


class _RuleError(ValueError):
    """A rule _dec_hook found broken; msgspec chains it to the ValidationError it raises."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def _dec_hook(tp: type, value: Any) -> Any:
    if tp is _JsonAmount:
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise _RuleError(f"must be a JSON number, not {_json_type(value)}")
        # Decimal(int) keeps 10 as 10: msgspec would turn an int into the float 10.0.
        return _JsonAmount(Decimal(value) if isinstance(value, int) else value)
    if tp is _JsonInstant:
        if not isinstance(value, str):
            raise _RuleError(f"{_DATETIME_RULE}, not {_json_type(value)}")
        try:
            return _JsonInstant(_parse_datetime(value))
        except _CellError as e:
            raise _RuleError(e.rule) from None
    raise NotImplementedError(f"no JSON conversion to {tp!r}")  # pragma: no cover


# (attribute, its model if it is a nested Struct) of each request model, for _request_of.
_BUILD: dict[type[msgspec.Struct], list[tuple[str, type[msgspec.Struct] | None]]] = {}


def _row_struct(model: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """The input-row Struct of ``model``: its fields and wire names, unknown keys refused."""
    _BUILD[model] = [
        (f.name, f.type if f.kind == "struct" else None) for f in _shape(model).values()
    ]
    fields: list[tuple[str, Any, Any]] = []
    for f in _shape(model).values():
        tp: Any
        if f.kind == "struct":
            tp = _row_struct(f.type)
        else:  # the amount and the date get our rules; msgspec checks the rest itself
            tp = {"amount": _JsonAmount, "datetime": _JsonInstant}.get(f.kind, f.type)
        if f.required:
            fields.append((f.name, tp, msgspec.field(name=f.wire)))
        else:
            fields.append((f.name, tp | None, msgspec.field(default=None, name=f.wire)))
    return msgspec.defstruct(
        f"_Json{model.__name__}", fields, kw_only=True, forbid_unknown_fields=True
    )


_JSON_ROW = _row_struct(CreateOrderRequest)
# Stand-ins for a required value found wrong or missing, so msgspec checks the rest.
_PLACEHOLDERS: dict[_Kind, Any] = {
    "str": "",
    "amount": 1,
    "bool": False,
    "mapping": {},
    "datetime": "2000-01-01T00:00:00Z",
}
_TYPE_RULES: dict[_Kind, str] = {
    "str": "must be a string",
    "bool": "must be true or false",
    "struct": "must be an object",
    "mapping": "must be an object",
}
_MAX_PASSES = 1000  # far above what the bound in the comment above allows


def _request_of(model: type[msgspec.Struct], value: Any) -> Any:
    """The ``model`` (a request model) that an input-row Struct ``value`` stands for."""
    kwargs: dict[str, Any] = {}
    for name, nested in _BUILD[model]:
        v = getattr(value, name)
        if v is None:
            continue
        if nested is not None:
            v = _request_of(nested, v)
        elif isinstance(v, _Checked):
            v = v.value
        kwargs[name] = v
    return model(**kwargs)


def _first_unknown(
    struct: type[msgspec.Struct], node: dict[str, Any], prefix: str, *, strings: bool = False
) -> tuple[dict[str, Any], type[msgspec.Struct], str, str] | None:
    """The first unknown key in msgspec's order (depth first, in key order): the object
    holding it, that object's model, its field prefix and the key. ``strings``: also stop
    at a str value of a field of another type (true/false, an object), where msgspec stops
    with a UnicodeEncodeError on a lone surrogate."""
    shape = _shape(struct)
    for key, value in node.items():
        f = shape.get(key)
        if f is None:
            return node, struct, prefix, key
        if f.kind == "struct" and isinstance(value, dict):
            found = _first_unknown(f.type, value, f"{prefix}{f.name}.", strings=strings)
            if found is not None:
                return found
        elif strings and f.kind in _TYPE_RULES and f.kind != "str" and isinstance(value, str):
            return node, struct, prefix, key
    return None


def _first_unencodable(
    struct: type[msgspec.Struct], node: dict[str, Any], prefix: str
) -> tuple[dict[str, Any], type[msgspec.Struct], str, str] | None:
    """Where msgspec stopped with a UnicodeEncodeError (a lone surrogate), in its order: the
    first unknown key (the one it could not look up), or a str value it tried to read as
    another type (true/false, an object). The object, its model, its prefix and the key."""
    return _first_unknown(struct, node, prefix, strings=True)


def _object_at(
    obj: dict[str, Any], parts: list[str]
) -> tuple[dict[str, Any], type[msgspec.Struct], str] | None:
    """The object at the wire path ``parts``, its model and its field prefix."""
    struct: type[msgspec.Struct] = CreateOrderRequest
    node, prefix = obj, ""
    for part in parts:
        f = _shape(struct).get(part)
        value = node.get(part)
        if f is None or f.kind != "struct" or not isinstance(value, dict):
            return None
        node, struct, prefix = value, f.type, f"{prefix}{f.name}."
    return node, struct, prefix


def _take_out_unknown(obj: dict[str, Any], row: int, errors: list[RowError]) -> bool:
    """Record and take out the unknown key msgspec stopped at (found in ``obj``: the key,
    which may hold anything, is not parsed out of msgspec's message) and the unknown keys
    right after it in its object, which msgspec would stop at next."""
    found = _first_unknown(CreateOrderRequest, obj, "")
    if found is None:
        return False
    node, struct, prefix, key = found
    shape = _shape(struct)
    keys = list(node)
    for k in keys[keys.index(key) :]:
        if k in shape:
            break
        errors.append(RowError(row, prefix + escape(k), _unknown_key_rule(k, shape)))
        del node[k]
    return True


def _take_out_unencodable(obj: dict[str, Any], row: int, errors: list[RowError]) -> bool:
    """Record and take out what made msgspec raise UnicodeEncodeError (see
    :func:`_first_unencodable`)."""
    found = _first_unencodable(CreateOrderRequest, obj, "")
    if found is None:
        return False
    node, struct, prefix, key = found
    f = _shape(struct).get(key)
    if f is None:
        return _take_out_unknown(obj, row, errors)
    errors.append(RowError(row, prefix + f.name, f"{_TYPE_RULES[f.kind]}, not a string"))
    if f.required:  # pragma: no cover - no model requires a non-str field msgspec reads
        return False
    del node[key]
    return True


def _take_out(
    e: msgspec.ValidationError, obj: dict[str, Any], row: int, errors: list[RowError]
) -> bool:
    """Record msgspec's error ``e`` about ``obj`` in ``errors`` (the field in snake_case,
    the library's rule) and take the value out of ``obj``; False if ``e`` fits no field."""
    message = str(e)
    if message.startswith("Object contains unknown field"):
        return _take_out_unknown(obj, row, errors)
    parts = _msgspec_path(e)
    if message.startswith("Object missing required field"):
        at = _object_at(obj, parts)
        if at is None:
            return False
        node, struct, prefix = at
        missing = [f for f in _shape(struct).values() if f.required and f.wire not in node]
        for m in missing:
            errors.append(RowError(row, prefix + m.name, f"is required (JSON key {m.wire!r})"))
            node[m.wire] = _PLACEHOLDERS.get(m.kind)
        return bool(missing) and all(m.kind in _PLACEHOLDERS for m in missing)
    at = _object_at(obj, parts[:-1]) if parts else None
    if at is None:
        return False
    node, struct, prefix = at
    f = _shape(struct).get(parts[-1])
    if f is None or f.wire not in node:
        return False
    value = node[f.wire]
    if value is None and f.required:
        rule = "is required (got null)"
    elif isinstance(e.__cause__, _RuleError):
        rule = e.__cause__.rule
    elif f.kind in _TYPE_RULES:
        rule = f"{_TYPE_RULES[f.kind]}, not {_json_type(value)}"
    else:  # pragma: no cover - every field of the models has a rule above
        rule = _msgspec_rule(e)
    errors.append(RowError(row, prefix + f.name, rule))
    if not f.required:
        del node[f.wire]
        return True
    if f.kind not in _PLACEHOLDERS:  # pragma: no cover - no model requires such a field
        return False
    node[f.wire] = _PLACEHOLDERS[f.kind]
    return True


def _jsonl_request(
    row: int, obj: dict[str, Any]
) -> tuple[CreateOrderRequest | None, list[RowError]]:
    """The request a JSON object stands for, or every error msgspec finds in it."""
    errors: list[RowError] = []
    for _ in range(_MAX_PASSES):
        try:
            value = msgspec.convert(obj, _JSON_ROW, dec_hook=_dec_hook)
        except msgspec.ValidationError as e:
            if not _take_out(e, obj, row, errors):  # pragma: no cover - see _take_out
                errors.append(RowError(row, _msgspec_field(e), _msgspec_rule(e)))
                return None, errors
            continue
        except UnicodeEncodeError:  # a lone surrogate in a key or a str msgspec reads
            if not _take_out_unencodable(obj, row, errors):  # pragma: no cover
                errors.append(RowError(row, "", "is not valid Unicode (a lone surrogate)"))
                return None, errors
            continue
        # With errors, ``value`` holds stand-ins for what was wrong: the rules are still
        # checked on the rest of the row (see _finish)
        request: CreateOrderRequest = _request_of(CreateOrderRequest, value)
        return request, errors
    return None, errors  # pragma: no cover - each pass takes something out


def _jsonl_row(row: int, line: str, max_amount: Decimal = DEFAULT_MAX_AMOUNT) -> InputRow:
    try:
        obj = json.loads(
            line, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_pairs
        )
    except _DuplicateKey as e:
        return InputRow(row, None, (RowError(row, "", str(e)),), record=row)
    except ValueError as e:  # json.JSONDecodeError and the NaN / Infinity refusal
        return InputRow(row, None, (RowError(row, "", f"is not valid JSON: {e}"),), record=row)
    except RecursionError:
        return InputRow(row, None, (RowError(row, "", "is nested too deeply"),), record=row)
    if not isinstance(obj, dict):
        why = f"must be a JSON object, not {_json_type(obj)}"
        return InputRow(row, None, (RowError(row, "", why),), record=row)
    request, errors = _jsonl_request(row, obj)
    if request is None:
        return InputRow(row, None, tuple(errors), record=row)
    try:
        return _finish(row, request, errors, max_amount, record=row)
    except (TypeError, ValueError, msgspec.ValidationError):  # pragma: no cover - stand-ins
        return InputRow(row, None, tuple(errors or _unreadable(row)), record=row)


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
        mode = os.stat(p).st_mode
    except OSError as e:
        raise _os_error(p, e) from None
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise InputFileError(
            f"{p}: is not a regular file (a pipe or a device): an input file is read twice "
            "(its orders, then its digest), so save it to a file first"
        )
    try:
        with open(p, encoding="utf-8-sig", newline="" if fmt == "csv" else None) as f:
            lines = _bounded_lines(p, f)
            rows = _read_csv(p, lines, limit) if fmt == "csv" else _read_jsonl(p, lines, limit)
    except UnicodeDecodeError:
        raise InputFileError(
            f"{p}: is not UTF-8 text ({_where_not_utf8(p)}); save it as UTF-8"
        ) from None
    except OSError as e:
        raise _os_error(p, e) from None
    if not rows:
        raise InputFileError(f"{p}: has no orders")
    return rows


def _bounded_lines(p: Path, f: Any) -> Iterator[str]:
    """The lines of the text file ``f`` (as iterating it gives them), each read at most
    :data:`MAX_LINE` characters at a time: a longer line is an InputFileError naming it,
    never a whole file read into memory."""
    number = 0
    while line := f.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE:
            raise InputFileError(
                f"{p}: line {number} is longer than {MAX_LINE:,} characters: not an order "
                "file (a binary file?)"
            )
        yield line


def _where_not_utf8(p: Path) -> str:
    """Where the first byte that is not UTF-8 is (UTF-8 never uses byte 0x0A inside a
    character, so decoding line by line finds it exactly)."""
    offset, number = 0, 1
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(p, "rb") as f:
            # (read at most MAX_LINE bytes at a time: a binary file may have no line break)
            while raw := f.readline(MAX_LINE):
                pending = decoder.getstate()[0]  # the start of a character cut by the read
                try:
                    decoder.decode(raw)
                except UnicodeDecodeError as e:
                    return (
                        f"line {number}, byte offset {offset - len(pending) + e.start}: "
                        f"{e.object[e.start : e.start + 1]!r}"
                    )
                offset += len(raw)
                number += raw.endswith(b"\n")
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
        end = reader.line_num  # the last line read: the header's
        # ``record`` numbers records as 0.1 did (its row-number externalRefIDs); ``line``,
        # the row number, is the line the record starts on (a quoted line break makes a
        # record span lines)
        for record, cells in enumerate(reader, 1):
            line, end = end + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue  # a blank line, or a row of empty cells: no order, number kept
            if len(cells) != len(columns):
                rule = f"has {len(cells)} cells but the header has {len(columns)} columns"
                rows.append(InputRow(line, None, (RowError(line, "", rule),), record=record))
                continue
            rows.append(_csv_row(line, cells, columns, max_amount, record=record))
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
    if not unknown:
        given = {c[0] for c in columns}
        missing = [c for c in _REQUIRED_COLUMNS if c not in given]
        if missing:
            raise InputFileError(
                f"{p}: the header has no {', '.join(map(repr, missing))} column"
                f"{'s' if len(missing) > 1 else ''} (every order needs "
                f"{'them' if len(missing) > 1 else 'it'}); the header is line 1 of a CSV "
                f"file, known columns: {_KNOWN}"
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
    if rows and all(
        len(r.errors) == 1 and r.errors[0].rule.startswith("is not valid JSON") for r in rows
    ):
        raise InputFileError(
            f"{p}: is not JSON Lines (no line of it is JSON); for a CSV file, name it .csv "
            "or read it as CSV (format='csv'; the CLI's --input-format csv)"
        )
    return rows
