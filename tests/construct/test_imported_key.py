"""Template tests for ImportedKey (aws_cdk.assertions)."""

import json
from importlib.metadata import version
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template
from constructs import Construct
from stacks import (
    FLEET_NAME,
    HANDLER_PREFIX,
    KEYS_ARN,
    READER_NAME,
    SECRET_ARN,
    SECRETS_ARN,
    assert_acyclic,
    handler_role_id,
    handler_statements,
    key_in,
    mine,
    new_stack,
    partition_arn,
    references,
    statement_with,
    tags_of,
)
from support.synth import example_app

from imported_key_cdk import ImportedKey, MaterialExpiration, WrappingAlgorithm, WrappingKeySpec
from imported_key_cdk.handler import ImportHandler
from imported_key_handler import contract


def logical_id(construct: Construct) -> str:
    default_child = construct.node.default_child
    assert isinstance(default_child, cdk.CfnElement)
    return cdk.Stack.of(construct).get_logical_id(default_child)


def only(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


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
    """The key waits for the role (its RoleId, in its policy and its binding tag); the role's
    grants name no key (they go by the key's tag), so nothing of the handler waits for a key."""
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
    assert not {r for r in references(policy) if key_id in json.dumps(r)}
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
    key = key_in(
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
        # A third of the 90 days: a changed window reaches the import as an Update.
        contract.PROP_RENEW_BEFORE_SECONDS: str(30 * 86400),
    }
    assert props["ServiceToken"] == {"Fn::GetAtt": [logical_id(key.handler), "Arn"]}


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
    assert statement_with(template, "kms:ImportKeyMaterial")["Condition"] == {
        "StringEquals": {
            **mine(template),
            "kms:ExpirationModel": ["KEY_MATERIAL_DOES_NOT_EXPIRE"],
        }
    }


def test_handler_role_reaches_only_the_keys_and_secrets_tagged_for_it() -> None:
    """Attribute-based: no key or secret ARN, so the policy does not grow with the keys. Every
    key statement holds only for keys whose handler tag is this role's RoleId; secrets only
    when tagged for this handler's fleet."""
    stack = new_stack()
    key_in(stack)
    template = Template.from_stack(stack)
    role_id = handler_role_id(template)
    (queue_id, _) = only(template, "AWS::SQS::Queue")
    (log_group_id, _) = only(template, "AWS::Logs::LogGroup")
    (bucket_id, _) = only(template, "AWS::S3::Bucket")
    tagged_for_me = mine(template)
    assert tagged_for_me == {
        "aws:ResourceTag/imported-key-cdk:handler": {"Fn::GetAtt": [role_id, "RoleId"]}
    }
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
            "Condition": {"StringEquals": tagged_for_me},
            "Effect": "Allow",
            "Resource": KEYS_ARN,
        },
        {
            # The handler's own record of the ValidTo it imported, and no other tag.
            "Action": "kms:TagResource",
            "Condition": {
                "StringEquals": tagged_for_me,
                "ForAllValues:StringEquals": {"aws:TagKeys": [contract.TAG_VALID_TO]},
                "Null": {"aws:TagKeys": "false"},
            },
            "Effect": "Allow",
            "Resource": KEYS_ARN,
        },
        {
            "Action": "kms:GetParametersForImport",
            "Condition": {
                "StringEquals": {
                    **tagged_for_me,
                    "kms:WrappingAlgorithm": ["RSAES_OAEP_SHA_256"],
                    "kms:WrappingKeySpec": ["RSA_4096"],
                }
            },
            "Effect": "Allow",
            "Resource": KEYS_ARN,
        },
        {
            "Action": "kms:ImportKeyMaterial",
            "Condition": {
                "StringEquals": {**tagged_for_me, "kms:ExpirationModel": ["KEY_MATERIAL_EXPIRES"]}
            },
            "Effect": "Allow",
            "Resource": KEYS_ARN,
        },
        {
            "Action": "secretsmanager:GetSecretValue",
            "Condition": {
                "StringEquals": {
                    f"secretsmanager:ResourceTag/{contract.SECRET_READER_TAG}": READER_NAME
                }
            },
            "Effect": "Allow",
            "Resource": SECRETS_ARN,
        },
        {
            # Does this stack, or one nested in it, declare the key; is it removing it?
            "Action": ["cloudformation:DescribeStackResource", "cloudformation:DescribeStacks"],
            "Effect": "Allow",
            "Resource": [
                partition_arn("cloudformation:eu-west-1:111122223333:stack/Test/*"),
                partition_arn("cloudformation:eu-west-1:111122223333:stack/Test-*/*"),
            ],
        },
        {
            "Action": "s3:ListBucket",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [bucket_id, "Arn"]},
        },
        {
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Effect": "Allow",
            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/due/*"]]},
        },
        {
            # No resource-level permission exists for PutMetricData: its namespace instead.
            "Action": "cloudwatch:PutMetricData",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "ImportedKeyCdk/Fleet"}},
            "Effect": "Allow",
            "Resource": "*",
        },
    ]
    (role,) = [
        r
        for n, r in template.find_resources("AWS::IAM::Role").items()
        if n.startswith(HANDLER_PREFIX)
    ]
    assert "ManagedPolicyArns" not in role["Properties"]
    # The index is the handler's alone to write.
    (bucket_policy,) = template.find_resources("AWS::S3::BucketPolicy").values()
    (only_handler,) = [
        s
        for s in bucket_policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "OnlyTheImportHandlerWrites"
    ]
    assert only_handler["Effect"] == "Deny"
    assert only_handler["Principal"] == {"AWS": "*"}
    assert only_handler["Action"] == ["s3:PutObject", "s3:DeleteObject"]
    assert only_handler["Condition"] == {
        "StringNotLike": {
            "aws:userid": {"Fn::Join": ["", [{"Fn::GetAtt": [role_id, "RoleId"]}, ":*"]]}
        }
    }


def test_a_secret_known_by_name_is_read_by_its_tag_and_gets_a_warning() -> None:
    """Neither a name nor an ARN reaches the policy: the handler reads a secret by its reader
    tag, which the stack cannot write on a secret created elsewhere, so the synth says so."""
    by_name, by_arn = new_stack(), new_stack()
    secret = secretsmanager.Secret.from_secret_name_v2(by_name, "ByName", "byok/material")
    ImportedKey(by_name, "Key", key_material_secret=secret)
    key_in(by_arn)
    templates = [Template.from_stack(s) for s in (by_name, by_arn)]
    statements = [statement_with(t, "secretsmanager:GetSecretValue") for t in templates]
    assert statements[0] == statements[1]
    assert statements[0]["Resource"] == SECRETS_ARN
    assert "byok" not in json.dumps(handler_statements(templates[0]))
    (warning,) = [
        entry for entry in stack_handler(by_name).node.metadata if entry.type == "aws:cdk:warning"
    ]
    assert f"{contract.SECRET_READER_TAG}={READER_NAME}" in str(warning.data)
    assert "Test/ByName" in str(warning.data)


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


def test_one_handler_per_stack_shared_by_keys_through_their_tags() -> None:
    stack = new_stack()
    first = key_in(stack, "First")
    second = key_in(stack, "Second")
    template = Template.from_stack(stack)
    # The import function and the sweep function, once for the stack.
    functions = template.find_resources("AWS::Lambda::Function")
    assert sorted(f["Properties"]["Timeout"] for f in functions.values()) == [120, 900]
    assert first.handler is second.handler
    assert statement_with(template, "kms:ImportKeyMaterial")["Resource"] == KEYS_ARN
    # Each key is the handler's by its tag, which names the shared role's RoleId.
    role_id = {"Fn::GetAtt": [handler_role_id(template), "RoleId"]}
    keys = template.find_resources("AWS::KMS::Key")
    assert len(keys) == 2
    assert [tags_of(k)[contract.TAG_HANDLER] for k in keys.values()] == [role_id, role_id]


def test_the_policy_does_not_grow_with_keys_and_conditions_list_every_setting() -> None:
    """A second key adds nothing to the policy when its settings are the same; other settings
    join the lists in the conditions of the same statements (IAM counts every character)."""
    one, two, other = new_stack(), new_stack(), new_stack()
    key_in(one, "A")
    key_in(two, "A")
    key_in(two, "B")
    key_in(other, "A")
    key_in(other, "B", wrapping_key_spec="RSA_2048", expiration=MaterialExpiration.never())
    policies = {name: handler_statements(Template.from_stack(s)) for name, s in
                (("one", one), ("two", two), ("other", other))}  # fmt: skip
    assert policies["two"] == policies["one"]
    assert len(policies["other"]) == len(policies["one"])
    template = Template.from_stack(other)
    assert statement_with(template, "kms:GetParametersForImport")["Condition"] == {
        "StringEquals": {
            **mine(template),
            "kms:WrappingAlgorithm": ["RSAES_OAEP_SHA_256"],
            "kms:WrappingKeySpec": ["RSA_2048", "RSA_4096"],
        }
    }
    assert statement_with(template, "kms:ImportKeyMaterial")["Condition"] == {
        "StringEquals": {
            **mine(template),
            "kms:ExpirationModel": ["KEY_MATERIAL_DOES_NOT_EXPIRE", "KEY_MATERIAL_EXPIRES"],
        }
    }


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
            f["Properties"]["Timeout"],
        )
        for f in functions.values()
    )
    # An import function and a sweep function per architecture.
    assert settings == [
        ("python3.13", ("arm64",), contract.HANDLER_ENTRY, 120),
        ("python3.13", ("arm64",), contract.HANDLER_ENTRY, 900),
        ("python3.13", ("x86_64",), contract.HANDLER_ENTRY, 120),
        ("python3.13", ("x86_64",), contract.HANDLER_ENTRY, 900),
    ]


def test_python_314_is_selectable() -> None:
    stack = new_stack()
    key_in(stack, handler_runtime=lambda_.Runtime.PYTHON_3_14)
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function", {"Runtime": "python3.14"}
    )


def test_handler_function_settings() -> None:
    stack = new_stack()
    key = key_in(stack)
    template = Template.from_stack(stack)
    functions = template.find_resources("AWS::Lambda::Function")
    handler = stack_handler(stack)
    imports = functions[logical_id(handler.function)]["Properties"]
    sweeps = functions[logical_id(handler.sweep_function)]["Properties"]
    assert key.handler is handler.function
    assert imports["Timeout"] == 120
    assert sweeps["Timeout"] == 900  # Lambda's longest: a sweep renews while it has time
    (bucket_id, _) = only(template, "AWS::S3::Bucket")
    for props in (imports, sweeps):
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["Role"] == {"Fn::GetAtt": [handler_role_id(template), "Arn"]}
        # The handler's own settings only, whatever the number of keys: no per-key setting.
        assert props["Environment"] == {
            "Variables": {
                contract.ENV_HANDLER_ROLE_ID: {"Fn::GetAtt": [handler_role_id(template), "RoleId"]},
                contract.ENV_HANDLER_STACK_ID: {"Ref": "AWS::StackId"},
                contract.ENV_REGISTRY_BUCKET: {"Ref": bucket_id},
                contract.ENV_IMPORTS_PER_SECOND: str(contract.DEFAULT_IMPORTS_PER_SECOND),
                contract.ENV_FLEET_NAME: FLEET_NAME,
                contract.ENV_LIBRARY_VERSION: version(contract.LIBRARY_DISTRIBUTION),
            }
        }
    assert imports["Code"] == sweeps["Code"]


def test_key_users_wait_for_the_import() -> None:
    stack = new_stack()
    imported = key_in(stack, per_key_expiry_alarm=True)
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
    # Only the construct's own per-key machinery refers to the raw key: the import and the
    # key's own expiry alarm. The handler's policy, rules and fleet alarm go by tags.
    raw_users = {
        name
        for name, resource in template.to_json()["Resources"].items()
        if key_logical_id in json.dumps(resource) and name != key_logical_id
    }
    assert imported.key_expiry_alarm is not None
    assert raw_users == {import_id, logical_id(imported.key_expiry_alarm.expiry_alarm)}


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
    """The handler may revoke only once a key of its stack asks for it, and then on its tagged
    keys only; the key's declared settings tell the handler which key asked."""
    kept_only = new_stack()
    key_in(kept_only, "Kept")
    assert "kms:DeleteImportedKeyMaterial" not in json.dumps(
        handler_statements(Template.from_stack(kept_only))
    )
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
    revoke = statement_with(template, "kms:DeleteImportedKeyMaterial")
    assert revoke == {
        # ListKeyRotations: every material of a rotated key is deleted by its id.
        "Action": [
            "kms:DescribeKey",
            "kms:ListResourceTags",
            "kms:DeleteImportedKeyMaterial",
            "kms:ListKeyRotations",
        ],
        "Condition": {"StringEquals": mine(template)},
        "Effect": "Allow",
        "Resource": KEYS_ARN,
    }
    declared = {
        name: contract.parse_declared(tags_of(resource)[contract.TAG_DECLARED])[0]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::KMS::Key"
    }
    assert {n.split("Key")[0]: d[contract.PROP_DELETE_MATERIAL_ON_REMOVAL] for n, d in
            declared.items()} == {"Kept": "false", "Revoked": "true"}  # fmt: skip


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
        r for n, r in resources.items() if n.startswith("Rotating") and r["Type"] == "AWS::KMS::Key"
    ]
    (plain_key,) = [
        r for n, r in resources.items() if n.startswith("Plain") and r["Type"] == "AWS::KMS::Key"
    ]
    assert tags_of(rotating_key)[contract.TAG_MATERIAL_VERSION] == "v-2"
    assert contract.TAG_MATERIAL_VERSION not in tags_of(plain_key)
    # Rotation joins the shared key statement, still for the handler's tagged keys only.
    rotate = statement_with(template, "kms:RotateKeyOnDemand")
    assert rotate == {
        "Action": [
            "kms:DescribeKey",
            "kms:ListResourceTags",
            "kms:ListKeyRotations",
            "kms:RotateKeyOnDemand",
        ],
        "Condition": {"StringEquals": mine(template)},
        "Effect": "Allow",
        "Resource": KEYS_ARN,
    }


def stack_handler(stack: cdk.Stack) -> ImportHandler:
    """The stack's default handler, through its public lookup."""
    handler = ImportHandler.find(stack, lambda_.Runtime.PYTHON_3_13, lambda_.Architecture.ARM_64)
    assert handler is not None
    return handler
