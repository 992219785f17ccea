"""Webhook verification: the signature in ``X-Signed-Payload`` checked on the raw body,
before the body is parsed, then the body decoded into a :class:`WebhookEvent`.

Tango signs a delivery by the subscription's ``payloadVerificationMethod``:

- **HMAC**: ``base64(HMAC-SHA256(key, raw body))``, where the key is the one registered as
  ``hmacSharedSecretKey`` (base64 text; a ``bytes`` key here is the raw key itself).
- **X509**: ``base64(RSASSA-PKCS1-v1_5(SHA-256, raw body))``, verified with the public
  key of the registered ``signingCertificate`` (PEM, DER, or base64 of either). Needs
  ``cryptography`` (the ``webhooks`` extra).

Tango's pages do not spell out the signature's encoding: base64 is the default, and
``encoding="hex"`` and ``header=`` are there for another reading. Comparison is
constant-time (``hmac.compare_digest``; RSA verification does not leak by timing what the
signature should have been). The signature covers the body only, with no timestamp, so a
recorded delivery verifies again: receivers de-duplicate by ``eventId``
(:mod:`tango_async.webhooks` does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ._codec import decode_body
from ._exceptions import ValidationError, WebhookVerificationError
from .types.webhooks import EVENT_DATA_TYPES, EventEnvelopeWire, WebhookEvent

__all__ = ["SIGNATURE_HEADER", "WebhookVerifier", "parse_webhook", "verify_webhook"]

log = logging.getLogger("tango_async")

SIGNATURE_HEADER = "X-Signed-Payload"
MAX_SIGNATURE_CHARS = 4096  # an RSA-8192 signature is 1,368 base64 characters
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_EVENT_ID = 256

Encoding = Literal["base64", "hex"]


def _key_bytes(key: bytes | str) -> bytes:
    if isinstance(key, bytes):
        raw = key
    elif isinstance(key, str):
        try:
            raw = base64.b64decode(key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(
                "hmac_key", "a str key must be the base64 text Tango registers (or pass bytes)"
            ) from None
    else:
        raise ValidationError("hmac_key", f"must be bytes or str, not {type(key).__name__}")
    if not raw:
        raise ValidationError("hmac_key", "must not be empty")
    return raw


def _load_public_key(certificate: bytes | str) -> Any:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError(
            "X509 webhook verification needs cryptography: pip install 'tango-async[webhooks]'"
        ) from None
    if isinstance(certificate, str):
        text = certificate.strip()
        if text.startswith("-----BEGIN"):
            data = text.encode("ascii", "replace")
        else:
            try:
                data = base64.b64decode("".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                raise ValidationError(
                    "certificate", "must be PEM, DER, or base64 of either"
                ) from None
    elif isinstance(certificate, bytes):
        data = certificate
    else:
        raise ValidationError(
            "certificate", f"must be bytes or str, not {type(certificate).__name__}"
        )
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(data.strip())
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValidationError("certificate", "is not an X.509 certificate (PEM or DER)") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValidationError("certificate", "must hold an RSA public key (RSASSA-PKCS1-v1_5)")
    return key


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """The one value of ``name`` (case-insensitive); a repeated header is refused."""
    if not isinstance(headers, Mapping):
        raise ValidationError(
            "headers", f"must be a mapping of header name to value, not {type(headers).__name__}"
        )
    getall = getattr(headers, "getall", None)
    if getall is not None:  # multidict (aiohttp's request.headers)
        values = list(getall(name, []))
    else:
        lowered = name.lower()
        values = [v for k, v in headers.items() if isinstance(k, str) and k.lower() == lowered]
    if not values:
        return None
    if len(values) > 1:
        raise WebhookVerificationError(f"{name} appears {len(values)} times")
    value = values[0]
    if not isinstance(value, str):
        raise WebhookVerificationError(f"{name} is not text")
    return value


def _signature(value: str, encoding: Encoding, name: str) -> bytes:
    value = value.strip()
    if not value:
        raise WebhookVerificationError(f"{name} is empty")
    if len(value) > MAX_SIGNATURE_CHARS:
        raise WebhookVerificationError(f"{name} is longer than any signature")
    try:
        if encoding == "hex":
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError(f"{name} is not {encoding}") from None


class WebhookVerifier:
    """Verifies deliveries with one key or certificate, loaded once (for a receiver that
    verifies many). Exactly one of ``hmac_key`` and ``certificate``.

    ``header`` is where the signature is (``X-Signed-Payload``), ``encoding`` how it is
    written (``base64``, or ``hex``). A bad key or certificate is a ValidationError here,
    at construction, not a verification failure later.
    """

    __slots__ = ("_encoding", "_header", "_hmac_key", "_public_key")

    def __init__(
        self,
        *,
        hmac_key: bytes | str | None = None,
        certificate: bytes | str | None = None,
        header: str = SIGNATURE_HEADER,
        encoding: Encoding = "base64",
    ) -> None:
        if (hmac_key is None) == (certificate is None):
            raise ValidationError("hmac_key", "pass exactly one of hmac_key and certificate")
        if encoding not in ("base64", "hex"):
            raise ValidationError("encoding", "must be 'base64' or 'hex'")
        if not isinstance(header, str) or not header.strip():
            raise ValidationError("header", "must be a header name")
        self._header = header
        self._encoding: Encoding = encoding
        self._hmac_key = _key_bytes(hmac_key) if hmac_key is not None else None
        self._public_key: Any = _load_public_key(certificate) if certificate is not None else None

    def __repr__(self) -> str:
        method = "HMAC" if self._hmac_key is not None else "X509"
        return f"WebhookVerifier(method={method}, header={self._header!r})"

    def check(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Check the signature of ``body`` (the raw bytes received) and nothing else;
        WebhookVerificationError if it is missing, malformed or wrong."""
        if not isinstance(body, bytes | bytearray | memoryview):
            raise ValidationError(
                "body", "must be the raw bytes received (not text or parsed JSON)"
            )
        body = bytes(body)
        value = _header(headers, self._header)
        if value is None:
            raise WebhookVerificationError(f"no {self._header} header")
        signature = _signature(value, self._encoding, self._header)
        if self._hmac_key is not None:
            expected = hmac.new(self._hmac_key, body, hashlib.sha256).digest()
            if not hmac.compare_digest(signature, expected):
                raise WebhookVerificationError("the signature does not match the body and key")
            return
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            self._public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise WebhookVerificationError(
                "the signature does not match the body and certificate"
            ) from None

    def verify(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Check the signature, then parse: the verified :class:`WebhookEvent`."""
        self.check(body, headers)
        return parse_webhook(body)


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    *,
    hmac_key: bytes | str | None = None,
    certificate: bytes | str | None = None,
    header: str = SIGNATURE_HEADER,
    encoding: Encoding = "base64",
) -> WebhookEvent:
    """Verify a webhook delivery on its raw body, then parse it.

    ``body`` is the request body exactly as received (bytes, before any JSON parsing);
    ``headers`` its headers (any mapping; case-insensitive). Pass the subscription's HMAC
    key (``str``: the base64 text registered as ``hmacSharedSecretKey``; ``bytes``: the raw
    key) or its X509 certificate (PEM, DER, or base64 of either; needs the ``webhooks``
    extra). Raises WebhookVerificationError when the ``X-Signed-Payload`` header is
    missing, repeated, not base64, or does not match, and when a verified body is not a
    webhook event; ValidationError for a bad key or certificate. For many deliveries,
    build one :class:`WebhookVerifier` and call ``.verify``.
    """
    return WebhookVerifier(
        hmac_key=hmac_key, certificate=certificate, header=header, encoding=encoding
    ).verify(body, headers)


def _event_data(event_type: str | None, raw: msgspec.Raw | None) -> Any:
    if raw is None:
        return None
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise WebhookVerificationError("eventData is not JSON") from None
    if data is None:
        return None
    type_ = EVENT_DATA_TYPES.get(_NOT_ALNUM.sub("", (event_type or "").lower()))
    if type_ is None or not isinstance(data, dict):
        return data
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as e:
        # Verified, but not the shape this version knows: kept as it came.
        log.warning("webhook %s event data kept untyped: %s", event_type, e)
        return data


def parse_webhook(body: bytes) -> WebhookEvent:
    """Parse a delivery body into a :class:`WebhookEvent` *without* verifying it: for
    subscriptions with verification NONE, or a body already verified.
    WebhookVerificationError if it is not an event (bad JSON, no ``eventId``)."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ValidationError("body", "must be the raw bytes received (not text or parsed JSON)")
    try:
        wire = decode_body(bytes(body), EventEnvelopeWire)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise WebhookVerificationError(f"the body is not a webhook event ({e})") from None
    if not wire.event_id:
        raise WebhookVerificationError("the body is not a webhook event (no eventId)")
    revision = wire.revision
    if revision is not None and not 0 <= revision < 2**63:
        revision = None  # (not a revision anything can store or compare)
    if len(wire.event_id) > MAX_EVENT_ID or _CONTROL.search(wire.event_id):
        # (it names the event in stores, keys and logs)
        raise WebhookVerificationError("the eventId is not an ID (too long, or control chars)")
    event_type = wire.event_type
    if event_type is None and wire.event_types and len(wire.event_types) == 1:
        event_type = wire.event_types[0]
    categories = list(wire.categories or ())
    if not categories and wire.category is not None:
        categories = [wire.category] if isinstance(wire.category, str) else list(wire.category)
    return WebhookEvent(
        event_id=wire.event_id,
        revision=revision,
        event_type=event_type,
        categories=categories,
        event_occurred_at=wire.event_occurred_at,
        event_data=_event_data(event_type, wire.event_data),
    )
