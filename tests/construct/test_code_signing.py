"""handler_code_signing_config: the shared handler's code signing, and its one-per-handler rule."""

import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_signer as signer
from aws_cdk.assertions import Match, Template
from stacks import key_in, new_stack

CSC_ARN = "arn:aws:lambda:eu-west-1:111122223333:code-signing-config:csc-0123456789abcdef0"
OTHER_ARN = "arn:aws:lambda:eu-west-1:111122223333:code-signing-config:csc-0fedcba987654321f"


def code_signing_config(
    stack: cdk.Stack, construct_id: str = "Signing"
) -> lambda_.CodeSigningConfig:
    profile = signer.SigningProfile(
        stack, f"{construct_id}Profile", platform=signer.Platform.AWS_LAMBDA_SHA384_ECDSA
    )
    return lambda_.CodeSigningConfig(
        stack,
        construct_id,
        signing_profiles=[profile],
        untrusted_artifact_on_deployment=lambda_.UntrustedArtifactOnDeployment.ENFORCE,
    )


def handler_functions(stack: cdk.Stack) -> list[dict[str, Any]]:
    """The handler's functions: the import function and the sweep function (same code)."""
    return list(
        Template.from_stack(stack)
        .find_resources(
            "AWS::Lambda::Function", {"Properties": {"Handler": Match.string_like_regexp("entry")}}
        )
        .values()
    )


def test_the_handler_takes_the_code_signing_config() -> None:
    stack = new_stack()
    config = code_signing_config(stack)
    key_in(stack, "A", handler_code_signing_config=config)
    key_in(stack, "B", handler_code_signing_config=config)

    functions = handler_functions(stack)
    assert len(functions) == 2
    for function in functions:
        assert function["Properties"]["CodeSigningConfigArn"] == {
            "Fn::GetAtt": [stack.get_logical_id(config.node.default_child), "CodeSigningConfigArn"]
        }


def test_without_the_prop_the_handler_has_no_code_signing_config() -> None:
    stack = new_stack()
    key_in(stack)
    functions = handler_functions(stack)
    assert len(functions) == 2
    for function in functions:
        assert "CodeSigningConfigArn" not in function["Properties"]


def test_the_same_config_imported_twice_by_its_arn_is_the_same() -> None:
    stack = new_stack()
    for name in ("A", "B"):
        config = lambda_.CodeSigningConfig.from_code_signing_config_arn(
            stack, f"{name}Csc", CSC_ARN
        )
        key_in(stack, name, handler_code_signing_config=config)
    functions = handler_functions(stack)
    assert [f["Properties"]["CodeSigningConfigArn"] for f in functions] == [CSC_ARN, CSC_ARN]


@pytest.mark.parametrize("second", ["other", "none"])
def test_another_config_for_the_shared_handler_fails_at_synth(second: str) -> None:
    stack = new_stack()
    first = lambda_.CodeSigningConfig.from_code_signing_config_arn(stack, "Csc", CSC_ARN)
    key_in(stack, "A", handler_code_signing_config=first)
    other = (
        lambda_.CodeSigningConfig.from_code_signing_config_arn(stack, "Other", OTHER_ARN)
        if second == "other"
        else None
    )
    children = len(stack.node.children)

    echoed = repr(OTHER_ARN) if second == "other" else "None"
    with pytest.raises(ValueError, match=re.escape(echoed)) as refused:
        key_in(stack, "B", handler_code_signing_config=other)

    message = str(refused.value)
    assert message.startswith("Invalid handler_code_signing_config:")
    assert repr(CSC_ARN) in message  # the one the handler was created with
    assert "handler_runtime" in message  # the way out
    # The refused key left nothing behind but its secret reference.
    assert stack.node.try_find_child("B") is None
    assert len(stack.node.children) == children + 1


def test_a_config_made_in_the_stack_is_named_by_its_path() -> None:
    stack = new_stack()
    key_in(stack, "A", handler_code_signing_config=code_signing_config(stack, "First"))
    with pytest.raises(ValueError, match=r"'Test/Second'.*'Test/First'"):
        key_in(stack, "B", handler_code_signing_config=code_signing_config(stack, "Second"))


def test_keys_on_another_handler_can_name_another_config() -> None:
    stack = new_stack()
    key_in(
        stack,
        "A",
        handler_code_signing_config=lambda_.CodeSigningConfig.from_code_signing_config_arn(
            stack, "Csc", CSC_ARN
        ),
    )
    key_in(stack, "B", handler_architecture=lambda_.Architecture.X86_64)
    arns = sorted(
        str(f["Properties"].get("CodeSigningConfigArn")) for f in handler_functions(stack)
    )
    assert arns == sorted([CSC_ARN, CSC_ARN, "None", "None"])
