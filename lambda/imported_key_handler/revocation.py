"""Revoke imported material when its ImportedKey leaves the stack.

``DeleteImportedKeyMaterial`` makes the key unusable at once, without waiting for the key's
deletion window: the KMS way to revoke. The key itself is left to its removal policy.

A symmetric key that rotated holds several materials, and a call without ``KeyMaterialId``
deletes only the current one: the older materials would stay imported, ready to decrypt old
ciphertexts as soon as someone re-imports the current one. So every material the key lists
is deleted by its id, and the revocation counts only once none is left imported.
"""

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import contract, deadline
from .errors import ImportFailure
from .importer import describe_key, list_key_materials
from .kms_errors import error_code, kms_failure

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import KeyMetadataTypeDef

logger = logging.getLogger(__name__)

# Outcomes of a Delete, for the audit line.
KEPT = "KEPT"  # revocation not asked for: the material stays
REVOKED = "REVOKED"
KEY_GONE = "KEY_GONE"
KEY_PENDING_DELETION = "KEY_PENDING_DELETION"
NO_MATERIAL = "NO_MATERIAL"


def revocation_requested(properties: Mapping[str, Any]) -> bool:
    return str(properties.get(contract.PROP_DELETE_MATERIAL_ON_REMOVAL, "")).lower() == "true"


def describe_if_exists(kms: "KMSClient", key_id: str) -> "KeyMetadataTypeDef | None":
    """DescribeKey, or None when the key is gone (nothing left to revoke)."""
    try:
        return kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError as error:
        if error_code(error) == "NotFoundException":
            return None
        raise kms_failure(error, "DescribeKey", key_id) from None


def _imported_material_ids(kms: "KMSClient", key_id: str) -> list[str]:
    """The ids of the key's materials that KMS still holds, the current one first.

    Only an explicit ``PENDING_IMPORT`` counts as gone: an entry that does not say is deleted
    rather than trusted. Current first, so the key stops encrypting with the first call.
    """
    held = [
        entry
        for entry in list_key_materials(kms, key_id)
        if entry.get("ImportState") != "PENDING_IMPORT" and entry.get("KeyMaterialId")
    ]
    held.sort(key=lambda entry: entry.get("KeyMaterialState") != "CURRENT")
    return [str(entry["KeyMaterialId"]) for entry in held]


def _delete(kms: "KMSClient", key_id: str, material_id: str | None = None) -> None:
    deadline.check("DeleteImportedKeyMaterial", key_id)
    try:
        if material_id is None:
            kms.delete_imported_key_material(KeyId=key_id)
        else:
            kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=material_id)
    except ClientError as error:
        raise kms_failure(error, "DeleteImportedKeyMaterial", key_id) from None


def _confirm_pending_import(kms: "KMSClient", key_id: str) -> None:
    after = describe_key(kms, key_id).get("KeyState")
    if after != "PendingImport":
        raise ImportFailure(
            f"Deleted the material of key {key_id} but it is {after}, not PendingImport: "
            "check the key in the KMS console and delete its material by hand."
        )


def revoke_material(
    kms: "KMSClient", key_id: str, metadata: "KeyMetadataTypeDef | None" = None
) -> str:
    """Delete every imported material of the key and confirm the key can no longer be used.

    ``metadata`` is the key's DescribeKey when the caller has just read it (it is read here
    otherwise). A retry after a partial revocation (the key already ``PendingImport``, some
    materials still imported) deletes what is left.
    """
    metadata = metadata or describe_if_exists(kms, key_id)
    if metadata is None:
        return KEY_GONE
    state = metadata.get("KeyState")
    if state == "PendingDeletion":
        return KEY_PENDING_DELETION  # its material goes with it when the window ends
    if metadata.get("KeySpec") != contract.SYMMETRIC_DEFAULT:
        # Asymmetric and HMAC keys hold one material and cannot rotate; ListKeyRotations with
        # IncludeKeyMaterial does not apply to them.
        if state == "PendingImport":
            return NO_MATERIAL  # never imported, already expired, or already revoked
        _delete(kms, key_id)
        _confirm_pending_import(kms, key_id)
        return REVOKED
    material_ids = _imported_material_ids(kms, key_id)
    if not material_ids:
        if state == "PendingImport":
            return NO_MATERIAL
        # Usable, yet no material listed as imported: delete the current one, as KMS names it.
        _delete(kms, key_id)
    for material_id in material_ids:
        _delete(kms, key_id, material_id)
    logger.info("Deleted %d material(s) of key %s", max(len(material_ids), 1), key_id)
    _confirm_pending_import(kms, key_id)
    left = _imported_material_ids(kms, key_id)
    if left:
        raise ImportFailure(
            f"Deleted the materials of key {key_id} but {len(left)} still show as imported "
            "(ListKeyRotations): retry the stack deletion to delete them."
        )
    return REVOKED
