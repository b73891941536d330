"""In-code acknowledgements of cdk-nag findings that do not apply, each with its reason.

Written as the ``cdk_nag`` resource metadata that cdk-nag reads, so the library does not
depend on cdk-nag itself.
"""

from collections.abc import Mapping

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(construct: IConstruct, findings: Mapping[str, str]) -> None:
    """Record that ``findings`` (rule id -> reason) do not apply to this resource."""
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    existing = resource.get_metadata("cdk_nag") or {}
    rules = list(existing.get("rules_to_suppress", []))
    rules += [{"id": rule, "reason": reason} for rule, reason in findings.items()]
    resource.add_metadata("cdk_nag", {"rules_to_suppress": rules})


NO_ALARM_ACTION = (
    "The alarm's action is the alarm_topic the user gives; without one it is meant for the "
    "console and dashboards."
)
