"""Adopting a key by ARN: the stack adds only the import, and records the binding in its Metadata.

The handler reads an adopted key's binding from CloudFormation's record of the import resource;
``support.binding.adopted_metadata`` is what the end-to-end tests play as that record. These
tests check the construct writes exactly it, so construct and handler cannot drift apart.
"""

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template
from stacks import KEYS_ARN, handler_role_id, handler_statements, key_in, new_stack
from support.binding import adopted_metadata

from imported_key_cdk import FleetKey, ImportedKeyFleet
from imported_key_handler import contract

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:eu-west-1:111122223333:key/{KEY_ID}"


def adopted_stack(**props: Any) -> cdk.Stack:
    stack = new_stack()
    key_in(stack, existing_key_arn=KEY_ARN, **props)
    return stack


def the_import(template: Template) -> dict[str, Any]:
    ((_, resource),) = template.find_resources(contract.RESOURCE_TYPE).items()
    return resource


def test_an_adopted_key_adds_only_its_import_which_records_the_binding() -> None:
    template = Template.from_stack(adopted_stack(material_version_id="v-1"))
    assert template.find_resources("AWS::KMS::Key") == {}
    resource = the_import(template)
    properties = resource["Properties"]
    assert properties[contract.PROP_KEY_ID] == KEY_ID
    expected = adopted_metadata(properties, KEY_ARN, renew_before_s=30 * 86400)
    # What the end-to-end tests play, with the handler's RoleId as CloudFormation resolves it.
    expected[contract.METADATA_BINDING][contract.METADATA_TAGS][contract.TAG_HANDLER] = {
        "Fn::GetAtt": [handler_role_id(template), "RoleId"]
    }
    recorded = {k: v for k, v in resource["Metadata"].items() if k == contract.METADATA_BINDING}
    assert recorded == expected
    assert (
        expected[contract.METADATA_BINDING][contract.METADATA_TAGS][contract.TAG_MATERIAL_VERSION]
        == "v-1"
    )


def test_the_synth_says_which_tag_the_keys_owner_must_add() -> None:
    stack = new_stack()
    key = key_in(stack, existing_key_arn=KEY_ARN)
    (warning,) = [str(e.data) for e in key.node.metadata if e.type == "aws:cdk:warning"]
    assert f"{contract.TAG_ADOPTED_BY}=Test" in warning
    assert f"--key-id {KEY_ARN}" in warning
    assert warning.endswith("[ack: imported-key-cdk:adopted-key-tag]")


def adopted_statements(template: Template) -> list[dict[str, Any]]:
    return [
        s
        for s in handler_statements(template)
        if f"aws:ResourceTag/{contract.TAG_ADOPTED_BY}" in json.dumps(s.get("Condition", {}))
    ]


def test_the_handler_reaches_adopted_keys_by_their_owners_tag_whatever_their_number() -> None:
    def policy(adopted: int) -> tuple[list[dict[str, Any]], str]:
        stack = new_stack()
        key_in(stack, "Own")
        for n in range(adopted):
            arn = KEY_ARN[: -len("0001")] + f"{n:04d}"
            key_in(stack, f"Adopted{n}", existing_key_arn=arn)
        template = Template.from_stack(stack)
        return adopted_statements(template), json.dumps(handler_statements(template))

    none, _ = policy(0)
    assert none == []
    one, one_policy = policy(1)
    many, many_policy = policy(40)
    assert len(one) == 4
    assert one == many
    assert len(one_policy) == len(many_policy)
    for statement in one:
        assert statement["Resource"] == KEYS_ARN
        assert (
            statement["Condition"]["StringEquals"][f"aws:ResourceTag/{contract.TAG_ADOPTED_BY}"]
            == "Test"
        )
    (tagging,) = [s for s in one if s["Action"] == "kms:TagResource"]
    assert sorted(tagging["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]) == sorted(
        [contract.TAG_VALID_TO, *contract.ADOPTED_POINTER_TAGS]
    )


def test_an_alias_and_grants_work_on_an_adopted_key() -> None:
    stack = new_stack()
    key = key_in(stack, existing_key_arn=KEY_ARN, alias="payments")
    role = iam.Role(stack, "App", assumed_by=iam.AccountRootPrincipal())
    key.grant_encrypt_decrypt(role)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": "alias/payments", "TargetKeyId": KEY_ARN}
    )
    grants = [
        s
        for name, p in template.find_resources("AWS::IAM::Policy").items()
        if name.startswith("App")
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (grant,) = grants
    # Through the import, like any ImportedKey: the grant is usable once the material is in.
    assert grant["Resource"] == {"Fn::GetAtt": [next(iter(template.find_resources(
        contract.RESOURCE_TYPE))), contract.ATTR_KEY_ARN]}  # fmt: skip


def test_a_key_resource_of_the_stack_can_be_adopted_by_reference() -> None:
    # The `cdk import` route (README): the key resource imported into the stack on its own,
    # then adopted through its ARN, resolved by CloudFormation in the Metadata too.
    stack = new_stack()
    resource = kms.CfnKey(stack, "Existing", origin="EXTERNAL")
    resource.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
    key_in(stack, existing_key_arn=resource.attr_arn)
    template = Template.from_stack(stack)
    imported = the_import(template)
    record = imported["Metadata"][contract.METADATA_BINDING]
    assert record[contract.METADATA_KEY_ARN] == {"Fn::GetAtt": ["Existing", "Arn"]}
    assert "Existing" in json.dumps(imported["Properties"][contract.PROP_KEY_ID])


@pytest.mark.parametrize(
    ("props", "named"),
    [
        ({"description": "x"}, "description"),
        ({"admins": [iam.AccountRootPrincipal()]}, "admins"),
        ({"pending_window": cdk.Duration.days(7)}, "pending_window"),
        ({"removal_policy": cdk.RemovalPolicy.DESTROY}, "removal_policy"),
        ({"restrict_import_to_handler": True}, "restrict_import_to_handler"),
        ({"policy": iam.PolicyDocument()}, "policy"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_props_that_shape_a_key_resource_are_refused_with_an_adopted_key(
    props: dict[str, Any], named: str
) -> None:
    stack = new_stack()
    with pytest.raises(ValueError, match=rf"Invalid {named} with existing_key_arn"):
        key_in(stack, existing_key_arn=KEY_ARN, **props)
    assert stack.node.try_find_child("Key") is None


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        (KEY_ID, "full ARN"),
        ("arn:aws:kms:eu-west-1:111122223333:alias/payments", "not its id, nor an alias"),
        (KEY_ARN.replace("111122223333", "444455556666"), "in account 444455556666"),
        (KEY_ARN.replace("eu-west-1", "us-east-1"), "in region us-east-1"),
    ],
    ids=["key id", "alias", "other account", "other region"],
)
def test_a_bad_key_arn_is_refused_naming_it(arn: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid existing_key_arn") as raised:
        key_in(new_stack(), existing_key_arn=arn)
    assert message in str(raised.value)
    assert arn[:40] in str(raised.value)


def test_an_adopted_key_has_no_removal_policy_to_apply() -> None:
    key = key_in(new_stack(), existing_key_arn=KEY_ARN)
    with pytest.raises(ValueError, match="adopted key"):
        key.apply_removal_policy(cdk.RemovalPolicy.DESTROY)


def test_a_fleet_adopts_entries_with_a_key_arn(tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.json"
    manifest.write_text(
        json.dumps(
            {
                "keys": [
                    {"name": "Made", "secret": "byok/made"},
                    {"name": "Adopted", "secret": "byok/adopted", "key_arn": KEY_ARN},
                ]
            }
        )
    )
    stack = new_stack()
    fleet = ImportedKeyFleet(stack, "Fleet", manifest=manifest, nested_stacks=1)
    assert fleet.keys["Adopted"].existing_key_arn == KEY_ARN
    assert fleet.keys["Made"].existing_key_arn is None
    (nested,) = fleet.stacks.values()
    template = Template.from_stack(nested)
    assert len(template.find_resources("AWS::KMS::Key")) == 1
    assert len(template.find_resources(contract.RESOURCE_TYPE)) == 2


@pytest.mark.parametrize("field", ["description", "tags"])
def test_a_fleet_entry_that_adopts_refuses_fields_of_a_created_key(field: str) -> None:
    value: Any = {"team": "x"} if field == "tags" else "x"
    entry = FleetKey(name="Adopted", secret="byok/a", key_arn=KEY_ARN, **{field: value})
    with pytest.raises(ValueError, match=rf"entry #0 \(Adopted\): {field} with key_arn"):
        ImportedKeyFleet(new_stack(), "Fleet", keys=[entry])
