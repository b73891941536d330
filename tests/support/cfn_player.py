"""A stand-in for CloudFormation that deploys what ``cdk synth`` wrote onto LocalStack, for the
suites that check the construct's templates against the handler and the command line.

It creates the template's keys (``AWS::KMS::Key``, or ``AWS::KMS::ReplicaKey`` through
ReplicateKey in its Region) with their tags, their aliases and the due index's bucket,
registers the handler's functions with a stand-in for the Lambda API when one is given (their
environment resolved as CloudFormation would), records every resource as CloudFormation's
record (``PlayedStacks``) and sends each import its Create or Update through the handler's
custom resource code path in the stack's Region. It resolves the few intrinsics the
templates use: ``Ref``, ``Fn::GetAtt``, ``Fn::Select``, ``Fn::Split`` and CDK's cross-Region
export of a primary's ARN. Anything else in a template is left alone.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from imported_key_handler import contract
from imported_key_handler.cfn import run_import
from support.binding import TEST_HANDLER_ROLE_ID, PlayedStacks
from support.events import ACCOUNT_ID
from support.lambda_api import LambdaApi
from support.regions import Regional, handler_of

KEY_TYPES = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")
EXPORT_WRITER = "Custom::CrossRegionExportWriter"


@dataclass
class Player:
    """A stand-in for CloudFormation: what it created, by stack and logical id, and the values
    CDK's cross-Region exports carry from the primary's stack to the replica's."""

    stacks: PlayedStacks
    regions: dict[str, Regional]
    physical: dict[tuple[str, str], str] = field(default_factory=dict)
    attributes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    lambda_api: LambdaApi | None = None
    """Where the handler's functions are registered (none: their templates are left alone)."""

    def resolve(self, value: Any, regional: Regional) -> Any:
        if isinstance(value, list):
            return [self.resolve(item, regional) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            if value["Ref"] == "AWS::StackId":
                return regional.stack_id
            return self.physical[(regional.stack_id, value["Ref"])]
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            known = self.attributes.get((regional.stack_id, logical_id, attribute))
            if known is not None:
                return known
            if attribute == "RoleId":
                return TEST_HANDLER_ROLE_ID  # the handler's role, as its environment names it
            if attribute.startswith("/cdk/exports/"):
                return self.exports[attribute]  # CDK's cross-Region reader
            assert attribute == "Arn", value  # the handler function's (a ServiceToken)
            return f"arn:aws:lambda:{regional.region}:{ACCOUNT_ID}:function:{logical_id}"
        if set(value) == {"Fn::Split"}:
            delimiter, text = value["Fn::Split"]
            return str(self.resolve(text, regional)).split(delimiter)
        if set(value) == {"Fn::Select"}:
            index, items = value["Fn::Select"]
            return self.resolve(items, regional)[int(index)]
        return {name: self.resolve(item, regional) for name, item in value.items()}

    def deploy(
        self, template: dict[str, Any], regional: Regional, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Create or update the template's keys, then send each import its event."""
        resources = template["Resources"]
        for logical_id, resource in resources.items():
            if resource["Type"] in KEY_TYPES:
                self._key(regional, logical_id, resource)
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::KMS::Alias":
                self._alias(regional, logical_id, resource)
            elif resource["Type"] == "AWS::S3::Bucket":
                self._bucket(regional, logical_id)
        if self.lambda_api is not None:
            for logical_id, resource in resources.items():
                if resource["Type"] == "AWS::Lambda::Function":
                    self._function(regional, logical_id, resource)
        for logical_id, resource in resources.items():
            if resource["Type"] == contract.RESOURCE_TYPE:
                self._import(regional, logical_id, resource, monkeypatch)
        for resource in resources.values():
            if resource["Type"] == EXPORT_WRITER:
                for name, value in resource["Properties"]["WriterProps"]["exports"].items():
                    self.exports[name] = self.resolve(value, regional)

    def _name(self, regional: Regional, logical_id: str) -> str:
        """A physical name as CloudFormation makes one: stack, logical id, a random suffix."""
        stack = regional.stack_id.split("/")[1]
        return f"{stack}-{logical_id}-{uuid.uuid4().hex[:12].upper()}"[:64]

    def _alias(self, regional: Regional, logical_id: str, resource: dict[str, Any]) -> None:
        if (regional.stack_id, logical_id) in self.physical:
            return
        properties = self.resolve(resource["Properties"], regional)
        regional.kms.create_alias(
            AliasName=properties["AliasName"], TargetKeyId=properties["TargetKeyId"]
        )
        self.physical[(regional.stack_id, logical_id)] = properties["AliasName"]

    def _bucket(self, regional: Regional, logical_id: str) -> None:
        if (regional.stack_id, logical_id) in self.physical:
            return
        # The handler's clients go to its own Region's bucket: the stand-in's index.
        name = self._name(regional, logical_id).lower()[:63]
        s3 = regional.clients.s3
        if regional.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": regional.region}
            )
        self.physical[(regional.stack_id, logical_id)] = name
        self.attributes[(regional.stack_id, logical_id, "Arn")] = f"arn:aws:s3:::{name}"
        # The stack's one bucket is its handler's due index, in process as behind the stand-in.
        regional.clients.bucket = name

    def _function(self, regional: Regional, logical_id: str, resource: dict[str, Any]) -> None:
        assert self.lambda_api is not None
        if (regional.stack_id, logical_id) in self.physical:
            return
        properties = resource["Properties"]
        variables = self.resolve(properties.get("Environment", {}).get("Variables", {}), regional)
        if contract.ENV_HANDLER_ROLE_ID not in variables:
            return  # CDK's own helper functions (cross-Region exports): not the handler's
        name = self._name(regional, logical_id)
        function = self.lambda_api.register(
            name, timeout_s=int(properties.get("Timeout", 3)), variables=variables
        )
        self.physical[(regional.stack_id, logical_id)] = name
        self.attributes[(regional.stack_id, logical_id, "Arn")] = function.arn

    def _key(self, regional: Regional, logical_id: str, resource: dict[str, Any]) -> None:
        properties = resource["Properties"]
        key_id = self.physical.get((regional.stack_id, logical_id))
        if key_id is None:
            if resource["Type"] == "AWS::KMS::Key":
                assert properties["Origin"] == "EXTERNAL"
                key_id = regional.kms.create_key(
                    Origin="EXTERNAL",
                    MultiRegion=properties.get("MultiRegion", False),
                    KeySpec=properties["KeySpec"],
                    KeyUsage=properties["KeyUsage"],
                )["KeyMetadata"]["KeyId"]
            else:
                arn = self.resolve(properties["PrimaryKeyArn"], regional)
                primary_region = arn.split(":")[3]
                key_id = self.regions[primary_region].kms.replicate_key(
                    KeyId=arn, ReplicaRegion=regional.region
                )["ReplicaKeyMetadata"]["KeyId"]
            self.physical[(regional.stack_id, logical_id)] = key_id
            metadata = regional.kms.describe_key(KeyId=key_id)["KeyMetadata"]
            self.attributes[(regional.stack_id, logical_id, "Arn")] = metadata["Arn"]
            self.stacks.record(
                regional.stack_id, logical_id, key_id, resource_type=resource["Type"]
            )
        tags = [
            {"TagKey": tag["Key"], "TagValue": self.resolve(tag["Value"], regional)}
            for tag in properties["Tags"]
        ]
        regional.kms.tag_resource(KeyId=key_id, Tags=tags)

    def _import(
        self,
        regional: Regional,
        logical_id: str,
        resource: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        properties = self.resolve(resource["Properties"], regional)
        known = (regional.stack_id, logical_id) in self.physical
        with handler_of(regional, monkeypatch):
            result = run_import(
                properties, "Update" if known else "Create", (regional.stack_id, logical_id)
            )
        self.physical[(regional.stack_id, logical_id)] = result.key_id
        self.stacks.record(regional.stack_id, logical_id, result.key_id)
        self.attributes[(regional.stack_id, logical_id, contract.ATTR_KEY_ARN)] = result.key_arn
