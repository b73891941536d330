"""Re-import the same material before it expires, and restore a key whose material expired.

A renewal run reads the key once. Only when the material is inside the renewal window, or the
key is already ``PendingImport``, does it read the secret and import again with fresh import
parameters and a new ValidTo; otherwise that one read is all it does.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import clients, contract, registry
from .audit import audited
from .binding import (
    Binding,
    adopted_by_this_stack,
    declared_request,
    is_adopted,
    key_binding_tags,
    record_valid_to,
    require_declared,
    require_in_stack,
)
from .errors import ImportFailure
from .importer import (
    PENDING_ROTATION,
    PRIMARY,
    ImportResult,
    describe_key,
    import_from_secret,
    list_key_materials,
    multi_region_role,
    pending_material,
)
from .kms_errors import kms_failure
from .request import ImportRequest

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

# States from which a renewal cannot bring the key back: they need a person.
_STUCK_STATES = ("PendingDeletion", "PendingReplicaDeletion", "Unavailable", "Creating")


@dataclass(frozen=True)
class RenewalRequest:
    import_request: ImportRequest
    renew_before: timedelta
    trigger: str


@dataclass(frozen=True)
class RenewalResult:
    key_id: str
    renewed: bool
    why: str
    valid_to: datetime | None
    # A multi-Region primary's rotation that waits for its replicas (see ``import_rotating``):
    # the key stays due, so each sweep looks again until it can rotate.
    pending_material_id: str | None = None

    def summary(self) -> dict[str, str | bool | None]:
        summary: dict[str, str | bool | None] = {
            "KeyId": self.key_id,
            "Renewed": self.renewed,
            "Why": self.why,
            "ValidTo": self.valid_to.isoformat() if self.valid_to else None,
        }
        if self.pending_material_id:
            summary["PendingKeyMaterialId"] = self.pending_material_id
        return summary


def due_reason(metadata: Mapping[str, Any], renew_before: timedelta, now: datetime) -> str | None:
    """Why the material must be imported now, or None when it can wait."""
    state = metadata.get("KeyState")
    if state == "PendingImport":
        return "key is PendingImport (material expired or deleted)"
    if metadata.get("ExpirationModel") != contract.KEY_MATERIAL_EXPIRES:
        return None
    valid_to = metadata.get("ValidTo")
    if valid_to is None:
        return "KMS reports no ValidTo for expiring material"
    if valid_to - now <= renew_before:
        return f"material expires {valid_to.isoformat()}, inside the renewal window"
    return None


def materials_due_reason(
    materials: list[dict[str, Any]], renew_before: timedelta, now: datetime
) -> str | None:
    """Why some material of a rotating key must be imported again now, or None."""
    for entry in materials:
        material_id = str(entry.get("KeyMaterialId", "?"))[:12]
        if entry.get("ImportState") == "PENDING_IMPORT":
            return f"material {material_id}... is not imported (expired or deleted)"
        valid_to = entry.get("ValidTo")
        if entry.get("ExpirationModel") == contract.KEY_MATERIAL_EXPIRES and (
            valid_to is None or valid_to - now <= renew_before
        ):
            return f"material {material_id}... expires inside the renewal window"
    return None


def renew_if_due(
    kms: "KMSClient",
    secrets: "SecretsManagerClient",
    renewal: RenewalRequest,
    *,
    now: datetime | None = None,
    binding: Binding | None = None,
) -> RenewalResult:
    """Re-import when due. With ``binding`` (the key's checked tags), a key whose material
    was revoked on purpose is refused rather than restored."""
    now = now or datetime.now(UTC)
    request = renewal.import_request
    metadata = describe_key(kms, request.key_id)
    state = metadata.get("KeyState", "")
    if state in _STUCK_STATES:
        raise ImportFailure(
            f"Key {request.key_id} is {state}: renewal cannot import into it. Cancel a "
            "scheduled deletion (CancelKeyDeletion) or remove the key from the stack."
        )
    if binding is not None:
        binding.refuse_if_revoked(metadata, now)
    why = due_reason(metadata, renewal.renew_before, now)
    if why is None and renewal.trigger == contract.TRIGGER_OPERATOR:
        why = "an operator asked for it (imported-keys renew)"
    waiting = None
    if why is None and request.rotate_on_material_change:
        # Every material tied to the key must stay imported: any one expiring takes the whole
        # key to PendingImport, and DescribeKey reports the current material only.
        materials = list_key_materials(kms, request.key_id)
        why = materials_due_reason(materials, renewal.renew_before, now)
        pending = pending_material(materials) if multi_region_role(metadata) == PRIMARY else None
        if why is None and pending is not None:
            material_id = str(pending.get("KeyMaterialId", ""))
            if pending.get("KeyMaterialState") == PENDING_ROTATION:
                why = f"every replica holds material {material_id[:12]}...: rotating to it"
            else:
                waiting = material_id
    if why is None:
        return RenewalResult(
            request.key_id,
            False,
            "not due" if waiting is None else "rotation waits for the replicas",
            metadata.get("ValidTo"),
            waiting,
        )
    result: ImportResult = import_from_secret(kms, secrets, request, now=now, renewing=True)
    if request.rotate_on_material_change and result.valid_to is not None:
        _check_every_material_renewed(kms, request.key_id, result.valid_to)
    return RenewalResult(result.key_id, True, why, result.valid_to, result.pending_material_id)


def _check_every_material_renewed(kms: "KMSClient", key_id: str, valid_to: datetime) -> None:
    """A material tied to the key but missing from the secret would expire unnoticed and take
    the whole key to PendingImport: say so while there is time."""
    for entry in list_key_materials(kms, key_id):
        entry_valid_to = entry.get("ValidTo")
        stale = entry.get("ImportState") == "PENDING_IMPORT" or (
            entry.get("ExpirationModel") == contract.KEY_MATERIAL_EXPIRES
            and (entry_valid_to is None or entry_valid_to < valid_to - timedelta(seconds=1))
        )
        if stale:
            material_id = str(entry.get("KeyMaterialId", "?"))[:12]
            raise ImportFailure(
                f"Key {key_id} has material {material_id}... that the secret does not list, so "
                "it was not renewed and will expire: add it back to the secret's materials."
            )


def renewal_key_id(event: Mapping[str, Any]) -> tuple[str, str]:
    """The key and trigger of a renewal event; ImportFailure for a malformed one."""
    body = event.get(contract.RENEWAL_EVENT)
    if not isinstance(body, Mapping):
        raise ImportFailure(f"Not a renewal event: {contract.RENEWAL_EVENT} is missing.")
    trigger = body.get(contract.RENEWAL_TRIGGER)
    if trigger not in contract.RENEWAL_TRIGGERS:
        raise ImportFailure(
            f"Renewal event has {contract.RENEWAL_TRIGGER}={str(trigger)[:32]!r}; expected "
            f"one of {', '.join(contract.RENEWAL_TRIGGERS)}."
        )
    key_id = body.get(contract.RENEWAL_KEY_ID)
    if not isinstance(key_id, str) or not key_id or len(key_id) > 2048:
        raise ImportFailure(f"Renewal event has no {contract.RENEWAL_KEY_ID} string.")
    return key_id, str(trigger)


def expired_key_id(event: Mapping[str, Any]) -> str | None:
    """The key whose material KMS reports expired, or None if the event is not that."""
    if event.get("source") != "aws.kms" or event.get("detail-type") != (
        contract.KMS_EXPIRATION_EVENT
    ):
        return None
    resources = event.get("resources")
    if not isinstance(resources, list) or len(resources) != 1 or not resources[0]:
        return None
    # The event names the key by its ARN; the index and the tags go by its id.
    return str(resources[0]).rsplit("/", 1)[-1]


@dataclass
class FleetClients:
    """The clients one renewal or sweep uses, built once per invocation."""

    kms: "KMSClient"
    secrets: "SecretsManagerClient"
    cloudformation: "CloudFormationClient"
    s3: "S3Client"
    bucket: str

    @classmethod
    def build(cls) -> "FleetClients":
        bucket = os.environ.get(contract.ENV_REGISTRY_BUCKET, "")
        if not bucket:
            raise ImportFailure(
                f"The function's environment has no {contract.ENV_REGISTRY_BUCKET}; deploy it "
                "with the ImportedKey construct."
            )
        return cls(
            clients.kms_client(),
            clients.secretsmanager_client(),
            clients.cloudformation_client(),
            clients.s3_client(),
            bucket,
        )


def declared_binding(
    fleet: FleetClients, key_id: str
) -> tuple[Binding, dict[str, str], int | None]:
    """What the key's stack declared for it, for an event that names only the key: its binding
    tags checked by their digest and confirmed by CloudFormation, the import properties they
    hold, and the renewal window. Nothing is read from a secret before this passes."""
    tags, adopted = key_binding_tags(fleet.kms, fleet.cloudformation, key_id)
    properties, window = declared_request(key_id, tags)
    binding = require_declared(fleet.kms, properties, tags, adopted=adopted)
    require_in_stack(fleet.cloudformation, binding)
    return binding, properties, window


def renew_key(
    fleet: FleetClients,
    key_id: str,
    trigger: str,
    *,
    now: datetime | None = None,
    index_entry: str | None = None,
) -> RenewalResult:
    """Renew one key from what its stack declared, if it is due, and index it again.

    Everything but the key id comes from the key's binding tags, checked by their digest and
    confirmed by CloudFormation before any secret is read. ``index_entry``: the due-index entry
    the sweep found the key by, replaced by the key's new one.
    """
    now = now or datetime.now(UTC)
    binding, properties, window = declared_binding(fleet, key_id)
    renew_before = timedelta(seconds=window or 0)
    renewal = RenewalRequest(ImportRequest.from_properties(properties), renew_before, trigger)
    result = renew_if_due(fleet.kms, fleet.secrets, renewal, now=now, binding=binding)
    if result.renewed:
        record_valid_to(fleet.kms, key_id, result.valid_to, binding)
    reindex(
        fleet,
        binding,
        window,
        result.valid_to,
        [index_entry] if index_entry else [],
        due_now=now if result.pending_material_id else None,
    )
    return result


def reindex(
    fleet: FleetClients,
    binding: Binding,
    window: int | None,
    valid_to: datetime | None,
    also_replaces: list[str],
    *,
    due_now: datetime | None = None,
) -> None:
    """Point the due index at the key's new ValidTo (no entry when nothing expires).

    ``due_now``: the key has work left before its window (a multi-Region rotation waiting for
    its replicas), so its entry is due at once and every sweep looks at it until it is done."""
    renew_before = timedelta(seconds=window or 0)
    new = (
        registry.entry_for(binding.key_id, valid_to, renew_before, due=due_now)
        if valid_to and window
        else None
    )
    old = list(also_replaces)
    recorded = binding.recorded_valid_to()
    if recorded is not None and window:
        old.append(registry.entry_for(binding.key_id, recorded, renew_before).name)
    registry.move(fleet.s3, fleet.bucket, new, old)


def serves(kms: "KMSClient", key_id: str) -> bool:
    """Whether this handler serves the key: KMS reports every expiring key of the account to
    the expiration rule, and another's key is none of this handler's business (nor an error)."""
    try:
        tags = kms.list_resource_tags(KeyId=key_id).get("Tags", [])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "AccessDeniedException",
            "NotFoundException",
        ):
            return False
        raise kms_failure(error, "ListResourceTags", key_id) from None
    found = {tag["TagKey"]: tag["TagValue"] for tag in tags}
    if is_adopted(found):
        # Adopted by this stack and imported by it at least once (it noted where its binding is).
        return adopted_by_this_stack(found) and contract.TAG_RESOURCE in found
    role_id = os.environ.get(contract.ENV_HANDLER_ROLE_ID, "")
    return bool(role_id) and found.get(contract.TAG_HANDLER) == role_id


def run_renewal(key_id: str, trigger: str) -> dict[str, str | bool | None]:
    """Entry for a renewal of one key (an operator's, or KMS's expiration event). A failure
    raises, so Lambda counts an error (alarm), retries the event with backoff and finally
    hands it to the dead-letter queue."""
    with audited(f"Renew({trigger})", key_id) as record:
        result = renew_key(FleetClients.build(), key_id, trigger)
        record.succeeded("RENEWED" if result.renewed else "NOT_DUE", result.valid_to)
        return result.summary()


def is_renewal_event(event: object) -> bool:
    return isinstance(event, Mapping) and isinstance(event.get(contract.RENEWAL_EVENT), Mapping)
