"""The sandbox's error vocabulary: Tango's i18n keys and messages, and its error bodies."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._wire import iso, respond

__all__ = ["HTML_502", "MESSAGES", "ErrorWriter"]

HTML_502 = "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"
# i18nKey -> message, with str.format placeholders for the answer's details
MESSAGES = {
    "400.001": "Malformed JSON request: a JSON object is required",
    "400.002": "Invalid query parameter: {0}",
    "400.004": "Validation failed",
    "400.021": "Search request exceeds max result window of {0}",
    "401.001": "Full authentication is required to access this resource",
    "402.001": "Insufficient funds in account {0}",
    "403.003": "Cannot resend an order that Tango did not deliver (sendEmail=false or "
    "deliveryMethod NONE, EMBEDDED or ADDRESS)",
    "403.005": "Cannot send more than once every {0:g} seconds",
    "404.001": "Resource not found",
    "404.002": "Order not found",
    "404.003": "Line item not found",
    "404.142": "Account has been frozen, please contact your Tango CSM or email cs@tangocard.com",
    "409.002": "An order with this externalRefID is still in process; retry after at least 2 s",
    "422.042": "elementsPerBlock must be less than or equal to 100",
    "422.043": "Order search period must be at most {0:g} days",
    # line items and webhooks: the sandbox's own keys (Tango's catalogue lists none)
    "400.030": "webhookId must be a UUID",
    "403.110": "An embedded URL is only available for a line item delivered EMBEDDED or "
    "EMBEDDED_COMPONENT",
    "404.030": "Webhook subscription not found",
    "404.031": "Event category not found: {0}",
    "422.101": "Cannot cancel a line item that is already cancelled",
    "422.102": "Cannot cancel a line item that is frozen; unfreeze it first",
    "422.103": "Cannot cancel a line item that failed",
    "422.104": "Cannot cancel a line item that is still pending",
    "422.111": "Cannot freeze a line item that is cancelled",
    "422.112": "Cannot freeze a line item that is already frozen",
    "422.113": "Cannot freeze a line item that failed",
    "422.114": "Cannot freeze a line item that is still pending",
    "422.121": "Cannot unfreeze a line item that is cancelled or not frozen",
    "422.131": "Cannot reissue a line item that is cancelled",
    "422.132": "Cannot reissue a line item that is frozen; unfreeze it first",
    "422.133": "Cannot reissue a line item that failed",
    "422.134": "Cannot reissue a line item that is still pending",
    "422.141": "reasonCode must be one of {0}",
    "422.142": "otherReason is required when reasonCode is OTHER",
    "422.151": "The reward of a line item that is {0} has no embedded URL",
    "422.161": "Webhook subscription has expired; renew it first",
    "422.162": "Test event {0} is not among the subscription's event types",
    # accounts, customers, low-balance alerts (issue 15): the sandbox's own keys
    "404.010": "Customer not found: {0}",
    "404.011": "Account not found: {0}",
    "404.012": "Low balance alert not found: {0}",
    "409.010": "A customer with customerIdentifier {0} already exists",
    "409.011": "An account with accountIdentifier {0} already exists",
    "409.012": "A low balance alert with threshold {0} already exists for this account",
    # catalog (issue 15): the sandbox's own keys for Sandbox(strict_catalog=True)
    "400.050": "Invalid utid: {0} is not in the platform's catalog",
    "400.051": "Invalid amount: {0}",
    "404.050": "Choice product not found",
    "422.050": "Item {0} is not active",
    "429.001": "Order rate limit {0:g} TPS threshold reached",
    "500.001": "An unexpected error occurred",
    "503.001": "Service temporarily unavailable",
}


class ErrorWriter:
    """Tango's error bodies and answers, their ``timestamp`` read from ``now`` (the
    sandbox clock's, so a frozen or advanced clock shows in them)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def body(
        self,
        path: str,
        status: int,
        key: str,
        message: str,
        *,
        legacy: bool = False,
        errors: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Tango's error body: errors[] items, or (legacy) a top-level i18nKey and message."""
        body: dict[str, Any] = {
            "timestamp": iso(self._now()),
            "requestId": str(uuid.uuid4()),
            "path": path,
            "httpCode": status,
            "httpPhrase": HTTPStatus(status).phrase,
        }
        if legacy:
            return body | {"i18nKey": key, "message": message}
        code = int(key.replace(".", "")) if key.replace(".", "").isdigit() else 0
        return body | {"errors": errors or [{"code": code, "i18nKey": key, "message": message}]}

    def response(
        self,
        path: str,
        key: str,
        *args: Any,
        message: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> web.Response:
        """The error answer for ``key``: its status the key's first three digits unless
        given, its message the key's in :data:`MESSAGES` formatted with ``args`` unless
        given (the status's phrase for a key without one)."""
        status = status or int(key[:3])
        if message is None:
            message = MESSAGES.get(key, HTTPStatus(status).phrase).format(*args)
        return respond(self.body(path, status, key, message, errors=errors), status, headers)
