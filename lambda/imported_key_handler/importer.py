"""Import key material into an EXTERNAL KMS key and confirm KMS holds it as asked.

Every KMS call takes the client as an argument, so tests hand in a Stubber-backed client or
a client for the local emulator. Fresh import parameters are fetched for every import: an
import token is tied to its public key and expires after 24 hours.
"""

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import contract, deadline
from .errors import ImportFailure
from .kms_errors import error_code, kms_failure
from .material_format import prepare_material, prepare_materials
from .request import ImportRequest
from .secret_source import read_material, read_materials
from .verification import symmetric_proof, verify_import
from .wrapping import require_wrapping_key_spec, wrap_key_material

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import KeyMetadataTypeDef
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = logging.getLogger(__name__)

# States in which KMS accepts ImportKeyMaterial for a key that holds (or awaits) its material.
_IMPORTABLE_STATES = ("PendingImport", "Enabled", "Disabled")
# A token can expire or be invalidated between GetParametersForImport and the import (a
# concurrent import, a slow retry). One fresh set of parameters is enough to tell a race
# from a real fault.
_TOKEN_ERRORS = ("ExpiredImportTokenException", "InvalidImportTokenException")
_ROTATION_WAIT_S = 20
# KeyMaterialState of material imported for a rotation that has not happened yet (API,
# KeyMaterialState): in a multi-Region primary, PENDING_MULTI_REGION_IMPORT_AND_ROTATION until
# every replica holds it too, then PENDING_ROTATION, when RotateKeyOnDemand may make it current.
PENDING_MULTI_REGION = "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"
PENDING_ROTATION = "PENDING_ROTATION"
PRIMARY = "PRIMARY"
REPLICA = "REPLICA"


@dataclass(frozen=True)
class ImportResult:
    key_id: str
    key_arn: str
    valid_to: datetime | None
    key_material_id: str | None = None
    verified: str | None = None
    # The id ImportKeyMaterial returned is the one DescribeKey reports as current; shown to
    # callers as ``verified``, so it takes no part in equality.
    material_id_confirmed: bool = field(default=False, compare=False)
    # False for a Disabled key a renewal kept alive: KMS refuses to use it, so no proof.
    enabled: bool = field(default=True, compare=False)
    # A multi-Region primary's new material, imported but not current until every replica
    # holds it: the primary Region's sweep rotates to it then (``finish_rotation``).
    pending_material_id: str | None = field(default=None, compare=False)


def describe_importable_key(kms: "KMSClient", key_id: str, key_spec: str) -> "KeyMetadataTypeDef":
    """Check the key can take ``key_spec`` material before anything else touches it."""
    metadata = describe_key(kms, key_id)
    if metadata.get("Origin") != "EXTERNAL":
        raise ImportFailure(
            f"Key {key_id} has Origin={metadata.get('Origin')}: material can only be imported "
            "into a key created with Origin=EXTERNAL."
        )
    state = metadata.get("KeyState", "")
    if state not in _IMPORTABLE_STATES:
        raise ImportFailure(
            f"Key {key_id} is {state}: it cannot take material. Cancel a scheduled deletion "
            "(CancelKeyDeletion) or point the stack at another key."
        )
    if metadata.get("KeySpec") != key_spec:
        raise ImportFailure(
            f"Key {key_id} is {metadata.get('KeySpec')} but the material is declared "
            f"{key_spec}: use a key of the same spec."
        )
    return metadata


def multi_region_role(metadata: "KeyMetadataTypeDef") -> str | None:
    """``PRIMARY`` or ``REPLICA`` for a multi-Region key, None for a single-Region one."""
    if not metadata.get("MultiRegion"):
        return None
    return str(metadata.get("MultiRegionConfiguration", {}).get("MultiRegionKeyType") or "")


def list_key_materials(kms: "KMSClient", key_id: str) -> list[dict[str, Any]]:
    """Every material tied to the key, with its import state, KeyMaterialState and ValidTo."""
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


def pending_material(materials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The material imported for a rotation still to come, if any (KMS allows one at a time)."""
    return next(
        (
            entry
            for entry in materials
            if entry.get("KeyMaterialState") in (PENDING_ROTATION, PENDING_MULTI_REGION)
        ),
        None,
    )


def valid_to_for(request: ImportRequest, now: datetime) -> datetime | None:
    """The ValidTo to ask for: whole seconds, so the DescribeKey check can compare exactly."""
    if request.expiration_model != contract.KEY_MATERIAL_EXPIRES or request.validity_days is None:
        return None
    return (now + timedelta(days=request.validity_days)).replace(microsecond=0)


class _NewMaterial(Exception):
    """KMS does not know this material for the key: on a rotating key, it is new material."""


def _import_once(
    kms: "KMSClient",
    request: ImportRequest,
    material: bytes,
    valid_to: datetime | None,
    import_type: str | None,
) -> str | None:
    try:
        params = kms.get_parameters_for_import(
            KeyId=request.key_id,
            WrappingAlgorithm=request.wrapping_algorithm,  # type: ignore[arg-type]
            WrappingKeySpec=request.wrapping_key_spec,  # type: ignore[arg-type]
        )
    except ClientError as error:
        raise kms_failure(error, "GetParametersForImport", request.key_id) from None
    require_wrapping_key_spec(params["PublicKey"], request.wrapping_key_spec)
    encrypted = wrap_key_material(material, params["PublicKey"], request.wrapping_algorithm)
    kwargs: dict[str, Any] = {
        "KeyId": request.key_id,
        "ImportToken": params["ImportToken"],
        "EncryptedKeyMaterial": encrypted,
        "ExpirationModel": request.expiration_model,
    }
    if valid_to is not None:
        kwargs["ValidTo"] = valid_to
    if import_type is not None:
        kwargs["ImportType"] = import_type
    deadline.check("ImportKeyMaterial", request.key_id)
    response = kms.import_key_material(**kwargs)
    material_id = response.get("KeyMaterialId")
    return str(material_id) if material_id else None


def _import_retrying(
    kms: "KMSClient",
    request: ImportRequest,
    material: bytes,
    valid_to: datetime | None,
    import_type: str | None = None,
    *,
    may_be_new: bool = False,
) -> str | None:
    """One import, with fresh parameters once if the token was refused; the KeyMaterialId."""
    for attempt in (1, 2):
        try:
            return _import_once(kms, request, material, valid_to, import_type)
        except ClientError as error:
            if error_code(error) in _TOKEN_ERRORS and attempt == 1:
                logger.warning(
                    "Import token rejected (%s); fetching fresh import parameters once",
                    error_code(error),
                )
                continue
            if may_be_new and error_code(error) == "IncorrectKeyMaterialException":
                raise _NewMaterial from None
            raise kms_failure(
                error, "ImportKeyMaterial", request.key_id, key_spec=request.key_spec
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def import_key_material(
    kms: "KMSClient",
    request: ImportRequest,
    material: bytes,
    *,
    now: datetime | None = None,
    renewing: bool = False,
) -> ImportResult:
    """Wrap and import ``material`` (already validated), then confirm it with DescribeKey.

    Importing the same material again is accepted by KMS, which makes Create and Update
    idempotent and lets CloudFormation retries and rollbacks succeed.
    """
    valid_to = valid_to_for(request, now or datetime.now(UTC))
    material_id = _import_retrying(kms, request, material, valid_to)
    # For a symmetric key, KMS's id of the material just imported must be the current one.
    return confirm_import(
        kms, request, valid_to, current_material_id=material_id, keep_disabled=renewing
    )


def import_rotating(
    kms: "KMSClient",
    request: ImportRequest,
    materials: list[bytes],
    *,
    now: datetime | None = None,
    renewing: bool = False,
    role: str | None = None,
) -> ImportResult:
    """Import every material of a rotating symmetric key, oldest first, and rotate to the last.

    Materials the key already has are re-imported (``EXISTING_KEY_MATERIAL``), which renews
    their ValidTo. Only the last may be new: it is imported as ``NEW_KEY_MATERIAL`` and
    ``RotateKeyOnDemand`` makes it current, so new encryptions use it while old ciphertexts
    still decrypt with the older materials, which stay imported. A renewal only re-imports:
    it neither imports new material nor rotates.

    A multi-Region key (``role``) rotates in three phases (API, ImportKeyMaterial): the new
    material into the primary, then into every replica, then RotateKeyOnDemand on the primary,
    which rotates the replicas with it. So a replica never takes new material first and never
    rotates, and a primary rotates only once KMS reports that every replica holds the material
    (``PENDING_ROTATION``); until then the result names it as pending. A primary's renewal
    finishes that rotation: its stack's deployment declared the material, the replicas' stacks
    have imported it since, and nothing else would.
    """
    valid_to = valid_to_for(request, now or datetime.now(UTC))
    imported_ids: list[str | None] = []
    for index, material in enumerate(materials, start=1):
        newest = index == len(materials)
        try:
            # No ImportType: KMS's default, EXISTING_KEY_MATERIAL, and the classic first import.
            material_id = _import_retrying(kms, request, material, valid_to, may_be_new=newest)
        except _NewMaterial:
            if renewing:
                # New material arrives by deployment, never by a renewal behind the stack's back.
                logger.warning("Renewal skipped new material for key %s", request.key_id)
                break
            if role == REPLICA:
                raise ImportFailure(
                    f"Key {request.key_id} is a multi-Region replica: it takes new material only "
                    "once its primary key holds it. Deploy the primary key's stack with this "
                    "secret version first, then this stack."
                ) from None
            _require_current_listed(kms, request.key_id, imported_ids)
            material_id = _import_new(kms, request, material, valid_to)
        imported_ids.append(material_id)
    newest_id = imported_ids[-1] if imported_ids else None
    current = describe_key(kms, request.key_id).get("CurrentKeyMaterialId")
    if current and None not in imported_ids and current not in imported_ids:
        # A rotation cannot be undone: a secret version from before it (a rollback sends one)
        # lacks the current material. The deployment may go on, the key is whole; the renewal
        # must not pretend it can keep that material alive.
        reason = (
            f"Key {request.key_id} uses material {current[:12]}..., which this secret version "
            "does not list: set material_version_id to a version that lists every material."
        )
        if renewing:
            raise ImportFailure(reason)
        logger.warning(reason)
        # DescribeKey reports the current material, which this version could not renew.
        return confirm_import(
            kms, request, valid_to, current_material_is_ours=False, keep_disabled=renewing
        )
    rotated, pending = False, None
    if newest_id is not None and current != newest_id:
        rotate, pending = _rotation_step(kms, request.key_id, role, newest_id, renewing)
        if rotate:
            deadline.check("RotateKeyOnDemand", request.key_id)
            try:
                kms.rotate_key_on_demand(KeyId=request.key_id)
            except ClientError as error:
                raise kms_failure(error, "RotateKeyOnDemand", request.key_id) from None
            rotated = True
    result = confirm_import(
        kms,
        request,
        valid_to,
        # Until it rotates, the key keeps using its current material, which this version lists.
        current_material_id=current if role and not rotated and current else newest_id,
        wait=rotated,
        keep_disabled=renewing,
    )
    return replace(result, pending_material_id=pending if role == PRIMARY else None)


def _rotation_step(
    kms: "KMSClient", key_id: str, role: str | None, newest_id: str, renewing: bool
) -> tuple[bool, str | None]:
    """Whether to rotate to the newest material now; else the material left pending."""
    if role == REPLICA:
        # RotateKeyOnDemand on the primary rotates the replicas with it.
        logger.info("Replica key %s holds its new material; its primary rotates it", key_id)
        return False, newest_id
    if role != PRIMARY:
        return not renewing, None
    state = next(
        (
            entry.get("KeyMaterialState")
            for entry in list_key_materials(kms, key_id)
            if entry.get("KeyMaterialId") == newest_id
        ),
        None,
    )
    if state == PENDING_MULTI_REGION:
        logger.warning(
            "Key %s: rotation to material %s... waits until every replica holds it: deploy "
            "each replica's stack with the secret version that lists it. This Region's sweep "
            "then rotates the primary, and the replicas with it.",
            key_id,
            newest_id[:12],
        )
        return False, newest_id
    return (not renewing or state == PENDING_ROTATION), None


def _import_new(
    kms: "KMSClient", request: ImportRequest, material: bytes, valid_to: datetime | None
) -> str | None:
    """Import new material for a rotation; a refusal names material left pending before."""
    try:
        material_id = _import_retrying(kms, request, material, valid_to, "NEW_KEY_MATERIAL")
    except ImportFailure:
        # KMS holds one material pending rotation at a time. One left by a deployment that
        # never finished (rolled back after its import) blocks every other new material: name
        # it and the one command that clears it, which no rollback runs for the operator.
        pending = pending_material(list_key_materials(kms, request.key_id))
        if pending is None:
            raise
        stale = str(pending.get("KeyMaterialId", "?"))
        logger.error(
            "Key %s holds material %s pending rotation, imported by a deployment that did not "
            "finish (rolled back after its import), so no other new material can go in. "
            "Deploy the secret version that lists it, or delete it (it was never used; for a "
            "multi-Region key, in the primary's Region, which deletes the replicas' copies).",
            request.key_id,
            stale,
        )
        # CloudFormation's Reason holds 256 characters: the command, whole, comes first.
        raise ImportFailure(
            "A deployment left other material pending rotation; deploy it again, or run: aws "
            f"kms delete-imported-key-material --key-id {request.key_id} --key-material-id "
            f"{stale}"
        ) from None
    logger.info("Imported new key material for key %s", request.key_id)
    return material_id


def reimport_unchanged(
    kms: "KMSClient", request: ImportRequest, materials: list[bytes], valid_to: datetime | None
) -> list[str | None]:
    """Import ``materials`` again with the ValidTo the key already has: KMS takes only the
    key's own material (``IncorrectKeyMaterialException`` otherwise), and nothing changes.
    KMS's ids of the materials, in order: the proof a symmetric key allows."""
    return [_import_retrying(kms, request, material, valid_to) for material in materials]


def _require_current_listed(kms: "KMSClient", key_id: str, listed_ids: list[str | None]) -> None:
    """Before any new material goes in: the secret version must list the key's current one.

    A version that lacks it is not the key's history plus one (another key's materials, or a
    secret rewritten by hand): importing its last entry as new material would make foreign
    material current with nothing to fall back on.
    """
    current = describe_key(kms, key_id).get("CurrentKeyMaterialId")
    if current and None not in listed_ids and current not in listed_ids:
        raise ImportFailure(
            f"Key {key_id} uses material {current[:12]}..., which this secret version does "
            "not list, so its new material was not imported: list every material of the "
            "key, oldest first, before the new one."
        )


def describe_key(kms: "KMSClient", key_id: str) -> "KeyMetadataTypeDef":
    """DescribeKey, its errors turned into reasons."""
    try:
        return kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError as error:
        raise kms_failure(error, "DescribeKey", key_id) from None


def confirm_import(
    kms: "KMSClient",
    request: ImportRequest,
    valid_to: datetime | None,
    *,
    current_material_id: str | None = None,
    wait: bool = False,
    current_material_is_ours: bool = True,
    keep_disabled: bool = False,
) -> ImportResult:
    """Read the key back: Enabled, with the expiration model and ValidTo that were asked and,
    after a rotation, the new material current (waited for: on-demand rotation takes effect
    shortly after the call).

    ``keep_disabled`` (renewals): a Disabled key is fine. DisableKey is the operator's
    reversible kill switch; the renewal keeps its material alive so that EnableKey brings it
    back, and must not page anyone every day while it is off.
    """
    metadata = describe_key(kms, request.key_id)
    wait_until = time.monotonic() + _ROTATION_WAIT_S
    while (
        wait
        and current_material_id is not None
        and metadata.get("CurrentKeyMaterialId") != current_material_id
        and time.monotonic() < wait_until
    ):
        time.sleep(1)
        metadata = describe_key(kms, request.key_id)
    key_id = metadata["KeyId"]
    if current_material_id is not None and metadata.get("CurrentKeyMaterialId") not in (
        None,
        current_material_id,
    ):
        raise ImportFailure(
            f"Key {key_id} reports material {metadata.get('CurrentKeyMaterialId')} as current, "
            f"not {current_material_id} just imported: retry the deployment."
        )
    state = metadata.get("KeyState")
    if state != "Enabled" and not (keep_disabled and state == "Disabled"):
        raise ImportFailure(
            f"Material was imported but key {key_id} is {metadata.get('KeyState')}, not "
            "Enabled: enable it (EnableKey) if it was disabled on purpose, then retry."
        )
    if metadata.get("ExpirationModel") != request.expiration_model:
        raise ImportFailure(
            f"Key {key_id} reports ExpirationModel={metadata.get('ExpirationModel')} after "
            f"importing with {request.expiration_model}: retry the deployment."
        )
    reported = metadata.get("ValidTo")
    if not current_material_is_ours:
        valid_to = reported
    elif valid_to is not None and (
        reported is None or abs((reported - valid_to).total_seconds()) >= 1
    ):
        raise ImportFailure(
            f"Key {key_id} reports ValidTo={reported.isoformat() if reported else 'none'} "
            f"after importing with ValidTo={valid_to.isoformat()}: retry the deployment."
        )
    current = metadata.get("CurrentKeyMaterialId")
    return ImportResult(
        key_id=key_id,
        key_arn=metadata["Arn"],
        valid_to=valid_to,
        key_material_id=current,
        material_id_confirmed=current is not None and current == current_material_id,
        enabled=state == "Enabled",
    )


def read_declared_materials(secrets: "SecretsManagerClient", request: ImportRequest) -> list[bytes]:
    """The material(s) the request declares, read from its secret and checked: every material
    of a rotating key, oldest first, else the one material."""
    if not request.rotate_on_material_change:
        material = read_material(
            secrets,
            request.secret_arn,
            request.material_version_id,
            request.material_encoding,
            request.json_field,
        )
        return [prepare_material(material, request.spec, request.secret_arn)]
    materials = read_materials(
        secrets,
        request.secret_arn,
        request.material_version_id,
        request.material_encoding,
        request.json_field,
    )
    return prepare_materials(materials, request.spec, request.secret_arn)


def import_from_secret(
    kms: "KMSClient",
    secrets: "SecretsManagerClient",
    request: ImportRequest,
    *,
    now: datetime | None = None,
    renewing: bool = False,
) -> ImportResult:
    """The whole import: read and check the material, check the key, import, confirm."""
    materials = read_declared_materials(secrets, request)
    metadata = describe_importable_key(kms, request.key_id, request.key_spec)
    if not request.rotate_on_material_change:
        (material,) = materials
        del materials
        result = import_key_material(kms, request, material, now=now, renewing=renewing)
        verified = (
            verify_import(kms, request.spec, request.key_id, material, result.material_id_confirmed)
            if result.enabled
            else None
        )
        del material  # drop our reference as soon as KMS has it and it is proven
        return replace(result, verified=verified)
    result = import_rotating(
        kms, request, materials, now=now, renewing=renewing, role=multi_region_role(metadata)
    )
    result = replace(result, verified=symmetric_proof(result.material_id_confirmed))
    del materials
    return result
