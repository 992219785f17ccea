"""The reward settings and the sign-up's externalRefID."""

from __future__ import annotations

from decimal import Decimal

import pytest

from signup_service import RewardSettings, signup_ref


def test_the_defaults_fit_the_local_sandbox() -> None:
    settings = RewardSettings.from_env({})

    assert settings == RewardSettings()
    assert (settings.customer_identifier, settings.account_identifier) == (
        "sandbox-customer",
        "sandbox-account",
    )


def test_settings_from_the_environment() -> None:
    settings = RewardSettings.from_env(
        {
            "SIGNUP_CUSTOMER_IDENTIFIER": "acme-customer",
            "SIGNUP_ACCOUNT_IDENTIFIER": "acme-rewards",
            "SIGNUP_REWARD_UTID": "U157189",
            "SIGNUP_REWARD_AMOUNT": "10.00",
            "SIGNUP_REF_PREFIX": "spring-2026",
        }
    )

    assert settings == RewardSettings(
        "acme-customer", "acme-rewards", "U157189", Decimal("10.00"), "spring-2026"
    )


@pytest.mark.parametrize("amount", ["ten", "0", "-5", "NaN", "Infinity"])
def test_a_bad_amount_is_refused_at_startup(amount: str) -> None:
    with pytest.raises(ValueError, match="SIGNUP_REWARD_AMOUNT"):
        RewardSettings.from_env({"SIGNUP_REWARD_AMOUNT": amount})


def test_a_too_long_prefix_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="SIGNUP_REF_PREFIX"):
        RewardSettings.from_env({"SIGNUP_REF_PREFIX": "x" * 51})


def test_the_ref_is_the_same_for_the_same_address_and_fits_tango() -> None:
    ref = signup_ref("ann@example.com")

    assert ref == signup_ref("  ANN@example.com\n")
    assert ref != signup_ref("bob@example.com")
    assert ref != signup_ref("ann@example.com", "spring-2026")
    assert ref.startswith("signup-")
    assert "ann" not in ref  # the address itself stays out of Tango's references
    assert len(signup_ref("ann@example.com", "x" * 50)) <= 100
