"""Reading the input file of a bulk order job: CSV or JSON Lines, one order per row.

``read_orders()`` returns one ``InputRow`` per data row: the ``CreateOrderRequest`` it
stands for, or every ``RowError`` found in it (type errors of every cell first, then the
first documented rule ``prepare_order()`` finds broken). Problems with the file as a whole
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

import csv
import dataclasses
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
    # (request, what prepare_order() returned for it, the max_amount it was checked
    # against, the request's JSON then) for a row read_orders() checked, so that a job
    # checks each row once: see checked_request(). None for a row built by hand.
    _checked: tuple[CreateOrderRequest, CreateOrderRequest, Decimal, bytes] | None = (
        dataclasses.field(default=None, repr=False, compare=False)
    )


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
) -> InputRow:
    if request is not None and not errors:
        try:
            wire = prepare_order(request, max_amount=max_amount)
        except ValidationError as e:
            errors.append(RowError(row, e.field, e.rule))
        else:
            seen = _snapshot(request)
            checked = None if seen is None else (request, wire, max_amount, seen)
            return InputRow(row, request, (), _checked=checked)
    return InputRow(row, None, tuple(errors))


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
        if errors:
            return None, errors
        request: CreateOrderRequest = _request_of(CreateOrderRequest, value)
        return request, errors
    return None, errors  # pragma: no cover - each pass takes something out


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
    request, errors = _jsonl_request(row, obj)
    if request is None:
        return InputRow(row, None, tuple(errors))
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
