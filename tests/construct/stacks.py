"""Small stacks for template tests. Bundling is skipped: these tests read templates only."""

import re
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template
from support.synth import BUNDLING_STACKS

from imported_key_cdk import ImportedKey
from imported_key_handler import contract

NO_BUNDLING: dict[str, Any] = {BUNDLING_STACKS: []}
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:byok/material-AbCdEf"


def new_stack(context: dict[str, Any] | None = None) -> cdk.Stack:
    app = cdk.App(context=dict(NO_BUNDLING, **(context or {})))
    return cdk.Stack(app, "Test", env=cdk.Environment(account="111122223333", region="eu-west-1"))


def imported_secret(stack: cdk.Stack, construct_id: str = "Secret") -> secretsmanager.ISecret:
    return secretsmanager.Secret.from_secret_complete_arn(stack, construct_id, SECRET_ARN)


def synth(build: Callable[[cdk.Stack], object]) -> Template:
    stack = new_stack()
    build(stack)
    return Template.from_stack(stack)


def key_in(stack: cdk.Stack, construct_id: str = "Key", **props: Any) -> ImportedKey:
    props.setdefault("key_material_secret", imported_secret(stack, f"{construct_id}Secret"))
    return ImportedKey(stack, construct_id, **props)


def references(node: Any) -> list[dict[str, Any]]:
    """Every Ref and Fn::GetAtt inside a piece of template (a name in Fn::Sub as a Ref)."""
    if isinstance(node, list):
        return [r for item in node for r in references(item)]
    if not isinstance(node, dict):
        return []
    if set(node) in ({"Ref"}, {"Fn::GetAtt"}):
        return [node]
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        return [{"Ref": name} for name in re.findall(r"\$\{([^!.}]+)[.}]", node["Fn::Sub"])]
    return [r for value in node.values() for r in references(value)]


def assert_acyclic(template: dict[str, Any]) -> None:
    """CloudFormation's order: a resource waits for those it Refs, GetAtts or DependsOn."""
    resources = template["Resources"]
    waits_for: dict[str, set[str]] = {}
    for name, resource in resources.items():
        targets = set()
        for ref in references(resource):
            target = ref["Ref"] if "Ref" in ref else ref["Fn::GetAtt"][0]
            if target in resources:
                targets.add(target)
        depends_on = resource.get("DependsOn", [])
        targets.update([depends_on] if isinstance(depends_on, str) else depends_on)
        waits_for[name] = targets
    done: set[str] = set()
    while len(done) < len(waits_for):
        ready = {n for n, targets in waits_for.items() if n not in done and targets <= done}
        if not ready:
            raise AssertionError(f"dependency cycle among {sorted(set(waits_for) - done)}")
        done |= ready


# --- the handler's policy (attribute-based: the same statements whatever the number of keys) ---

HANDLER_PREFIX = "ImportedKeyHandler"
FLEET_NAME = "Test/ImportedKeyHandlerPython313Arm64"
# The reader tag's value: the handlers' stack.
READER_NAME = "Test"


def partition_arn(rest: str) -> dict[str, Any]:
    """An ARN as CDK writes it for the test stack (partition left to CloudFormation)."""
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":{rest}"]]}


KEYS_ARN = partition_arn("kms:eu-west-1:111122223333:key/*")
SECRETS_ARN = partition_arn("secretsmanager:eu-west-1:111122223333:secret:*")


def handler_role_id(template: Template) -> str:
    (role_id,) = [
        n for n in template.find_resources("AWS::IAM::Role") if n.startswith(HANDLER_PREFIX)
    ]
    return role_id


def handler_statements(template: Template) -> list[dict[str, Any]]:
    (policy,) = [
        p
        for name, p in template.find_resources("AWS::IAM::Policy").items()
        if name.startswith(HANDLER_PREFIX)
    ]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def statement_with(template: Template, action: str) -> dict[str, Any]:
    """The one handler statement that grants ``action``."""
    (statement,) = [
        s
        for s in handler_statements(template)
        if action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    return statement


def mine(template: Template) -> dict[str, Any]:
    """The condition that limits a key statement to the keys tagged for this handler's role."""
    role_id = handler_role_id(template)
    return {f"aws:ResourceTag/{contract.TAG_HANDLER}": {"Fn::GetAtt": [role_id, "RoleId"]}}


def binding_of(
    template: Template,
    properties: dict[str, Any],
    import_id: str,
    key_id: str,
    **more: Any,
) -> dict[str, Any]:
    """The binding tags a key of the stack carries for its import's ``properties`` (the
    default 30-day window), plus ``more``."""
    return {
        contract.TAG_HANDLER: {"Fn::GetAtt": [handler_role_id(template), "RoleId"]},
        contract.TAG_SECRET: properties[contract.PROP_SECRET_ARN],
        contract.TAG_SETTINGS: contract.settings_digest(properties),
        contract.TAG_DECLARED: contract.declared_settings(properties, 30 * 86400),
        contract.TAG_STACK: {"Ref": "AWS::StackId"},
        contract.TAG_RESOURCE: import_id,
        contract.TAG_KEY_RESOURCE: key_id,
        **more,
    }


def tags_of(key: dict[str, Any]) -> dict[str, Any]:
    return {tag["Key"]: tag["Value"] for tag in key["Properties"].get("Tags", [])}
