"""In-code acknowledgements of cdk-nag findings that do not apply, each with its reason.

Written in the two forms the cdk-nag majors read, so the library depends on neither:

- cdk-nag 3 reads CDK's own acknowledgements, ``cdk.Validations.of(scope).acknowledge``
  (construct metadata under ``aws:cdk:acknowledged-rules``, looked up on the resource and its
  ancestors);
- cdk-nag 2 reads the ``cdk_nag`` CloudFormation metadata of the resource itself.

Both go on the CloudFormation resource, so an acknowledgement never reaches a sibling.

A granular rule (``AwsSolutions-IAM5``) reports one finding per wildcard, named
``Rule[finding]``: cdk-nag 3 matches that whole id, cdk-nag 2 wants the rule with the finding
in ``applies_to`` (and refuses an id with brackets). ``wildcard_resource`` names the finding of
a wildcard resource as both majors flatten it.
"""

import re
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(construct: IConstruct, findings: Mapping[str, str]) -> None:
    """Record that ``findings`` (rule id -> reason) do not apply to this resource."""
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    existing = resource.get_metadata("cdk_nag") or {}
    rules = list(existing.get("rules_to_suppress", []))
    for rule, reason in findings.items():
        granular = _GRANULAR.fullmatch(rule)
        if granular:
            rules.append({"id": granular[1], "reason": reason, "applies_to": [granular[2]]})
        else:
            rules.append({"id": rule, "reason": reason})
    resource.add_metadata("cdk_nag", {"rules_to_suppress": rules})
    # Acknowledgment arrived in aws-cdk-lib in 2026; cdk-nag 3 needs a release that has it.
    if hasattr(cdk, "Acknowledgment"):
        cdk.Validations.of(resource).acknowledge(
            *(cdk.Acknowledgment(id=rule, reason=reason) for rule, reason in findings.items())
        )


_GRANULAR = re.compile(r"([^\[\]]+)\[(.+)\]")


def wildcard_resource(scope: IConstruct, resource: str) -> str:
    """The id of the ``AwsSolutions-IAM5`` finding on a statement resource of ``scope``'s stack.

    The resource is resolved as the template will hold it, then flattened the way cdk-nag does
    (a Ref as ``<Name>``, a GetAtt as ``<Name.Attribute>``, a Join joined).
    """
    flat = _flatten(cdk.Stack.of(scope).resolve(resource))
    return f"AwsSolutions-IAM5[Resource::{flat}]"


def _flatten(node: Any) -> str:
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict) and len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Fn::Join":
            delimiter, parts = argument
            return str(delimiter).join(_flatten(part) for part in parts)
        if function == "Ref":
            return f"<{_flatten(argument)}>"
        if function == "Fn::GetAtt":
            name, attribute = argument
            return f"<{_flatten(name)}.{_flatten(attribute)}>"
    raise TypeError(f"Cannot name the cdk-nag finding of {node!r}")


NO_ALARM_ACTION = (
    "The alarm's action is the alarm_topic the user gives; without one it is meant for the "
    "console and dashboards."
)
