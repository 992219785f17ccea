"""Contract checker: HTTP requests and responses of the orders API against Tango's OpenAPI.

Paths outside the ``/raas/v2`` base path (the OAuth token endpoint, ``/oauth/token``) are
checked against Tango's auth description (``tangocard-auth-openapi.json``, shipped with
this package too) after the corrections of AUTH_SPEC_CORRECTIONS; its request body is a
form, passed to :meth:`ContractChecker.check_request` as a dict of its fields with
``content_type="application/x-www-form-urlencoded"``.

``ContractChecker`` validates a parsed JSON body against the schema that Tango's OpenAPI
description (``tangocard-openapi.json``, shipped with this package) gives for the route,
method and status, after the corrections listed below. Each problem is one
``ContractViolation`` whose message is the JSON path of the offending value and the
jsonschema message, e.g. ``$.amount: '10' is not of type 'number'``.

This module needs ``jsonschema`` (the ``testing`` extra): import it only when contract
checking is enabled.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT202012

__all__ = [
    "AUTH_SPEC_CORRECTIONS",
    "SPEC_CORRECTIONS",
    "ContractChecker",
    "ContractViolation",
    "load_auth_spec",
    "load_spec",
]

SPEC_CORRECTIONS = """\
Corrections applied to tangocard-openapi.json, all by _correct() on a deep copy:

1. RewardView.credentials is an object mapping label -> string (the spec types it "string";
   every doc example shows a map, e.g. {"redemptionUrl": ..., "expirationDate": ...}), and
   RewardView no longer requires it (deprecated in favour of credentialList).
2. Response "required" lists relaxed to what the doc examples always carry (the "Manage
   orders" page: two POST /orders responses, two GET /orders/{referenceOrderID} responses,
   one GET /orders page). Names dropped:
   - OrderViewSummary (POST /orders 200/201): campaign, emailSubject, message,
     referenceLineItemID. The Promo Link example has none of them; neither example has
     referenceLineItemID. Still required: accountIdentifier, amountCharged, createdAt,
     customerIdentifier, denomination, externalRefID, recipient, referenceOrderID, reward,
     rewardName, sender, status, utid.
   - OrderViewVerbose (GET /orders/{referenceOrderID}): campaign, emailSubject, etid,
     message. The Promo Link example has none of them. Still required: accountIdentifier,
     accountNumber, amountCharged, createdAt, customerIdentifier, referenceOrderID, reward,
     rewardName, status, utid.
   - OrderListItemView (GET /orders, orders[]): campaign, emailSubject, etid, message. The
     one list example is a generated template listing every field; these are the fields
     that are optional when the order is created and that the same order's detail view
     (the Promo Link example) omits, so they are relaxed alike. Still required:
     accountIdentifier, accountNumber, amountCharged, createdAt, customerIdentifier,
     referenceOrderID, rewardName, status, utid.
   - RewardView: credentials (see 1).
3. CreateOrderCriteria.deliveryMethod is not required (request): the spec itself gives it a
   default (EMAIL), the create-order body table of the docs does not list it, and the newer
   "Manage orders" page says the API infers it when it is not provided. Still required:
   accountIdentifier, amount, customerIdentifier, utid.
4. Every property of every schema may be null (Tango writes explicit nulls for absent
   values; the doc examples show "address": null): "null" is added to the "type" of a
   property schema with a single type and no enum, const, $ref or combinator; any other
   property schema P becomes {"anyOf": [P, {"type": "null"}]} (a violation inside P is
   reported as P's own message). Required properties must still be present. Exception:
   the required properties of schemas used only in request bodies (CreateOrderCriteria:
   accountIdentifier, amount, customerIdentifier, utid) stay non-null; the docs allow null
   in a request only for optional values (the recipient address of a digital order).
5. Unknown fields are allowed everywhere: any "additionalProperties": false or
   "unevaluatedProperties": false is removed (the spec as published has none).
6. Every oneOf becomes anyOf. The spec's unions (e.g. ErrorInfo | ErrorDTO for the 404 of
   GET /lineItems/{referenceLineItemID}) are of open object schemas without required
   properties: every object matches both branches, so oneOf would reject every body.
7. Every operation gets "4XX" and "5XX" responses with the ErrorInfo schema unless it
   already lists those ranges: any 4xx/5xx status not listed for a route validates against
   ErrorInfo (createOrder lists no 500, though 5XX answers happen).

9. A "pattern" with Unicode property escapes (\\p{...}), which Python's re cannot compile
   (CreateCustomerCriteria.displayName: ^[\\p{L}\\p{N}\\p{P}\\p{Z}]{5,100}$), is dropped;
   the length its last {m,n} gives is kept as minLength / maxLength. The character rule
   is checked by the client and the sandbox.

10. The 200 of GET /rewardCountries is Tango's cursor page (prevCursor, nextCursor,
   prevPageAvailable, nextPageAvailable, maxResults, and items: an array of
   CountryViewSummary), as the "Manage countries and currencies" page shows; the spec gives
   a single CountryViewSummary. The 200 of GET /mobileCountries is a list of
   MobileCountryView, bare or as the items of such a page (the spec gives one object).

Done by the checker's route matching rather than in the spec:
8. Path template parameters match any one non-empty path segment whatever their name
   ({referenceLineItemId} on the line-item resend path, {referenceLineItemID} on the other
   line-item paths); a literal segment wins over a parameter; the /raas/v2 base path (absent
   from the spec's paths), a scheme and host, and a query string are stripped first.

Not corrections, for the record: formats (date-time, int32, int64) are annotations only
(JSON Schema 2020-12 default), and query parameters are not checked.
"""

AUTH_SPEC_CORRECTIONS = """\
Corrections applied to tangocard-auth-openapi.json (POST /oauth/token), by
_correct_auth() on a deep copy:

A1. grant_type also takes "client_credentials" (Tango's pages document it beside
    "password", the only value the description lists); username and password are
    required only when grant_type is "password". Still required: client_id,
    client_secret, scope (raas.all), audience (one of the two documented), grant_type.
A2. 400 and 401 may answer application/json with the OAuth 2.0 error object of RFC 6749
    section 5.2 ({"error": string, required; "error_description": string}), which is
    what a token endpoint answers (the description lists text/plain with an empty
    example; text/plain stays allowed). Any other 4xx/5xx status validates the same way.
A3. The 200 body is typed from the description's own example, which it otherwise leaves
    a bare object: access_token (a non-empty string) and token_type (a string) required,
    expires_in an integer or a string of digits (the example writes "<integer>"), scope
    a string. Unknown fields stay allowed.
"""

__doc__ = (__doc__ or "") + "\n" + SPEC_CORRECTIONS + "\n" + AUTH_SPEC_CORRECTIONS

# Base URI under which the corrected spec is registered; refs inside it ("#/components/...")
# resolve against it. Never fetched: the registry has no retriever.
_SPEC_URI = "https://tango-async.invalid/tangocard-openapi.json"
_BASE_PATH = "/raas/v2"
_NULLABLE_MARK = "x-tango-async-nullable"  # marks the anyOf wrappers added by correction 4
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# Correction 2 and 3 (and the "required" half of 1): schema -> names dropped from "required".
_REQUIRED_DROPS: dict[str, tuple[str, ...]] = {
    "OrderViewSummary": ("campaign", "emailSubject", "message", "referenceLineItemID"),
    "OrderViewVerbose": ("campaign", "emailSubject", "etid", "message"),
    "OrderListItemView": ("campaign", "emailSubject", "etid", "message"),
    "RewardView": ("credentials",),
    "CreateOrderCriteria": ("deliveryMethod",),
}


class ContractViolation(NamedTuple):
    """One disagreement between an HTTP exchange and the (corrected) spec."""

    direction: str  # "request" or "response"
    method: str  # upper case, e.g. "POST"
    path: str  # the path as given to the checker
    status: int | None  # the response status; None for a request
    message: str  # "<JSON path>: <jsonschema message>", or what is wrong with the route

    def __str__(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.direction} {self.method} {self.path}{status}: {self.message}"


def load_spec(
    path: str | os.PathLike[str] | None = None, *, packaged: str = "tangocard-openapi.json"
) -> dict[str, Any]:
    """Read an OpenAPI description; by default the copy shipped with ``tango_async.testing``."""
    if path is None:
        ref = resources.files("tango_async") / "testing" / packaged
        text = ref.read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    spec = json.loads(text)
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        raise ValueError(f"{path or 'packaged spec'}: not an OpenAPI description (no paths)")
    return spec


def load_auth_spec(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read the OAuth token endpoint's description; by default the packaged copy."""
    return load_spec(path, packaged="tangocard-auth-openapi.json")


# --- corrections ---------------------------------------------------------------------------


def _correct(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Return a deep copy of ``spec`` with every correction of SPEC_CORRECTIONS applied.

    This is the only place that changes the spec; the numbers refer to SPEC_CORRECTIONS.
    Parts a custom spec lacks (a schema, ErrorInfo) are skipped.
    """
    out: dict[str, Any] = copy.deepcopy(dict(spec))
    schemas: dict[str, Any] = out.setdefault("components", {}).setdefault("schemas", {})

    # 1. RewardView.credentials: a map label -> string, not a string.
    reward = schemas.get("RewardView")
    if isinstance(reward, dict) and isinstance(reward.get("properties"), dict):
        old = reward["properties"].get("credentials", {})
        reward["properties"]["credentials"] = {
            **{k: old[k] for k in ("title", "description") if k in old},
            "type": "object",
            "additionalProperties": {"type": "string"},
            "deprecated": True,
        }

    # 1-3. Names dropped from "required" lists.
    for name, dropped in _REQUIRED_DROPS.items():
        schema = schemas.get(name)
        if isinstance(schema, dict) and isinstance(schema.get("required"), list):
            schema["required"] = [r for r in schema["required"] if r not in dropped]
            if not schema["required"]:
                del schema["required"]

    # 4-6 touch every schema object: collect them first (with whether the schema is used only
    # in request bodies), then change them, so the wrappers added by 4 are not visited.
    request_only = _request_only_schemas(out)
    found: list[tuple[dict[str, Any], bool]] = []
    for name, schema in schemas.items():
        _collect(schema, name in request_only, found)
    for op in _operations(out):
        body = op.get("requestBody")
        if isinstance(body, dict):
            for media in body.get("content", {}).values():
                _collect(media.get("schema"), True, found)
        for response in op.get("responses", {}).values():
            for media in response.get("content", {}).values():
                _collect(media.get("schema"), False, found)
    for schema, in_request in found:
        # 5. Unknown fields allowed.
        for keyword in ("additionalProperties", "unevaluatedProperties"):
            if schema.get(keyword) is False:
                del schema[keyword]
        # 6. oneOf -> anyOf.
        if "oneOf" in schema:
            branches = schema.pop("oneOf")
            if "anyOf" in schema:
                schema.setdefault("allOf", []).append({"anyOf": branches})
            else:
                schema["anyOf"] = branches
        # 4. Every property may be null (but required ones of request-only schemas).
        properties = schema.get("properties")
        if isinstance(properties, dict):
            keep = set(schema.get("required", ())) if in_request else set()
            for key, sub in properties.items():
                if key not in keep and not _allows_null(sub):
                    properties[key] = _nullable(sub)

    # 9. Patterns Python's re cannot compile (\p{..}): dropped, their {m,n} kept as lengths.
    for schema, _ in found:
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and "\\p{" in pattern:
            del schema["pattern"]
            bounds = re.search(r"\{(\d+),(\d+)\}\$?$", pattern)
            if bounds is not None:
                schema.setdefault("minLength", int(bounds.group(1)))
                schema.setdefault("maxLength", int(bounds.group(2)))

    # 10. The country lists are lists (a cursor page of them), not one object.
    for route, schema_name in (
        ("/rewardCountries", "CountryViewSummary"),
        ("/mobileCountries", "MobileCountryView"),
    ):
        if schema_name not in schemas:
            continue
        op = out.get("paths", {}).get(route, {}).get("get")
        media = (op or {}).get("responses", {}).get("200", {}).get("content", {})
        if "application/json" in media:
            items = {"type": "array", "items": {"$ref": f"#/components/schemas/{schema_name}"}}
            page = {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "items": items,
                    "prevCursor": {"type": ["string", "null"]},
                    "nextCursor": {"type": ["string", "null"]},
                    "prevPageAvailable": {"type": ["boolean", "null"]},
                    "nextPageAvailable": {"type": ["boolean", "null"]},
                    "maxResults": {"type": ["integer", "null"]},
                },
            }
            shapes = [page] if route == "/rewardCountries" else [items, page]
            media["application/json"]["schema"] = (
                shapes[0] if len(shapes) == 1 else {"anyOf": shapes}
            )

    # 7. Unlisted 4xx/5xx statuses answer with ErrorInfo.
    if "ErrorInfo" in schemas:
        error = {
            "description": "Any error status the operation does not list (tango_async correction)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorInfo"}}},
        }
        for op in _operations(out):
            responses = op.setdefault("responses", {})
            for status_range in ("4XX", "5XX"):
                responses.setdefault(status_range, copy.deepcopy(error))
    return out


def _operations(spec: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for item in spec.get("paths", {}).values():
        if isinstance(item, dict):
            for method, op in item.items():
                if method in _METHODS and isinstance(op, dict):
                    yield op


_MAP_KEYWORDS = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")
_SCHEMA_KEYWORDS = (
    "items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "not",
    "if", "then", "else", "contains", "propertyNames", "contentSchema",
)  # fmt: skip
_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf", "prefixItems")


def _subschemas(schema: Mapping[str, Any]) -> Iterator[Any]:
    for keyword in _MAP_KEYWORDS:
        value = schema.get(keyword)
        if isinstance(value, dict):
            yield from value.values()
    for keyword in _SCHEMA_KEYWORDS:
        if keyword in schema:
            yield schema[keyword]
    for keyword in _LIST_KEYWORDS:
        value = schema.get(keyword)
        if isinstance(value, list):
            yield from value


def _collect(schema: Any, in_request: bool, found: list[tuple[dict[str, Any], bool]]) -> None:
    if isinstance(schema, dict):
        found.append((schema, in_request))
        for sub in _subschemas(schema):
            _collect(sub, in_request, found)


def _refs(schema: Any) -> Iterator[str]:
    """Names of the components.schemas that ``schema`` refers to directly."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[1]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def _request_only_schemas(spec: Mapping[str, Any]) -> set[str]:
    """components.schemas reachable from request bodies and from no response or parameter."""
    schemas = spec.get("components", {}).get("schemas", {})

    def closure(roots: list[Any]) -> set[str]:
        seen: set[str] = set()
        todo = [name for root in roots for name in _refs(root)]
        while todo:
            name = todo.pop()
            if name not in seen and name in schemas:
                seen.add(name)
                todo.extend(_refs(schemas[name]))
        return seen

    requests: list[Any] = []
    others: list[Any] = []
    for op in _operations(spec):
        requests.append(op.get("requestBody"))
        others.append(op.get("responses"))
        others.append(op.get("parameters"))
    for item in spec.get("paths", {}).values():
        if isinstance(item, dict):
            others.append(item.get("parameters"))
    return closure(requests) - closure(others)


def _nullable(schema: Any) -> Any:
    """``schema`` or null: "null" added to a single "type" (the fast form), else anyOf."""
    if (
        isinstance(schema, dict)
        and isinstance(schema.get("type"), str)
        and not {"enum", "const", "$ref", "allOf", "anyOf", "oneOf", "not"} & schema.keys()
    ):
        schema["type"] = [schema["type"], "null"]
        return schema
    return {"anyOf": [schema, {"type": "null"}], _NULLABLE_MARK: True}


def _allows_null(schema: Any) -> bool:
    if schema is True or schema == {}:
        return True
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind)


_OAUTH_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    "required": ["error"],
}


def _correct_auth(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the auth spec with AUTH_SPEC_CORRECTIONS applied (the only place
    that changes it). Parts a custom spec lacks are skipped."""
    out: dict[str, Any] = copy.deepcopy(dict(spec))
    op = out.get("paths", {}).get("/oauth/token", {}).get("post")
    if not isinstance(op, dict):
        return out
    # A1. client_credentials; username and password only for the password grant.
    form = (
        op.get("requestBody", {})
        .get("content", {})
        .get("application/x-www-form-urlencoded", {})
        .get("schema")
    )
    if isinstance(form, dict) and isinstance(form.get("properties"), dict):
        grant = form["properties"].get("grant_type")
        if isinstance(grant, dict) and isinstance(grant.get("enum"), list):
            grant["enum"] = [*grant["enum"], "client_credentials"]
        if isinstance(form.get("required"), list):
            form["required"] = [r for r in form["required"] if r not in ("username", "password")]
        form["if"] = {
            "properties": {"grant_type": {"const": "password"}},
            "required": ["grant_type"],
        }
        form["then"] = {"required": ["username", "password"]}
    # A2. RFC 6749 error objects as JSON, on 400, 401 and any other error status.
    responses = op.setdefault("responses", {})
    for status in ("400", "401", "4XX", "5XX"):
        response = responses.setdefault(status, {"description": "error (tango_async correction)"})
        response.setdefault("content", {})["application/json"] = {
            "schema": copy.deepcopy(_OAUTH_ERROR)
        }
    # A3. The 200 body's fields, from the example.
    ok = responses.get("200", {}).get("content", {}).get("application/json")
    if isinstance(ok, dict):
        ok["schema"] = {
            "type": "object",
            "properties": {
                "access_token": {"type": "string", "minLength": 1},
                "token_type": {"type": "string"},
                "expires_in": {
                    "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}]
                },
                "scope": {"type": "string"},
            },
            "required": ["access_token", "token_type"],
        }
    return out


@cache
def _default_compiled() -> _Compiled:
    return _Compiled(load_spec())


@cache
def _default_auth_compiled() -> _Compiled:
    return _Compiled(load_auth_spec(), correct=_correct_auth)


# --- checking ------------------------------------------------------------------------------


def _escape(token: str) -> str:
    """One JSON-pointer reference token."""
    return token.replace("~", "~0").replace("/", "~1")


def _normalize_path(path: str) -> str:
    if "://" in path:
        path = urlsplit(path).path
    path = path.split("?", 1)[0].split("#", 1)[0]
    if path == _BASE_PATH or path.startswith(_BASE_PATH + "/"):
        path = path[len(_BASE_PATH) :] or "/"
    return path


class _Route(NamedTuple):
    template: str
    segments: tuple[str | None, ...]  # None: a template parameter
    item: dict[str, Any]


class _Compiled:
    """A corrected spec with its registry, routes and validators (built lazily, kept)."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        correct: Callable[[Mapping[str, Any]], dict[str, Any]] = _correct,
    ) -> None:
        self.spec = correct(spec)
        resource = DRAFT202012.create_resource(self.spec)
        self.registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
        by_length: dict[int, list[_Route]] = {}
        for template, item in self.spec["paths"].items():
            if not isinstance(item, dict):
                continue
            segments = tuple(
                None if s.startswith("{") and s.endswith("}") else s
                for s in template.split("/")[1:]
            )
            by_length.setdefault(len(segments), []).append(_Route(template, segments, item))
        # Most specific first: at the first position where two templates differ in kind,
        # the literal segment wins.
        for routes in by_length.values():
            routes.sort(key=lambda r: tuple(s is None for s in r.segments))
        self.routes = by_length
        self.validators: dict[str, Any] = {}

    def route(self, path: str) -> _Route | None:
        normalized = _normalize_path(path)
        if not normalized.startswith("/"):
            return None
        segments = normalized.split("/")[1:]
        for route in self.routes.get(len(segments), ()):
            if all(
                (s != "") if t is None else (s == t)
                for t, s in zip(route.segments, segments, strict=True)
            ):
                return route
        return None

    def validator(self, pointer: str) -> Any:
        validator = self.validators.get(pointer)
        if validator is None:
            schema = {"$ref": f"{_SPEC_URI}#{pointer}"}
            validator = Draft202012Validator(schema, registry=self.registry)
            self.validators[pointer] = validator
        return validator

    def resolve(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow local "$ref"s of a request body or response object."""
        for _ in range(32):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if not (isinstance(ref, str) and ref.startswith("#/")):
                break
            pointer = ref[1:]
            node = self.spec
            for token in pointer.split("/")[1:]:
                node = node[token.replace("~1", "/").replace("~0", "~")]
        return node, pointer


def _leaf_errors(error: Any) -> Iterator[Any]:
    """The errors to report: a failed nullable wrapper is reported as its non-null branch."""
    if isinstance(error.schema, dict) and error.schema.get(_NULLABLE_MARK):
        branch = [e for e in error.context if e.relative_schema_path[0] == 0]
        if branch:
            for sub in branch:
                yield from _leaf_errors(sub)
            return
    yield error


class ContractChecker:
    """Validates orders-API request and response bodies against Tango's corrected OpenAPI.

    ``spec=None`` uses the packaged spec (corrected once per process and shared, with its
    validators, by every checker built that way). Validators are built once per schema.
    Paths outside ``/raas/v2`` are checked against ``auth_spec`` (None: the packaged
    tangocard-auth-openapi.json, corrected as AUTH_SPEC_CORRECTIONS says).
    """

    def __init__(
        self, spec: Mapping[str, Any] | None = None, *, auth_spec: Mapping[str, Any] | None = None
    ) -> None:
        self._compiled = _default_compiled() if spec is None else _Compiled(spec)
        self._auth_spec = auth_spec
        self._auth: _Compiled | None = None

    def _spec_for(self, path: str) -> _Compiled:
        """The RaaS spec for paths under /raas/v2 (or that it routes), else the auth spec."""
        if self._compiled.route(path) is not None:
            return self._compiled
        bare = urlsplit(path).path if "://" in path else path.split("?", 1)[0]
        if bare == _BASE_PATH or bare.startswith(_BASE_PATH + "/"):
            return self._compiled
        if self._auth is None:
            self._auth = (
                _default_auth_compiled()
                if self._auth_spec is None
                else _Compiled(self._auth_spec, correct=_correct_auth)
            )
        return self._auth if self._auth.route(path) is not None else self._compiled

    def check_request(
        self, method: str, path: str, body: Any, *, content_type: str | None = None
    ) -> list[ContractViolation]:
        """Problems of a request body (parsed JSON; None: no body) for ``method path``.

        ``content_type`` None means JSON; ``"application/x-www-form-urlencoded"`` checks
        ``body`` (a dict of the form's fields) against the form schema."""
        method_u = method.upper()

        def violation(message: str) -> ContractViolation:
            return ContractViolation("request", method_u, path, None, message)

        compiled = self._spec_for(path)
        found = self._operation(method_u, path, compiled)
        if isinstance(found, str):
            return [violation(found)]
        op, pointer = found
        request_body, body_pointer = compiled.resolve(
            op.get("requestBody"), pointer + "/requestBody"
        )
        if not isinstance(request_body, dict):
            if body is None:
                return []
            return [violation("the operation takes no request body")]
        if body is None:
            return [violation("a request body is required")] if request_body.get("required") else []
        content = request_body.get("content") or {}
        if content_type is None:
            media = _json_media(content)
            if media is None:
                return [violation(f"no JSON request body declared (only {sorted(content)})")]
        else:
            wanted = content_type.split(";", 1)[0].strip().lower()
            media = next((m for m in content if m.lower() == wanted), None)
            if media is None:
                return [violation(f"Content-Type {content_type!r} is not among {sorted(content)}")]
        if "schema" not in content[media]:
            return []
        schema_pointer = f"{body_pointer}/content/{_escape(media)}/schema"
        return self._validate(schema_pointer, body, violation, compiled)

    def check_response(
        self,
        method: str,
        path: str,
        status: int,
        body: Any,
        content_type: str | None = "application/json",
    ) -> list[ContractViolation]:
        """Problems of a response (body parsed JSON; None: no body) to ``method path``.

        The schema is that of ``status``, else of its range ("4XX", "5XX": ErrorInfo for every
        operation, see SPEC_CORRECTIONS 7), else of "default"; another status is a violation.
        """
        method_u = method.upper()

        def violation(message: str) -> ContractViolation:
            return ContractViolation("response", method_u, path, status, message)

        compiled = self._spec_for(path)
        found = self._operation(method_u, path, compiled)
        if isinstance(found, str):
            return [violation(found)]
        op, pointer = found
        responses = op.get("responses") or {}
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                break
        else:
            return [violation(f"status {status} is not documented (only {sorted(responses)})")]
        response, response_pointer = compiled.resolve(
            responses[key], f"{pointer}/responses/{_escape(key)}"
        )
        content = (response.get("content") if isinstance(response, dict) else None) or {}
        if not content:
            if body is None:
                return []
            return [violation(f"status {status} has no body in the spec, got one")]

        problems: list[ContractViolation] = []
        if content_type is None:
            problems.append(violation(f"no Content-Type; the spec declares {sorted(content)}"))
            media = _json_media(content) or next(iter(content))
        else:
            media_type = content_type.split(";", 1)[0].strip().lower()
            declared = {m.lower(): m for m in content}
            media = declared.get(media_type)
            if media is None and (media_type.endswith("+json") or media_type.endswith("/json")):
                media = _json_media(content)
            if media is None:
                message = f"Content-Type {content_type!r} is not among {sorted(content)}"
                return [violation(message)]
        if "schema" not in content[media]:
            return problems
        schema_pointer = f"{response_pointer}/content/{_escape(media)}/schema"
        return problems + self._validate(schema_pointer, body, violation, compiled)

    # --- internals

    def _operation(
        self, method: str, path: str, compiled: _Compiled | None = None
    ) -> tuple[dict[str, Any], str] | str:
        """The operation and its JSON pointer, or why there is none."""
        route = (compiled or self._compiled).route(path)
        if route is None:
            return f"no route of the spec matches {path!r}"
        op = route.item.get(method.lower())
        if method.lower() not in _METHODS or not isinstance(op, dict):
            allowed = sorted(m.upper() for m in route.item if m in _METHODS)
            return f"{method} is not an operation of {route.template} (only {allowed})"
        return op, f"/paths/{_escape(route.template)}/{method.lower()}"

    def _validate(
        self,
        pointer: str,
        body: Any,
        violation: Callable[[str], ContractViolation],
        compiled: _Compiled | None = None,
    ) -> list[ContractViolation]:
        errors = list((compiled or self._compiled).validator(pointer).iter_errors(body))
        if not errors:
            return []
        # Ordered by the offending value's place (an object before its members, orders[2]
        # before orders[10]), then by message; duplicates dropped.
        found: dict[tuple[Any, ...], str] = {}
        for error in errors:
            for leaf in _leaf_errors(error):
                place = tuple(
                    (1, str(p)) if isinstance(p, str) else (0, p) for p in leaf.absolute_path
                )
                message = f"{leaf.json_path}: {leaf.message}"
                found[(place, message)] = message
        return [violation(found[key]) for key in sorted(found)]


def _json_media(content: Mapping[str, Any]) -> str | None:
    if "application/json" in content:
        return "application/json"
    for media in content:
        base = media.split(";", 1)[0].strip().lower()
        if base.endswith("/json") or base.endswith("+json"):
            return media
    return None
