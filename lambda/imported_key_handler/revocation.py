"""Revoke imported material when its ImportedKey leaves the stack.

``DeleteImportedKeyMaterial`` makes the key unusable at once, without waiting for the key's
deletion window: the KMS way to revoke. The key itself is left to its removal policy.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import contract, deadline
from .errors import ImportFailure
from .importer import describe_key
from .kms_errors import kms_failure

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

# Outcomes of a Delete, for the audit line.
KEPT = "KEPT"  # revocation not asked for: the material stays
REVOKED = "REVOKED"
KEY_GONE = "KEY_GONE"
KEY_PENDING_DELETION = "KEY_PENDING_DELETION"
NO_MATERIAL = "NO_MATERIAL"


def revocation_requested(properties: Mapping[str, Any]) -> bool:
    return str(properties.get(contract.PROP_DELETE_MATERIAL_ON_REMOVAL, "")).lower() == "true"


def revoke_material(kms: "KMSClient", key_id: str) -> str:
    """Delete the key's imported material and confirm the key can no longer be used."""
    try:
        state = kms.describe_key(KeyId=key_id)["KeyMetadata"].get("KeyState")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NotFoundException":
            return KEY_GONE
        raise kms_failure(error, "DescribeKey", key_id) from None
    if state == "PendingDeletion":
        return KEY_PENDING_DELETION  # its material goes with it when the window ends
    if state == "PendingImport":
        return NO_MATERIAL  # never imported, already expired, or already revoked
    deadline.check("DeleteImportedKeyMaterial", key_id)
    try:
        kms.delete_imported_key_material(KeyId=key_id)
    except ClientError as error:
        raise kms_failure(error, "DeleteImportedKeyMaterial", key_id) from None
    after = describe_key(kms, key_id).get("KeyState")
    if after != "PendingImport":
        raise ImportFailure(
            f"Deleted the material of key {key_id} but it is {after}, not PendingImport: "
            "check the key in the KMS console and delete its material by hand."
        )
    return REVOKED
