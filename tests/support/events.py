"""Builders for CloudFormation custom-resource request events, shaped like the real ones."""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
SERVICE_TOKEN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:imported-key-material"
RESOURCE_TYPE = "Custom::ImportedKeyMaterial"
REQUEST_TYPES = ("Create", "Update", "Delete")
LOGICAL_ID = "ImportedKeyMaterial"


def _as_cloudformation_sends(value: Any) -> Any:
    # CloudFormation hands every scalar property to the function as a string (True -> "true",
    # 30 -> "30"); lists and maps keep their shape. A handler must cope with exactly that.
    # A property set to AWS::NoValue is left out of the event altogether.
    if isinstance(value, Mapping):
        return {
            str(key): _as_cloudformation_sends(item)
            for key, item in value.items()
            if item is not None
        }
    if isinstance(value, list | tuple):
        return [_as_cloudformation_sends(item) for item in value]
    if value is None:
        raise ValueError("CloudFormation cannot send a null inside a list")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stack_id_for(stack_name: str) -> str:
    """The stack's id: the same for every event of one stack, as the key's binding names it."""
    stack_uuid = uuid.uuid5(uuid.NAMESPACE_URL, stack_name)
    return f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack_name}/{stack_uuid}"


def cfn_event(
    request_type: str,
    properties: Mapping[str, Any],
    response_url: str,
    *,
    physical_id: str | None = None,
    old_properties: Mapping[str, Any] | None = None,
    logical_id: str = LOGICAL_ID,
    stack_name: str = "demo",
    resource_type: str = RESOURCE_TYPE,
    service_token: str = SERVICE_TOKEN,
) -> dict[str, Any]:
    """A custom-resource request as CloudFormation sends it to the service token's Lambda.

    ``properties`` (and ``old_properties``) are the resource's properties without
    ``ServiceToken``, which is added as CloudFormation does; scalars become strings. Update
    needs ``physical_id`` and ``old_properties``, Delete needs ``physical_id``, Create takes
    neither: a real event never breaks these rules, so a test that does is a mistake.
    """
    if request_type not in REQUEST_TYPES:
        raise ValueError(f"request_type must be one of {REQUEST_TYPES}, got {request_type!r}")
    if request_type == "Create" and (physical_id is not None or old_properties is not None):
        raise ValueError("a Create event has no PhysicalResourceId or OldResourceProperties")
    if request_type != "Create" and physical_id is None:
        raise ValueError(f"a {request_type} event needs physical_id")
    if (request_type == "Update") != (old_properties is not None):
        raise ValueError("old_properties belongs to, and is required for, Update events only")

    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": service_token,
        "ResponseURL": response_url,
        "StackId": stack_id_for(stack_name),
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceProperties": {
            "ServiceToken": service_token,
            **_as_cloudformation_sends(properties),
        },
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_properties is not None:
        event["OldResourceProperties"] = {
            "ServiceToken": service_token,
            **_as_cloudformation_sends(old_properties),
        }
    return event


def import_properties(key_id: str, secret_arn: str, **overrides: str) -> dict[str, str]:
    """The custom resource's properties as the construct writes them, with its defaults."""
    from imported_key_handler import contract

    properties = {
        contract.PROP_KEY_ID: key_id,
        contract.PROP_SECRET_ARN: secret_arn,
        contract.PROP_KEY_SPEC: contract.SYMMETRIC_DEFAULT,
        contract.PROP_WRAPPING_ALGORITHM: contract.RSAES_OAEP_SHA_256,
        contract.PROP_WRAPPING_KEY_SPEC: "RSA_4096",
        contract.PROP_EXPIRATION_MODEL: contract.KEY_MATERIAL_EXPIRES,
        contract.PROP_VALIDITY_DAYS: "365",
        contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "false",
    }
    properties.update(overrides)
    if properties[contract.PROP_EXPIRATION_MODEL] == contract.KEY_MATERIAL_DOES_NOT_EXPIRE:
        del properties[contract.PROP_VALIDITY_DAYS]
    return properties


def kms_expiration_event(key_arn: str) -> dict[str, Any]:
    """KMS's "material expired" event, as the expiration rule delivers it to the handler."""
    from imported_key_handler import contract

    return {
        "version": "0",
        "source": "aws.kms",
        "detail-type": contract.KMS_EXPIRATION_EVENT,
        "resources": [key_arn],
        "detail": {},
    }


def frozen_at(moment: datetime) -> type[datetime]:
    """``datetime`` for the handler's modules, with ``now()`` at a moved clock."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> "Frozen":
            return moment.astimezone(tz) if tz else moment.replace(tzinfo=None)  # type: ignore[return-value]

    return Frozen
