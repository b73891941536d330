"""What CloudFormation does around the handler, for tests that play it: the binding tags it
writes on a key from the stack's template, and its answer when the handler asks whether a
resource is being removed.

The handler checks every event against the key's tags (``imported_key_handler.binding``). A
test that plays a genuine deployment binds the key first, as CloudFormation writes the key's
tags before the import that depends on it; a forged-event test leaves the tags as the stack
declared them and sends something else.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.validate import ParamValidator

from imported_key_handler import contract
from imported_key_handler.binding import stack_name
from support.events import stack_id_for

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_kms.client import KMSClient

# The function's own RoleId, as the construct puts it into the environment (play_lambda sets it).
TEST_HANDLER_ROLE_ID = "AROATESTIMPORTHANDLER"
# The handler's own stack (ENV_HANDLER_STACK_ID): the stack of cfn_event's default events.
TEST_STACK_ID = stack_id_for("demo")


def key_logical_id(key_id: str) -> str:
    """The key resource's logical id in the played stack (TAG_KEY_RESOURCE): one per key."""
    return "Key" + key_id.replace("-", "")[:16].upper()


# The due index's bucket in the emulator (ENV_REGISTRY_BUCKET, set by play_lambda).
INDEX_BUCKET = "imported-key-test-due-index"
DEFAULT_RENEW_BEFORE_S = 30 * 86400


def binding_tags(
    properties: Mapping[str, Any],
    *,
    stack_id: str,
    logical_id: str,
    renew_before_s: int | None = DEFAULT_RENEW_BEFORE_S,
) -> dict[str, str]:
    """The tags the construct writes on the key for these custom resource properties."""
    tags = {
        contract.TAG_HANDLER: TEST_HANDLER_ROLE_ID,
        contract.TAG_SECRET: str(properties[contract.PROP_SECRET_ARN]),
        contract.TAG_SETTINGS: contract.settings_digest(properties),
        contract.TAG_DECLARED: contract.declared_settings(
            properties,
            renew_before_s
            if properties.get(contract.PROP_EXPIRATION_MODEL) == contract.KEY_MATERIAL_EXPIRES
            else None,
        ),
        contract.TAG_STACK: stack_id,
        contract.TAG_RESOURCE: logical_id,
        contract.TAG_KEY_RESOURCE: key_logical_id(str(properties[contract.PROP_KEY_ID])),
    }
    version = properties.get(contract.PROP_MATERIAL_VERSION_ID)
    if version:
        tags[contract.TAG_MATERIAL_VERSION] = str(version)
    return tags


def bind_key(
    kms: "KMSClient",
    properties: Mapping[str, Any],
    *,
    stack_id: str,
    logical_id: str,
    renew_before_s: int | None = DEFAULT_RENEW_BEFORE_S,
    stacks: "PlayedStacks | None" = None,
) -> None:
    """Tag the key as a deployment of these properties would (CloudFormation's TagResource),
    and record the key in ``stacks`` (default: ``PLAYED``) as CloudFormation would."""
    tags = binding_tags(
        properties, stack_id=stack_id, logical_id=logical_id, renew_before_s=renew_before_s
    )
    key_id = str(properties[contract.PROP_KEY_ID])
    kms.tag_resource(
        KeyId=key_id,
        Tags=[{"TagKey": key, "TagValue": value} for key, value in tags.items()],
    )
    (stacks or PLAYED).record(
        stack_id, key_logical_id(key_id), key_id, resource_type="AWS::KMS::Key"
    )


def adopted_metadata(
    properties: Mapping[str, Any],
    key_arn: str,
    *,
    renew_before_s: int | None = DEFAULT_RENEW_BEFORE_S,
) -> dict[str, Any]:
    """The import resource's Metadata the construct writes for a key adopted by ARN: the key's
    ARN and the tags a key of the stack would carry (the handler's stack and resource pointers
    aside), as CloudFormation resolves it."""
    tags = binding_tags(properties, stack_id="", logical_id="", renew_before_s=renew_before_s)
    declared = {name: tags[name] for name in contract.ADOPTED_DECLARED_TAGS if name in tags}
    return {
        contract.METADATA_BINDING: {
            contract.METADATA_KEY_ARN: key_arn,
            contract.METADATA_TAGS: declared,
        }
    }


def adopt_key(
    kms: "KMSClient",
    properties: Mapping[str, Any],
    *,
    stack_id: str,
    logical_id: str,
    stacks: "PlayedStacks | None" = None,
    owner_consents: bool = True,
    renew_before_s: int | None = DEFAULT_RENEW_BEFORE_S,
) -> str:
    """Play the adoption of a key created outside the stack: its owner tags it for the stack
    (``owner_consents``), and CloudFormation's record of the import resource holds the
    construct's Metadata for ``properties``. Returns the key's ARN."""
    key_id = str(properties[contract.PROP_KEY_ID])
    key_arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    if owner_consents:
        kms.tag_resource(
            KeyId=key_id,
            Tags=[{"TagKey": contract.TAG_ADOPTED_BY, "TagValue": stack_name(stack_id)}],
        )
    (stacks or PLAYED).declare_metadata(
        stack_id,
        logical_id,
        adopted_metadata(properties, key_arn, renew_before_s=renew_before_s),
    )
    return key_arn


class PlayedStacks:
    """CloudFormation's record of the stacks, as a test plays it: what DescribeStackResource and
    DescribeStacks answer. LocalStack cannot deploy an EXTERNAL key nor hold a resource in
    DELETE_IN_PROGRESS while a test looks, so a real boto3 client answers from this record
    instead of over HTTP; every request and every answer is validated against botocore's
    CloudFormation model, as botocore's Stubber does."""

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.metadata: dict[tuple[str, str], dict[str, Any]] = {}
        self.parents: dict[str, str] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def record(
        self,
        stack_id: str,
        logical_id: str,
        physical_id: str,
        *,
        status: str = "CREATE_COMPLETE",
        resource_type: str = contract.RESOURCE_TYPE,
    ) -> None:
        self.resources[(stack_id, logical_id)] = {
            "StackName": stack_name(stack_id),
            "StackId": stack_id,
            "LogicalResourceId": logical_id,
            "PhysicalResourceId": physical_id,
            "ResourceType": resource_type,
            "LastUpdatedTimestamp": datetime.now(UTC),
            "ResourceStatus": status,
        }

    def declare_metadata(self, stack_id: str, logical_id: str, metadata: Mapping[str, Any]) -> None:
        """The resource's Metadata in the stack's template (kept when the resource's status is
        recorded again), returned by DescribeStackResource as a JSON string."""
        self.metadata[(stack_id, logical_id)] = dict(metadata)

    def nest(self, child_stack_id: str, parent_stack_id: str) -> None:
        self.parents[child_stack_id] = parent_stack_id

    def _answer(self, operation: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append((operation, dict(params)))
        if operation == "DescribeStackResource":
            detail = self.resources.get((params["StackName"], params["LogicalResourceId"]))
            if detail is None:
                return 400, _error("ValidationError", "Resource does not exist for stack")
            metadata = self.metadata.get((params["StackName"], params["LogicalResourceId"]))
            if metadata is not None:
                detail = {**detail, "Metadata": json.dumps(metadata)}
            return 200, {"StackResourceDetail": detail}
        if operation == "DescribeStacks":
            stack_id = params.get("StackName", "")
            known = {sid for sid, _ in self.resources} | set(self.parents)
            if stack_id not in known:
                return 400, _error("ValidationError", f"Stack with id {stack_id} does not exist")
            stack: dict[str, Any] = {
                "StackId": stack_id,
                "StackName": stack_name(stack_id),
                "CreationTime": datetime.now(UTC),
                "StackStatus": "UPDATE_COMPLETE",
            }
            if stack_id in self.parents:
                stack["ParentId"] = self.parents[stack_id]
                stack["RootId"] = self.parents[stack_id]
            return 200, {"Stacks": [stack]}
        raise AssertionError(f"the handler called CloudFormation {operation}")

    def client(self) -> "CloudFormationClient":
        client = boto3.client(
            "cloudformation",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        validator = ParamValidator()

        def before_call(model: Any, params: dict[str, Any], **_: Any) -> Any:
            status, answer = self._answer(model.name, _params(params))
            if status == 200:
                report = validator.validate(answer, model.output_shape)
                if report.has_errors():
                    raise AssertionError(report.generate_report())
            return AWSResponse("https://cloudformation.test", status, HTTPHeaders(), None), answer

        client.meta.events.register("before-call.cloudformation.*", before_call)
        return client


# The record the e2e tests play (their conftest resets it for each test and points the
# handler's CloudFormation client at it).
PLAYED = PlayedStacks()


def _params(request_dict: dict[str, Any]) -> dict[str, Any]:
    # before-call gets the serialized request; the query protocol's body holds the parameters.
    body = request_dict.get("body", {})
    return {k: v for k, v in body.items() if k not in ("Action", "Version")}


def _error(code: str, message: str) -> dict[str, Any]:
    return {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


def cloudformation_reporting(
    event: Mapping[str, Any], status: str, physical_id: str | None = None
) -> "CloudFormationClient":
    """A CloudFormation client that reports the event's resource as ``status`` (with
    ``physical_id``, default the event's) and the declared key as the event's key."""
    stacks = PlayedStacks()
    properties = event.get("ResourceProperties") or {}
    stacks.record(
        str(event["StackId"]),
        str(event["LogicalResourceId"]),
        physical_id or str(event.get("PhysicalResourceId", "")),
        status=status,
    )
    key_id = str(properties.get(contract.PROP_KEY_ID, ""))
    stacks.record(
        str(event["StackId"]),
        key_logical_id(key_id),
        key_id,
        resource_type="AWS::KMS::Key",
    )
    return stacks.client()


class MemoryIndex:
    """The due index's bucket in memory, for tests that stub KMS (LocalStack holds it in the
    end-to-end tests). Each request is validated against botocore's S3 model, as a Stubber
    would; it answers the three calls the registry makes."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self._model = botocore.session.get_session().get_service_model("s3")
        self._validator = ParamValidator()

    def _check(self, operation: str, params: dict[str, Any]) -> None:
        shape = self._model.operation_model(operation).input_shape
        assert shape is not None
        report = self._validator.validate(params, shape)
        if report.has_errors():
            raise AssertionError(report.generate_report())

    def put_object(self, **params: Any) -> dict[str, Any]:
        self._check("PutObject", params)
        self.names.add(params["Key"])
        return {}

    def delete_object(self, **params: Any) -> dict[str, Any]:
        self._check("DeleteObject", params)
        self.names.discard(params["Key"])
        return {}

    def list_objects_v2(self, **params: Any) -> dict[str, Any]:
        self._check("ListObjectsV2", params)
        prefix = params.get("Prefix", "")
        names = sorted(n for n in self.names if n.startswith(prefix))
        return {"Contents": [{"Key": n} for n in names], "IsTruncated": False}
