"""ta.verify_webhook: HMAC and X509 signatures checked on the raw body before parsing,
every bad signature refused with a typed error, the envelope and its variants parsed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

import tango_async as ta

KEY = b"0123456789abcdef0123456789abcdef"
KEY_TEXT = base64.b64encode(KEY).decode()

EVENT: dict[str, Any] = {
    "eventId": "6c1f0d5e-1111-4a2b-9c3d-000000000001",
    "revision": 7,
    "eventType": "RewardStatus",
    "categories": ["Orders"],
    "eventOccurredAt": "2024-01-01T00:00:00Z",
    "eventData": {
        "referenceLineItemId": "L1",
        "externalRefID": "ext-1",
        "action": "CANCEL",
        "status": "CANCELLED",
        "reasonCode": "FRAUD",
    },
}


def body_of(event: dict[str, Any] = EVENT) -> bytes:
    return json.dumps(event).encode()


def hmac_sig(body: bytes, key: bytes = KEY) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def make_cert(key: Any) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tango webhooks test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[Any, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, make_cert(key)


def rsa_sig(key: Any, body: bytes) -> str:
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def test_hmac_verifies_and_parses_typed_event_data() -> None:
    body = body_of()
    for key in (KEY, KEY_TEXT):
        event = ta.verify_webhook(body, {"X-Signed-Payload": hmac_sig(body)}, hmac_key=key)
        assert event.event_id == EVENT["eventId"] and event.revision == 7
        assert event.event_type == "RewardStatus" and event.categories == ["Orders"]
        assert event.event_occurred_at == datetime(2024, 1, 1, tzinfo=UTC)
        assert isinstance(event.event_data, ta.RewardStatusEventData)
        assert event.event_data.reference_line_item_id == "L1"
        assert event.event_data.external_ref_id == "ext-1"
        assert event.subject == "line_item:L1"


def test_header_name_is_case_insensitive_and_hex_is_configurable() -> None:
    body = body_of()
    raw = hmac.new(KEY, body, hashlib.sha256).digest()
    assert ta.verify_webhook(body, {"x-signed-payload": hmac_sig(body)}, hmac_key=KEY)
    assert ta.verify_webhook(
        body, {"X-Signature": raw.hex()}, hmac_key=KEY, header="X-Signature", encoding="hex"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Signed-Payload": ""},
        {"X-Signed-Payload": "not base64 !!"},
        {"X-Signed-Payload": "A" * 5000},
        {"X-Signed-Payload": base64.b64encode(b"short").decode()},
        {"X-Signed-Payload": hmac_sig(body_of(), b"another key of sixteen+ bytes")},
    ],
)
def test_bad_signatures_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ta.WebhookVerificationError) as info:
        ta.verify_webhook(body_of(), headers, hmac_key=KEY)
    assert isinstance(info.value, ta.TangoError)
    assert KEY_TEXT not in str(info.value)


def test_a_tampered_body_is_refused_before_parsing() -> None:
    body = body_of()
    sig = hmac_sig(body)
    tampered = body.replace(b"CANCELLED", b"COMPLETE!")
    with pytest.raises(ta.WebhookVerificationError, match="does not match"):
        ta.verify_webhook(tampered, {"X-Signed-Payload": sig}, hmac_key=KEY)
    # a signed body that is not even JSON fails on the signature, not in a JSON parser
    with pytest.raises(ta.WebhookVerificationError, match="does not match"):
        ta.verify_webhook(b"\xff{{", {"X-Signed-Payload": sig}, hmac_key=KEY)


def test_a_repeated_signature_header_is_refused() -> None:
    from multidict import CIMultiDict

    body = body_of()
    headers = CIMultiDict([("X-Signed-Payload", hmac_sig(body)), ("x-signed-payload", "AAAA")])
    with pytest.raises(ta.WebhookVerificationError, match="2 times"):
        ta.verify_webhook(body, headers, hmac_key=KEY)


def test_parsed_json_instead_of_raw_bytes_is_a_type_error() -> None:
    with pytest.raises(ta.ValidationError, match="raw bytes"):
        ta.verify_webhook(EVENT, {"X-Signed-Payload": "x"}, hmac_key=KEY)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "hmac_key"),
        ({"hmac_key": KEY, "certificate": b"x"}, "hmac_key"),
        ({"hmac_key": "not base64!"}, "hmac_key"),
        ({"hmac_key": b""}, "hmac_key"),
        ({"certificate": "not a certificate"}, "certificate"),
        ({"certificate": b"\x30\x03garbage"}, "certificate"),
        ({"hmac_key": KEY, "encoding": "base32"}, "encoding"),
    ],
)
def test_bad_keys_are_validation_errors(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ta.ValidationError) as info:
        ta.WebhookVerifier(**kwargs)
    assert info.value.field == field


def test_x509_verifies_pem_der_and_base64(rsa_pair: tuple[Any, bytes]) -> None:
    key, pem = rsa_pair
    body = body_of()
    headers = {"X-Signed-Payload": rsa_sig(key, body)}
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    for cert in (pem, pem.decode(), der, base64.b64encode(der).decode()):
        event = ta.verify_webhook(body, headers, certificate=cert)
        assert event.event_id == EVENT["eventId"]
    with pytest.raises(ta.WebhookVerificationError, match="certificate"):
        ta.verify_webhook(body + b" ", headers, certificate=pem)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ta.WebhookVerificationError):
        ta.verify_webhook(body, headers, certificate=make_cert(other))
    with pytest.raises(ta.WebhookVerificationError):  # an HMAC signature is no RSA one
        ta.verify_webhook(body, {"X-Signed-Payload": hmac_sig(body)}, certificate=pem)


def test_x509_needs_an_rsa_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ta.ValidationError, match="RSA"):
        ta.WebhookVerifier(certificate=make_cert(key))


def test_doc_page_variants_and_unknown_types() -> None:
    variant = {
        "eventId": "e-2",
        "eventTypes": ["LineItemDeliveryStatus"],
        "category": "Orders",
        "eventData": {"referenceLineItemId": "L9", "status": "DELIVERED"},
    }
    event = ta.parse_webhook(body_of(variant))
    assert event.event_type == "LineItemDeliveryStatus" and event.categories == ["Orders"]
    assert isinstance(event.event_data, ta.LineItemDeliveryStatusEventData)
    unknown = ta.parse_webhook(
        body_of({"eventId": "e-3", "eventType": "BrandNew", "eventData": {"x": [1]}})
    )
    assert unknown.event_data == {"x": [1]} and unknown.subject == "type:BrandNew"
    # a known type whose data does not fit is kept as it came
    odd = ta.parse_webhook(
        body_of({"eventId": "e-4", "eventType": "RewardStatus", "eventData": {"status": 5}})
    )
    assert odd.event_data == {"status": 5}


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"revision": 1}', b'{"eventId": ""}', b'{"eventId": "e", "revision": "x"}'],
)
def test_verified_bodies_that_are_not_events(body: bytes) -> None:
    with pytest.raises(ta.WebhookVerificationError, match="not a webhook event"):
        ta.verify_webhook(body, {"X-Signed-Payload": hmac_sig(body)}, hmac_key=KEY)


def test_reprs_hide_keys() -> None:
    verifier = ta.WebhookVerifier(hmac_key=KEY)
    assert KEY_TEXT not in repr(verifier) and "HMAC" in repr(verifier)
    hook = ta.Webhook(webhook_id="w", hmac_shared_secret_key=KEY_TEXT)
    assert KEY_TEXT not in repr(hook)
    header = ta.WebhookHeader(name="Authorization", value="Bearer s3cret")
    assert "s3cret" not in repr(header)


@pytest.mark.parametrize("event_id", ["x" * 257, "a\nb", "id\u2028"])
def test_event_ids_that_are_not_ids_are_refused(event_id: str) -> None:
    with pytest.raises(ta.WebhookVerificationError, match="eventId"):
        ta.parse_webhook(body_of({"eventId": event_id}))
