"""What CloudFormation does around the handler, for tests that play it: the binding tags it
writes on a key from the stack's template, and its answer when the handler asks whether a
resource is being removed.

The handler checks every event against the key's tags (``imported_key_handler.binding``). A
test that plays a genuine deployment binds the key first, as CloudFormation writes the key's
tags before the import that depends on it; a forged-event test leaves the tags as the stack
declared them and sends something else.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.stub import Stubber

from imported_key_handler import contract

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_kms.client import KMSClient

# The function's own RoleId, as the construct puts it into the environment (play_lambda sets it).
TEST_HANDLER_ROLE_ID = "AROATESTIMPORTHANDLER"


def binding_tags(
    properties: Mapping[str, Any], *, stack_id: str, logical_id: str
) -> dict[str, str]:
    """The tags the construct writes on the key for these custom resource properties."""
    return {
        contract.TAG_HANDLER: TEST_HANDLER_ROLE_ID,
        contract.TAG_SECRET: str(properties[contract.PROP_SECRET_ARN]),
        contract.TAG_SETTINGS: contract.settings_digest(properties),
        contract.TAG_STACK: stack_id,
        contract.TAG_RESOURCE: logical_id,
    }


def bind_key(
    kms: "KMSClient", properties: Mapping[str, Any], *, stack_id: str, logical_id: str
) -> None:
    """Tag the key as a deployment of these properties would (CloudFormation's TagResource)."""
    tags = binding_tags(properties, stack_id=stack_id, logical_id=logical_id)
    kms.tag_resource(
        KeyId=str(properties[contract.PROP_KEY_ID]),
        Tags=[{"TagKey": key, "TagValue": value} for key, value in tags.items()],
    )


def cloudformation_reporting(
    event: Mapping[str, Any], status: str, physical_id: str | None = None
) -> "CloudFormationClient":
    """A CloudFormation client whose DescribeStackResource reports the event's resource as
    ``status`` (with ``physical_id``, default the event's), validated against botocore's model.

    LocalStack cannot hold a resource in DELETE_IN_PROGRESS while a test looks at it.
    """
    client = boto3.client(
        "cloudformation",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    stubber = Stubber(client)
    stubber.add_response(
        "describe_stack_resource",
        {
            "StackResourceDetail": {
                "StackName": str(event["StackId"]).split("/")[1],
                "StackId": event["StackId"],
                "LogicalResourceId": event["LogicalResourceId"],
                "PhysicalResourceId": physical_id or event.get("PhysicalResourceId", ""),
                "ResourceType": contract.RESOURCE_TYPE,
                "LastUpdatedTimestamp": datetime.now(UTC),
                "ResourceStatus": status,
            }
        },
        {"StackName": event["StackId"], "LogicalResourceId": event["LogicalResourceId"]},
    )
    stubber.activate()
    return client
