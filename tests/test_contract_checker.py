"""The contract checker: Tango's doc examples pass, wrong bodies fail naming the field."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jsonschema")

from tango_async.testing._contract import (
    _REQUIRED_DROPS,
    SPEC_CORRECTIONS,
    ContractChecker,
    ContractViolation,
    _correct,
    load_spec,
)

REFERENCE = Path(
    os.environ.get("TANGO_OPENAPI_REFERENCE", "/work/shared/reference/tangocard-openapi.json")
)
PACKAGED = Path(__file__).parent.parent / "tango_async" / "testing" / "tangocard-openapi.json"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The reference copy of the spec when present, else the packaged one."""
    return load_spec(REFERENCE) if REFERENCE.exists() else load_spec()


@pytest.fixture(scope="module")
def checker(spec: dict[str, Any]) -> ContractChecker:
    return ContractChecker(spec)


def messages(violations: list[ContractViolation]) -> list[str]:
    return [v.message for v in violations]


# --- Tango's doc examples (001_*.txt, "Manage orders"), made valid JSON ----------------------

# POST /orders response example (valid JSON as published).
CREATE_RESPONSE = json.loads("""
{
  "referenceOrderID": "string", "externalRefID": "string",
  "customerIdentifier": "string", "accountIdentifier": "string",
  "amountCharged": {"value": 0, "currencyCode": "string", "exchangeRate": 0, "fee": 0,
                    "total": 0},
  "denomination": {"value": 0, "currencyCode": "string", "exchangeRate": 0, "fee": 0,
                   "total": 0},
  "utid": "string", "ptid": "string", "rewardName": "string",
  "reward": {
    "credentials": {"additionalProp": "string"},
    "credentialList": [
      {"label": "string", "value": "string", "type": "string", "credentialType": "string"}
    ],
    "redemptionInstructions": "string"
  },
  "sender": {"firstName": "string", "lastName": "string", "email": "string"},
  "recipient": {
    "email": "string", "firstName": "string", "lastName": "string",
    "address": {"streetLine1": "string", "streetLine2": "string", "city": "string",
                "stateOrProvince": "string", "postalCode": "string", "country": "string"}
  },
  "emailSubject": "string", "message": "string", "sendEmail": true, "status": "string",
  "campaign": "string", "purchaseOrderNumber": "string",
  "createdAt": "2023-10-12T16:28:34.439Z", "redemptionInstructions": "string"
}
""")

# POST /orders with a Promo Link: the "(100 chars)"-style annotations removed.
PROMO_CREATE_RESPONSE = json.loads("""
{
  "referenceOrderID": "string", "externalRefID": "string",
  "customerIdentifier": "string", "accountIdentifier": "string", "accountNumber": "string",
  "amountCharged": {"value": 10.00, "currencyCode": "USD", "total": 10.0},
  "denomination": {"value": 10.0, "currencyCode": "USD"},
  "utid": "string", "rewardName": "Promo Link",
  "sender": {"firstName": "string", "lastName": "string", "email": "string"},
  "recipient": {"email": "string", "firstName": "string", "lastName": "string",
                "address": null},
  "sendEmail": false, "status": "COMPLETE", "createdAt": "2023-10-11T23:10:55.284Z",
  "reward": {
    "credentials": {
      "redemptionUrl": "https://gamma.rewardlink.io/r/1/Cl4e2dX_qz3zyUbSTb4dZgrbQta9qg-oBd6sPkywiIk",
      "expirationDate": "2024-12-31T06:59:59Z"
    },
    "credentialList": [
      {"label": "redemptionUrl",
       "value": "https://gamma.rewardlink.io/r/1/Cl4e2dX_qz3zyUbSTb4dZgrbQta9qg-oBd6sPkywiIk",
       "type": "url", "credentialType": "redemptionUrl"},
      {"label": "expirationDate", "value": "2024-12-31T06:59:59Z", "type": "date",
       "credentialType": "expirationDate"}
    ],
    "redemptionInstructions": "string"
  }
}
""")

# GET /orders/{referenceOrderID}: annotations removed; the published text repeats
# "denomination" three times (two of them cut short, one with a trailing comma): the last,
# complete one is kept.
GET_RESPONSE = json.loads("""
{
  "referenceOrderID": "string", "externalRefID": "string",
  "customerIdentifier": "string", "accountIdentifier": "string", "accountNumber": "string",
  "amountCharged": {"value": 0, "currencyCode": "string", "exchangeRate": 0, "fee": 0,
                    "total": 0},
  "denomination": {"value": 0, "currencyCode": "string", "exchangeRate": 0, "fee": 0,
                   "total": 0},
  "utid": "string", "rewardName": "string",
  "sender": {"firstName": "string", "lastName": "string", "email": "string"},
  "recipient": {
    "email": "string", "firstName": "string", "lastName": "string",
    "address": {"streetLine1": "string", "streetLine2": "string", "city": "string",
                "stateOrProvince": "string", "postalCode": "string", "country": "string"}
  },
  "emailSubject": "string", "message": "string", "sendEmail": true, "etid": "string",
  "ptid": "string", "status": "string", "campaign": "string",
  "createdAt": "2023-09-18T19:36:27.589Z", "notes": "string", "orderClientSource": "string",
  "purchaseOrderNumber": "string",
  "reward": {
    "credentials": {"additionalProp": "string"},
    "credentialList": [
      {"label": "string", "value": "string", "type": "string", "credentialType": "string"}
    ],
    "redemptionInstructions": "string"
  }
}
""")

# GET /orders/{referenceOrderID} of a Promo Link (valid JSON as published).
PROMO_GET_RESPONSE = json.loads("""
{
  "referenceOrderID": "string", "externalRefID": "string",
  "customerIdentifier": "string", "accountIdentifier": "string", "accountNumber": "string",
  "amountCharged": {"value": 10.00, "currencyCode": "USD", "total": 10.0},
  "denomination": {"value": 10, "currencyCode": "USD"},
  "utid": "string", "rewardName": "Promo Link",
  "sender": {"firstName": "string", "lastName": "string", "email": "string"},
  "recipient": {"email": "string", "firstName": "string", "lastName": "string",
                "address": null},
  "sendEmail": false, "status": "COMPLETE", "createdAt": "2023-10-11T23:10:55.284Z",
  "reward": {
    "credentials": {"redemptionUrl": "string", "expirationDate": "2024-12-31T06:59:59Z"},
    "credentialList": [
      {"label": "redemptionUrl", "value": "string", "type": "url",
       "credentialType": "redemptionUrl"},
      {"label": "expirationDate", "value": "2024-12-31T06:59:59Z", "type": "date",
       "credentialType": "expirationDate"}
    ],
    "redemptionInstructions": "Promo Link Test Redemption Instructions"
  }
}
""")

# GET /orders page (valid JSON as published).
LIST_RESPONSE = json.loads("""
{
  "page": {"number": 0, "elementsPerBlock": 0, "resultCount": 0, "totalCount": 0},
  "orders": [
    {
      "referenceOrderID": "string", "externalRefID": "string",
      "customerIdentifier": "string", "accountIdentifier": "string",
      "accountNumber": "string",
      "amountCharged": {"value": 0, "currencyCode": "string", "exchangeRate": 0, "fee": 0,
                        "total": 0},
      "denomination": {"value": 0, "currencyCode": "string", "exchangeRate": 0, "fee": 0,
                       "total": 0},
      "utid": "string", "ptid": "string", "rewardName": "string",
      "sender": {"firstName": "string", "lastName": "string", "email": "string"},
      "recipient": {
        "email": "string", "firstName": "string", "lastName": "string",
        "address": {"streetLine1": "string", "streetLine2": "string", "city": "string",
                    "stateOrProvince": "string", "postalCode": "string",
                    "country": "string"}
      },
      "emailSubject": "string", "message": "string", "sendEmail": true, "etid": "string",
      "status": "string", "campaign": "string", "createdAt": "2023-10-12T16:28:34.439Z",
      "notes": "string", "orderClientSource": "string", "purchaseOrderNumber": "string"
    }
  ]
}
""")

# 422 for a frozen account: published with curly quotes (and one straight closing quote);
# straight quotes here.
FROZEN_422 = json.loads("""
{
  "timestamp": "2025-01-15T19:12:42.059287141Z",
  "requestId": "08f50da4-aa93-40ba-968d-375b76085af6",
  "path": "/raas/v2/orders",
  "httpCode": 422,
  "httpPhrase": "Unprocessable Entity",
  "errors": [
    {"code": 422001, "i18nKey": "404.142",
     "message": "Account has been frozen, please contact your Tango CSM or email [email protected]"}
  ]
}
""")

# POST /orders/{referenceOrderID}/resends 201 (000_*.txt and 001_*.txt).
ORDER_RESEND_201 = {"id": 0, "legacyId": "string", "createdAt": "2024-03-25T22:46:39.922Z",
                    "email": "string"}  # fmt: skip
# POST /lineItems/{referenceLineItemId}/resends 201 (002_*.txt).
LINE_ITEM_RESEND_201 = {
    "id": 0, "legacyId": "string", "createdAt": "2025-08-11T21:44:21.656Z",
    "deliveryMethod": "NONE", "email": "string", "mobileNumber": "string",
    "reasonCode": "NOT_RECEIVED", "otherReason": "string",
}  # fmt: skip

CREATE_REQUEST: dict[str, Any] = {
    "customerIdentifier": "cust-12345",
    "accountIdentifier": "acct-12345",
    "utid": "U561593",
    "amount": 10.5,
    "deliveryMethod": "EMAIL",
    "externalRefID": "ext-0001",
    "recipient": {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"},
    "sender": {"firstName": "Bo", "lastName": "Ng", "email": "bo@example.com"},
    "etid": "E000000",
    "message": "Thanks!",
}


# --- the doc examples validate -------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201])
@pytest.mark.parametrize("body", [CREATE_RESPONSE, PROMO_CREATE_RESPONSE], ids=["std", "promo"])
def test_create_order_examples_validate(
    checker: ContractChecker, status: int, body: dict[str, Any]
) -> None:
    assert checker.check_response("POST", "/raas/v2/orders", status, body) == []


@pytest.mark.parametrize("body", [GET_RESPONSE, PROMO_GET_RESPONSE], ids=["std", "promo"])
def test_get_order_examples_validate(checker: ContractChecker, body: dict[str, Any]) -> None:
    assert checker.check_response("GET", "/raas/v2/orders/RA250115-123-45", 200, body) == []


def test_list_example_validates(checker: ContractChecker) -> None:
    assert checker.check_response("GET", "/raas/v2/orders?page=0", 200, LIST_RESPONSE) == []


def test_frozen_account_422_validates(checker: ContractChecker) -> None:
    assert checker.check_response("POST", "/raas/v2/orders", 422, FROZEN_422) == []


def test_resend_examples_validate(checker: ContractChecker) -> None:
    path = "/raas/v2/orders/RA250115-123-45/resends"
    assert checker.check_response("POST", path, 201, ORDER_RESEND_201) == []
    path = "/raas/v2/lineItems/RA250115-123-45-01/resends"
    assert checker.check_response("POST", path, 201, LINE_ITEM_RESEND_201) == []


def test_good_requests_validate(checker: ContractChecker) -> None:
    assert checker.check_request("POST", "/raas/v2/orders", CREATE_REQUEST) == []
    body = {"newEmail": "new@example.com", "newEtid": "E000001", "newDeliveryMethod": "EMAIL"}
    assert checker.check_request("POST", "/raas/v2/orders/RA1/resends", body) == []
    body = {"newMobileNumber": "+15555550100", "newDeliveryMethod": "PHONE",
            "reasonCode": "OTHER", "otherReason": "lost phone"}  # fmt: skip
    assert checker.check_request("POST", "/raas/v2/lineItems/RA1-01/resends", body) == []
    assert checker.check_request("GET", "/raas/v2/orders", None) == []
    assert checker.check_request("GET", "/raas/v2/orders/RA1", None) == []


# --- wrong bodies name the field -----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("amount", "10", "$.amount: '10' is not of type 'number'"),
        ("deliveryMethod", "CARRIER_PIGEON", "$.deliveryMethod: 'CARRIER_PIGEON' is not one of"),
        ("customerIdentifier", "ab", "$.customerIdentifier: 'ab' does not match"),
        ("utid", "X1", "$.utid: 'X1' does not match"),
        ("etid", "E1", "$.etid: 'E1' does not match"),
        ("amount", -1, "$.amount: -1 is less than the minimum of 0"),
        ("amount", None, "$.amount: None is not of type 'number'"),
        ("recipient", "ann@example.com", "$.recipient: 'ann@example.com' is not of type"),
    ],
)
def test_wrong_create_request(
    checker: ContractChecker, field: str, value: Any, expected: str
) -> None:
    body = {**CREATE_REQUEST, field: value}
    [violation] = checker.check_request("POST", "/raas/v2/orders", body)
    assert violation.direction == "request"
    assert violation.method == "POST"
    assert violation.path == "/raas/v2/orders"
    assert violation.status is None
    assert violation.message.startswith(expected), violation.message


def test_every_problem_is_reported(checker: ContractChecker) -> None:
    body = {**CREATE_REQUEST, "amount": "10", "deliveryMethod": "CARRIER_PIGEON"}
    del body["utid"]
    body["recipient"] = {"address": {"country": "USA"}}
    assert messages(checker.check_request("POST", "/orders", body)) == [
        "$: 'utid' is a required property",
        "$.amount: '10' is not of type 'number'",
        "$.deliveryMethod: 'CARRIER_PIGEON' is not one of ['NONE', 'EMAIL', 'PHONE', "
        "'ADDRESS', 'EMBEDDED', 'EMBEDDED_COMPONENT', 'WHATSAPP']",
        "$.recipient.address.country: 'USA' is too long",
    ]


def test_list_page_without_page(checker: ContractChecker) -> None:
    body: dict[str, Any] = {"orders": []}
    assert messages(checker.check_response("GET", "/raas/v2/orders", 200, body)) == [
        "$: 'page' is a required property"
    ]


def test_list_page_total_count_as_string(checker: ContractChecker) -> None:
    body = copy.deepcopy(LIST_RESPONSE)
    body["page"]["totalCount"] = "12"
    assert messages(checker.check_response("GET", "/raas/v2/orders", 200, body)) == [
        "$.page.totalCount: '12' is not of type 'integer', 'null'"
    ]


def test_list_item_problem_has_its_index(checker: ContractChecker) -> None:
    body = copy.deepcopy(LIST_RESPONSE)
    body["orders"].append(copy.deepcopy(body["orders"][0]))
    body["orders"][1]["amountCharged"]["total"] = "10.00"
    del body["orders"][1]["referenceOrderID"]
    assert messages(checker.check_response("GET", "/raas/v2/orders", 200, body)) == [
        "$.orders[1]: 'referenceOrderID' is a required property",
        "$.orders[1].amountCharged.total: '10.00' is not of type 'number', 'null'",
    ]


def test_error_body_with_http_code_as_string(checker: ContractChecker) -> None:
    body = {**FROZEN_422, "httpCode": "422"}
    [violation] = checker.check_response("POST", "/raas/v2/orders", 422, body)
    assert violation.direction == "response"
    assert violation.status == 422
    assert violation.message == "$.httpCode: '422' is not of type 'integer', 'null'"


def test_wrong_resend_requests(checker: ContractChecker) -> None:
    body = {"newDeliveryMethod": "ADDRESS"}
    [v] = checker.check_request("POST", "/raas/v2/orders/RA1/resends", body)
    assert v.message.startswith("$.newDeliveryMethod: 'ADDRESS' is not one of")
    body = {"reasonCode": "FORGOT"}
    [v] = checker.check_request("POST", "/raas/v2/lineItems/RA1-01/resends", body)
    assert v.message.startswith("$.reasonCode: 'FORGOT' is not one of")


def test_resend_response_requires_id(checker: ContractChecker) -> None:
    body = {k: v for k, v in ORDER_RESEND_201.items() if k != "id"}
    assert messages(checker.check_response("POST", "/orders/RA1/resends", 201, body)) == [
        "$: 'id' is a required property"
    ]


def test_violation_str() -> None:
    v = ContractViolation("response", "GET", "/raas/v2/orders", 200, "$: boom")
    assert str(v) == "response GET /raas/v2/orders 200: $: boom"
    v = ContractViolation("request", "POST", "/raas/v2/orders", None, "$: boom")
    assert str(v) == "request POST /raas/v2/orders: $: boom"


# --- the corrections -----------------------------------------------------------------------


def test_credentials_is_a_map_and_optional(checker: ContractChecker) -> None:
    body = copy.deepcopy(GET_RESPONSE)
    del body["reward"]["credentials"]
    assert checker.check_response("GET", "/orders/RA1", 200, body) == []
    body["reward"]["credentials"] = "Claim Code: ABC"
    assert messages(checker.check_response("GET", "/orders/RA1", 200, body)) == [
        "$.reward.credentials: 'Claim Code: ABC' is not of type 'object', 'null'"
    ]
    body["reward"]["credentials"] = {"Claim Code": 123}
    assert messages(checker.check_response("GET", "/orders/RA1", 200, body)) == [
        "$.reward.credentials['Claim Code']: 123 is not of type 'string'"
    ]


def test_explicit_nulls_are_allowed_in_responses(checker: ContractChecker) -> None:
    body = copy.deepcopy(CREATE_RESPONSE)
    for key in ("externalRefID", "ptid", "emailSubject", "message", "campaign", "reward"):
        body[key] = None
    body["recipient"]["address"] = None
    body["amountCharged"]["exchangeRate"] = None
    assert checker.check_response("POST", "/orders", 201, body) == []


def test_nulls_in_requests(checker: ContractChecker) -> None:
    # Optional values may be null (the docs: a digital order's address "excluded or null")...
    body = {**CREATE_REQUEST, "recipient": {"email": "a@example.com", "address": None}}
    body["externalRefID"] = None
    assert checker.check_request("POST", "/orders", body) == []
    # ...required ones may not.
    body = {**CREATE_REQUEST, "utid": None}
    assert messages(checker.check_request("POST", "/orders", body)) == [
        "$.utid: None is not of type 'string'"
    ]


def test_create_request_without_delivery_method(checker: ContractChecker) -> None:
    body = {k: v for k, v in CREATE_REQUEST.items() if k != "deliveryMethod"}
    assert checker.check_request("POST", "/orders", body) == []
    body = {k: v for k, v in CREATE_REQUEST.items() if k != "amount"}
    assert messages(checker.check_request("POST", "/orders", body)) == [
        "$: 'amount' is a required property"
    ]


def test_unknown_fields_are_allowed(checker: ContractChecker) -> None:
    body = {**CREATE_REQUEST, "somethingNew": {"x": 1}, "customFields": {"costCenter": "42"}}
    assert checker.check_request("POST", "/orders", body) == []
    body = {**GET_RESPONSE, "lineItems": [], "deliveryMethod": "EMAIL"}
    assert checker.check_response("GET", "/orders/RA1", 200, body) == []


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("POST", "/raas/v2/orders", 201, CREATE_RESPONSE),
        ("GET", "/raas/v2/orders/RA1", 200, GET_RESPONSE),
        ("GET", "/raas/v2/orders", 200, LIST_RESPONSE),
    ],
)
def test_kept_requirements_still_apply(
    checker: ContractChecker, method: str, path: str, status: int, body: dict[str, Any]
) -> None:
    broken = copy.deepcopy(body)
    target = broken["orders"][0] if "orders" in broken else broken
    del target["referenceOrderID"]
    del target["createdAt"]
    found = messages(checker.check_response(method, path, status, broken))
    assert len(found) == 2
    assert "'referenceOrderID' is a required property" in found[0] + found[1]
    assert "'createdAt' is a required property" in found[0] + found[1]


@pytest.mark.parametrize(
    ("method", "path", "body", "absent"),
    [
        ("POST", "/orders", PROMO_CREATE_RESPONSE, ["campaign", "emailSubject", "message"]),
        ("GET", "/orders/RA1", PROMO_GET_RESPONSE, ["campaign", "emailSubject", "message"]),
        ("GET", "/orders/RA1", PROMO_GET_RESPONSE, ["etid"]),
    ],
)
def test_relaxed_requirements(
    checker: ContractChecker, method: str, path: str, body: dict[str, Any], absent: list[str]
) -> None:
    assert not set(absent) & body.keys()
    assert checker.check_response(method, path, 201 if method == "POST" else 200, body) == []


def test_relaxed_list_item_requirements(checker: ContractChecker) -> None:
    body = copy.deepcopy(LIST_RESPONSE)
    for key in ("campaign", "emailSubject", "etid", "message", "notes", "ptid"):
        del body["orders"][0][key]
    assert checker.check_response("GET", "/orders", 200, body) == []


def test_required_drops_are_real_and_documented(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for name, dropped in _REQUIRED_DROPS.items():
        assert name in SPEC_CORRECTIONS
        for field in dropped:
            assert field in schemas[name]["required"], (name, field)
            assert field in SPEC_CORRECTIONS
    corrected = _correct(spec)["components"]["schemas"]
    for name, dropped in _REQUIRED_DROPS.items():
        assert not set(dropped) & set(corrected[name].get("required", ()))
        kept = [r for r in schemas[name]["required"] if r not in dropped]
        assert corrected[name].get("required", []) == kept


def test_correct_returns_a_copy(spec: dict[str, Any]) -> None:
    before = json.dumps(spec, sort_keys=True)
    corrected = _correct(spec)
    assert json.dumps(spec, sort_keys=True) == before
    assert corrected is not spec
    assert (
        corrected["components"]["schemas"]["RewardView"]["properties"]["credentials"]
        != (spec["components"]["schemas"]["RewardView"]["properties"]["credentials"])
    )


def test_corrected_spec_forbids_no_unknown_fields(spec: dict[str, Any]) -> None:
    text = json.dumps(_correct(spec))
    assert '"additionalProperties": false' not in text
    assert '"unevaluatedProperties": false' not in text
    assert '"oneOf"' not in text


@pytest.mark.parametrize("status", [500, 502, 504, 404, 418])
def test_unlisted_error_status_is_error_info(checker: ContractChecker, status: int) -> None:
    body = {**FROZEN_422, "httpCode": status}
    assert checker.check_response("POST", "/raas/v2/orders", status, body) == []
    body = {**FROZEN_422, "httpCode": str(status), "errors": {}}
    assert messages(checker.check_response("POST", "/raas/v2/orders", status, body)) == [
        "$.errors: {} is not of type 'array', 'null'",
        f"$.httpCode: '{status}' is not of type 'integer', 'null'",
    ]


def test_error_body_must_be_an_object(checker: ContractChecker) -> None:
    found = checker.check_response("GET", "/orders/RA1", 503, "Service Unavailable")
    assert messages(found) == ["$: 'Service Unavailable' is not of type 'object'"]


def test_undocumented_success_status(checker: ContractChecker) -> None:
    [v] = checker.check_response("POST", "/raas/v2/orders", 204, None)
    assert v.message.startswith("status 204 is not documented")
    [v] = checker.check_response("GET", "/raas/v2/orders/RA1", 302, None)
    assert v.message.startswith("status 302 is not documented")


def test_line_item_404_accepts_error_info(checker: ContractChecker) -> None:
    # The spec's oneOf [ErrorInfo, ErrorDTO] would reject every object: both match.
    body = {**FROZEN_422, "httpCode": 404, "httpPhrase": "Not Found"}
    assert checker.check_response("GET", "/raas/v2/lineItems/RA1-01", 404, body) == []


# --- routes, methods, bodies and content types ---------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/raas/v2/lineItems/RA250115-123-45-01/resends",
        "/lineItems/RA250115-123-45-01/resends",
        "https://integration-api.tangocard.com/raas/v2/lineItems/RA1-01/resends",
        "/raas/v2/lineItems/RA1-01/resends?x=1",
    ],
)
def test_path_forms(checker: ContractChecker, path: str) -> None:
    assert checker.check_request("POST", path, {"reasonCode": "NOT_RECEIVED"}) == []
    [v] = checker.check_request("POST", path, {"reasonCode": "LOST"})
    assert v.path == path


def test_literal_segment_wins_over_parameter(checker: ContractChecker) -> None:
    # /lineItems/reasonCodes, not /lineItems/{referenceLineItemID}, whose 200 is an object.
    assert checker.check_response("GET", "/raas/v2/lineItems/reasonCodes", 200, []) != (
        checker.check_response("GET", "/raas/v2/lineItems/RA1-01", 200, [])
    )
    found = messages(checker.check_response("GET", "/raas/v2/lineItems/RA1-01", 200, {}))
    assert "$: 'referenceLineItemID' is a required property" in found


@pytest.mark.parametrize(
    "path", ["/raas/v2/order", "/raas/v2/orders/", "/raas/v2/orders/RA1/resends/x", "/", "orders"]
)
def test_unknown_route_is_one_violation(checker: ContractChecker, path: str) -> None:
    [v] = checker.check_request("GET", path, None)
    assert v.message == f"no route of the spec matches {path!r}"
    [v] = checker.check_response("GET", path, 200, {})
    assert v.message == f"no route of the spec matches {path!r}"
    assert v.status == 200


def test_unknown_method_is_one_violation(checker: ContractChecker) -> None:
    [v] = checker.check_request("delete", "/raas/v2/orders/RA1", None)
    assert v.method == "DELETE"
    assert v.message == "DELETE is not an operation of /orders/{referenceOrderID} (only ['GET'])"


def test_request_bodies(checker: ContractChecker) -> None:
    [v] = checker.check_request("POST", "/raas/v2/orders", None)
    assert v.message == "a request body is required"
    # The resend bodies are optional.
    assert checker.check_request("POST", "/raas/v2/orders/RA1/resends", None) == []
    assert checker.check_request("POST", "/raas/v2/lineItems/RA1-01/resends", None) == []
    [v] = checker.check_request("GET", "/raas/v2/orders", {"page": 1})
    assert v.message == "the operation takes no request body"
    [v] = checker.check_request("POST", "/raas/v2/orders", [CREATE_REQUEST])
    assert v.message.startswith("$: [{")
    assert v.message.endswith("is not of type 'object'")


def test_content_types(checker: ContractChecker) -> None:
    check = checker.check_response
    assert check("GET", "/orders", 200, LIST_RESPONSE, "application/json;charset=UTF-8") == []
    assert check("GET", "/orders", 200, LIST_RESPONSE, "Application/JSON") == []
    [v] = check("GET", "/orders", 502, "<html>Bad Gateway</html>", "text/html")
    assert v.message == "Content-Type 'text/html' is not among ['application/json']"
    [v] = check("GET", "/orders", 200, LIST_RESPONSE, None)
    assert v.message == "no Content-Type; the spec declares ['application/json']"
    # A missing body where the spec declares one.
    assert messages(check("GET", "/orders", 200, None)) == ["$: None is not of type 'object'"]


# --- loading the spec ----------------------------------------------------------------------


def test_load_spec_packaged_copy() -> None:
    spec = load_spec()
    assert spec["openapi"].startswith("3.1")
    assert "/orders" in spec["paths"]
    assert "/lineItems/{referenceLineItemId}/resends" in spec["paths"]
    assert spec == json.loads(PACKAGED.read_text(encoding="utf-8"))


@pytest.mark.skipif(not REFERENCE.exists(), reason="no reference copy of the spec here")
def test_load_spec_reference_copy_matches_packaged() -> None:
    assert load_spec(REFERENCE) == load_spec(str(REFERENCE)) == load_spec()


def test_load_spec_from_a_path(tmp_path: Path) -> None:
    file = tmp_path / "spec.json"
    file.write_text(PACKAGED.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_spec(file) == load_spec(str(file)) == load_spec()
    bad = tmp_path / "bad.json"
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="not an OpenAPI description"):
        load_spec(bad)


def test_default_checker_uses_packaged_spec(checker: ContractChecker) -> None:
    default = ContractChecker()
    assert default.check_response("GET", "/orders", 200, LIST_RESPONSE) == []
    body = {**CREATE_REQUEST, "amount": "10"}
    assert default.check_request("POST", "/orders", body) == checker.check_request(
        "POST", "/orders", body
    )
