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
        # The optional properties' defaults: the spec's first usage, auto-detected encoding.
        key_usage="ENCRYPT_DECRYPT",
        material_encoding="auto",
        json_field=None,
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
    # Every key spec that takes imported material.
    "KeySpec": (
        "SYMMETRIC_DEFAULT",
        "HMAC_224",
        "HMAC_256",
        "HMAC_384",
        "HMAC_512",
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
    ),
    # All four KMS wrapping algorithms; which of them fits is the key spec's question.
    "WrappingAlgorithm": (
        "RSAES_OAEP_SHA_1",
        "RSAES_OAEP_SHA_256",
        "RSA_AES_KEY_WRAP_SHA_1",
        "RSA_AES_KEY_WRAP_SHA_256",
    ),
    "WrappingKeySpec": ("RSA_2048", "RSA_3072", "RSA_4096"),
    "ExpirationModel": ("KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"),
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KeySpec", "ML_DSA_44"),
        ("KeySpec", "RSA_1024"),
        ("KeySpec", "AES_256"),
        ("KeySpec", "symmetric_default"),
        ("KeySpec", "SYMMETRIC_DEFAULT "),
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
    # Exactly the valid choices are offered, in order, and nothing else.
    assert reason.endswith(f"use one of {', '.join(CHOICES[name])}.")


@pytest.mark.parametrize(
    ("key_spec", "algorithm", "why", "valid"),
    [
        (
            "SYMMETRIC_DEFAULT",
            "RSA_AES_KEY_WRAP_SHA_256",
            "KMS takes secret-key material by RSA-OAEP only",
            "RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256",
        ),
        (
            "SYMMETRIC_DEFAULT",
            "RSA_AES_KEY_WRAP_SHA_1",
            "KMS takes secret-key material by RSA-OAEP only",
            "RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256",
        ),
        (
            "HMAC_256",
            "RSA_AES_KEY_WRAP_SHA_256",
            "KMS takes secret-key material by RSA-OAEP only",
            "RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256",
        ),
        (
            "RSA_2048",
            "RSAES_OAEP_SHA_256",
            "an RSA private key does not fit RSA-OAEP",
            "RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256",
        ),
    ],
)
def test_a_wrapping_algorithm_the_key_spec_refuses_is_refused_with_the_valid_ones(
    key_spec: str, algorithm: str, why: str, valid: str
) -> None:
    reason = failure_reason(with_property("WrappingAlgorithm", algorithm) | {"KeySpec": key_spec})
    # A known algorithm, so not "not supported": the combination is what KMS would refuse.
    assert "is not supported" not in reason
    assert reason == (
        f"{key_spec} material cannot be wrapped with {algorithm} under RSA_4096: {why}. "
        f"Valid algorithms for RSA_4096: {valid}."
    )


def test_a_huge_unsupported_value_is_cut_and_the_reason_stays_readable() -> None:
    value = "RSAES_" + "X" * 2000
    reason = failure_reason(with_property("WrappingAlgorithm", value))
    assert reason.startswith("Property WrappingAlgorithm=")
    assert value not in reason
    # The valid choices (the fix) survive at the end.
    assert reason.rstrip(".").endswith(
        "RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256"
    )


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
