"""Multi-Region keys at synth: a primary, its replicas in other Regions' stacks, and refusals.

KMS copies no imported material to a replica, so each replica is a key of its own Region's
stack, bound and imported by that Region's handler like any ImportedKey
(``tests/e2e/test_multi_region_e2e.py`` plays the imports on LocalStack).
"""

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template
from stacks import NO_BUNDLING, binding_of, handler_role_id, mine, statement_with, tags_of

from imported_key_cdk import ImportedKey, MaterialExpiration
from imported_key_handler import contract

ACCOUNT = "111122223333"
PRIMARY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-{'0' * 32}"


def region_stacks(*regions: str) -> list[cdk.Stack]:
    """One stack per Region, all named alike (so one reader tag serves a replicated secret)."""
    app = cdk.App(context=NO_BUNDLING)
    return [
        cdk.Stack(
            app,
            f"Keys-{region}",
            stack_name="byok-keys",
            env=cdk.Environment(account=ACCOUNT, region=region),
            cross_region_references=True,
        )
        for region in regions
    ]


def key(stack: cdk.Stack, construct_id: str = "Key", **props: Any) -> ImportedKey:
    secret = secretsmanager.Secret(stack, f"{construct_id}Material")
    return ImportedKey(stack, construct_id, key_material_secret=secret, **props)


def only(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    ((name, resource),) = template.find_resources(resource_type).items()
    return name, resource


def test_a_primary_and_a_replica_are_each_bound_and_imported_in_their_own_region() -> None:
    east, west = region_stacks("us-east-1", "eu-west-1")
    primary = key(east, multi_region=True)
    replica = key(west, replica_of=primary, alias="payments")
    _, primary_key = only(Template.from_stack(east), "AWS::KMS::Key")
    assert primary_key["Properties"]["MultiRegion"] is True
    assert primary.replica_regions == {"eu-west-1": replica.node.path}

    template = Template.from_stack(west)
    assert template.find_resources("AWS::KMS::Key") == {}
    replica_id, resource = only(template, "AWS::KMS::ReplicaKey")
    assert resource["DeletionPolicy"] == "Retain"
    # The primary's ARN, through its import (so the primary holds material first), across
    # Regions by CDK's cross-Region references.
    assert "ExportsReader" in json.dumps(resource["Properties"]["PrimaryKeyArn"])
    import_id, material_import = only(template, contract.RESOURCE_TYPE)
    properties = material_import["Properties"]
    assert replica_id in json.dumps(properties[contract.PROP_KEY_ID])
    # Exactly the binding of any key of the stack (what the end-to-end tests play).
    assert tags_of(resource) == binding_of(template, properties, import_id, replica_id)
    # Its own key policy: the account's IAM policies decide, and only the handler imports.
    statements = resource["Properties"]["KeyPolicy"]["Statement"]
    assert {s.get("Sid") for s in statements} >= {
        "OnlyTheImportHandlerImports",
        "OnlyTheImportHandlerOrBreakGlassRevokes",
    }
    alias = template.find_resources("AWS::KMS::Alias")
    assert [a["Properties"]["TargetKeyId"] for a in alias.values()] == [
        {"Fn::GetAtt": [replica_id, "Arn"]}
    ]


def test_grants_on_a_replica_go_to_the_grantee_or_to_the_replicas_key_policy() -> None:
    east, west = region_stacks("us-east-1", "eu-west-1")
    replica = key(west, replica_of=key(east, multi_region=True))
    role = iam.Role(west, "App", assumed_by=iam.AccountRootPrincipal())
    replica.grant_encrypt_decrypt(role)
    replica.grant_decrypt(iam.ServicePrincipal("logs.eu-west-1.amazonaws.com"))
    template = Template.from_stack(west)
    _, resource = only(template, "AWS::KMS::ReplicaKey")
    principals = [s["Principal"] for s in resource["Properties"]["KeyPolicy"]["Statement"]]
    assert {"Service": "logs.eu-west-1.amazonaws.com"} in principals
    (app_policy,) = [
        p for n, p in template.find_resources("AWS::IAM::Policy").items() if n.startswith("App")
    ]
    assert "kms:Encrypt" in json.dumps(app_policy)


@pytest.mark.parametrize("rotate", [False, True])
def test_a_replica_of_a_primary_known_by_arn(rotate: bool) -> None:
    (west,) = region_stacks("eu-west-1")
    # Nothing to check the rotation against: the replica is taken at its word.
    key(west, replica_of=PRIMARY_ARN, rotation_on_material_change=rotate)
    template = Template.from_stack(west)
    _, resource = only(template, "AWS::KMS::ReplicaKey")
    assert resource["Properties"]["PrimaryKeyArn"] == PRIMARY_ARN
    _, material_import = only(template, contract.RESOURCE_TYPE)
    rotates = material_import["Properties"][contract.PROP_ROTATE_ON_MATERIAL_CHANGE]
    assert rotates == str(rotate).lower()


def key_actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def test_a_rotating_primary_and_its_rotating_replicas_each_get_the_rotation_actions() -> None:
    east, west, south = region_stacks("us-east-1", "eu-west-1", "ap-southeast-2")
    primary = key(east, multi_region=True, rotation_on_material_change=True)
    key(west, replica_of=primary, rotation_on_material_change=True)
    custom = iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                actions=["kms:*"], principals=[iam.AccountRootPrincipal()], resources=["*"]
            )
        ]
    )
    key(south, replica_of=primary, rotation_on_material_change=True, policy=custom)
    assert primary.rotates_on_material_change

    # Phase three: the primary's sweep reads the pending material's state and rotates.
    east_template = Template.from_stack(east)
    rotate = statement_with(east_template, "kms:RotateKeyOnDemand")
    assert key_actions(rotate) >= {"kms:RotateKeyOnDemand", "kms:ListKeyRotations"}
    assert rotate["Condition"] == {"StringEquals": mine(east_template)}
    _, primary_key = only(east_template, "AWS::KMS::Key")
    assert tags_of(primary_key)[contract.TAG_HANDLER] == {
        "Fn::GetAtt": [handler_role_id(east_template), "RoleId"]
    }

    # Phase two, and each replica's renewals: its handler lists every material it holds.
    for stack in (west, south):
        template = Template.from_stack(stack)
        _, material_import = only(template, contract.RESOURCE_TYPE)
        assert material_import["Properties"][contract.PROP_ROTATE_ON_MATERIAL_CHANGE] == "true"
        _, replica = only(template, "AWS::KMS::ReplicaKey")
        role = {"Fn::GetAtt": [handler_role_id(template), "RoleId"]}
        assert tags_of(replica)[contract.TAG_HANDLER] == role
        # The same key statement as any rotating key's (RotateKeyOnDemand included: KMS
        # refuses it on a replica, and one code path serves both).
        listing = statement_with(template, "kms:ListKeyRotations")
        assert key_actions(listing) >= {"kms:ListKeyRotations", "kms:RotateKeyOnDemand"}
        assert listing["Condition"] == {"StringEquals": mine(template)}
        # The replica's own key policy: its handler-only Deny leaves the handler exempt, and
        # denies no listing.
        statements = replica["Properties"]["KeyPolicy"]["Statement"]
        denies = [s for s in statements if s["Effect"] == "Deny"]
        assert all("kms:ListKeyRotations" not in key_actions(s) for s in denies)
        (imports,) = [s for s in denies if s.get("Sid") == "OnlyTheImportHandlerImports"]
        assert "kms:RotateKeyOnDemand" in key_actions(imports)
        assert imports["Condition"] == {
            "StringNotLike": {
                "aws:userid": {"Fn::Join": ["", [role, ":*"]]},
            }
        }
        if stack is south:
            # A custom key policy also names the handler's key actions itself.
            handler_role = {"Fn::GetAtt": [handler_role_id(template), "Arn"]}
            (allowed,) = [
                s
                for s in statements
                if s["Effect"] == "Allow"
                and s["Principal"] == {"AWS": handler_role}
                and "kms:DescribeKey" in key_actions(s)
            ]
            assert key_actions(allowed) >= {"kms:ListKeyRotations", "kms:RotateKeyOnDemand"}


@pytest.mark.parametrize(
    ("primary_rotates", "replica_rotates"),
    [(True, False), (False, True)],
    ids=["primary rotates alone", "replica rotates alone"],
)
def test_a_replica_must_rotate_as_its_primary_does(
    primary_rotates: bool, replica_rotates: bool
) -> None:
    east, west = region_stacks("us-east-1", "eu-west-1")
    primary = key(east, multi_region=True, rotation_on_material_change=primary_rotates)
    with pytest.raises(ValueError, match=r"^Invalid rotation_on_material_change") as refused:
        key(west, replica_of=primary, rotation_on_material_change=replica_rotates)
    message = str(refused.value)
    path = primary.node.path
    assert f"{path}: {replica_rotates}, but the primary has {primary_rotates}" in message
    fix = f"declare the replica with rotation_on_material_change={primary_rotates}, as its"
    assert fix in message
    # Refused before it joined the tree: no replica, and the Region is still free.
    assert west.node.try_find_child("Key") is None
    assert primary.replica_regions == {}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda east, west: key(west, replica_of=key(east)),
            "is not a multi-Region key; declare it with multi_region=True",
        ),
        (
            lambda east, west: key(east, "Twin", replica_of=key(east, multi_region=True)),
            "Region us-east-1 is listed twice",
        ),
        (
            lambda east, west: (
                key(west, replica_of=(primary := key(east, multi_region=True))),
                key(west, "Second", replica_of=primary),
            ),
            "Region eu-west-1 is listed twice",
        ),
        (
            lambda east, west: key(
                west, replica_of=key(east, multi_region=True), key_spec="HMAC_256"
            ),
            "Invalid key_spec for a replica of",
        ),
        (
            lambda east, west: key(
                east,
                multi_region=True,
                rotation_on_material_change=True,
                expiration=MaterialExpiration.never(),
            ),
            "a key whose material never expires has no sweep",
        ),
        (
            lambda east, west: key(west, multi_region=True, replica_of=PRIMARY_ARN),
            "declare multi_region on the primary only",
        ),
        (
            lambda east, west: key(west, replica_of=PRIMARY_ARN.replace("mrk-", "")),
            "is not the ARN of a multi-Region key",
        ),
        (
            lambda east, west: key(east, replica_of=PRIMARY_ARN),
            "this stack's own Region",
        ),
        (
            lambda east, west: key(
                west,
                replica_of=PRIMARY_ARN,
                existing_key_arn=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/mrk-{'1' * 32}",
            ),
            "Invalid replica_of with existing_key_arn",
        ),
    ],
    ids=[
        "primary not multi-Region",
        "replica in the primary's Region",
        "two replicas in one Region",
        "mismatched key spec",
        "rotating primary without a sweep",
        "both primary and replica",
        "not a multi-Region ARN",
        "ARN in this Region",
        "adopted",
    ],
)
def test_bad_multi_region_declarations_are_refused_at_synth(build: Any, message: str) -> None:
    east, west = region_stacks("us-east-1", "eu-west-1")
    with pytest.raises(ValueError, match="Invalid") as refused:
        build(east, west)
    assert message in str(refused.value)


def test_a_replica_in_another_account_is_refused() -> None:
    (west,) = region_stacks("eu-west-1")
    with pytest.raises(ValueError, match="is in account 444455556666, this stack in"):
        key(west, replica_of=PRIMARY_ARN.replace(ACCOUNT, "444455556666"))


def test_a_replica_needs_a_stack_with_a_region() -> None:
    app = cdk.App(context=NO_BUNDLING)
    agnostic = cdk.Stack(app, "Agnostic")
    with pytest.raises(ValueError, match="has no concrete Region"):
        key(agnostic, replica_of=PRIMARY_ARN)


def test_each_replicas_region_sweeps_restores_and_alarms_for_it() -> None:
    """Renewal and recovery are per Region: the replica's stack has its own sweep, its own rule
    for KMS's expiry events and its own fleet alarm, none shared with the primary's Region."""
    east, west = region_stacks("us-east-1", "eu-west-1")
    primary = key(east, multi_region=True)
    replica = key(west, replica_of=primary)
    assert replica.renewal is not None
    assert replica.renewal is not primary.renewal
    template = Template.from_stack(west)
    resources = template.to_json()["Resources"]

    def in_west(construct: Any) -> dict[str, Any]:
        assert construct is not None
        return dict(resources[west.get_logical_id(construct.node.default_child)])

    sweep = in_west(replica.renewal_rule)["Properties"]
    assert sweep["ScheduleExpression"] == "rate(1 hour)"
    recovery = in_west(replica.recovery_rule)["Properties"]
    assert recovery["EventPattern"]["detail-type"] == [contract.KMS_EXPIRATION_EVENT]
    alarm = in_west(replica.expiry_alarm)["Properties"]
    assert alarm["MetricName"] == contract.METRIC_MIN_SECONDS_TO_EXPIRY
    # The replica declares its window, so its Region's sweep knows when it falls due.
    _, replica_key = only(template, "AWS::KMS::ReplicaKey")
    declared = contract.parse_declared(tags_of(replica_key)[contract.TAG_DECLARED])
    assert declared[1] == 30 * 86400
