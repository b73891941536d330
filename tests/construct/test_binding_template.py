"""The binding the construct writes on each key, and the break-glass principals in its policy.

The handler recomputes the settings digest from the custom resource's properties as
CloudFormation sends them; these tests compute it from the synthesized template's properties,
so a construct and a handler that disagree on a single byte fail here.
"""

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template
from stacks import (
    SECRET_ARN,
    binding_of,
    handler_statements,
    key_in,
    mine,
    new_stack,
    partition_arn,
    tags_of,
)

from imported_key_cdk import ImportedKey
from imported_key_handler import contract


def keys_and_imports(template: Template) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(key resource, import's logical id, import's properties) for each ImportedKey."""
    found = []
    for import_id, resource in template.find_resources(contract.RESOURCE_TYPE).items():
        properties = resource["Properties"]
        key_logical_id = properties[contract.PROP_KEY_ID]["Ref"]
        key = template.find_resources("AWS::KMS::Key")[key_logical_id]
        found.append((key, import_id, properties))
    return found


def test_the_key_carries_exactly_what_the_import_declares() -> None:
    stack = new_stack()
    key_in(stack, delete_material_on_removal=True, material_version_id="v-1")
    template = Template.from_stack(stack)
    ((key, import_id, properties),) = keys_and_imports(template)
    (key_id,) = template.find_resources("AWS::KMS::Key")
    assert tags_of(key) == binding_of(
        template, properties, import_id, key_id, **{contract.TAG_MATERIAL_VERSION: "v-1"}
    )
    assert properties[contract.PROP_SECRET_ARN] == SECRET_ARN
    # The declared settings, read back, are the import's own (bar key, secret and version,
    # which have tags of their own) and the renewal window.
    declared, renew_before = contract.parse_declared(tags_of(key)[contract.TAG_DECLARED])
    unbound = ("ServiceToken", contract.PROP_KEY_ID, contract.PROP_SECRET_ARN,
               contract.PROP_MATERIAL_VERSION_ID, contract.PROP_RENEW_BEFORE_SECONDS)  # fmt: skip
    assert declared == {k: v for k, v in properties.items() if k not in unbound}
    assert renew_before == 30 * 86400 == int(properties[contract.PROP_RENEW_BEFORE_SECONDS])


def test_a_key_that_never_expires_declares_no_renewal_window() -> None:
    from imported_key_cdk import MaterialExpiration

    stack = new_stack()
    key_in(stack, expiration=MaterialExpiration.never(), material_encoding="base64",
           json_field="material")  # fmt: skip
    ((key, _, _),) = keys_and_imports(Template.from_stack(stack))
    assert contract.TAG_MATERIAL_VERSION not in tags_of(key)
    declared, renew_before = contract.parse_declared(tags_of(key)[contract.TAG_DECLARED])
    assert renew_before is None
    assert declared[contract.PROP_JSON_FIELD] == "material"
    assert declared[contract.PROP_EXPIRATION_MODEL] == "KEY_MATERIAL_DOES_NOT_EXPIRE"


def test_a_secret_made_in_the_stack_is_bound_by_the_same_reference() -> None:
    stack = new_stack()
    ImportedKey(stack, "Key", key_material_secret=secretsmanager.Secret(stack, "Material"))
    ((key, _, properties),) = keys_and_imports(Template.from_stack(stack))
    assert tags_of(key)[contract.TAG_SECRET] == properties[contract.PROP_SECRET_ARN]
    assert set(properties[contract.PROP_SECRET_ARN]) == {"Ref"}


@pytest.mark.parametrize(
    "change",
    [
        {"rotation_on_material_change": True},
        {"delete_material_on_removal": True},
        {"wrapping_key_spec": "RSA_3072"},
        {"wrapping_algorithm": "RSAES_OAEP_SHA_1"},
        {"expiration": None, "validity_days": 30},
        {"material_encoding": "base64"},
        {"json_field": "material"},
        {"material_version_id": "v-2"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_bound_setting_changes_the_digest(change: dict[str, Any]) -> None:
    from imported_key_cdk import MaterialExpiration

    def digest(**props: Any) -> str:
        stack = new_stack()
        if props.pop("validity_days", None):
            props["expiration"] = MaterialExpiration.after(cdk.Duration.days(30))
        props = {k: v for k, v in props.items() if v is not None}
        key_in(stack, **props)
        ((key, _, properties),) = keys_and_imports(Template.from_stack(stack))
        assert tags_of(key)[contract.TAG_SETTINGS] == contract.settings_digest(properties)
        return str(tags_of(key)[contract.TAG_SETTINGS])

    assert digest(**change) != digest()


def test_a_version_known_only_at_deploy_time_gets_a_tag_of_its_own() -> None:
    stack = new_stack()
    version = cdk.CfnParameter(stack, "MaterialVersion").value_as_string
    key_in(stack, material_version_id=version)
    ((key, _, properties),) = keys_and_imports(Template.from_stack(stack))
    tags = tags_of(key)
    assert tags[contract.TAG_MATERIAL_VERSION] == {"Ref": "MaterialVersion"}
    assert properties[contract.PROP_MATERIAL_VERSION_ID] == {"Ref": "MaterialVersion"}
    # The digest leaves the version out: it has its own tag, known or not at synth.
    assert tags[contract.TAG_SETTINGS] == contract.settings_digest(properties)
    assert "MaterialVersion" not in json.dumps(tags[contract.TAG_DECLARED])


def test_a_json_field_known_only_at_deploy_time_is_refused() -> None:
    stack = new_stack()
    field = cdk.CfnParameter(stack, "Field").value_as_string
    with pytest.raises(ValueError, match=r"Invalid json_field: .* is a token.*literal"):
        key_in(stack, json_field=field, material_encoding="base64")
    assert stack.node.try_find_child("Key") is None


def test_a_secret_arn_too_long_for_a_tag_is_refused() -> None:
    stack = new_stack()
    long_arn = SECRET_ARN.replace("byok", "b" * 250)
    secret = secretsmanager.Secret.from_secret_complete_arn(stack, "Long", long_arn)
    with pytest.raises(ValueError, match=r"Invalid key_material_secret: its ARN .* 256"):
        ImportedKey(stack, "Key", key_material_secret=secret)


def test_stack_tags_cannot_override_the_binding() -> None:
    stack = new_stack()
    key_in(stack)
    cdk.Tags.of(stack).add(contract.TAG_SETTINGS, "forged")
    cdk.Tags.of(stack).add(contract.TAG_HANDLER, "AROAFORGED")
    cdk.Tags.of(stack).add("team", "payments")
    ((key, _, properties),) = keys_and_imports(Template.from_stack(stack))
    tags = tags_of(key)
    assert tags[contract.TAG_SETTINGS] == contract.settings_digest(properties)
    assert tags[contract.TAG_HANDLER] != "AROAFORGED"
    assert tags["team"] == "payments"  # other tags still reach the key


def test_keys_sharing_a_handler_each_carry_their_own_binding() -> None:
    stack = new_stack()
    key_in(stack, "A")
    other = secretsmanager.Secret.from_secret_complete_arn(
        stack, "Other", SECRET_ARN.replace("byok/material", "byok/other")
    )
    key_in(stack, "B", key_material_secret=other, rotation_on_material_change=True)
    template = Template.from_stack(stack)
    found = keys_and_imports(template)
    assert len(found) == 2
    handler_tags = {json.dumps(tags_of(key)[contract.TAG_HANDLER]) for key, _, _ in found}
    assert len(handler_tags) == 1
    assert len({json.dumps(tags_of(key)[contract.TAG_SECRET]) for key, _, _ in found}) == 2
    assert len({tags_of(key)[contract.TAG_SETTINGS] for key, _, _ in found}) == 2
    assert len({tags_of(key)[contract.TAG_RESOURCE] for key, _, _ in found}) == 2


@pytest.mark.parametrize("revoke", [True, False])
def test_the_handler_asks_cloudformation_about_its_own_stack_only(revoke: bool) -> None:
    """Whether the stack (or one nested in it, named after it) declares a key, and whether it
    is removing it: asked for every key, revoking or not, and of no other stack."""
    stack = new_stack()
    key_in(stack, delete_material_on_removal=revoke)
    statements = handler_statements(Template.from_stack(stack))
    asks = [s for s in statements if "cloudformation" in json.dumps(s["Action"])]
    assert asks == [
        {
            "Action": ["cloudformation:DescribeStackResource", "cloudformation:DescribeStacks"],
            "Effect": "Allow",
            "Resource": [
                partition_arn("cloudformation:eu-west-1:111122223333:stack/Test/*"),
                partition_arn("cloudformation:eu-west-1:111122223333:stack/Test-*/*"),
            ],
        }
    ]
    assert "cloudformation:*" not in json.dumps(statements)


def test_the_handler_may_write_its_record_tag_and_no_other() -> None:
    stack = new_stack()
    key_in(stack)
    template = Template.from_stack(stack)
    (tagging,) = [s for s in handler_statements(template) if s["Action"] == "kms:TagResource"]
    assert tagging["Action"] == "kms:TagResource"
    assert tagging["Condition"] == {
        "StringEquals": mine(template),
        "ForAllValues:StringEquals": {"aws:TagKeys": [contract.TAG_VALID_TO]},
        "Null": {"aws:TagKeys": "false"},
    }
    assert "kms:UntagResource" not in json.dumps(handler_statements(template))


# --- break-glass principals ---------------------------------------------------------------------


def key_policy(template: Template) -> list[dict[str, Any]]:
    ((key, _, _),) = keys_and_imports(template)
    return list(key["Properties"]["KeyPolicy"]["Statement"])


def test_break_glass_principals_may_revoke_despite_the_restriction() -> None:
    stack = new_stack()
    responder = iam.Role(stack, "Responder", assumed_by=iam.AccountRootPrincipal())
    outside = iam.ArnPrincipal("arn:aws:iam::444455556666:role/security-oncall")
    key_in(stack, break_glass_principals=[responder, outside])
    template = Template.from_stack(stack)
    statements = {s.get("Sid"): s for s in key_policy(template)}
    responder_arn = {"Fn::GetAtt": [next(iter(template.find_resources("AWS::IAM::Role"))), "Arn"]}
    assert responder_arn["Fn::GetAtt"][0].startswith("Responder")
    revoke_deny = statements["OnlyTheImportHandlerOrBreakGlassRevokes"]
    assert revoke_deny["Action"] == "kms:DeleteImportedKeyMaterial"
    assert revoke_deny["Condition"]["ArnNotEquals"] == {
        "aws:PrincipalArn": [responder_arn, "arn:aws:iam::444455556666:role/security-oncall"]
    }
    assert "StringNotLike" in revoke_deny["Condition"]  # the handler stays exempt too
    # Importing stays the handler's alone.
    assert "Condition" in statements["OnlyTheImportHandlerImports"]
    assert "ArnNotEquals" not in statements["OnlyTheImportHandlerImports"]["Condition"]
    allow = statements["BreakGlassRevokesOrDisables"]
    assert allow["Effect"] == "Allow"
    assert allow["Action"] == [
        "kms:DeleteImportedKeyMaterial",
        "kms:DisableKey",
        "kms:DescribeKey",
        "kms:ListKeyRotations",
    ]
    assert allow["Principal"] == {
        "AWS": [responder_arn, "arn:aws:iam::444455556666:role/security-oncall"]
    }


def test_break_glass_without_the_restriction_is_an_allow_only() -> None:
    stack = new_stack()
    key_in(
        stack,
        restrict_import_to_handler=False,
        break_glass_principals=[iam.ArnPrincipal("arn:aws:iam::111122223333:user/oncall")],
    )
    statements = key_policy(Template.from_stack(stack))
    assert [s["Effect"] for s in statements] == ["Allow", "Allow"]
    assert statements[-1]["Sid"] == "BreakGlassRevokesOrDisables"


@pytest.mark.parametrize(
    "principal",
    [
        iam.ServicePrincipal("lambda.amazonaws.com"),
        iam.AnyPrincipal(),
        iam.ArnPrincipal("arn:aws:iam::111122223333:role/x").with_conditions(
            {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
        ),
    ],
    ids=["service", "anyone", "conditions"],
)
def test_a_break_glass_principal_that_is_not_one_identity_is_refused(
    principal: iam.IPrincipal,
) -> None:
    stack = new_stack()
    with pytest.raises(ValueError, match=r"Invalid break_glass_principals entry: .*one ARN"):
        key_in(stack, break_glass_principals=[principal])
    assert stack.node.try_find_child("Key") is None
