"""The sign-up service: each new sign-up earns a gift card, and never more than one.

::

    POST /signups   {"email": "ann@example.com", "first_name": "Ann"}
        201 {"reference_order_id": "RA...", "status": "COMPLETE", "created": true}
        200 the same with "created": false: this sign-up already had its reward order
        422 {"error": "invalid_signup", "field": "email", "message": "..."}: nothing ordered
        503 Tango is busy or did not answer (Retry-After): posting again is safe
        502 Tango refused the order (e.g. the account is short of funds)
    GET /signups/{reference_order_id}/reward
        200 {"reference_order_id": "RA...", "status": "COMPLETE", "reward_name": ..., ...}
        404 this service has no reward order with that ID

The service keeps no database: the Tango order is the record of the reward, and its
referenceOrderID names it in URLs. It is safe with money because the order's
externalRefID is derived from the sign-up itself (:func:`signup_ref`): Tango makes at most
one order per externalRefID and answers a repeat with the order it already has (200), so
a retried request, a user who signs up twice or two replicas of this service racing never
pay twice. tango-async retries transient failures of a call with that same externalRefID.

Nothing this service answers or logs carries the reward's code, PIN or redemption link:
Tango emails them to the recipient (EMAIL delivery).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import tango_async as ta
from aiohttp import web

__all__ = ["SETTINGS", "TANGO", "RewardSettings", "create_app", "signup_ref"]

logger = logging.getLogger("signup_service")


@dataclass(frozen=True, slots=True)
class RewardSettings:
    """What a sign-up earns, and from which Tango customer and account.

    The defaults fit the local sandbox of ``tango_async.testing`` (its seeded
    ``sandbox-customer`` / ``sandbox-account`` and a utid of its catalog); for a real
    platform set them with :meth:`from_env`'s variables.
    """

    customer_identifier: str = "sandbox-customer"
    account_identifier: str = "sandbox-account"
    utid: str = "U561593"  # Amazon.com Gift Card in the sandbox's catalog
    amount: Decimal = Decimal("5.00")
    # externalRefIDs are "<ref_prefix>-<40 hex digits>": a new prefix starts a new campaign
    # in which every address earns a reward again
    ref_prefix: str = "signup"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RewardSettings:
        """Settings from SIGNUP_CUSTOMER_IDENTIFIER, SIGNUP_ACCOUNT_IDENTIFIER,
        SIGNUP_REWARD_UTID, SIGNUP_REWARD_AMOUNT and SIGNUP_REF_PREFIX (the defaults for
        those unset or empty). ValueError for an amount that is not a positive decimal
        or a prefix longer than 50 characters."""
        env = os.environ if environ is None else environ
        default = cls()
        amount = default.amount
        if text := env.get("SIGNUP_REWARD_AMOUNT"):
            try:
                amount = Decimal(text)
            except InvalidOperation:
                amount = Decimal("NaN")
            if not (amount.is_finite() and amount > 0):
                raise ValueError(f"SIGNUP_REWARD_AMOUNT must be an amount like 5.00, not {text!r}")
        prefix = env.get("SIGNUP_REF_PREFIX") or default.ref_prefix
        if len(prefix) > 50:  # Tango allows 100 characters; the hash part takes 41
            raise ValueError("SIGNUP_REF_PREFIX must be at most 50 characters")
        return cls(
            customer_identifier=env.get("SIGNUP_CUSTOMER_IDENTIFIER")
            or default.customer_identifier,
            account_identifier=env.get("SIGNUP_ACCOUNT_IDENTIFIER") or default.account_identifier,
            utid=env.get("SIGNUP_REWARD_UTID") or default.utid,
            amount=amount,
            ref_prefix=prefix,
        )


def signup_ref(email: str, prefix: str = "signup") -> str:
    """The externalRefID of the sign-up of ``email``: the same for the same address
    (surrounding spaces and letter case aside), so Tango makes one order per sign-up.

    A hash keeps the address itself out of Tango's order references and gives every
    reference the same length."""
    digest = hashlib.sha256(email.strip().casefold().encode()).hexdigest()
    return f"{prefix}-{digest[:40]}"


# Typed keys of what the application holds (aiohttp >= 3.9).
SETTINGS = web.AppKey("settings", RewardSettings)
TANGO = web.AppKey("tango", ta.TangoClient)


def create_app(
    tango: ta.TangoClient | None = None, *, settings: RewardSettings | None = None
) -> web.Application:
    """The service's aiohttp application.

    ``tango`` is the client to order with; whoever passes one keeps it open and closes it
    (a test passes the sandbox's). Without one, the application makes its own at startup
    from TANGO_PLATFORM_NAME, TANGO_PLATFORM_KEY and TANGO_BASE_URL (Tango's sandbox if
    unset) and closes it at cleanup. ``settings`` default to
    :meth:`RewardSettings.from_env`.
    """
    app = web.Application()
    app[SETTINGS] = settings if settings is not None else RewardSettings.from_env()
    app.cleanup_ctx.append(_tango_client(tango))
    app.router.add_post("/signups", post_signup)
    app.router.add_get("/signups/{reference_order_id}/reward", get_reward)
    return app


def _tango_client(
    tango: ta.TangoClient | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context that gives the application its TangoClient."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if tango is not None:
            app[TANGO] = tango
            yield
            return
        # One client for the whole process, made on its event loop: it holds the
        # connection pool, the pacing of order creations (Tango allows about one a second)
        # and the memory of orders whose outcome a failure left unknown.
        async with ta.TangoClient() as client:
            app[TANGO] = client
            yield

    return context


# --- POST /signups -----------------------------------------------------------------------


class _InvalidSignup(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# The SDK's names for the fields of a sign-up, in its ValidationError.field.
_SIGNUP_FIELDS = {"recipient.email": "email", "recipient.first_name": "first_name"}


async def post_signup(request: web.Request) -> web.Response:
    """Reward a sign-up with one gift card (see the module's docstring for the answers)."""
    settings = request.app[SETTINGS]
    tango = request.app[TANGO]
    try:
        email, first_name = await _read_signup(request)
    except _InvalidSignup as exc:
        return _invalid(exc.field, exc.message)
    ref = signup_ref(email, settings.ref_prefix)
    try:
        order = await tango.orders.create(
            ta.CreateOrderRequest(
                settings.customer_identifier,
                settings.account_identifier,
                settings.utid,
                settings.amount,
                recipient=ta.Recipient(email=email, first_name=first_name),
                external_ref_id=ref,
                # Tango emails the reward: its code never passes through this service
                delivery_method=ta.DeliveryMethod.EMAIL,
            )
        )
    except ta.ValidationError as exc:
        # The SDK checks every documented rule before sending anything: no order was made.
        field = _SIGNUP_FIELDS.get(exc.field)
        if field is not None:
            return _invalid(field, exc.rule)
        logger.error("the reward settings break a Tango rule: %s", exc)
        return _error(500, "misconfigured", "The service's reward settings are invalid.")
    except ta.TangoError as exc:
        return _tango_failed(exc, ref)
    # created: Tango made the order now (201); else it already had one for this
    # externalRefID (200): an earlier post of this sign-up, or an earlier attempt of this
    # call whose answer was lost.
    logger.info(
        "sign-up %s rewarded by order %s (%s)",
        ref,
        order.reference_order_id,
        "new" if order.created else "existing",
    )
    return web.json_response(
        {
            "reference_order_id": order.reference_order_id,
            "status": order.status,
            "created": order.created,
        },
        status=201 if order.created else 200,
        headers={"Location": f"/signups/{order.reference_order_id}/reward"},
    )


async def _read_signup(request: web.Request) -> tuple[str, str]:
    """The sign-up's email and first name, stripped; _InvalidSignup for a body that is
    not a JSON object with both as non-blank strings (the SDK checks the rest: the email's
    form, the name's length and characters)."""
    try:
        data: Any = await request.json()
    except ValueError:  # not JSON, or not UTF-8
        raise _InvalidSignup("body", "must be a JSON object") from None
    if not isinstance(data, dict):
        raise _InvalidSignup("body", "must be a JSON object")
    values: list[str] = []
    for field in ("email", "first_name"):
        value = data.get(field)
        if not isinstance(value, str) or not value.strip():
            raise _InvalidSignup(field, "is required: a non-blank string")
        values.append(value.strip())
    return values[0], values[1]


# --- GET /signups/{reference_order_id}/reward ----------------------------------------------


async def get_reward(request: web.Request) -> web.Response:
    """The status of a sign-up's reward order; never its code or redemption link."""
    settings = request.app[SETTINGS]
    tango = request.app[TANGO]
    not_found = _error(404, "not_found", "No sign-up reward has this ID.")
    try:
        order = await tango.orders.get(request.match_info["reference_order_id"])
    except (ta.ValidationError, ta.NotFoundError):  # a malformed or an unknown ID
        return not_found
    except ta.TangoError as exc:
        return _tango_failed(exc, None)
    if not _is_signup_reward(order, settings):
        # another order of the platform: not this service's to show
        return not_found
    money = order.denomination
    return web.json_response(
        {
            "reference_order_id": order.reference_order_id,
            "status": order.status,
            "reward_name": order.reward_name,
            "amount": str(money.value) if money and money.value is not None else None,
            "currency_code": money.currency_code if money else None,
            "created_at": _rfc3339(order.created_at),
        }
    )


def _rfc3339(when: datetime | None) -> str | None:
    """``2026-01-02T03:04:05.678Z``: RFC 3339 in UTC."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_signup_reward(order: ta.Order, settings: RewardSettings) -> bool:
    """True for an order this service placed: its account, and an externalRefID of its
    form."""
    ref = order.external_ref_id or ""
    return (
        order.customer_identifier == settings.customer_identifier
        and order.account_identifier == settings.account_identifier
        and ref.startswith(settings.ref_prefix + "-")
    )


# --- answers -----------------------------------------------------------------------------


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def _invalid(field: str, message: str) -> web.Response:
    return _error(422, "invalid_signup", message, field=field)


def _tango_failed(exc: ta.TangoError, ref: str | None) -> web.Response:
    """The answer to a failed Tango call (``ref``: the sign-up's externalRefID, for an
    order): 503 with Retry-After when trying again later may work (429, 409 in process,
    5xx, no answer, an outcome left unknown), 502 when Tango refused (401, 402, 403, a
    frozen account).

    It names Tango's request ID (its support reference) and nothing of Tango's answer
    itself. Posting a sign-up again after a failed order is always safe: it carries the
    same externalRefID, so Tango answers with the order if the first try made one."""
    api = exc if isinstance(exc, ta.APIError) else None
    status_code = api.status_code if api else None
    transient = (
        exc.outcome_unknown
        or status_code is None  # no answer: a timeout, a lost connection
        or status_code in (409, 429)
        or status_code >= 500
    )
    logger.log(
        logging.WARNING if transient else logging.ERROR,
        "Tango call failed%s: %s (HTTP %s, i18nKey %s, request %s, outcome unknown: %s)",
        f" for sign-up {ref}" if ref else "",
        type(exc).__name__,
        status_code,
        api.i18n_key if api else None,
        api.request_id if api else None,
        exc.outcome_unknown,
    )
    extra: dict[str, Any] = {"tango_request_id": api.request_id} if api and api.request_id else {}
    if not transient:
        return _error(502, "reward_refused", "The reward provider refused the request.", **extra)
    message = "The reward provider is unavailable; try again later."
    if ref:
        message += " Posting this sign-up again never pays twice."
    response = _error(503, "reward_unavailable", message, **extra)
    retry_after = exc.retry_after if isinstance(exc, ta.RateLimitError) else None
    response.headers["Retry-After"] = str(max(1, math.ceil(retry_after or 1)))
    return response
