"""Re-import the same material before it expires, and restore a key whose material expired.

A renewal run reads the key once. Only when the material is inside the renewal window, or the
key is already ``PendingImport``, does it read the secret and import again with fresh import
parameters and a new ValidTo; otherwise that one read is all it does.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import clients, contract
from .audit import audited
from .binding import Binding, record_valid_to, require_declared
from .errors import ImportFailure
from .importer import ImportResult, describe_key, import_from_secret
from .kms_errors import kms_failure
from .request import ImportRequest

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# A window longer than the longest validity KMS allows can only be a malformed event.
_MAX_RENEW_BEFORE_SECONDS = contract.MAX_VALIDITY_DAYS * 86400
# States from which a renewal cannot bring the key back: they need a person.
_STUCK_STATES = ("PendingDeletion", "PendingReplicaDeletion", "Unavailable", "Creating")


@dataclass(frozen=True)
class RenewalRequest:
    import_request: ImportRequest
    renew_before: timedelta
    trigger: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> "RenewalRequest":
        body = event.get(contract.RENEWAL_EVENT)
        if not isinstance(body, Mapping):
            raise ImportFailure(f"Not a renewal event: {contract.RENEWAL_EVENT} is missing.")
        trigger = body.get(contract.RENEWAL_TRIGGER)
        if trigger not in contract.RENEWAL_TRIGGERS:
            raise ImportFailure(
                f"Renewal event has {contract.RENEWAL_TRIGGER}={str(trigger)[:32]!r}; expected "
                f"one of {', '.join(contract.RENEWAL_TRIGGERS)}."
            )
        try:
            seconds = int(str(body.get(contract.RENEWAL_RENEW_BEFORE_SECONDS)))
        except ValueError:
            seconds = -1
        if not 0 < seconds <= _MAX_RENEW_BEFORE_SECONDS:
            raise ImportFailure(
                f"Renewal event needs {contract.RENEWAL_RENEW_BEFORE_SECONDS} between 1 and "
                f"{_MAX_RENEW_BEFORE_SECONDS}; the rule must be created by the ImportedKey "
                "construct."
            )
        properties = body.get(contract.RENEWAL_PROPERTIES)
        if not isinstance(properties, Mapping):
            raise ImportFailure(f"Renewal event has no {contract.RENEWAL_PROPERTIES} object.")
        return cls(
            import_request=ImportRequest.from_properties(properties),
            renew_before=timedelta(seconds=seconds),
            trigger=str(trigger),
        )


@dataclass(frozen=True)
class RenewalResult:
    key_id: str
    renewed: bool
    why: str
    valid_to: datetime | None

    def summary(self) -> dict[str, str | bool | None]:
        return {
            "KeyId": self.key_id,
            "Renewed": self.renewed,
            "Why": self.why,
            "ValidTo": self.valid_to.isoformat() if self.valid_to else None,
        }


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


def list_key_materials(kms: "KMSClient", key_id: str) -> list[dict[str, Any]]:
    """Every material tied to the key, with its import state and ValidTo."""
    materials: list[dict[str, Any]] = []
    request: dict[str, str] = {"KeyId": key_id, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"}
    while True:
        try:
            page = kms.list_key_rotations(**request)  # type: ignore[arg-type]
        except ClientError as error:
            raise kms_failure(error, "ListKeyRotations", key_id) from None
        materials += [dict(entry) for entry in page.get("Rotations", [])]
        if not page.get("Truncated") or not page.get("NextMarker"):
            return materials
        request["Marker"] = page["NextMarker"]


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
    if why is None and request.rotate_on_material_change:
        # Every material tied to the key must stay imported: any one expiring takes the whole
        # key to PendingImport, and DescribeKey reports the current material only.
        why = materials_due_reason(
            list_key_materials(kms, request.key_id), renewal.renew_before, now
        )
    if why is None:
        return RenewalResult(request.key_id, False, "not due", metadata.get("ValidTo"))
    result: ImportResult = import_from_secret(kms, secrets, request, now=now, renewing=True)
    if request.rotate_on_material_change and result.valid_to is not None:
        _check_every_material_renewed(kms, request.key_id, result.valid_to)
    return RenewalResult(result.key_id, True, why, result.valid_to)


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


def is_renewal_event(event: object) -> bool:
    return isinstance(event, Mapping) and isinstance(event.get(contract.RENEWAL_EVENT), Mapping)


def run_renewal(event: Mapping[str, Any]) -> dict[str, str | bool | None]:
    """Entry for the rules' events. A failure raises, so Lambda counts an error (alarm), retries
    the event with backoff and finally hands it to the dead-letter queue."""
    renewal = RenewalRequest.from_event(event)
    action = f"Renew({renewal.trigger})"
    key_id = renewal.import_request.key_id
    with audited(action, key_id) as record:
        kms = clients.kms_client()
        binding = require_declared(kms, event[contract.RENEWAL_EVENT][contract.RENEWAL_PROPERTIES])
        result = renew_if_due(kms, clients.secretsmanager_client(), renewal, binding=binding)
        if result.renewed:
            record_valid_to(kms, key_id, result.valid_to)
        record.succeeded("RENEWED" if result.renewed else "NOT_DUE", result.valid_to)
        return result.summary()
