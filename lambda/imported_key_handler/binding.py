"""The handler acts only on what the stack declared for each key.

One handler serves every ImportedKey of a stack, and the events it receives (CloudFormation
requests, renewal events) name the key, the secret and the settings. Anyone allowed
``lambda:InvokeFunction``, or ``events:PutTargets`` on one of the handler's rules, can send
such an event, so an event is only a request: the handler checks it against the binding,
tags that CloudFormation writes on the key from the same template as the custom resource's
properties (``contract.TAG_*``), before it reads a secret or changes the key:

- ``TAG_HANDLER`` is the RoleId of this handler's role (the function's environment names it):
  a key of another stack or another handler is refused;
- ``TAG_SECRET`` is the declared secret's ARN: another key's secret is refused;
- ``TAG_SETTINGS`` is a digest of every other setting (spec, wrapping, expiry, rotation,
  revocation, encoding, version): a flipped flag or changed setting is refused.

Why an invoke-only caller cannot forge it: the tags live on the key, not in the event, and
writing them takes ``kms:TagResource``/``kms:UntagResource`` on the key, which the deployment
holds and the handler's own role does not (it may write ``TAG_VALID_TO`` only). The binding is
therefore as strong as those two permissions; the README says who should hold them. Nothing is
kept per key in the function, so one handler serves any number of keys.

A key adopted by ARN (created outside the stack) has no tags CloudFormation wrote: its binding
is CloudFormation's record of the import resource (``contract.METADATA_BINDING``), read by
``key_binding_tags`` and then checked exactly like a key's tags.

A revocation on Delete also needs CloudFormation itself to be removing the resource
(``require_removal``), since a forged Delete with the declared settings would otherwise pass.
And an import into a key whose material was deleted on purpose (``TAG_VALID_TO`` still in the
future) is refused until an operator removes that tag (``refuse_if_revoked``).
"""

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import contract
from .errors import ImportFailure
from .kms_errors import error_code, kms_failure

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import KeyMetadataTypeDef

logger = logging.getLogger(__name__)

# KMS deletes expired material at ValidTo by its own clock; a key found PendingImport this long
# before the recorded ValidTo still counts as expired, not revoked.
CLOCK_SKEW = timedelta(minutes=2)


class NotDeclared(ImportFailure):
    """CloudFormation's record no longer holds the key: its resource is gone, or is another key
    (a replacement). A renewal drops such a key from the due index instead of failing on it."""


class ReplacedKey(NotDeclared):
    """CloudFormation names another key for the resource the key's tags name."""


@dataclass(frozen=True)
class Binding:
    """A key's tags, checked against an event: what the stack declared for it."""

    key_id: str
    tags: Mapping[str, str]
    adopted: bool = False
    """The key was adopted by ARN: CloudFormation confirmed its tags (``key_binding_tags``)."""

    def refuse_if_revoked(self, metadata: "KeyMetadataTypeDef", now: datetime) -> None:
        """Refuse to import into a key whose material was deleted before it expired.

        Renewal restores expired material; it must not undo a revocation. The handler records
        the ValidTo of each import (``record_valid_to``): a key that is PendingImport before
        that time lost its material by DeleteImportedKeyMaterial. No record (a key never
        imported by this handler, or an operator removed the tag to resume) lets it import.
        """
        if metadata.get("KeyState") != "PendingImport":
            return
        recorded = self.tags.get(contract.TAG_VALID_TO)
        if recorded is None:
            return
        valid_to = self.recorded_valid_to()
        if valid_to is not None and valid_to <= now + CLOCK_SKEW:
            return  # it expired: restoring it is the renewal's job
        raise ImportFailure(
            f"Refused: key {self.key_id} lost its material before its ValidTo "
            f"({recorded[:32]}), so it was revoked, not expired; nothing was imported. To "
            f"resume, remove the key's tag {contract.TAG_VALID_TO}."
        )

    def recorded_valid_to(self) -> datetime | None:
        """The ValidTo the handler last imported (``record_valid_to``), if it is a time."""
        recorded = self.tags.get(contract.TAG_VALID_TO, contract.VALID_TO_NEVER)
        try:
            valid_to = datetime.fromisoformat(recorded)
        except ValueError:
            return None
        return valid_to if valid_to.tzinfo is not None else None


def read_tags(kms: "KMSClient", key_id: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    request: dict[str, Any] = {"KeyId": key_id}
    while True:
        try:
            page = kms.list_resource_tags(**request)
        except ClientError as error:
            raise kms_failure(error, "ListResourceTags", key_id) from None
        tags.update({tag["TagKey"]: tag["TagValue"] for tag in page.get("Tags", [])})
        if not page.get("Truncated") or not page.get("NextMarker"):
            return tags
        request["Marker"] = page["NextMarker"]


def _environment(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ImportFailure(
            f"Refused: the function's environment has no {name}, so it cannot tell which keys "
            "it serves; deploy it with the ImportedKey construct. Nothing was changed."
        )
    return value


def require_handler(key_id: str, tags: Mapping[str, str]) -> None:
    """Refuse a key whose binding names another handler, or none."""
    if tags.get(contract.TAG_HANDLER) != _environment(contract.ENV_HANDLER_ROLE_ID):
        raise ImportFailure(
            f"Refused: key {key_id} is not declared for this handler (its tag "
            f"{contract.TAG_HANDLER} names another handler or none; a key adopted by ARN needs "
            f"its owner's tag {contract.TAG_ADOPTED_BY}=<the stack's name>). Nothing was "
            "changed."
        )


def require_declared(
    kms: "KMSClient",
    properties: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
    *,
    adopted: bool = False,
) -> Binding:
    """The key's binding, or ImportFailure when the event is not what the stack declared.

    ``tags``: the key's binding tags when the caller has just read them (``key_binding_tags``);
    ``adopted``: they came from CloudFormation's record of an adopted key."""
    key_id = str(properties.get(contract.PROP_KEY_ID) or "")
    _environment(contract.ENV_HANDLER_ROLE_ID)  # before any call: without it, no key is ours
    if tags is None:
        tags = read_tags(kms, key_id)
    require_handler(key_id, tags)
    if tags.get(contract.TAG_SECRET) != str(properties.get(contract.PROP_SECRET_ARN) or ""):
        raise ImportFailure(
            f"Refused: the event's {contract.PROP_SECRET_ARN} is not the secret the stack "
            f"declared for key {key_id} (tag {contract.TAG_SECRET}). Nothing was changed."
        )
    if tags.get(contract.TAG_MATERIAL_VERSION, "") != str(
        properties.get(contract.PROP_MATERIAL_VERSION_ID) or ""
    ):
        raise ImportFailure(
            f"Refused: the event's {contract.PROP_MATERIAL_VERSION_ID} is not the version the "
            f"stack declared for key {key_id}. Nothing was changed."
        )
    if tags.get(contract.TAG_SETTINGS) != contract.settings_digest(properties):
        raise ImportFailure(
            f"Refused: the event's settings for key {key_id} differ from those the stack "
            f"declared (tag {contract.TAG_SETTINGS}); only a deployment changes them. Nothing "
            "was changed."
        )
    return Binding(key_id, tags, adopted)


def record_valid_to(
    kms: "KMSClient", key_id: str, valid_to: datetime | None, binding: Binding | None = None
) -> None:
    """Remember the ValidTo just imported, on the key, for ``refuse_if_revoked``; on an adopted
    key, also where CloudFormation's record of its binding is (``ADOPTED_POINTER_TAGS``)."""
    value = valid_to.astimezone(UTC).isoformat() if valid_to else contract.VALID_TO_NEVER
    tags = {contract.TAG_VALID_TO: value}
    if binding is not None and binding.adopted:
        tags.update({name: binding.tags[name] for name in contract.ADOPTED_POINTER_TAGS})
    try:
        kms.tag_resource(
            KeyId=key_id, Tags=[{"TagKey": name, "TagValue": text} for name, text in tags.items()]
        )
    except ClientError as error:
        raise kms_failure(error, "TagResource", key_id) from None


def _same_key(reference: object, key_id: str) -> bool:
    """Whether two references name one key. KMS takes a key by its id or its ARN (ending in
    ``key/<id>``), and CloudFormation holds the id: compared raw, an event naming the key by
    its ARN would pass for a replacement."""

    def bare(value: object) -> str:
        return str(value or "").rsplit("/", 1)[-1].lower()

    return bare(reference) == bare(key_id)


def require_removal(
    cloudformation: "CloudFormationClient", event: Mapping[str, Any], binding: Binding
) -> None:
    """Refuse a revoking Delete unless CloudFormation is removing the declared resource.

    The key's tags name its stack and the custom resource's logical id; CloudFormation must
    report that resource as being deleted, or as now pointing at another key (the old one is
    deleted after a replacement). A forged Delete finds the resource in place and is refused,
    however it names the key.
    """
    stack_id = str(event.get("StackId") or "")
    logical_id = str(event.get("LogicalResourceId") or "")
    if (
        binding.tags.get(contract.TAG_STACK) != stack_id
        or binding.tags.get(contract.TAG_RESOURCE) != logical_id
    ):
        raise ImportFailure(
            f"Refused to revoke key {binding.key_id}: the stack declared it for another "
            "resource than this event's. Nothing was deleted."
        )
    try:
        detail = cloudformation.describe_stack_resource(
            StackName=stack_id, LogicalResourceId=logical_id
        )["StackResourceDetail"]
    except ClientError as error:
        raise ImportFailure(
            f"Refused to revoke key {binding.key_id}: CloudFormation did not confirm that it "
            f"is removing {logical_id[:64]} ({error_code(error)}). Nothing was deleted."
        ) from None
    status = detail.get("ResourceStatus")
    if status == "DELETE_IN_PROGRESS" or not _same_key(
        detail.get("PhysicalResourceId"), binding.key_id
    ):
        return
    raise ImportFailure(
        f"Refused to revoke key {binding.key_id}: CloudFormation reports {logical_id[:64]} as "
        f"{status}, not being removed. Nothing was deleted."
    )


def declared_request(key_id: str, tags: Mapping[str, str]) -> tuple[dict[str, str], int | None]:
    """The custom resource properties the stack declared for a key, and its renewal window,
    rebuilt from the key's tags (for a renewal that starts from the key id alone).

    Only a starting point: ``require_declared`` then checks them against the digest like any
    event's, so a tampered clear tag is refused, not followed."""
    require_handler(key_id, tags)
    declared = tags.get(contract.TAG_DECLARED)
    if declared is None:
        raise ImportFailure(
            f"Refused: key {key_id} carries no {contract.TAG_DECLARED} tag, so its renewal "
            "settings are unknown; deploy its stack with this version of the construct. "
            "Nothing was changed."
        )
    try:
        settings, renew_before = contract.parse_declared(declared)
    except (ValueError, UnicodeDecodeError):
        raise ImportFailure(
            f"Refused: key {key_id} has a malformed {contract.TAG_DECLARED} tag; only a "
            "deployment writes it. Nothing was changed."
        ) from None
    properties = {
        **settings,
        contract.PROP_KEY_ID: key_id,
        contract.PROP_SECRET_ARN: tags.get(contract.TAG_SECRET, ""),
    }
    if contract.TAG_MATERIAL_VERSION in tags:
        properties[contract.PROP_MATERIAL_VERSION_ID] = tags[contract.TAG_MATERIAL_VERSION]
    return properties, renew_before


def require_in_stack(cloudformation: "CloudFormationClient", binding: Binding) -> None:
    """Refuse a key unless CloudFormation itself says the stack declared it.

    The handler's permissions cover any key tagged for it (they do not grow with the fleet), and
    anyone who may create a key can copy the binding's tags onto their own. So before it reads
    a secret for a key, the handler asks CloudFormation: the key's tags name its stack and its
    own logical id, and that resource must be this key, in the handler's stack or in a stack
    nested directly in it. An attacker's key, wherever it is declared, fails one of the two.
    (An adopted key's binding was read from CloudFormation itself: nothing is left to ask.)
    """
    if binding.adopted:
        return
    stack_id = binding.tags.get(contract.TAG_STACK, "")
    logical_id = binding.tags.get(contract.TAG_KEY_RESOURCE, "")
    detail = _declared_resource(cloudformation, binding.key_id, stack_id, logical_id)
    if not _same_key(detail.get("PhysicalResourceId"), binding.key_id):
        raise ReplacedKey(
            f"{_refusal(binding.key_id)}: its resource {logical_id[:64]} is another key. "
            "Nothing was changed."
        )


def _refusal(key_id: str) -> str:
    return (
        f"Refused: CloudFormation does not confirm that key {key_id} is declared by this "
        "handler's stack"
    )


def _declared_resource(
    cloudformation: "CloudFormationClient", key_id: str, stack_id: str, logical_id: str
) -> dict[str, Any]:
    """CloudFormation's record of ``logical_id``, in the handler's stack or a stack nested
    directly in it; NotDeclared when the stack or the resource is gone."""
    home = _environment(contract.ENV_HANDLER_STACK_ID)
    refusal = _refusal(key_id)
    try:
        if stack_id != home:
            stacks = cloudformation.describe_stacks(StackName=stack_id)["Stacks"]
            if not stacks or stacks[0].get("ParentId") != home:
                raise ImportFailure(f"{refusal} (another stack). Nothing was changed.")
        return dict(
            cloudformation.describe_stack_resource(
                StackName=stack_id, LogicalResourceId=logical_id
            )["StackResourceDetail"]
        )
    except ClientError as error:
        reason = f"{refusal} ({error_code(error)}). Nothing was changed."
        # Assumption (CloudFormation's messages, not a documented code): a resource or stack
        # that is gone is a ValidationError saying it "does not exist".
        if error_code(error) == "ValidationError" and "does not exist" in str(error):
            raise NotDeclared(reason) from None
        raise ImportFailure(reason) from None


def stack_name(stack_id: str) -> str:
    """The name in a stack id (``arn:...:stack/<name>/<uuid>``), or the id itself."""
    parts = stack_id.split("/")
    return parts[1] if len(parts) == 3 else stack_id


def is_adopted(tags: Mapping[str, str]) -> bool:
    """A key declared by ARN: its owner tagged it for adoption, and no deployment bound it to
    this handler. (A key retained from another stack of this library still carries that
    stack's binding, naming another handler: ignored, CloudFormation's record decides.)"""
    own = os.environ.get(contract.ENV_HANDLER_ROLE_ID, "")
    return contract.TAG_ADOPTED_BY in tags and tags.get(contract.TAG_HANDLER) != own


def adopted_by_this_stack(tags: Mapping[str, str]) -> bool:
    home = os.environ.get(contract.ENV_HANDLER_STACK_ID, "")
    return bool(home) and tags.get(contract.TAG_ADOPTED_BY) == stack_name(home)


def key_binding_tags(
    kms: "KMSClient",
    cloudformation: "CloudFormationClient",
    key_id: str,
    resource: tuple[str, str] | None = None,
) -> tuple[dict[str, str], bool]:
    """The tags to check an event against, and whether the key is adopted.

    A key of the stack carries them. For an adopted key they are CloudFormation's record of its
    import resource: ``resource`` (the stack and logical id of a CloudFormation event), else
    the resource the handler noted on the key after its last import. That record must name this
    key; the key's own tags add only the handler's ValidTo record.
    """
    tags = read_tags(kms, key_id)
    if not is_adopted(tags):
        return tags, False
    if not adopted_by_this_stack(tags):
        raise ImportFailure(
            f"Refused: key {key_id} is tagged {contract.TAG_ADOPTED_BY}="
            f"{tags[contract.TAG_ADOPTED_BY][:64]!r}, not this handler's stack. Nothing was "
            "changed."
        )
    stack_id, logical_id = resource or (
        tags.get(contract.TAG_STACK, ""),
        tags.get(contract.TAG_RESOURCE, ""),
    )
    if not stack_id or not logical_id:
        raise ImportFailure(
            f"Refused: adopted key {key_id} was never imported by its stack, so its binding is "
            "unknown; deploy the stack that declares it. Nothing was changed."
        )
    detail = _declared_resource(cloudformation, key_id, stack_id, logical_id)
    declared = _metadata_binding(detail.get("Metadata"))
    if declared is None:
        raise NotDeclared(
            f"{_refusal(key_id)}: {logical_id[:64]} declares no adopted key. Nothing was changed."
        )
    key_arn, declared_tags = declared
    if not _same_key(key_arn, key_id):
        raise ReplacedKey(
            f"{_refusal(key_id)}: {logical_id[:64]} adopts another key. Nothing was changed."
        )
    bound = {
        name: declared_tags[name]
        for name in contract.ADOPTED_DECLARED_TAGS
        if isinstance(declared_tags.get(name), str)
    }
    bound.update({contract.TAG_STACK: stack_id, contract.TAG_RESOURCE: logical_id})
    if contract.TAG_VALID_TO in tags:
        bound[contract.TAG_VALID_TO] = tags[contract.TAG_VALID_TO]
    return bound, True


def _metadata_binding(metadata: object) -> tuple[str, Mapping[str, Any]] | None:
    """The adopted key's ARN and declared tags in an import resource's Metadata (a JSON
    string, as DescribeStackResource returns it), or None."""
    try:
        document = json.loads(metadata) if isinstance(metadata, str) else None
    except ValueError:
        return None
    record = document.get(contract.METADATA_BINDING) if isinstance(document, dict) else None
    if not isinstance(record, dict):
        return None
    key_arn = record.get(contract.METADATA_KEY_ARN)
    tags = record.get(contract.METADATA_TAGS)
    if not isinstance(key_arn, str) or not isinstance(tags, dict):
        return None
    return key_arn, tags
