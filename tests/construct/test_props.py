"""Props that mean what they say: spellings, value objects checked when built, defaults that
work for every advertised validity, and ValueErrors that name the prop, echo the value and list
the choices."""

import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template
from constructs import Construct
from stacks import imported_secret, key_in, new_stack

from imported_key_cdk import (
    ImportedKey,
    MaterialEncoding,
    MaterialExpiration,
    WrappingAlgorithm,
    WrappingKeySpec,
    _props,
)
from imported_key_cdk.renewal import schedule_interval_seconds
from imported_key_handler import contract


def import_properties(stack: cdk.Stack, key: ImportedKey) -> dict[str, Any]:
    default_child = key.material_import.node.default_child
    assert isinstance(default_child, cdk.CfnElement)
    resources = Template.from_stack(stack).to_json()["Resources"]
    return dict(resources[stack.get_logical_id(default_child)]["Properties"])


def rule_expression(stack: cdk.Stack, rule: Construct | None) -> str:
    assert rule is not None
    default_child = rule.node.default_child
    assert isinstance(default_child, cdk.CfnElement)
    resources = Template.from_stack(stack).to_json()["Resources"]
    return str(resources[stack.get_logical_id(default_child)]["Properties"]["ScheduleExpression"])


# --- spellings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"material_encoding": "BASE64"}, {contract.PROP_MATERIAL_ENCODING: "base64"}),
        ({"material_encoding": "Hex"}, {contract.PROP_MATERIAL_ENCODING: "hex"}),
        ({"material_encoding": MaterialEncoding.RAW}, {contract.PROP_MATERIAL_ENCODING: "raw"}),
        (
            {"wrapping_algorithm": "rsaes_oaep_sha_256"},
            {contract.PROP_WRAPPING_ALGORITHM: "RSAES_OAEP_SHA_256"},
        ),
        (
            {"wrapping_algorithm": WrappingAlgorithm.RSAES_OAEP_SHA_1},
            {contract.PROP_WRAPPING_ALGORITHM: "RSAES_OAEP_SHA_1"},
        ),
        ({"wrapping_key_spec": "rsa_3072"}, {contract.PROP_WRAPPING_KEY_SPEC: "RSA_3072"}),
        (
            {"wrapping_key_spec": WrappingKeySpec.RSA_2048},
            {contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048"},
        ),
        ({"key_spec": "hmac_256"}, {contract.PROP_KEY_SPEC: "HMAC_256"}),
        ({"key_spec": "HMAC_384"}, {contract.PROP_KEY_SPEC: "HMAC_384"}),
        (
            {"key_spec": "rsa_2048", "key_usage": "sign_verify"},
            {contract.PROP_KEY_SPEC: "RSA_2048", contract.PROP_KEY_USAGE: "SIGN_VERIFY"},
        ),
        (
            {"key_spec": kms.KeySpec.ECC_NIST_P256, "key_usage": kms.KeyUsage.KEY_AGREEMENT},
            {contract.PROP_KEY_SPEC: "ECC_NIST_P256", contract.PROP_KEY_USAGE: "KEY_AGREEMENT"},
        ),
    ],
)
def test_enum_props_take_strings_in_any_case_and_the_enum_classes(
    props: dict[str, Any], expected: dict[str, str]
) -> None:
    stack = new_stack()
    key = key_in(stack, **props)
    properties = import_properties(stack, key)
    assert {name: properties[name] for name in expected} == expected


def test_a_string_key_spec_reaches_the_key_resource() -> None:
    stack = new_stack()
    key_in(stack, key_spec="ecc_nist_p384")
    Template.from_stack(stack).has_resource_properties(
        "AWS::KMS::Key", {"KeySpec": "ECC_NIST_P384", "KeyUsage": "SIGN_VERIFY"}
    )


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {"material_encoding": "utf-8"},
            r"^Invalid material_encoding: 'utf-8'\. Use one of: auto, raw, base64, hex, pem\.$",
        ),
        (
            {"wrapping_algorithm": "oaep"},
            r"^Invalid wrapping_algorithm: 'oaep'\. Use one of: RSAES_OAEP_SHA_1, "
            r"RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256\.$",
        ),
        ({"key_spec": "aes_256"}, r"^Invalid key_spec: 'aes_256'\. Use one of: SYMMETRIC_DEFAULT"),
        (
            {"key_spec": "hmac_256", "key_usage": "encrypt_decrypt"},
            r"^Invalid key_usage: 'encrypt_decrypt'\. HMAC_256 keys allow: GENERATE_VERIFY_MAC\.$",
        ),
    ],
)
def test_unknown_spellings_are_refused_with_the_choices(
    props: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), **props)


# --- value objects are checked when built ------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "days", "message"),
    [
        ("KEY_MATERIAL_EXPIRES", 9999, r"^Invalid validity_days: 9999\. .*from 1 to 365"),
        ("KEY_MATERIAL_EXPIRES", 0, r"^Invalid validity_days: 0\."),
        ("KEY_MATERIAL_EXPIRES", None, r"^Invalid validity_days: None\."),
        ("KEY_MATERIAL_EXPIRES", 30.5, r"^Invalid validity_days: 30\.5\."),
        ("KEY_MATERIAL_EXPIRES", True, r"^Invalid validity_days: True\."),
        ("KEY_MATERIAL_DOES_NOT_EXPIRE", 30, r"^Invalid validity_days: 30\. .*never\(\)"),
        (
            "SOMETIMES",
            30,
            r"^Invalid expiration_model: 'SOMETIMES'\. Use one of: KEY_MATERIAL_EXPIRES, "
            r"KEY_MATERIAL_DOES_NOT_EXPIRE\.$",
        ),
    ],
)
def test_material_expiration_is_checked_when_built(model: str, days: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaterialExpiration(model, days)


def test_material_expiration_in_kms_terms_equals_the_factories() -> None:
    assert MaterialExpiration("key_material_expires", 30) == MaterialExpiration.after(
        cdk.Duration.days(30)
    )
    assert MaterialExpiration("KEY_MATERIAL_DOES_NOT_EXPIRE") == MaterialExpiration.never()
    assert MaterialExpiration.after(cdk.Duration.days(30)).expiration_model == (
        "KEY_MATERIAL_EXPIRES"
    )
    assert repr(MaterialExpiration.after(cdk.Duration.days(7))) == (
        "MaterialExpiration.after(Duration.days(7))"
    )


# --- short validity periods work with the defaults ---------------------------------------------


@pytest.mark.parametrize("days", [1, 2, 3, 5, 7, 11, 12, 30, 90, 364, 365])
def test_every_advertised_validity_synthesizes_with_the_defaults(days: int) -> None:
    stack = new_stack()
    key = key_in(stack, expiration=MaterialExpiration.after(cdk.Duration.days(days)))
    expression = rule_expression(stack, key.renewal_rule)
    interval = schedule_interval_seconds(cdk.aws_events.Schedule.expression(expression))
    window = min(30 * 86400, days * 86400 // 3)
    assert interval is not None
    # At least four chances inside the renewal window, and never less than daily.
    assert 4 * interval <= window
    assert interval <= 86400


def test_the_default_schedule_follows_a_short_renew_before() -> None:
    """The handler's sweep runs hourly, and more often when a key's window asks for it (four
    times inside the window): 6 hours asks for 90 minutes (hourly wins), 2 hours for 30."""
    stack = new_stack()
    key = key_in(stack, renew_before=cdk.Duration.hours(6))
    assert rule_expression(stack, key.renewal_rule) == "rate(1 hour)"
    stack = new_stack()
    key = key_in(stack, renew_before=cdk.Duration.hours(2))
    assert rule_expression(stack, key.renewal_rule) == "rate(30 minutes)"


def test_a_renew_before_too_short_for_any_schedule_names_renew_before() -> None:
    with pytest.raises(ValueError, match=r"^Invalid renew_before: 1 minute\. .*too short"):
        key_in(new_stack(), renew_before=cdk.Duration.minutes(1))


# --- the remaining props -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "window", [cdk.Duration.days(6), cdk.Duration.days(31), cdk.Duration.hours(180)]
)
def test_pending_window_is_our_value_error(window: cdk.Duration) -> None:
    message = (
        rf"^Invalid pending_window: {re.escape(window.to_human_string())}\. It must be a whole "
        r"number of days from 7 to 30"
    )
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), pending_window=window)


@pytest.mark.parametrize("days", [7, 30])
def test_pending_window_bounds_are_accepted(days: int) -> None:
    stack = new_stack()
    key_in(stack, pending_window=cdk.Duration.days(days))
    Template.from_stack(stack).has_resource_properties(
        "AWS::KMS::Key", {"PendingWindowInDays": days}
    )


@pytest.mark.parametrize("spec", ["SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_512"])
@pytest.mark.parametrize("pem", [MaterialEncoding.PEM, "PEM", "pem"])
def test_pem_is_refused_for_secret_keys(spec: str, pem: Any) -> None:
    message = (
        rf"^Invalid material_encoding: 'pem'\. PEM holds a private key, and {spec} material "
        r"is a secret key of raw bytes; use one of: auto, raw, base64, hex\.$"
    )
    if pem == "PEM":
        message = message.replace("'pem'", "'PEM'")
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), key_spec=spec, material_encoding=pem)


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256"])
def test_pem_is_accepted_for_private_keys(spec: str) -> None:
    stack = new_stack()
    key = key_in(stack, key_spec=spec, material_encoding="PEM")
    assert import_properties(stack, key)[contract.PROP_MATERIAL_ENCODING] == "pem"


@pytest.mark.parametrize("version", ["", "   ", " 1a2b"])
def test_blank_material_version_id_is_refused(version: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^Invalid material_version_id: {re.escape(repr(version))}\."
    ):
        key_in(new_stack(), material_version_id=version)


def test_material_version_id_token_is_left_for_cloudformation() -> None:
    stack = new_stack()
    version = cdk.CfnParameter(stack, "Version").value_as_string
    key = key_in(stack, material_version_id=version)
    assert import_properties(stack, key)[contract.PROP_MATERIAL_VERSION_ID] == {"Ref": "Version"}


@pytest.mark.parametrize("name", ["alias/aws/s3", "alias/", "alias/with space", "alias/é"])
def test_bad_alias_is_our_value_error(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^Invalid alias: {re.escape(repr(name))}\. "):
        key_in(new_stack(), alias=name)
    with pytest.raises(ValueError, match=rf"^Invalid alias: {re.escape(repr(name))}\. "):
        key_in(new_stack()).add_alias(name)


def test_alias_without_prefix_gets_it() -> None:
    stack = new_stack()
    key_in(stack, alias="payments")
    Template.from_stack(stack).has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": "alias/payments"}
    )


def test_every_validity_from_1_to_365_days_has_working_default_renewal() -> None:
    for days in range(1, 366):
        renewal = _props.renewal(days, None, None, None)
        assert renewal is not None
        window = renewal.renew_before_s
        assert 0 < window < days * 86400, days
        assert 4 * renewal.interval_s <= window, days
        assert 0 < renewal.expiry_alarm_threshold_s < window, days


@pytest.mark.parametrize("value", [cdk.Duration.days(30), 30, "KEY_MATERIAL_EXPIRES"])
def test_expiration_must_be_a_material_expiration(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^Invalid expiration: .*MaterialExpiration\.after"):
        key_in(new_stack(), expiration=value)


@pytest.mark.parametrize(
    "bad",
    [
        {"pending_window": cdk.Duration.days(3)},
        {"material_version_id": ""},
        {"key_spec": "RSA_9999"},
        {
            "expiration": MaterialExpiration.after(cdk.Duration.days(30)),
            "renew_before": cdk.Duration.days(40),
        },
    ],
    ids=["pending-window", "version-id", "key-spec", "renew-before"],
)
def test_a_refused_prop_leaves_the_scope_as_it_was(bad: dict[str, Any]) -> None:
    stack = new_stack()
    secret = imported_secret(stack, "Material")
    with pytest.raises(ValueError, match="Invalid"):
        ImportedKey(stack, "Key", key_material_secret=secret, **bad)
    assert [child.node.id for child in stack.node.children] == ["Material"]
    ImportedKey(stack, "Key", key_material_secret=secret)  # the same id is still free


# --- renewal_imports_per_second ----------------------------------------------------------------


def imports_per_second(stack: cdk.Stack) -> set[str]:
    """The share of the import quota in each handler function's environment."""
    return {
        f["Properties"]["Environment"]["Variables"][contract.ENV_IMPORTS_PER_SECOND]
        for f in Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()
    }


@pytest.mark.parametrize("value", [None, 0.05, 1, 0.5])
def test_renewal_imports_per_second_reaches_the_handler(value: float | None) -> None:
    stack = new_stack()
    key_in(stack, "A", renewal_imports_per_second=value)
    key_in(stack, "B")  # unset: takes the handler's
    expected = contract.DEFAULT_IMPORTS_PER_SECOND if value is None else float(value)
    assert imports_per_second(stack) == {str(expected)}


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, True, "0.2", float("nan")])
def test_renewal_imports_per_second_outside_the_quota_is_refused(bad: Any) -> None:
    message = rf"^Invalid renewal_imports_per_second: {re.escape(repr(bad))}\. .*at most 1"
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), renewal_imports_per_second=bad)


def test_keys_of_one_handler_must_agree_on_renewal_imports_per_second() -> None:
    stack = new_stack()
    key_in(stack, "A", renewal_imports_per_second=0.5)
    key_in(stack, "Same", renewal_imports_per_second=0.5)
    message = (
        r"^Invalid renewal_imports_per_second: 0\.25\. The handler "
        r"'Test/ImportedKeyHandlerPython313Arm64' .* sweeps at 0\.5"
    )
    with pytest.raises(ValueError, match=message):
        key_in(stack, "B", renewal_imports_per_second=0.25)
    assert stack.node.try_find_child("B") is None
