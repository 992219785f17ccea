"""Decoding responses into the models, on bodies taken from Tango's doc examples."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

import tango_async as ta
from tango_async.types.orders import OrderListWire

REDEMPTION_URL = "https://gamma.rewardlink.io/r/1/Cl4e2dX_qz3zyUbSTb4dZgrbQta9qg-oBd6sPkywiIk"
CARD_NUMBER = "6006491234567890123"
CARD_PIN = "8264"

# "create an order with Promo link" (001), with the "(100 chars)" annotations left out.
PROMO_LINK_ORDER = b"""{
"referenceOrderID": "RA231011-1234-56",
"externalRefID": "ref-promo-1",
"customerIdentifier": "cust-12345",
"accountIdentifier": "acct-12345",
"accountNumber": "A12345678",
"amountCharged": {
"value": 10.00,
"currencyCode": "USD",
"total": 10.0
},
"denomination": {
"value": 10.0,
"currencyCode": "USD"
},
"utid": "U561593",
"rewardName": "Promo Link",
"sender": {
"firstName": "Sam",
"lastName": "Ng",
"email": "sam@example.com"
},
"recipient": {
"email": "ann@example.com",
"firstName": "Ann",
"lastName": "Lee",
"address": null
},
"sendEmail": false,
"status": "COMPLETE",
"createdAt": "2023-10-11T23:10:55.284Z",
"reward": {
"credentials": {
"redemptionUrl": "https://gamma.rewardlink.io/r/1/Cl4e2dX_qz3zyUbSTb4dZgrbQta9qg-oBd6sPkywiIk",
"expirationDate": "2024-12-31T06:59:59Z"
},
"credentialList": [
{
"label": "redemptionUrl",
"value": "https://gamma.rewardlink.io/r/1/Cl4e2dX_qz3zyUbSTb4dZgrbQta9qg-oBd6sPkywiIk",
"type": "url",
"credentialType": "redemptionUrl"
},
{
"label": "expirationDate",
"value": "2024-12-31T06:59:59Z",
"type": "date",
"credentialType": "expirationDate"
}
],
"redemptionInstructions": "Promo Link Test Redemption Instructions"
}
}"""

# The full create-order response (001): every documented field, plus the top-level
# redemptionInstructions that no model declares; realistic values instead of "string".
VERBOSE_ORDER: dict[str, Any] = {
    "referenceOrderID": "RA230918-5678-90",
    "externalRefID": "ref-verbose-1",
    "customerIdentifier": "cust-12345",
    "accountIdentifier": "acct-12345",
    "accountNumber": "A12345678",
    "amountCharged": {
        "value": 0,
        "currencyCode": "USD",
        "exchangeRate": 0,
        "fee": 0,
        "total": 0,
    },
    "denomination": {
        "value": 0,
        "currencyCode": "USD",
        "exchangeRate": 0,
        "fee": 0,
        "total": 0,
    },
    "utid": "U157189",
    "ptid": "P000001",
    "rewardName": "Amazon.com Gift Card",
    "reward": {
        "credentials": {"Card Number": CARD_NUMBER, "PIN": CARD_PIN},
        "credentialList": [
            {
                "label": "Card Number",
                "value": CARD_NUMBER,
                "type": "text",
                "credentialType": "cardNumber",
            },
            {"label": "PIN", "value": CARD_PIN, "type": "text", "credentialType": "cardPin"},
        ],
        "redemptionInstructions": "Redeem at amazon.com/gc",
    },
    "sender": {"firstName": "Sam", "lastName": "Ng", "email": "sam@example.com"},
    "recipient": {
        "email": "ann@example.com",
        "firstName": "Ann",
        "lastName": "Lee",
        "address": {
            "streetLine1": "1 Main St",
            "streetLine2": "Apt 2",
            "city": "Springfield",
            "stateOrProvince": "IL",
            "postalCode": "62701",
            "country": "US",
        },
    },
    "emailSubject": "Thank you",
    "message": "Thanks for your help",
    "sendEmail": True,
    "etid": "E000000",
    "status": "COMPLETE",
    "campaign": "spring",
    "purchaseOrderNumber": "PO-1",
    "createdAt": "2023-10-12T16:28:34.439Z",
    "notes": "n",
    "orderClientSource": "api",
    "redemptionInstructions": "string",
}


def body(obj: dict[str, Any], **changes: Any) -> bytes:
    data = json.loads(json.dumps(obj))
    data.update(changes)
    return json.dumps(data).encode()


def promo_order() -> ta.Order:
    return msgspec.json.decode(PROMO_LINK_ORDER, type=ta.Order)


# --- the promo link example ---------------------------------------------------------------


def test_promo_link_order_decodes() -> None:
    order = promo_order()
    assert order.reference_order_id == "RA231011-1234-56"
    assert order.external_ref_id == "ref-promo-1"
    assert order.customer_identifier == "cust-12345"
    assert order.account_identifier == "acct-12345"
    assert order.account_number == "A12345678"
    assert order.utid == "U561593"
    assert order.reward_name == "Promo Link"
    assert order.send_email is False
    assert order.sender == ta.Sender(first_name="Sam", last_name="Ng", email="sam@example.com")
    assert order.recipient is not None
    assert order.recipient.first_name == "Ann"
    assert order.recipient.address is None


def test_money_decodes_to_exact_decimal() -> None:
    order = promo_order()
    assert order.amount_charged is not None
    assert order.denomination is not None
    value = order.amount_charged.value
    assert isinstance(value, Decimal)
    assert value == Decimal("10.00")
    assert str(value) == "10.00"  # the digits as sent, not a float's
    assert str(order.amount_charged.total) == "10.0"
    assert order.amount_charged.currency_code == "USD"
    assert order.amount_charged.fee is None
    assert order.amount_charged.exchange_rate is None
    assert str(order.denomination.value) == "10.0"


@pytest.mark.parametrize("text", ["0.1", "10.10", "0", "1234567.89", "1E+2", "0.30000000000000004"])
def test_money_keeps_every_digit(text: str) -> None:
    raw = f'{{"referenceOrderID":"r","amountCharged":{{"value":{text},"fee":{text}}}}}'.encode()
    order = msgspec.json.decode(raw, type=ta.Order)
    assert order.amount_charged is not None
    assert order.amount_charged.value == Decimal(text)
    assert str(order.amount_charged.value) == str(Decimal(text))
    assert order.amount_charged.fee == Decimal(text)


def test_created_at_is_timezone_aware() -> None:
    created = promo_order().created_at
    assert isinstance(created, datetime)
    assert created.tzinfo is not None
    assert created == datetime(2023, 10, 11, 23, 10, 55, 284000, tzinfo=UTC)


def test_created_at_with_offset() -> None:
    raw = b'{"referenceOrderID":"r","createdAt":"2023-10-11T16:10:55.284-07:00"}'
    order = msgspec.json.decode(raw, type=ta.Order)
    assert order.created_at == datetime(2023, 10, 11, 23, 10, 55, 284000, tzinfo=UTC)


@pytest.mark.parametrize("model", [ta.Order, ta.CreatedOrder, ta.Resend, ta.LineItemResend])
def test_naive_created_at_fails_to_decode(model: type) -> None:
    raw = b'{"referenceOrderID":"r","id":1,"createdAt":"2023-10-11T23:10:55.284"}'
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(raw, type=model)


def test_credential_list_decodes() -> None:
    reward = promo_order().reward
    assert reward is not None
    assert reward.credential_list == [
        ta.Credential(
            label="redemptionUrl", value=REDEMPTION_URL, type="url", credential_type="redemptionUrl"
        ),
        ta.Credential(
            label="expirationDate",
            value="2024-12-31T06:59:59Z",
            type="date",
            credential_type="expirationDate",
        ),
    ]
    assert reward.redemption_instructions == "Promo Link Test Redemption Instructions"


def test_credentials_as_a_map_decode() -> None:
    reward = promo_order().reward
    assert reward is not None
    assert reward.credentials == {
        "redemptionUrl": REDEMPTION_URL,
        "expirationDate": "2024-12-31T06:59:59Z",
    }


def test_credentials_as_a_string_decode() -> None:
    raw = b'{"referenceOrderID":"r","reward":{"credentials":"CODE-1234"}}'
    reward = msgspec.json.decode(raw, type=ta.Order).reward
    assert reward is not None
    assert reward.credentials == "CODE-1234"
    assert reward.credential_list == []


def test_reward_without_credentials() -> None:
    raw = b'{"referenceOrderID":"r","reward":{}}'
    reward = msgspec.json.decode(raw, type=ta.Order).reward
    assert reward == ta.Reward()
    assert reward is not None
    assert reward.credentials is None
    assert reward.credential_list == []


# --- the verbose example ------------------------------------------------------------------


def test_verbose_order_decodes() -> None:
    order = msgspec.json.decode(body(VERBOSE_ORDER), type=ta.Order)
    assert order.ptid == "P000001"
    assert order.etid == "E000000"
    assert order.email_subject == "Thank you"
    assert order.message == "Thanks for your help"
    assert order.campaign == "spring"
    assert order.purchase_order_number == "PO-1"
    assert order.notes == "n"
    assert order.order_client_source == "api"
    assert order.send_email is True
    assert order.amount_charged == ta.Money(
        value=Decimal(0),
        currency_code="USD",
        exchange_rate=Decimal(0),
        fee=Decimal(0),
        total=Decimal(0),
    )
    assert order.recipient is not None
    assert order.recipient.address == ta.AddressView(
        street_line1="1 Main St",
        street_line2="Apt 2",
        city="Springfield",
        state_or_province="IL",
        postal_code="62701",
        country="US",
    )
    assert order.reward is not None
    assert order.reward.credentials == {"Card Number": CARD_NUMBER, "PIN": CARD_PIN}
    assert [c.credential_type for c in order.reward.credential_list] == ["cardNumber", "cardPin"]


def test_created_order_decodes_and_defaults_to_created() -> None:
    order = msgspec.json.decode(body(VERBOSE_ORDER), type=ta.CreatedOrder)
    assert isinstance(order, ta.Order)
    assert order.reference_order_id == "RA230918-5678-90"
    assert order.created is True
    assert order.existing is False
    order.created = False
    assert order.existing is True


def test_reference_order_id_is_required() -> None:
    data = {k: v for k, v in VERBOSE_ORDER.items() if k != "referenceOrderID"}
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(body(data), type=ta.Order)


def test_line_item_fields_decode() -> None:
    raw = body(
        VERBOSE_ORDER,
        referenceLineItemID="RL230918-1",
        orderStatus="COMPLETE",
        lineItemStatus="RETURNED",
        deliveryMethod="EMAIL",
    )
    order = msgspec.json.decode(raw, type=ta.Order)
    assert order.reference_line_item_id == "RL230918-1"
    assert order.order_status == ta.OrderStatus.COMPLETE
    assert order.line_item_status == ta.LineItemStatus.RETURNED
    assert order.delivery_method == ta.DeliveryMethod.EMAIL


# --- forward compatibility ----------------------------------------------------------------


def test_unknown_fields_are_ignored_everywhere() -> None:
    data = json.loads(body(VERBOSE_ORDER))
    data["brandNewField"] = {"nested": [1, 2, 3]}
    data["amountCharged"]["surcharge"] = 1.5
    data["recipient"]["preferredName"] = "Annie"
    data["recipient"]["address"]["county"] = "Sangamon"
    data["sender"]["department"] = "HR"
    data["reward"]["barcode"] = {"format": "PDF417"}
    data["reward"]["credentialList"][0]["displayOrder"] = 1
    order = msgspec.json.decode(json.dumps(data).encode(), type=ta.Order)
    assert order == msgspec.json.decode(body(VERBOSE_ORDER), type=ta.Order)


def test_unknown_status_and_delivery_method_decode_as_strings() -> None:
    raw = body(VERBOSE_ORDER, status="SOMETHING_NEW", deliveryMethod="CARRIER_PIGEON")
    order = msgspec.json.decode(raw, type=ta.Order)
    assert order.status == "SOMETHING_NEW"
    assert isinstance(order.status, str)
    assert order.status != ta.OrderStatus.COMPLETE
    assert order.delivery_method == "CARRIER_PIGEON"
    assert isinstance(order.delivery_method, str)


@pytest.mark.parametrize("status", list(ta.OrderStatus))
def test_known_status_compares_equal_to_the_enum(status: ta.OrderStatus) -> None:
    order = msgspec.json.decode(body(VERBOSE_ORDER, status=status.value), type=ta.Order)
    assert order.status == status
    assert ta.OrderStatus(order.status) is status


def test_complete_status() -> None:
    order = promo_order()
    assert order.status == ta.OrderStatus.COMPLETE
    assert order.status == "COMPLETE"


@pytest.mark.parametrize("method", [*ta.DeliveryMethod])
def test_known_delivery_methods_compare_equal(method: ta.DeliveryMethod) -> None:
    order = msgspec.json.decode(body(VERBOSE_ORDER, deliveryMethod=method.value), type=ta.Order)
    assert order.delivery_method == method


def test_nulls_decode_as_none() -> None:
    raw = (
        b'{"referenceOrderID":"r","externalRefID":null,"amountCharged":null,"reward":null,'
        b'"recipient":{"address":null,"email":null},"createdAt":null,"status":null}'
    )
    order = msgspec.json.decode(raw, type=ta.Order)
    assert order.external_ref_id is None
    assert order.amount_charged is None
    assert order.reward is None
    assert order.created_at is None
    assert order.status is None
    assert order.recipient == ta.RecipientView()


# --- masking ------------------------------------------------------------------------------


SECRETS = [REDEMPTION_URL, "2024-12-31T06:59:59Z", CARD_NUMBER, CARD_PIN, "rewardlink.io"]


def assert_masked(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} shows in {text!r}"


@pytest.mark.parametrize("model", [ta.Order, ta.CreatedOrder])
@pytest.mark.parametrize("raw", [PROMO_LINK_ORDER, body(VERBOSE_ORDER)], ids=["promo", "verbose"])
def test_order_repr_masks_credentials(model: type[ta.Order], raw: bytes) -> None:
    order = msgspec.json.decode(raw, type=model)
    assert order.reward is not None
    for text in (repr(order), str(order), f"{order}", repr([order])):
        assert_masked(text)
    assert order.reference_order_id in repr(order)  # the rest stays readable
    assert "'***'" in repr(order)


def test_reward_repr_masks_credentials_and_instructions() -> None:
    reward = promo_order().reward
    assert reward is not None
    text = repr(reward)
    assert_masked(text)
    assert "Promo Link Test Redemption Instructions" not in text
    assert "redemptionUrl" in text  # labels stay readable
    assert_masked(str(reward))


def test_reward_repr_masks_string_credentials() -> None:
    reward = ta.Reward(credentials=REDEMPTION_URL)
    assert_masked(repr(reward))
    assert "'***'" in repr(reward)


def test_credential_repr_masks_value() -> None:
    reward = promo_order().reward
    assert reward is not None
    for credential in reward.credential_list:
        text = repr(credential)
        assert_masked(text)
        assert "'***'" in text
        assert repr(credential.label) in text
        assert_masked(str(credential))


def test_credential_repr_shows_a_missing_value_as_none() -> None:
    assert "value=None" in repr(ta.Credential(label="x"))


# --- resends ------------------------------------------------------------------------------


def test_resend_decodes() -> None:
    raw = b"""{
      "id": 0,
      "legacyId": "string",
      "createdAt": "2024-03-25T22:46:39.922Z",
      "email": "ann@example.com",
      "somethingNew": true
    }"""
    resend = msgspec.json.decode(raw, type=ta.Resend)
    assert resend == ta.Resend(
        id=0,
        legacy_id="string",
        created_at=datetime(2024, 3, 25, 22, 46, 39, 922000, tzinfo=UTC),
        email="ann@example.com",
    )
    assert resend.mobile_number is None


def test_line_item_resend_decodes() -> None:
    raw = b"""{
      "id": 0,
      "legacyId": "string",
      "createdAt": "2025-08-11T21:44:21.656Z",
      "deliveryMethod": "NONE",
      "email": "string",
      "mobileNumber": "+14155550100",
      "reasonCode": "NOT_RECEIVED",
      "otherReason": "string",
      "auditTrail": {"by": "api"}
    }"""
    resend = msgspec.json.decode(raw, type=ta.LineItemResend)
    assert resend.id == 0
    assert resend.legacy_id == "string"
    assert resend.created_at == datetime(2025, 8, 11, 21, 44, 21, 656000, tzinfo=UTC)
    assert resend.delivery_method == ta.DeliveryMethod.NONE
    assert resend.mobile_number == "+14155550100"
    assert resend.reason_code == ta.ResendReasonCode.NOT_RECEIVED
    assert resend.other_reason == "string"


def test_line_item_resend_with_new_enum_values() -> None:
    raw = b'{"id":7,"deliveryMethod":"CARRIER_PIGEON","reasonCode":"GREMLINS"}'
    resend = msgspec.json.decode(raw, type=ta.LineItemResend)
    assert resend.delivery_method == "CARRIER_PIGEON"
    assert resend.reason_code == "GREMLINS"


# --- list pages ---------------------------------------------------------------------------

LIST_ITEM = {
    k: v for k, v in VERBOSE_ORDER.items() if k not in ("reward", "redemptionInstructions")
}


def test_list_page_wire_shape_decodes() -> None:
    raw = json.dumps(
        {
            "page": {"number": 2, "elementsPerBlock": 100, "resultCount": 2, "totalCount": 202},
            "orders": [
                LIST_ITEM,
                {**LIST_ITEM, "referenceOrderID": "RA-2", "status": "SOMETHING_NEW"},
            ],
            "links": {"next": "/orders?page=3"},
        }
    ).encode()
    wire = msgspec.json.decode(raw, type=OrderListWire)
    assert wire.page.number == 2
    assert wire.page.elements_per_block == 100
    assert wire.page.result_count == 2
    assert wire.page.total_count == 202
    assert [o.reference_order_id for o in wire.orders] == ["RA230918-5678-90", "RA-2"]
    assert all(isinstance(o, ta.Order) for o in wire.orders)
    assert wire.orders[0].reward is None  # list items carry no credentials
    assert wire.orders[0].status == ta.OrderStatus.COMPLETE
    assert wire.orders[1].status == "SOMETHING_NEW"
    created_at = wire.orders[0].created_at
    assert created_at is not None
    assert created_at.tzinfo is not None
    assert wire.orders[0].amount_charged is not None
    assert wire.orders[0].amount_charged.value == Decimal(0)


def test_list_page_doc_example_decodes() -> None:
    raw = json.dumps(
        {
            "page": {"number": 0, "elementsPerBlock": 0, "resultCount": 0, "totalCount": 0},
            "orders": [{**LIST_ITEM, "utid": "string", "status": "string"}],
        }
    ).encode()
    wire = msgspec.json.decode(raw, type=OrderListWire)
    assert wire.page.total_count == 0
    assert wire.orders[0].status == "string"


def test_empty_and_null_list_pages_decode() -> None:
    for raw in (b"{}", b'{"page": null, "orders": null}', b'{"page":{"number":0},"orders":[]}'):
        wire = msgspec.json.decode(raw, type=OrderListWire)
        assert not wire.orders


def test_explicit_nulls_decode() -> None:
    raw = b'{"referenceOrderID": "RA1", "reward": {"credentials": null, "credentialList": null},'
    raw += b' "recipient": {"address": null}, "amountCharged": null, "createdAt": null}'
    order = msgspec.json.decode(raw, type=ta.Order)
    assert order.reward is not None and order.reward.credential_list == []
    assert order.recipient is not None and order.recipient.address is None


# --- CreatedOrder.created lives outside the wire model (issue 13, point 5) -----------------


def _created(created: bool) -> ta.CreatedOrder:
    order = msgspec.json.decode(
        b'{"referenceOrderID": "RA250101-1111-01", "externalRefID": "ref-1"}',
        type=ta.CreatedOrder,
    )
    order.created = created
    return order


def test_created_order_encodes_only_tangos_fields() -> None:
    for created in (True, False):
        order = _created(created)
        wire = msgspec.json.decode(msgspec.json.encode(order))
        assert wire == {"referenceOrderID": "RA250101-1111-01", "externalRefID": "ref-1"}
        assert msgspec.to_builtins(order) == wire


def test_created_order_copies_and_pickles_keep_created() -> None:
    order = _created(False)
    for again in (copy.copy(order), copy.deepcopy(order), pickle.loads(pickle.dumps(order))):
        assert again.created is False and again.existing
        assert again == order
    assert _created(True).created is True


def test_a_server_key_cannot_set_created() -> None:
    order = msgspec.json.decode(
        b'{"referenceOrderID": "RA1", "__tango_async_created__": false, "_created": false}',
        type=ta.CreatedOrder,
    )
    assert order.created is True
