"""Template tests for ImportedKey's key types: specs, usages, wrapping, material encoding."""

import itertools
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template
from constructs import Construct
from stacks import (
    KEYS_ARN,
    SECRET_ARN,
    handler_statements,
    key_in,
    mine,
    new_stack,
    statement_with,
    tags_of,
)

import imported_key_cdk
from imported_key_cdk import ImportedKey, MaterialEncoding, WrappingAlgorithm, WrappingKeySpec
from imported_key_handler import contract

OAEP_256 = "RSAES_OAEP_SHA_256"
AES_WRAP_256 = "RSA_AES_KEY_WRAP_SHA_256"
ALGORITHMS = [a.value for a in WrappingAlgorithm]
WRAPPING_KEY_SPECS = [s.value for s in WrappingKeySpec]

# Written out by value, independently of the catalog: (default usage, default wrapping
# algorithm, the handler's extra action on the key to verify the import).
EXPECTED_DEFAULTS: dict[str, tuple[str, str, str | None]] = {
    "SYMMETRIC_DEFAULT": ("ENCRYPT_DECRYPT", OAEP_256, None),
    "HMAC_224": ("GENERATE_VERIFY_MAC", OAEP_256, "kms:GenerateMac"),
    "HMAC_256": ("GENERATE_VERIFY_MAC", OAEP_256, "kms:GenerateMac"),
    "HMAC_384": ("GENERATE_VERIFY_MAC", OAEP_256, "kms:GenerateMac"),
    "HMAC_512": ("GENERATE_VERIFY_MAC", OAEP_256, "kms:GenerateMac"),
    "RSA_2048": ("ENCRYPT_DECRYPT", AES_WRAP_256, "kms:GetPublicKey"),
    "RSA_3072": ("ENCRYPT_DECRYPT", AES_WRAP_256, "kms:GetPublicKey"),
    "RSA_4096": ("ENCRYPT_DECRYPT", AES_WRAP_256, "kms:GetPublicKey"),
    "ECC_NIST_P256": ("SIGN_VERIFY", AES_WRAP_256, "kms:GetPublicKey"),
    "ECC_NIST_P384": ("SIGN_VERIFY", AES_WRAP_256, "kms:GetPublicKey"),
    "ECC_NIST_P521": ("SIGN_VERIFY", AES_WRAP_256, "kms:GetPublicKey"),
    "ECC_SECG_P256K1": ("SIGN_VERIFY", AES_WRAP_256, "kms:GetPublicKey"),
}
# What the handler role gets for every key, whatever its type.
BASE_HANDLER_ACTIONS = {
    "kms:DescribeKey",
    "kms:ListResourceTags",
    "kms:TagResource",
    "kms:GetParametersForImport",
    "kms:ImportKeyMaterial",
    "secretsmanager:GetSecretValue",
}


# --- helpers -----------------------------------------------------------------------------------


def logical_id(construct: Construct) -> str:
    default_child = construct.node.default_child
    assert isinstance(default_child, cdk.CfnElement)
    return cdk.Stack.of(construct).get_logical_id(default_child)


def raw_key_arn(key: ImportedKey) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(key.external_key), "Arn"]}


def import_key_arn(key: ImportedKey) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(key.material_import), contract.ATTR_KEY_ARN]}


def resource_properties(template: Template, construct: Construct) -> dict[str, Any]:
    resources: dict[str, Any] = template.to_json()["Resources"]
    return dict(resources[logical_id(construct)]["Properties"])


def import_properties(template: Template, key: ImportedKey) -> dict[str, Any]:
    return resource_properties(template, key.material_import)


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def kms_spec(name: str) -> kms.KeySpec | str:
    """The aws-kms member when this CDK version has it, else the plain name."""
    return getattr(kms.KeySpec, name, name)


def construct_key(**props: Any) -> ImportedKey:
    key: ImportedKey = key_in(new_stack(), **props)
    return key


# --- every supported spec ----------------------------------------------------------------------


def test_catalog_matches_aws_kms_and_the_expected_table() -> None:
    assert set(contract.KEY_SPECS) == set(EXPECTED_DEFAULTS)
    # Every spec aws-kms knows is either supported or refused with a reason.
    assert {s.value for s in kms.KeySpec} <= set(contract.KEY_SPECS) | set(
        contract.REFUSED_KEY_SPECS
    )
    assert not set(contract.KEY_SPECS) & set(contract.REFUSED_KEY_SPECS)


@pytest.mark.parametrize("spec_name", list(EXPECTED_DEFAULTS))
def test_every_supported_spec_gets_its_defaults_and_exact_verify_permission(
    spec_name: str,
) -> None:
    usage, algorithm, verify_action = EXPECTED_DEFAULTS[spec_name]
    stack = new_stack()
    key = key_in(stack, key_spec=kms.KeySpec(spec_name))
    template = Template.from_stack(stack)

    key_props = resource_properties(template, key.external_key)
    assert key_props["KeySpec"] == spec_name
    assert key_props["KeyUsage"] == usage
    assert key_props["Origin"] == "EXTERNAL"

    props = import_properties(template, key)
    assert props[contract.PROP_KEY_SPEC] == spec_name
    assert props[contract.PROP_KEY_USAGE] == usage
    assert props[contract.PROP_WRAPPING_ALGORITHM] == algorithm
    assert props[contract.PROP_WRAPPING_KEY_SPEC] == "RSA_4096"
    assert props[contract.PROP_MATERIAL_ENCODING] == "auto"
    assert contract.PROP_JSON_FIELD not in props
    # The catalog's default is what the construct used.
    assert contract.default_wrapping(contract.KEY_SPECS[spec_name]) == (algorithm, "RSA_4096")

    statements = handler_statements(template)
    (get_parameters,) = [s for s in statements if s["Action"] == "kms:GetParametersForImport"]
    assert get_parameters["Resource"] == KEYS_ARN
    assert get_parameters["Condition"] == {
        "StringEquals": {
            **mine(template),
            "kms:WrappingAlgorithm": [algorithm],
            "kms:WrappingKeySpec": ["RSA_4096"],
        }
    }
    # The proof of the import joins the key statement, on the handler's tagged keys only.
    key_statement = statement_with(template, "kms:DescribeKey")
    assert key_statement == {
        "Action": ["kms:DescribeKey", "kms:ListResourceTags"]
        + ([] if verify_action is None else [verify_action]),
        "Condition": {"StringEquals": mine(template)},
        "Effect": "Allow",
        "Resource": KEYS_ARN,
    }
    # Nothing else on keys: every other statement is the fleet's own, whatever the spec.
    assert {a for s in statements for a in actions_of(s) if a.startswith("kms:")} == {
        *(a for a in BASE_HANDLER_ACTIONS if a.startswith("kms:")),
        *([] if verify_action is None else [verify_action]),
    }
    assert all(
        s["Condition"]["StringEquals"].items() >= mine(template).items()
        for s in statements
        if s["Resource"] == KEYS_ARN
    )


def test_verify_permissions_follow_the_keys_of_a_shared_handler() -> None:
    """The key statement gains the proofs its keys need (one action for all the keys that need
    it); the handler tells which proof a key needs from the spec the key declares."""
    stack = new_stack()
    keys = {
        name: key_in(stack, name, key_spec=kms.KeySpec(name))
        for name in ("SYMMETRIC_DEFAULT", "HMAC_384", "RSA_3072", "ECC_NIST_P384")
    }
    template = Template.from_stack(stack)
    verify = {
        action
        for s in handler_statements(template)
        for action in actions_of(s)
        if action in ("kms:GetPublicKey", "kms:GenerateMac")
    }
    assert verify == {"kms:GenerateMac", "kms:GetPublicKey"}
    assert set(actions_of(statement_with(template, "kms:DescribeKey"))) >= verify
    for name, key in keys.items():
        declared, _ = contract.parse_declared(
            tags_of(resource_properties_of(template, key.external_key))[contract.TAG_DECLARED]
        )
        assert declared[contract.PROP_KEY_SPEC] == name
    # Symmetric keys alone need no proof action.
    symmetric = new_stack()
    key_in(symmetric, "A")
    key_in(symmetric, "B")
    assert not {
        a
        for s in handler_statements(Template.from_stack(symmetric))
        for a in actions_of(s)
        if a in ("kms:GetPublicKey", "kms:GenerateMac")
    }


def resource_properties_of(template: Template, construct: Construct) -> dict[str, Any]:
    """The whole resource (tags are read from its Properties)."""
    resources: dict[str, Any] = template.to_json()["Resources"]
    return dict(resources[logical_id(construct)])


# --- wrapping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec_name", list(EXPECTED_DEFAULTS))
def test_every_wrapping_combination_is_accepted_iff_the_catalog_allows_it(
    spec_name: str,
) -> None:
    spec = contract.KEY_SPECS[spec_name]
    allowed = set(contract.allowed_wrappings(spec))
    assert allowed, f"{spec_name} has no wrapping at all"
    stack = new_stack()
    accepted: dict[tuple[str, str], ImportedKey] = {}
    refused: set[tuple[str, str]] = set()
    for index, (algorithm, wrapping_key_spec) in enumerate(
        itertools.product(ALGORITHMS, WRAPPING_KEY_SPECS)
    ):
        try:
            key = key_in(
                stack,
                f"Key{index}",
                key_spec=kms.KeySpec(spec_name),
                wrapping_algorithm=algorithm,
                wrapping_key_spec=wrapping_key_spec,
            )
        except ValueError as error:
            message = str(error)
            refusal = contract.wrapping_refusal(spec, algorithm, wrapping_key_spec)
            assert refusal is not None
            assert message == f"Invalid wrapping_algorithm: {algorithm!r}. {refusal}"
            refused.add((algorithm, wrapping_key_spec))
        else:
            accepted[(algorithm, wrapping_key_spec)] = key
    assert set(accepted) == allowed
    assert refused == set(itertools.product(ALGORITHMS, WRAPPING_KEY_SPECS)) - allowed

    template = Template.from_stack(stack)
    for (algorithm, wrapping_key_spec), key in accepted.items():
        props = import_properties(template, key)
        assert (
            props[contract.PROP_WRAPPING_ALGORITHM],
            props[contract.PROP_WRAPPING_KEY_SPEC],
        ) == (algorithm, wrapping_key_spec)


@pytest.mark.parametrize(
    ("spec_name", "algorithm", "wrapping_key_spec"),
    [
        *[
            (rsa, oaep, size)
            for rsa in ("RSA_2048", "RSA_3072", "RSA_4096")
            for oaep in ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
            for size in ("RSA_2048", "RSA_4096")
        ],
        ("ECC_NIST_P521", "RSAES_OAEP_SHA_256", "RSA_2048"),
        *[
            (secret, aes, "RSA_4096")
            for secret in ("SYMMETRIC_DEFAULT", "HMAC_256", "HMAC_512")
            for aes in ("RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256")
        ],
    ],
)
def test_known_refused_wrappings(spec_name: str, algorithm: str, wrapping_key_spec: str) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^Invalid wrapping_algorithm: '{algorithm}'\..*{spec_name}.*"
        rf"Valid algorithms for {wrapping_key_spec}: ",
    ):
        construct_key(
            key_spec=kms.KeySpec(spec_name),
            wrapping_algorithm=algorithm,
            wrapping_key_spec=wrapping_key_spec,
        )


@pytest.mark.parametrize(
    ("spec_name", "algorithm", "wrapping_key_spec"),
    [
        ("ECC_NIST_P521", "RSAES_OAEP_SHA_256", "RSA_3072"),
        ("ECC_NIST_P256", "RSAES_OAEP_SHA_1", "RSA_2048"),
        ("ECC_NIST_P521", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
        ("RSA_4096", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
        ("HMAC_512", "RSAES_OAEP_SHA_256", "RSA_2048"),
        ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSA_2048"),
    ],
)
def test_known_accepted_wrappings(spec_name: str, algorithm: str, wrapping_key_spec: str) -> None:
    key = construct_key(
        key_spec=kms.KeySpec(spec_name),
        wrapping_algorithm=algorithm,
        wrapping_key_spec=wrapping_key_spec,
    )
    props = import_properties(Template.from_stack(cdk.Stack.of(key)), key)
    assert props[contract.PROP_WRAPPING_ALGORITHM] == algorithm
    assert props[contract.PROP_WRAPPING_KEY_SPEC] == wrapping_key_spec


def test_p521_refusal_names_the_capacity_and_the_valid_choices() -> None:
    with pytest.raises(ValueError) as raised:
        construct_key(
            key_spec=kms.KeySpec.ECC_NIST_P521,
            wrapping_algorithm=WrappingAlgorithm.RSAES_OAEP_SHA_256,
            wrapping_key_spec=WrappingKeySpec.RSA_2048,
        )
    message = str(raised.value)
    assert "RSAES_OAEP_SHA_256" in message
    assert "RSA_2048" in message
    assert message.endswith(
        "Valid algorithms for RSA_2048: RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256."
    )


def test_only_the_wrapping_key_spec_set_keeps_the_spec_default_algorithm() -> None:
    key = construct_key(key_spec=kms.KeySpec.RSA_2048, wrapping_key_spec=WrappingKeySpec.RSA_3072)
    template = Template.from_stack(cdk.Stack.of(key))
    props = import_properties(template, key)
    assert props[contract.PROP_WRAPPING_ALGORITHM] == AES_WRAP_256
    assert props[contract.PROP_WRAPPING_KEY_SPEC] == "RSA_3072"
    assert statement_with(template, "kms:GetParametersForImport")["Condition"] == {
        "StringEquals": {
            **mine(template),
            "kms:WrappingAlgorithm": [AES_WRAP_256],
            "kms:WrappingKeySpec": ["RSA_3072"],
        }
    }


@pytest.mark.parametrize(
    ("prop", "value", "message"),
    [
        ("wrapping_algorithm", "RSAES_PKCS1_V1_5", r"wrapping_algorithm: 'RSAES_PKCS1_V1_5'.*"),
        ("wrapping_key_spec", "RSA_1024", r"wrapping_key_spec: 'RSA_1024'.*RSA_2048"),
    ],
)
def test_unknown_wrapping_values_list_the_choices(prop: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        construct_key(key_spec=kms.KeySpec.ECC_NIST_P256, **{prop: value})


def test_wrapping_tokens_are_left_for_cloudformation() -> None:
    stack = new_stack()
    algorithm = cdk.CfnParameter(stack, "Algorithm").value_as_string
    key = key_in(stack, key_spec=kms.KeySpec.RSA_2048, wrapping_algorithm=algorithm)
    props = import_properties(Template.from_stack(stack), key)
    assert props[contract.PROP_WRAPPING_ALGORITHM] == {"Ref": "Algorithm"}


# --- refused and unknown specs -----------------------------------------------------------------


@pytest.mark.parametrize("spec_name", sorted(contract.REFUSED_KEY_SPECS))
def test_refused_specs_fail_with_their_reason(spec_name: str) -> None:
    reason = contract.REFUSED_KEY_SPECS[spec_name]
    with pytest.raises(ValueError) as raised:
        construct_key(key_spec=kms_spec(spec_name))
    message = str(raised.value)
    assert message.startswith(f"Invalid key_spec: {spec_name!r}. ")
    assert reason in message
    assert "SYMMETRIC_DEFAULT" in message


def test_ml_dsa_and_sm2_are_refused() -> None:
    assert {"ML_DSA_44", "SM2"} <= set(contract.REFUSED_KEY_SPECS)
    with pytest.raises(ValueError, match=r"key_spec: 'ML_DSA_44'\. ML-DSA"):
        construct_key(key_spec=kms_spec("ML_DSA_44"))
    with pytest.raises(ValueError, match=r"key_spec: 'SM2'\. SM2 .*China"):
        construct_key(key_spec=kms_spec("SM2"))


def test_unknown_spec_lists_every_supported_spec() -> None:
    with pytest.raises(ValueError) as raised:
        construct_key(key_spec="RSA_1024")
    assert str(raised.value) == (
        "Invalid key_spec: 'RSA_1024'. Use one of: " + ", ".join(contract.KEY_SPECS) + "."
    )


def test_spec_name_as_string_is_accepted() -> None:
    key = construct_key(key_spec="HMAC_256")
    props = import_properties(Template.from_stack(cdk.Stack.of(key)), key)
    assert props[contract.PROP_KEY_SPEC] == "HMAC_256"


# --- key usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        (kms.KeySpec.RSA_2048, kms.KeyUsage.SIGN_VERIFY),
        (kms.KeySpec.RSA_4096, kms.KeyUsage.ENCRYPT_DECRYPT),
        (kms.KeySpec.ECC_NIST_P256, kms.KeyUsage.KEY_AGREEMENT),
        (kms.KeySpec.ECC_NIST_P521, kms.KeyUsage.SIGN_VERIFY),
        (kms.KeySpec.ECC_SECG_P256K1, kms.KeyUsage.SIGN_VERIFY),
        (kms.KeySpec.HMAC_224, kms.KeyUsage.GENERATE_VERIFY_MAC),
        (kms.KeySpec.SYMMETRIC_DEFAULT, kms.KeyUsage.ENCRYPT_DECRYPT),
    ],
)
def test_allowed_usage_reaches_the_key_and_the_import(
    spec: kms.KeySpec, usage: kms.KeyUsage
) -> None:
    key = construct_key(key_spec=spec, key_usage=usage)
    template = Template.from_stack(cdk.Stack.of(key))
    assert resource_properties(template, key.external_key)["KeyUsage"] == usage.value
    assert import_properties(template, key)[contract.PROP_KEY_USAGE] == usage.value


@pytest.mark.parametrize(
    ("spec", "usage", "allowed"),
    [
        (kms.KeySpec.HMAC_256, kms.KeyUsage.ENCRYPT_DECRYPT, "GENERATE_VERIFY_MAC"),
        (kms.KeySpec.ECC_SECG_P256K1, kms.KeyUsage.KEY_AGREEMENT, "SIGN_VERIFY"),
        (kms.KeySpec.SYMMETRIC_DEFAULT, kms.KeyUsage.SIGN_VERIFY, "ENCRYPT_DECRYPT"),
        (
            kms.KeySpec.RSA_3072,
            kms.KeyUsage.GENERATE_VERIFY_MAC,
            "ENCRYPT_DECRYPT, SIGN_VERIFY",
        ),
        (kms.KeySpec.ECC_NIST_P384, kms.KeyUsage.ENCRYPT_DECRYPT, "SIGN_VERIFY, KEY_AGREEMENT"),
    ],
)
def test_usage_the_spec_does_not_allow_is_refused(
    spec: kms.KeySpec, usage: kms.KeyUsage, allowed: str
) -> None:
    with pytest.raises(ValueError) as raised:
        construct_key(key_spec=spec, key_usage=usage)
    assert str(raised.value) == (
        f"Invalid key_usage: {usage.value!r}. {spec.value} keys allow: {allowed}."
    )


# --- material encoding and JSON field ---------------------------------------------------------


def test_material_encoding_enum_is_exported_and_matches_the_handler() -> None:
    assert imported_key_cdk.MaterialEncoding is MaterialEncoding
    assert "MaterialEncoding" in imported_key_cdk.__all__
    assert tuple(e.value for e in MaterialEncoding) == contract.MATERIAL_ENCODINGS
    assert [e.name for e in MaterialEncoding] == ["AUTO", "RAW", "BASE64", "HEX", "PEM"]


@pytest.mark.parametrize("encoding", [*MaterialEncoding, "hex"])
def test_material_encoding_reaches_the_import(encoding: MaterialEncoding | str) -> None:
    key = construct_key(key_spec=kms.KeySpec.RSA_2048, material_encoding=encoding)
    props = import_properties(Template.from_stack(cdk.Stack.of(key)), key)
    assert props[contract.PROP_MATERIAL_ENCODING] == str(encoding)
    assert contract.PROP_JSON_FIELD not in props


def test_json_field_reaches_the_import() -> None:
    stack = new_stack()
    key = key_in(
        stack,
        key_spec=kms.KeySpec.ECC_NIST_P256,
        material_encoding=MaterialEncoding.PEM,
        json_field="privateKey",
    )
    props = import_properties(Template.from_stack(stack), key)
    assert props[contract.PROP_MATERIAL_ENCODING] == "pem"
    assert props[contract.PROP_JSON_FIELD] == "privateKey"
    assert props[contract.PROP_SECRET_ARN] == SECRET_ARN
    # The renewal reads it back from the key's declared settings (base64 there, in a tag).
    key_resource = resource_properties_of(Template.from_stack(stack), key.external_key)
    declared, _ = contract.parse_declared(tags_of(key_resource)[contract.TAG_DECLARED])
    assert declared[contract.PROP_JSON_FIELD] == "privateKey"
    assert declared[contract.PROP_MATERIAL_ENCODING] == "pem"


def test_a_json_field_too_long_for_the_declared_tag_is_refused() -> None:
    """Counted in bytes: the tag carries the name's UTF-8 as base64."""
    with pytest.raises(ValueError, match="is 68 bytes of UTF-8"):
        construct_key(material_encoding=MaterialEncoding.BASE64, json_field="\U0001f511" * 17)
    field = "f" * (contract.MAX_JSON_FIELD_BYTES + 1)
    message = r"Invalid json_field: 'f{40}' is 65 bytes of UTF-8.*at most 64"
    with pytest.raises(ValueError, match=message):
        construct_key(material_encoding=MaterialEncoding.BASE64, json_field=field)
    # The longest accepted still fits the tag (256 characters) once base64-encoded.
    key = construct_key(
        material_encoding=MaterialEncoding.BASE64, json_field="f" * contract.MAX_JSON_FIELD_BYTES
    )
    key_resource = resource_properties_of(Template.from_stack(cdk.Stack.of(key)), key.external_key)
    assert len(tags_of(key_resource)[contract.TAG_DECLARED]) <= 256


def test_json_field_with_default_encoding_is_auto() -> None:
    key = construct_key(json_field="material")
    props = import_properties(Template.from_stack(cdk.Stack.of(key)), key)
    assert props[contract.PROP_MATERIAL_ENCODING] == "auto"
    assert props[contract.PROP_JSON_FIELD] == "material"


@pytest.mark.parametrize("encoding", [MaterialEncoding.RAW, "raw"])
def test_raw_with_json_field_is_refused(encoding: MaterialEncoding | str) -> None:
    with pytest.raises(
        ValueError, match=r"^Invalid json_field: 'material'\. .*'raw'.*SecretBinary.*base64"
    ):
        construct_key(material_encoding=encoding, json_field="material")


def test_empty_json_field_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^Invalid json_field: ''\."):
        construct_key(json_field="")


@pytest.mark.parametrize("bad", ["utf8", "RAWBYTES", "Base-64"])
def test_unknown_material_encoding_lists_the_choices(bad: str) -> None:
    with pytest.raises(ValueError) as raised:
        construct_key(material_encoding=bad)
    assert str(raised.value) == (
        f"Invalid material_encoding: {bad!r}. Use one of: auto, raw, base64, hex, pem."
    )


# --- rotation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [kms.KeySpec.HMAC_256, kms.KeySpec.RSA_2048, kms.KeySpec.ECC_NIST_P256],
)
def test_rotation_on_material_change_needs_a_symmetric_key(spec: kms.KeySpec) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^Invalid rotation_on_material_change: True with key_spec '{spec.value}'\. "
        r".*SYMMETRIC_DEFAULT",
    ):
        construct_key(key_spec=spec, rotation_on_material_change=True)


def test_rotation_on_material_change_with_a_symmetric_key_is_accepted() -> None:
    key = construct_key(key_spec=kms.KeySpec.SYMMETRIC_DEFAULT, rotation_on_material_change=True)
    props = import_properties(Template.from_stack(cdk.Stack.of(key)), key)
    assert props[contract.PROP_ROTATE_ON_MATERIAL_CHANGE] == "true"


# --- grants ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "usage", "method", "actions"),
    [
        (kms.KeySpec.RSA_2048, kms.KeyUsage.SIGN_VERIFY, "grant_sign", ["kms:Sign"]),
        (kms.KeySpec.ECC_NIST_P256, None, "grant_verify", ["kms:Verify"]),
        (
            kms.KeySpec.ECC_SECG_P256K1,
            None,
            "grant_sign_verify",
            ["kms:Sign", "kms:Verify"],
        ),
        (kms.KeySpec.HMAC_256, None, "grant_generate_mac", ["kms:GenerateMac"]),
        (kms.KeySpec.HMAC_512, None, "grant_verify_mac", ["kms:VerifyMac"]),
    ],
)
def test_new_grant_methods_grant_on_the_imported_key(
    spec: kms.KeySpec, usage: kms.KeyUsage | None, method: str, actions: list[str]
) -> None:
    stack = new_stack()
    key = key_in(stack, key_spec=spec, key_usage=usage)
    role = iam.Role(stack, "User", assumed_by=iam.AccountRootPrincipal())
    assert getattr(key, method)(role).success
    template = Template.from_stack(stack)
    (policy,) = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": logical_id(role)}]}}
    ).values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert actions_of(statement) == actions
    assert statement["Resource"] == import_key_arn(key)
    assert re.fullmatch(r"KeyMaterialImport[0-9A-F]{8}", statement["Resource"]["Fn::GetAtt"][0])
