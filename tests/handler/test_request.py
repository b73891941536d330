"""``ImportRequest.from_properties``: the custom resource properties CloudFormation sends.

CloudFormation passes every property value as a string. The property names and values are
written out literally here (not read from ``protocol``): they are the wire contract.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
import stubbing

from imported_key_handler.errors import ImportFailure
from imported_key_handler.request import ImportRequest

VALID: Final[dict[str, Any]] = {
    "ServiceToken": "arn:aws:lambda:us-east-1:111122223333:function:importer",
    "KeyId": stubbing.KEY_ID,
    "SecretArn": stubbing.SECRET_ARN,
    "KeySpec": "SYMMETRIC_DEFAULT",
    "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
    "WrappingKeySpec": "RSA_4096",
    "ExpirationModel": "KEY_MATERIAL_EXPIRES",
    "ValidityDays": "30",
}
ALWAYS_REQUIRED: Final = (
    "KeyId",
    "SecretArn",
    "KeySpec",
    "WrappingAlgorithm",
    "WrappingKeySpec",
    "ExpirationModel",
)
_MISSING: Final = object()


def with_property(name: str, value: object) -> dict[str, Any]:
    properties = dict(VALID)
    if value is _MISSING:
        del properties[name]
    else:
        properties[name] = value
    return properties


def failure_reason(properties: dict[str, Any]) -> str:
    with pytest.raises(ImportFailure) as caught:
        ImportRequest.from_properties(properties)
    stubbing.assert_clean_reason(caught.value.reason)
    return caught.value.reason


def test_complete_properties_parse_into_a_typed_request() -> None:
    assert ImportRequest.from_properties(VALID) == ImportRequest(
        key_id=stubbing.KEY_ID,
        secret_arn=stubbing.SECRET_ARN,
        key_spec="SYMMETRIC_DEFAULT",
        wrapping_algorithm="RSAES_OAEP_SHA_256",
        wrapping_key_spec="RSA_4096",
        expiration_model="KEY_MATERIAL_EXPIRES",
        validity_days=30,
    )


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
@pytest.mark.parametrize("spec", ["RSA_2048", "RSA_3072", "RSA_4096"])
def test_every_oaep_algorithm_and_wrapping_key_spec_is_accepted(algorithm: str, spec: str) -> None:
    request = ImportRequest.from_properties(
        with_property("WrappingAlgorithm", algorithm) | {"WrappingKeySpec": spec}
    )
    assert (request.wrapping_algorithm, request.wrapping_key_spec) == (algorithm, spec)


@pytest.mark.parametrize(("raw", "days"), [("1", 1), ("365", 365), ("90", 90)])
def test_validity_days_in_range_are_parsed_to_an_int(raw: str, days: int) -> None:
    assert ImportRequest.from_properties(with_property("ValidityDays", raw)).validity_days == days


@pytest.mark.parametrize("raw", [_MISSING, "30", "0", "366", "abc", "1.5", ""])
def test_validity_days_is_ignored_when_the_material_does_not_expire(raw: object) -> None:
    properties = with_property("ValidityDays", raw) | {
        "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"
    }
    request = ImportRequest.from_properties(properties)
    assert request.expiration_model == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert request.validity_days is None


@pytest.mark.parametrize("name", ALWAYS_REQUIRED)
@pytest.mark.parametrize(
    "value",
    [_MISSING, "", None, 30, ["SYMMETRIC_DEFAULT"], {"Ref": "Key"}],
    ids=["missing", "empty", "null", "int", "list", "dict"],
)
def test_a_missing_empty_or_non_string_property_is_refused_by_name(
    name: str, value: object
) -> None:
    reason = failure_reason(with_property(name, value))
    assert f"Property {name} " in reason
    assert "missing or not a string" in reason
    # The fix: this resource is written by the construct, not by hand.
    assert "ImportedKey construct" in reason


CHOICES: Final = {
    "KeySpec": ("SYMMETRIC_DEFAULT",),
    # Symmetric material goes in OAEP; the RSA_AES_* algorithms are for private keys.
    "WrappingAlgorithm": ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"),
    "WrappingKeySpec": ("RSA_2048", "RSA_3072", "RSA_4096"),
    "ExpirationModel": ("KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"),
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KeySpec", "RSA_2048"),
        ("KeySpec", "HMAC_256"),
        ("KeySpec", "symmetric_default"),
        ("KeySpec", "SYMMETRIC_DEFAULT "),
        ("WrappingAlgorithm", "RSA_AES_KEY_WRAP_SHA_256"),
        ("WrappingAlgorithm", "RSA_AES_KEY_WRAP_SHA_1"),
        ("WrappingAlgorithm", "RSAES_PKCS1_V1_5"),
        ("WrappingAlgorithm", "SM2PKE"),
        ("WrappingAlgorithm", "rsaes_oaep_sha_256"),
        ("WrappingKeySpec", "RSA_1024"),
        ("WrappingKeySpec", "SM2"),
        ("WrappingKeySpec", "4096"),
        ("ExpirationModel", "NEVER"),
        ("ExpirationModel", "key_material_expires"),
    ],
)
def test_an_unsupported_value_is_refused_with_the_valid_choices(name: str, value: str) -> None:
    reason = failure_reason(with_property(name, value))
    assert f"Property {name}={value!r} is not supported" in reason
    for choice in CHOICES[name]:
        assert choice in reason
    if name == "WrappingAlgorithm":
        assert "RSA_AES" not in reason.replace(value, "")  # not offered as a choice


def test_a_huge_unsupported_value_is_cut_and_the_reason_stays_readable() -> None:
    value = "RSAES_" + "X" * 2000
    reason = failure_reason(with_property("WrappingAlgorithm", value))
    assert reason.startswith("Property WrappingAlgorithm=")
    assert value not in reason
    # The valid choices (the fix) survive at the end.
    assert reason.rstrip(".").endswith("RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256")


@pytest.mark.parametrize(
    "raw",
    [_MISSING, None, "", "0", "366", "-1", "abc", "1.5", "30 days", "1e2", "365.0"],
    ids=lambda raw: "missing" if raw is _MISSING else repr(raw),
)
def test_validity_days_must_be_whole_days_from_1_to_365_when_the_material_expires(
    raw: object,
) -> None:
    reason = failure_reason(with_property("ValidityDays", raw))
    assert reason.startswith("Property ValidityDays=")
    assert "whole number of days from 1 to 365" in reason
    if isinstance(raw, str) and raw:
        assert repr(raw) in reason  # echoes what it got


def test_a_non_string_but_whole_validity_days_is_accepted() -> None:
    # A template value CloudFormation did not stringify (or a direct call) still parses.
    assert ImportRequest.from_properties(with_property("ValidityDays", 7)).validity_days == 7
