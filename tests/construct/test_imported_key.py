"""Template tests for ImportedKey (aws_cdk.assertions)."""

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template
from constructs import Construct
from stacks import SECRET_ARN, assert_acyclic, key_in, new_stack, references
from support.synth import example_app

from imported_key_cdk import ImportedKey, MaterialExpiration, WrappingAlgorithm, WrappingKeySpec
from imported_key_handler import contract

HANDLER_PREFIX = "ImportedKeyHandler"


def logical_id(construct: Construct) -> str:
    default_child = construct.node.default_child
    assert isinstance(default_child, cdk.CfnElement)
    return cdk.Stack.of(construct).get_logical_id(default_child)


def only(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def handler_statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy")
    handler_policies = [p for name, p in policies.items() if name.startswith("ImportedKeyHandler")]
    assert len(handler_policies) == 1
    return list(handler_policies[0]["Properties"]["PolicyDocument"]["Statement"])


def test_key_is_external_without_rotation_and_retained() -> None:
    stack = new_stack()
    key_in(stack)
    template = Template.from_stack(stack)
    _, key = only(template, "AWS::KMS::Key")
    assert key["Properties"]["Origin"] == "EXTERNAL"
    assert key["Properties"].get("EnableKeyRotation", False) is False
    assert "Enabled" not in key["Properties"]  # DisableKey fails on a PendingImport key
    assert key["DeletionPolicy"] == "Retain"
    assert key["UpdateReplacePolicy"] == "Retain"


def test_key_props_pass_through() -> None:
    stack = new_stack()
    admin = iam.Role(stack, "Admin", assumed_by=iam.AccountRootPrincipal())
    key_in(
        stack,
        alias="alias/payments",
        description="payments key",
        admins=[admin],
        removal_policy=cdk.RemovalPolicy.DESTROY,
        pending_window=cdk.Duration.days(7),
    )
    template = Template.from_stack(stack)
    _, key = only(template, "AWS::KMS::Key")
    assert key["Properties"]["Description"] == "payments key"
    assert key["Properties"]["PendingWindowInDays"] == 7
    assert key["DeletionPolicy"] == "Delete"
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/payments"})
    # Same-account admins get their rights through their own IAM policy (aws-kms's default).
    (admin_policy,) = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": logical_id(admin)}]}}
    ).values()
    statement = admin_policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert "kms:Create*" in statement["Action"]
    assert statement["Resource"] == {"Fn::GetAtt": [only(template, "AWS::KMS::Key")[0], "Arn"]}


def test_custom_policy_is_used_and_keeps_the_import_restriction() -> None:
    stack = new_stack()
    policy = iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                actions=["kms:*"], principals=[iam.AccountRootPrincipal()], resources=["*"]
            )
        ]
    )
    key_in(stack, policy=policy)
    template = Template.from_stack(stack)
    _, key = only(template, "AWS::KMS::Key")
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert statements[0]["Action"] == "kms:*"
    # A custom policy may not delegate to IAM, so the handler's key actions are in it too,
    # for the handler's role alone; the import restriction stays last.
    (role_id,) = [
        n for n in template.find_resources("AWS::IAM::Role") if n.startswith(HANDLER_PREFIX)
    ]
    handler_allows = statements[1:-2]
    assert {s["Effect"] for s in handler_allows} == {"Allow"}
    assert all(s["Principal"] == {"AWS": {"Fn::GetAtt": [role_id, "Arn"]}} for s in handler_allows)
    assert [s["Action"] for s in handler_allows] == [
        ["kms:DescribeKey", "kms:ListResourceTags"],
        "kms:TagResource",
        "kms:GetParametersForImport",
        "kms:ImportKeyMaterial",
    ]
    assert [s["Sid"] for s in statements[-2:]] == [
        "OnlyTheImportHandlerImports",
        "OnlyTheImportHandlerOrBreakGlassRevokes",
    ]


def test_only_the_handler_may_import_into_a_restricted_key() -> None:
    stack = new_stack()
    key_in(stack)
    template = Template.from_stack(stack)
    _, key = only(template, "AWS::KMS::Key")
    import_deny, revoke_deny = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Effect"] == "Deny"
    ]
    (role_id,) = [
        n for n in template.find_resources("AWS::IAM::Role") if n.startswith(HANDLER_PREFIX)
    ]
    # Every session of the role, by the role's unique id: "<RoleId>:<session name>".
    not_the_handler = {
        "StringNotLike": {
            "aws:userid": {"Fn::Join": ["", [{"Fn::GetAtt": [role_id, "RoleId"]}, ":*"]]}
        }
    }
    assert import_deny == {
        "Sid": "OnlyTheImportHandlerImports",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": [
            "kms:GetParametersForImport",
            "kms:ImportKeyMaterial",
            "kms:RotateKeyOnDemand",
        ],
        "Resource": "*",
        "Condition": not_the_handler,
    }
    assert revoke_deny == {
        "Sid": "OnlyTheImportHandlerOrBreakGlassRevokes",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "kms:DeleteImportedKeyMaterial",
        "Resource": "*",
        "Condition": not_the_handler,
    }
    # Administrators are not locked out: nothing else is denied, PutKeyPolicy included.
    assert "kms:PutKeyPolicy" not in json.dumps([import_deny, revoke_deny])


def test_the_exemption_does_not_name_the_role_by_arn() -> None:
    """A role re-created with the same name has the same ARN but a new RoleId: after the stack
    is gone, the retained key's Deny must not exempt it. An ARN condition beside the RoleId
    would exempt it again (a Deny with two negated conditions denies only when both hold)."""
    stack = new_stack()
    key_in(stack)
    template = Template.from_stack(stack)
    _, key = only(template, "AWS::KMS::Key")
    denies = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Effect"] == "Deny"]
    assert len(denies) == 2
    for deny in denies:
        text = json.dumps(deny)
        assert "PrincipalArn" not in text
        assert '"Arn"]' not in text
        assert list(deny["Condition"]) == ["StringNotLike"]
        assert list(deny["Condition"]["StringNotLike"]) == ["aws:userid"]


def test_the_key_policy_on_the_role_id_makes_no_dependency_cycle() -> None:
    """The key waits for the role (its RoleId); the role's grants on the key are in a separate
    AWS::IAM::Policy that waits for the key, and the role itself names no key."""
    stack = new_stack()
    key_in(stack, rotation_on_material_change=True, delete_material_on_removal=True)
    template = Template.from_stack(stack)
    key_id, key = only(template, "AWS::KMS::Key")
    (role_id,) = [
        n for n in template.find_resources("AWS::IAM::Role") if n.startswith(HANDLER_PREFIX)
    ]
    role = template.find_resources("AWS::IAM::Role")[role_id]
    assert {"Fn::GetAtt": [role_id, "RoleId"]} in references(key)
    assert not {r for r in references(role) if key_id in json.dumps(r)}
    assert "DependsOn" not in key
    (policy,) = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}}
    ).values()
    assert {"Fn::GetAtt": [key_id, "Arn"]} in references(policy)
    assert_acyclic(template.to_json())


def test_the_cycle_check_finds_a_cycle() -> None:
    with pytest.raises(AssertionError, match=r"^dependency cycle among \['A', 'B'\]$"):
        assert_acyclic(
            {
                "Resources": {
                    "A": {"Type": "T", "Properties": {"X": {"Fn::GetAtt": ["B", "Arn"]}}},
                    "B": {"Type": "T", "Properties": {"X": {"Ref": "A"}}},
                    "C": {"Type": "T", "DependsOn": "D"},
                    "D": {"Type": "T"},
                }
            }
        )


def test_the_import_restriction_can_be_turned_off() -> None:
    stack = new_stack()
    key_in(stack, restrict_import_to_handler=False)
    _, key = only(Template.from_stack(stack), "AWS::KMS::Key")
    assert [s["Effect"] for s in key["Properties"]["KeyPolicy"]["Statement"]] == ["Allow"]


@pytest.mark.parametrize("bad", [True])
def test_rotation_is_rejected(bad: bool) -> None:
    with pytest.raises(ValueError, match=r"enable_key_rotation: True.*automatic rotation"):
        key_in(new_stack(), enable_key_rotation=bad)


@pytest.mark.parametrize(
    ("prop", "value", "message"),
    [
        ("wrapping_algorithm", "RSAES_PKCS1_V1_5", r"wrapping_algorithm: 'RSAES_PKCS1_V1_5'"),
        (
            "wrapping_algorithm",
            WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256,
            r"wrapping_algorithm: 'RSA_AES_KEY_WRAP_SHA_256'.*RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256",
        ),
        ("wrapping_key_spec", "RSA_1024", r"wrapping_key_spec: 'RSA_1024'.*RSA_2048"),
        ("key_spec", "RSA_1024", r"key_spec: 'RSA_1024'.*SYMMETRIC_DEFAULT, HMAC_224"),
        ("key_spec", kms.KeySpec.SM2, r"key_spec: 'SM2'.*SYMMETRIC_DEFAULT"),
        ("handler_runtime", lambda_.Runtime.PYTHON_3_12, r"handler_runtime: 'python3.12'"),
    ],
)
def test_invalid_props_fail_eagerly_and_echo_the_value(prop: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), **{prop: value})


@pytest.mark.parametrize(
    "validity",
    [cdk.Duration.days(0), cdk.Duration.days(366), cdk.Duration.hours(36)],
)
def test_invalid_validity_is_rejected(validity: cdk.Duration) -> None:
    with pytest.raises(ValueError, match=r"whole number of days from 1 to 365"):
        MaterialExpiration.after(validity)


def test_custom_resource_holds_identifiers_and_settings_only() -> None:
    stack = new_stack()
    key_in(
        stack,
        expiration=MaterialExpiration.after(cdk.Duration.days(90)),
        wrapping_algorithm=WrappingAlgorithm.RSAES_OAEP_SHA_1,
        wrapping_key_spec=WrappingKeySpec.RSA_2048,
    )
    template = Template.from_stack(stack)
    _, resource = only(template, contract.RESOURCE_TYPE)
    props = resource["Properties"]
    key_logical_id, _ = only(template, "AWS::KMS::Key")
    assert {k: v for k, v in props.items() if k != "ServiceToken"} == {
        contract.PROP_KEY_ID: {"Ref": key_logical_id},
        contract.PROP_SECRET_ARN: SECRET_ARN,
        contract.PROP_KEY_SPEC: "SYMMETRIC_DEFAULT",
        contract.PROP_KEY_USAGE: "ENCRYPT_DECRYPT",
        contract.PROP_MATERIAL_ENCODING: "auto",
        contract.PROP_WRAPPING_ALGORITHM: "RSAES_OAEP_SHA_1",
        contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
        contract.PROP_EXPIRATION_MODEL: "KEY_MATERIAL_EXPIRES",
        contract.PROP_VALIDITY_DAYS: "90",
        contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "false",
        contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "false",
    }
    function_id, _ = only(template, "AWS::Lambda::Function")
    assert props["ServiceToken"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_defaults_are_365_days_oaep_sha256_rsa4096() -> None:
    stack = new_stack()
    key_in(stack)
    _, resource = only(Template.from_stack(stack), contract.RESOURCE_TYPE)
    props = resource["Properties"]
    assert props[contract.PROP_VALIDITY_DAYS] == "365"
    assert props[contract.PROP_EXPIRATION_MODEL] == "KEY_MATERIAL_EXPIRES"
    assert props[contract.PROP_WRAPPING_ALGORITHM] == "RSAES_OAEP_SHA_256"
    assert props[contract.PROP_WRAPPING_KEY_SPEC] == "RSA_4096"


def test_no_expiry_sends_no_validity() -> None:
    stack = new_stack()
    key_in(stack, expiration=MaterialExpiration.never())
    template = Template.from_stack(stack)
    _, resource = only(template, contract.RESOURCE_TYPE)
    assert resource["Properties"][contract.PROP_EXPIRATION_MODEL] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert contract.PROP_VALIDITY_DAYS not in resource["Properties"]
    import_statement = next(
        s for s in handler_statements(template) if s["Action"] == "kms:ImportKeyMaterial"
    )
    assert import_statement["Condition"] == {
        "StringEquals": {"kms:ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
    }


def test_handler_role_touches_exact_key_and_secret_only() -> None:
    stack = new_stack()
    key_in(stack)
    template = Template.from_stack(stack)
    key_logical_id, _ = only(template, "AWS::KMS::Key")
    key_arn = {"Fn::GetAtt": [key_logical_id, "Arn"]}
    (queue_id, _) = only(template, "AWS::SQS::Queue")
    (log_group_id, _) = only(template, "AWS::Logs::LogGroup")
    assert handler_statements(template) == [
        {
            # Its own log group only: no AWSLambdaBasicExecutionRole.
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [log_group_id, "Arn"]},
        },
        {
            # Lambda's on-failure destination: the dead-letter queue of failed renewals.
            "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        },
        {
            # The key's binding tags, read before anything else.
            "Action": ["kms:DescribeKey", "kms:ListResourceTags"],
            "Effect": "Allow",
            "Resource": key_arn,
        },
        {
            # The handler's own record of the ValidTo it imported, and no other tag.
            "Action": "kms:TagResource",
            "Condition": {
                "ForAllValues:StringEquals": {"aws:TagKeys": [contract.TAG_VALID_TO]},
                "Null": {"aws:TagKeys": "false"},
            },
            "Effect": "Allow",
            "Resource": key_arn,
        },
        {
            "Action": "kms:GetParametersForImport",
            "Condition": {
                "StringEquals": {
                    "kms:WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                    "kms:WrappingKeySpec": "RSA_4096",
                }
            },
            "Effect": "Allow",
            "Resource": key_arn,
        },
        {
            "Action": "kms:ImportKeyMaterial",
            "Condition": {"StringEquals": {"kms:ExpirationModel": "KEY_MATERIAL_EXPIRES"}},
            "Effect": "Allow",
            "Resource": key_arn,
        },
        {"Action": "secretsmanager:GetSecretValue", "Effect": "Allow", "Resource": SECRET_ARN},
    ]
    assert "*" not in json.dumps(handler_statements(template))
    (role,) = [
        r
        for n, r in template.find_resources("AWS::IAM::Role").items()
        if n.startswith(HANDLER_PREFIX)
    ]
    assert "ManagedPolicyArns" not in role["Properties"]


def test_secret_known_by_name_gets_suffix_pattern_not_star() -> None:
    stack = new_stack()
    secret = secretsmanager.Secret.from_secret_name_v2(stack, "ByName", "byok/material")
    ImportedKey(stack, "Key", key_material_secret=secret)
    template = Template.from_stack(stack)
    secret_statement = next(
        s for s in handler_statements(template) if s["Action"] == "secretsmanager:GetSecretValue"
    )
    assert json.dumps(secret_statement["Resource"]).endswith(':secret:byok/material-??????"]]}')
    assert "*" not in json.dumps(secret_statement)


def test_secret_with_customer_key_gets_decrypt_via_secrets_manager_only() -> None:
    stack = new_stack()
    secret_key = kms.Key(stack, "SecretKey")
    secret = secretsmanager.Secret(stack, "Material", encryption_key=secret_key)
    ImportedKey(stack, "Key", key_material_secret=secret)
    template = Template.from_stack(stack)
    decrypt = [s for s in handler_statements(template) if s["Action"] == "kms:Decrypt"]
    assert decrypt == [
        {
            "Action": "kms:Decrypt",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": {
                        "Fn::Join": ["", ["secretsmanager.eu-west-1.", {"Ref": "AWS::URLSuffix"}]]
                    }
                }
            },
            "Effect": "Allow",
            "Resource": {
                "Fn::GetAtt": [stack.get_logical_id(secret_key.node.default_child), "Arn"]
            },  # type: ignore[arg-type]
        }
    ]


def test_one_handler_per_stack_shared_by_keys_with_per_key_grants() -> None:
    stack = new_stack()
    first = key_in(stack, "First")
    second = key_in(stack, "Second")
    template = Template.from_stack(stack)
    assert len(template.find_resources("AWS::Lambda::Function")) == 1
    assert first.handler is second.handler
    (imports,) = [s for s in handler_statements(template) if s["Action"] == "kms:ImportKeyMaterial"]
    assert imports["Resource"] == [
        {"Fn::GetAtt": [name, "Arn"]} for name in sorted(template.find_resources("AWS::KMS::Key"))
    ]


def test_keys_sharing_settings_share_statements_and_the_rest_stay_apart() -> None:
    """A second key with the same settings adds its ARN to the same statements, not
    statements of its own (IAM counts every character); different wrapping or expiry keeps
    its own condition."""
    one, two, other = new_stack(), new_stack(), new_stack()
    key_in(one, "A")
    key_in(two, "A")
    key_in(two, "B")
    key_in(other, "A")
    key_in(other, "B", wrapping_key_spec="RSA_2048", expiration=MaterialExpiration.never())
    count = {name: len(handler_statements(Template.from_stack(s))) for name, s in
             (("one", one), ("two", two), ("other", other))}  # fmt: skip
    assert count["two"] == count["one"]
    assert count["other"] == count["one"] + 2
    conditions = {
        json.dumps(s.get("Condition"), sort_keys=True): s["Resource"]
        for s in handler_statements(Template.from_stack(other))
        if s["Action"] in ("kms:GetParametersForImport", "kms:ImportKeyMaterial")
    }
    assert len(conditions) == 4
    assert all(isinstance(resource, dict) for resource in conditions.values())  # one key each


def test_handler_defaults_python_313_arm64_and_architecture_choice() -> None:
    stack = new_stack()
    key_in(stack, "Arm")
    key_in(stack, "X86", handler_architecture=lambda_.Architecture.X86_64)
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    settings = sorted(
        (
            f["Properties"]["Runtime"],
            tuple(f["Properties"]["Architectures"]),
            f["Properties"]["Handler"],
        )
        for f in functions.values()
    )
    assert settings == [
        ("python3.13", ("arm64",), contract.HANDLER_ENTRY),
        ("python3.13", ("x86_64",), contract.HANDLER_ENTRY),
    ]


def test_python_314_is_selectable() -> None:
    stack = new_stack()
    key_in(stack, handler_runtime=lambda_.Runtime.PYTHON_3_14)
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function", {"Runtime": "python3.14"}
    )


def test_handler_function_settings() -> None:
    stack = new_stack()
    key_in(stack)
    _, function = only(Template.from_stack(stack), "AWS::Lambda::Function")
    props = function["Properties"]
    assert props["Timeout"] == 120
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    # Its own role's RoleId only, whatever the number of keys: no per-key configuration.
    (role_id,) = [
        n
        for n in Template.from_stack(stack).find_resources("AWS::IAM::Role")
        if n.startswith(HANDLER_PREFIX)
    ]
    assert props["Environment"] == {
        "Variables": {contract.ENV_HANDLER_ROLE_ID: {"Fn::GetAtt": [role_id, "RoleId"]}}
    }


def test_key_users_wait_for_the_import() -> None:
    stack = new_stack()
    imported = key_in(stack)
    user = iam.Role(stack, "User", assumed_by=iam.AccountRootPrincipal())
    imported.grant_encrypt_decrypt(user)
    cdk.CfnOutput(stack, "Arn", value=imported.key.key_arn)
    template = Template.from_stack(stack)
    import_id, _ = only(template, contract.RESOURCE_TYPE)
    key_logical_id, _ = only(template, "AWS::KMS::Key")
    policy = template.find_resources(
        "AWS::IAM::Policy",
        {"Properties": {"Roles": [{"Ref": stack.get_logical_id(user.node.default_child)}]}},  # type: ignore[arg-type]
    )
    (user_policy,) = policy.values()
    statement = user_policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Resource"] == {"Fn::GetAtt": [import_id, contract.ATTR_KEY_ARN]}
    assert "kms:Decrypt" in statement["Action"]
    assert template.to_json()["Outputs"]["Arn"]["Value"] == {
        "Fn::GetAtt": [import_id, contract.ATTR_KEY_ARN]
    }
    # Only the construct's own machinery refers to the raw key: the import, the handler's
    # policy, the renewal and recovery rules and the expiry alarm. No user of the key does.
    raw_users = {
        name
        for name, resource in template.to_json()["Resources"].items()
        if key_logical_id in json.dumps(resource) and name != key_logical_id
    }
    machinery = {import_id}
    machinery |= {
        n for n in template.find_resources("AWS::IAM::Policy") if n.startswith(HANDLER_PREFIX)
    }
    machinery |= set(template.find_resources("AWS::Events::Rule"))
    machinery |= {
        n
        for n, alarm in template.find_resources("AWS::CloudWatch::Alarm").items()
        if alarm["Properties"].get("MetricName") == "SecondsUntilKeyMaterialExpiration"
    }
    assert len(machinery) == 5
    assert raw_users == machinery


def test_grant_methods_delegate_to_the_imported_key() -> None:
    stack = new_stack()
    imported = key_in(stack)
    role = iam.Role(stack, "R", assumed_by=iam.AccountRootPrincipal())
    for grant in [
        imported.grant_encrypt,
        imported.grant_decrypt,
        lambda g: imported.grant(g, "kms:DescribeKey"),
    ]:
        assert grant(role).success
    template = Template.from_stack(stack)
    (policy,) = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": logical_id(role)}]}}
    ).values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    import_id, _ = only(template, contract.RESOURCE_TYPE)
    granted = {
        action
        for s in statements
        if s["Resource"] == {"Fn::GetAtt": [import_id, contract.ATTR_KEY_ARN]}
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert granted == {
        "kms:Encrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Decrypt",
        "kms:DescribeKey",
    }


def test_secret_from_same_stack_is_referenced_not_copied() -> None:
    stack = new_stack()
    secret = secretsmanager.Secret(stack, "Material")
    ImportedKey(stack, "Key", key_material_secret=secret)
    template = Template.from_stack(stack)
    _, resource = only(template, contract.RESOURCE_TYPE)
    assert resource["Properties"][contract.PROP_SECRET_ARN] == {"Ref": logical_id(secret)}


def test_example_app_synthesizes() -> None:
    module = example_app()
    app = cdk.App(context={"aws:cdk:bundling-stacks": [], "material_secret_name": "x/y"})
    stack = module.ExampleStack(app, "Example")
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::KMS::Key", 1)
    template.resource_count_is(contract.RESOURCE_TYPE, 1)
    assert stack.node.find_child("ExampleKey").node.find_child("MaterialImport")


def test_revocation_is_opt_in_and_granted_only_when_asked() -> None:
    stack = new_stack()
    key_in(stack, "Kept")
    key_in(stack, "Revoked", delete_material_on_removal=True)
    template = Template.from_stack(stack)
    resources = template.to_json()["Resources"]
    flags = {
        name: resource["Properties"][contract.PROP_DELETE_MATERIAL_ON_REMOVAL]
        for name, resource in resources.items()
        if resource["Type"] == contract.RESOURCE_TYPE
    }
    assert sorted(flags.values()) == ["false", "true"]
    revoke = [
        s
        for s in handler_statements(template)
        if "kms:DeleteImportedKeyMaterial" in json.dumps(s["Action"])
    ]
    (revoked_key,) = [
        n
        for n in resources
        if n.startswith("RevokedKey") and resources[n]["Type"] == "AWS::KMS::Key"
    ]
    assert revoke == [
        {
            # ListKeyRotations: every material of a rotated key is deleted by its id.
            "Action": ["kms:DeleteImportedKeyMaterial", "kms:ListKeyRotations"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [revoked_key, "Arn"]},
        }
    ]


def test_rotation_and_material_version_reach_the_import_and_the_role() -> None:
    stack = new_stack()
    key_in(stack, "Plain")
    key_in(stack, "Rotating", rotation_on_material_change=True, material_version_id="v-2")
    template = Template.from_stack(stack)
    resources = template.to_json()["Resources"]
    imports = {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource["Type"] == contract.RESOURCE_TYPE
    }
    (rotating,) = [p for n, p in imports.items() if n.startswith("Rotating")]
    (plain,) = [p for n, p in imports.items() if n.startswith("Plain")]
    assert rotating[contract.PROP_ROTATE_ON_MATERIAL_CHANGE] == "true"
    assert rotating[contract.PROP_MATERIAL_VERSION_ID] == "v-2"
    assert plain[contract.PROP_ROTATE_ON_MATERIAL_CHANGE] == "false"
    assert contract.PROP_MATERIAL_VERSION_ID not in plain
    (rotating_key,) = [
        n for n, r in resources.items() if n.startswith("Rotating") and r["Type"] == "AWS::KMS::Key"
    ]
    rotate = [s for s in handler_statements(template) if "kms:RotateKeyOnDemand" in s["Action"]]
    assert rotate == [
        {
            "Action": ["kms:RotateKeyOnDemand", "kms:ListKeyRotations"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [rotating_key, "Arn"]},
        }
    ]
