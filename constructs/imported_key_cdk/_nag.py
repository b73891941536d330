"""In-code acknowledgements of cdk-nag findings that do not apply, each with its reason.

Written in the two forms the cdk-nag majors read, so the library depends on neither:

- cdk-nag 3 reads CDK's own acknowledgements, ``cdk.Validations.of(scope).acknowledge``
  (construct metadata under ``aws:cdk:acknowledged-rules``, looked up on the resource and its
  ancestors);
- cdk-nag 2 reads the ``cdk_nag`` CloudFormation metadata of the resource itself.

Both go on the CloudFormation resource, so an acknowledgement never reaches a sibling.
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
    # Acknowledgment arrived in aws-cdk-lib in 2026; cdk-nag 3 needs a release that has it.
    if hasattr(cdk, "Acknowledgment"):
        cdk.Validations.of(resource).acknowledge(
            *(cdk.Acknowledgment(id=rule, reason=reason) for rule, reason in findings.items())
        )


NO_ALARM_ACTION = (
    "The alarm's action is the alarm_topic the user gives; without one it is meant for the "
    "console and dashboards."
)
