"""Delete with and without revocation, against LocalStack."""

import os
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from support.events import import_properties
from support.keys import assert_key_holds, external_key, materials_document, new_secret

from imported_key_handler import contract
from imported_key_handler.errors import ImportFailure

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = [pytest.mark.localstack, pytest.mark.aws]

REVOKE = {contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "true"}


def imported(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient", **overrides: str
) -> tuple[str, bytes, dict[str, str]]:
    material = os.urandom(32)
    key_id = external_key(kms)
    properties = import_properties(
        key_id, new_secret(secretsmanager, SecretBinary=material), **overrides
    )
    assert invoke("Create", properties)["Status"] == "SUCCESS"
    return key_id, material, properties


def test_delete_without_revocation_keeps_the_material(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id, material, properties = imported(invoke, kms, secretsmanager)
    assert invoke("Delete", properties, physical_id=key_id)["Status"] == "SUCCESS"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert_key_holds(kms, key_id, material)


def test_delete_with_revocation_makes_the_key_unusable_at_once(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id, _, properties = imported(invoke, kms, secretsmanager, **REVOKE)
    ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    response = invoke("Delete", properties, physical_id=key_id)
    assert response["Status"] == "SUCCESS", response["Reason"]
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport"
    assert "ValidTo" not in metadata
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.decrypt(CiphertextBlob=ciphertext)
    # A second Delete (CloudFormation retries) finds nothing left to revoke and succeeds.
    assert invoke("Delete", properties, physical_id=key_id)["Status"] == "SUCCESS"


def test_revocation_of_a_key_pending_deletion_or_gone_succeeds(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id, _, properties = imported(invoke, kms, secretsmanager, **REVOKE)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert invoke("Delete", properties, physical_id=key_id)["Status"] == "SUCCESS"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"

    gone = import_properties(
        "0b1c2d3e-1111-2222-3333-444455556666", "arn:aws:secretsmanager:x", **REVOKE
    )
    assert invoke("Delete", gone, physical_id=gone[contract.PROP_KEY_ID])["Status"] == "SUCCESS"


def test_revoked_key_stays_revoked_until_the_record_is_removed(
    invoke: Any, renew: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id, material, properties = imported(invoke, kms, secretsmanager, **REVOKE)
    assert invoke("Delete", properties, physical_id=key_id)["Status"] == "SUCCESS"
    tags_before = tags_of(kms, key_id)

    # A Create with the declared settings (a stack that declares the key again) and a renewal
    # (the expiration rule, the schedule) are refused: the material was revoked, not expired.
    response = invoke("Create", properties)
    assert response["Status"] == "FAILED"
    assert "revoked, not expired" in response["Reason"]
    assert contract.TAG_VALID_TO in response["Reason"]
    with pytest.raises(ImportFailure, match="revoked, not expired"):
        renew(properties, trigger=contract.TRIGGER_MATERIAL_EXPIRED)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert tags_of(kms, key_id) == tags_before

    # The operator resumes by removing the handler's record; then the stack imports again.
    kms.untag_resource(KeyId=key_id, TagKeys=[contract.TAG_VALID_TO])
    assert invoke("Create", properties)["Status"] == "SUCCESS"
    assert_key_holds(kms, key_id, material)
    assert contract.TAG_VALID_TO in tags_of(kms, key_id)


def tags_of(kms: "KMSClient", key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


def rotated(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> tuple[str, dict[str, str], list[bytes]]:
    """A key imported, then rotated to new material by the real handler; a ciphertext made
    under each material."""
    old, new = os.urandom(32), os.urandom(32)
    key_id = external_key(kms)
    created = secretsmanager.create_secret(
        Name=f"revoke/{uuid.uuid4()}", SecretString=materials_document(old)
    )
    first = import_properties(
        key_id,
        created["ARN"],
        **REVOKE,
        **{
            contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true",
            contract.PROP_MATERIAL_VERSION_ID: created["VersionId"],
        },
    )
    response = invoke("Create", first)
    assert response["Status"] == "SUCCESS", response["Reason"]
    ciphertexts = [kms.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]]
    second_version = secretsmanager.put_secret_value(
        SecretId=created["ARN"], SecretString=materials_document(old, new)
    )["VersionId"]
    second = {**first, contract.PROP_MATERIAL_VERSION_ID: second_version}
    response = invoke("Update", second, physical_id=key_id, old_properties=first)
    assert response["Status"] == "SUCCESS", response["Reason"]
    ciphertexts.append(kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"])
    assert import_states(kms, key_id) == ["IMPORTED", "IMPORTED"]
    return key_id, second, ciphertexts


def import_states(kms: "KMSClient", key_id: str) -> list[str]:
    rotations = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    return [entry["ImportState"] for entry in rotations["Rotations"]]


def assert_fully_revoked(kms: "KMSClient", key_id: str, ciphertexts: list[bytes]) -> None:
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert import_states(kms, key_id) == ["PENDING_IMPORT", "PENDING_IMPORT"]
    for ciphertext in ciphertexts:
        with pytest.raises(kms.exceptions.KMSInvalidStateException):
            kms.decrypt(CiphertextBlob=ciphertext)


def test_revocation_of_a_rotated_key_leaves_no_material_behind(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id, properties, ciphertexts = rotated(invoke, kms, secretsmanager)
    response = invoke("Delete", properties, physical_id=key_id)
    assert response["Status"] == "SUCCESS", response["Reason"]
    assert_fully_revoked(kms, key_id, ciphertexts)
    # CloudFormation's retry of the Delete finds nothing left and succeeds.
    assert invoke("Delete", properties, physical_id=key_id)["Status"] == "SUCCESS"
    assert_fully_revoked(kms, key_id, ciphertexts)


def test_a_retried_delete_finishes_a_partial_revocation(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id, properties, ciphertexts = rotated(invoke, kms, secretsmanager)
    # What the old handler did, or a Delete cut short after its first call: only the current
    # material goes; the key is PendingImport, the older material still imported.
    kms.delete_imported_key_material(KeyId=key_id)
    assert sorted(import_states(kms, key_id)) == ["IMPORTED", "PENDING_IMPORT"]
    response = invoke("Delete", properties, physical_id=key_id)
    assert response["Status"] == "SUCCESS", response["Reason"]
    assert_fully_revoked(kms, key_id, ciphertexts)


def test_break_glass_revocation_stays_revoked_until_resumed(
    invoke: Any, renew: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    """An operator deletes the material by hand (the break-glass path, README); neither the
    schedule, nor the expiration rule, nor a redeployment brings it back until they resume."""
    key_id, material, properties = imported(invoke, kms, secretsmanager)
    ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
    kms.delete_imported_key_material(KeyId=key_id)

    for trigger in (contract.TRIGGER_SCHEDULE, contract.TRIGGER_MATERIAL_EXPIRED):
        with pytest.raises(ImportFailure, match="revoked, not expired"):
            renew(properties, trigger=trigger)
    response = invoke("Update", properties, physical_id=key_id, old_properties=properties)
    assert response["Status"] == "FAILED"
    assert "revoked, not expired" in response["Reason"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.decrypt(CiphertextBlob=ciphertext)

    kms.untag_resource(KeyId=key_id, TagKeys=[contract.TAG_VALID_TO])
    summary = renew(properties)
    assert summary["Renewed"] is True
    assert "PendingImport" in summary["Why"]
    assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"before"
    assert_key_holds(kms, key_id, material)
    assert contract.TAG_VALID_TO in tags_of(kms, key_id)
