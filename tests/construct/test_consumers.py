"""ImportedKey as a kms.IKey: consumers that take a key, grants, the key policy, aliases."""

import json
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from constructs import Construct
from stacks import NO_BUNDLING, key_in, new_stack

from imported_key_cdk import ImportedKey
from imported_key_handler import contract

OTHER_ACCOUNT = "444455556666"


def logical_id(construct: Construct) -> str:
    default_child = construct.node.default_child
    assert isinstance(default_child, cdk.CfnElement)
    return cdk.Stack.of(construct).get_logical_id(default_child)


def imported_arn(key: ImportedKey) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(key.material_import), contract.ATTR_KEY_ARN]}


def resources(template: Template) -> dict[str, Any]:
    return dict(template.to_json()["Resources"])


def key_policy(template: Template, key: ImportedKey) -> list[dict[str, Any]]:
    key_resource = resources(template)[logical_id(key.external_key)]
    return list(key_resource["Properties"]["KeyPolicy"]["Statement"])


def policies_of(template: Template, role: iam.Role) -> list[dict[str, Any]]:
    found = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": logical_id(role)}]}}
    )
    return [s for p in found.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


# --- consumers: each is passed the construct itself ------------------------------------------

# (how to build the consumer, the path in its properties that must hold the imported key's ARN)
Consumer = Callable[[Construct, ImportedKey], Construct]
CONSUMERS: dict[str, tuple[Consumer, Callable[[dict[str, Any]], Any]]] = {
    "s3.Bucket": (
        lambda s, k: s3.Bucket(s, "Consumer", encryption_key=k),
        lambda p: p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]["KMSMasterKeyID"],
    ),
    "sqs.Queue": (
        lambda s, k: sqs.Queue(s, "Consumer", encryption_master_key=k),
        lambda p: p["KmsMasterKeyId"],
    ),
    "sns.Topic": (
        lambda s, k: sns.Topic(s, "Consumer", master_key=k),
        lambda p: p["KmsMasterKeyId"],
    ),
    "logs.LogGroup": (
        lambda s, k: logs.LogGroup(s, "Consumer", encryption_key=k),
        lambda p: p["KmsKeyId"],
    ),
    "dynamodb.TableV2": (
        lambda s, k: dynamodb.TableV2(
            s,
            "Consumer",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(k),
        ),
        lambda p: p["Replicas"][0]["SSESpecification"]["KMSMasterKeyId"],
    ),
    "dynamodb.Table": (
        lambda s, k: dynamodb.Table(
            s,
            "Consumer",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=k,
        ),
        lambda p: p["SSESpecification"]["KMSMasterKeyId"],
    ),
    "secretsmanager.Secret": (
        lambda s, k: secretsmanager.Secret(s, "Consumer", encryption_key=k),
        lambda p: p["KmsKeyId"],
    ),
}


@pytest.mark.parametrize("name", list(CONSUMERS))
def test_a_consumer_given_the_construct_gets_the_imported_key_after_the_import(name: str) -> None:
    build, key_of = CONSUMERS[name]
    stack = new_stack()
    imported = key_in(stack)
    consumer = build(stack, imported)
    template = Template.from_stack(stack)
    consumer_resource = resources(template)[logical_id(consumer)]
    # The ARN comes from the import: CloudFormation creates the consumer once the key holds
    # its material, never while it is PendingImport.
    assert key_of(consumer_resource["Properties"]) == imported_arn(imported)
    assert logical_id(imported.external_key) not in json.dumps(consumer_resource)


def test_a_secret_encrypted_with_the_key_is_allowed_in_the_key_policy() -> None:
    stack = new_stack()
    imported = key_in(stack)
    secretsmanager.Secret(stack, "Consumer", encryption_key=imported)
    template = Template.from_stack(stack)
    via_secrets_manager = [
        s
        for s in key_policy(template, imported)
        if "kms:ViaService" in json.dumps(s.get("Condition", {}))
    ]
    assert via_secrets_manager, "Secrets Manager's grant did not reach the key policy"
    assert {"kms:Decrypt", "kms:Encrypt"} <= set().union(*map(actions, via_secrets_manager))


def test_key_ref_and_key_resolve_through_the_import() -> None:
    stack = new_stack()
    imported = key_in(stack)
    ref = imported.key_ref
    assert stack.resolve(ref.key_arn) == imported_arn(imported)
    assert stack.resolve(ref.key_id) == {
        "Fn::GetAtt": [logical_id(imported.material_import), contract.ATTR_KEY_ID]
    }
    assert stack.resolve(imported.key_id) == stack.resolve(ref.key_id)
    assert imported.key is imported
    assert imported.stack is stack
    assert imported.env.account == "111122223333"


def test_every_member_of_ikey_is_implemented() -> None:
    members = {
        name
        for interface in kms.IKey.__mro__
        for name, value in vars(interface).items()
        if getattr(getattr(value, "fget", value), "__jsii_name__", None)
    }
    assert {"key_arn", "key_id", "key_ref", "add_alias", "grant_verify_mac", "env"} <= members
    # Defined by ImportedKey or by cdk.Resource, never by the interface's own stubs.
    missing = {
        name
        for name in members
        if not any(name in vars(k) for k in ImportedKey.__mro__ if k is not kms.IKey)
    }
    assert missing == set()


# --- grants ------------------------------------------------------------------------------------


def test_same_account_role_is_granted_in_its_own_policy_on_the_imported_arn() -> None:
    stack = new_stack()
    imported = key_in(stack)
    role = iam.Role(stack, "User", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    grant = imported.grant_encrypt_decrypt(role)
    template = Template.from_stack(stack)
    assert grant.success
    (statement,) = policies_of(template, role)
    assert statement["Resource"] == imported_arn(imported)
    assert actions(statement) == {
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
    }
    # The default key policy lets the account's IAM policies decide: nothing names the role.
    assert logical_id(role) not in json.dumps(key_policy(template, imported))


def test_service_principal_is_granted_in_the_key_policy() -> None:
    stack = new_stack()
    imported = key_in(stack)
    grant = imported.grant_encrypt_decrypt(iam.ServicePrincipal("logs.amazonaws.com"))
    assert grant.success
    template = Template.from_stack(stack)
    (statement,) = [
        s
        for s in key_policy(template, imported)
        if s.get("Principal") == {"Service": "logs.amazonaws.com"}
    ]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "*"
    assert "kms:Decrypt" in actions(statement)
    assert "kms:Encrypt" in actions(statement)


def test_another_accounts_role_is_granted_in_the_key_policy_and_its_own_policy() -> None:
    app = cdk.App(context=NO_BUNDLING)
    key_stack = cdk.Stack(
        app, "Keys", env=cdk.Environment(account="111122223333", region="eu-west-1")
    )
    imported = key_in(key_stack)
    user_stack = cdk.Stack(
        app, "Users", env=cdk.Environment(account=OTHER_ACCOUNT, region="eu-west-1")
    )
    role = iam.Role(
        user_stack,
        "User",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        role_name="payments-reader",
    )
    assert imported.grant_decrypt(role).success
    key_template = Template.from_stack(key_stack)
    (statement,) = [
        s for s in key_policy(key_template, imported) if "payments-reader" in json.dumps(s)
    ]
    assert actions(statement) == {"kms:Decrypt"}
    assert OTHER_ACCOUNT in json.dumps(statement["Principal"])
    (user_statement,) = policies_of(Template.from_stack(user_stack), role)
    assert actions(user_statement) == {"kms:Decrypt"}


def test_another_account_is_granted_in_the_key_policy() -> None:
    stack = new_stack()
    imported = key_in(stack)
    imported.grant_sign_verify(iam.AccountPrincipal(OTHER_ACCOUNT))
    text = json.dumps(key_policy(Template.from_stack(stack), imported))
    assert f":iam::{OTHER_ACCOUNT}:root" in text
    assert "kms:Sign" in text


def grant_footprint(make_key: Callable[[cdk.Stack], kms.IKey]) -> tuple[Any, Any]:
    """What each kind of grant writes, with the key's own ARN replaced by a marker."""
    stack = new_stack()
    key = make_key(stack)
    role = iam.Role(stack, "User", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    key.grant_decrypt(role)
    key.grant_encrypt(iam.ServicePrincipal("logs.amazonaws.com"))
    key.grant(iam.AccountPrincipal(OTHER_ACCOUNT), "kms:DescribeKey")
    template = Template.from_stack(stack)
    key_arn = json.dumps(stack.resolve(key.key_arn))
    (key_resource,) = template.find_resources("AWS::KMS::Key").values()
    policy = key_resource["Properties"]["KeyPolicy"]
    handler_free = [
        s
        for s in policy["Statement"]
        if not str(s.get("Sid", "")).startswith("OnlyTheImportHandler")
    ]
    role_policy = json.dumps(policies_of(template, role)).replace(key_arn, '"KEY"')
    return handler_free, json.loads(role_policy)


def test_grants_write_what_kms_key_grants_write() -> None:
    def plain(stack: cdk.Stack) -> kms.IKey:
        return kms.Key(stack, "Plain")

    def imported(stack: cdk.Stack) -> kms.IKey:
        return key_in(stack, "Imported")

    plain_policy, plain_role = grant_footprint(plain)
    imported_policy, imported_role = grant_footprint(imported)
    assert imported_policy == plain_policy
    assert imported_role == plain_role
    assert imported_role == [
        {"Action": "kms:Decrypt", "Effect": "Allow", "Resource": "KEY"},
    ]


def test_a_custom_policy_gets_the_grants_instead_of_silently_dropping_them() -> None:
    stack = new_stack()
    admin_only = iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                actions=["kms:Describe*", "kms:Put*", "kms:Create*", "kms:Enable*"],
                principals=[iam.AccountRootPrincipal()],
                resources=["*"],
            )
        ]
    )
    imported = key_in(stack, policy=admin_only)
    role = iam.Role(stack, "User", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    imported.grant_decrypt(role)
    template = Template.from_stack(stack)
    # The role's own policy, on the imported ARN ...
    (statement,) = policies_of(template, role)
    assert statement["Resource"] == imported_arn(imported)
    # ... and the key policy, which this custom policy needs to let the role in at all.
    (in_key_policy,) = [
        s
        for s in key_policy(template, imported)
        if s.get("Principal") == {"AWS": {"Fn::GetAtt": [logical_id(role), "Arn"]}}
    ]
    assert actions(in_key_policy) == {"kms:Decrypt"}


# --- the key policy, aliases, removal ----------------------------------------------------------


def test_add_to_resource_policy_writes_the_key_policy() -> None:
    stack = new_stack()
    imported = key_in(stack)
    result = imported.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AuditorsDescribe",
            actions=["kms:DescribeKey"],
            principals=[iam.ArnPrincipal("arn:aws:iam::111122223333:role/auditor")],
            resources=["*"],
        )
    )
    assert result.statement_added
    (statement,) = [
        s
        for s in key_policy(Template.from_stack(stack), imported)
        if s.get("Sid") == "AuditorsDescribe"
    ]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::111122223333:role/auditor"}


def test_add_alias_points_at_the_key_after_the_import() -> None:
    stack = new_stack()
    imported = key_in(stack)
    alias = imported.add_alias("alias/payments-imported")
    template = Template.from_stack(stack)
    props = resources(template)[logical_id(alias)]["Properties"]
    assert props == {"AliasName": "alias/payments-imported", "TargetKeyId": imported_arn(imported)}
    assert alias.alias_target_key is imported


def test_apply_removal_policy_reaches_the_key() -> None:
    stack = new_stack()
    imported = key_in(stack)
    imported.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
    key_resource = resources(Template.from_stack(stack))[logical_id(imported.external_key)]
    assert key_resource["DeletionPolicy"] == "Delete"


def test_admins_of_a_key_with_a_custom_policy_are_written_into_it() -> None:
    stack = new_stack()
    admin = iam.Role(stack, "Admin", assumed_by=iam.AccountRootPrincipal())
    empty = iam.PolicyDocument()
    imported = key_in(stack, policy=empty, admins=[admin])
    template = Template.from_stack(stack)
    (in_key_policy,) = [
        s
        for s in key_policy(template, imported)
        if s.get("Principal") == {"AWS": {"Fn::GetAtt": [logical_id(admin), "Arn"]}}
    ]
    assert "kms:Put*" in actions(in_key_policy)
    (own,) = policies_of(template, admin)
    # Administration does not wait for the import: it names the key resource itself.
    assert own["Resource"] == {"Fn::GetAtt": [logical_id(imported.external_key), "Arn"]}
