"""Changing the material on LocalStack (with the shim's rotation fidelity): refused without
rotation and rolled back cleanly; rotated to with it, old ciphertexts still decrypting."""

import base64
import hashlib
import hmac
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from support.events import import_properties
from support.keys import assert_key_holds, external_key, materials_document
from support.kms_blob import decrypt_localstack_ciphertext

from imported_key_handler import contract
from imported_key_handler.errors import ImportFailure
from imported_key_handler.renewal import RenewalRequest, renew_if_due
from imported_key_handler.request import ImportRequest

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = pytest.mark.localstack


def version(properties: dict[str, str], version_id: str) -> dict[str, str]:
    return {**properties, contract.PROP_MATERIAL_VERSION_ID: version_id}


@pytest.mark.aws
def test_new_material_without_rotation_fails_and_rolls_back_cleanly(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    original, replacement = os.urandom(32), os.urandom(32)
    key_id = external_key(kms)
    created = secretsmanager.create_secret(Name=f"change/{uuid.uuid4()}", SecretBinary=original)
    first = version(import_properties(key_id, created["ARN"]), created["VersionId"])
    assert invoke("Create", first)["Status"] == "SUCCESS"
    valid_to = kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"]

    # As base64 text: LocalStack 4.10's PutSecretValue garbles SecretBinary (CreateSecret is fine).
    second_version = secretsmanager.put_secret_value(
        SecretId=created["ARN"], SecretString=base64.b64encode(replacement).decode()
    )["VersionId"]
    second = version(first, second_version)
    failed = invoke("Update", second, physical_id=key_id, old_properties=first)
    assert failed["Status"] == "FAILED"
    assert "only ever accepts its original material" in failed["Reason"]
    assert "rotation_on_material_change=True" in failed["Reason"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"] == valid_to
    assert_key_holds(kms, key_id, original)

    # CloudFormation rolls back with the old properties: the old version, the old material.
    rollback = invoke("Update", first, physical_id=key_id, old_properties=second)
    assert rollback["Status"] == "SUCCESS", rollback["Reason"]
    assert_key_holds(kms, key_id, original)


@pytest.mark.aws
def test_new_material_for_an_hmac_key_fails_without_advising_rotation(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    # KMS refuses other material for every key spec; only symmetric keys can rotate to it.
    original, replacement = os.urandom(32), os.urandom(32)
    key_id = kms.create_key(Origin="EXTERNAL", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")[
        "KeyMetadata"
    ]["KeyId"]
    created = secretsmanager.create_secret(
        Name=f"change/{uuid.uuid4()}", SecretString=original.hex()
    )
    hmac_properties = {
        contract.PROP_KEY_SPEC: "HMAC_256",
        contract.PROP_KEY_USAGE: "GENERATE_VERIFY_MAC",
        contract.PROP_MATERIAL_ENCODING: "hex",
    }
    first = version(
        import_properties(key_id, created["ARN"], **hmac_properties), created["VersionId"]
    )
    response = invoke("Create", first)
    assert response["Status"] == "SUCCESS", response["Reason"]
    mac = kms.generate_mac(KeyId=key_id, Message=b"proof", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == hmac.new(original, b"proof", hashlib.sha256).digest()

    second_version = secretsmanager.put_secret_value(
        SecretId=created["ARN"], SecretString=replacement.hex()
    )["VersionId"]
    second = version(first, second_version)
    failed = invoke("Update", second, physical_id=key_id, old_properties=first)
    assert failed["Status"] == "FAILED"
    assert "a HMAC_256 key only ever accepts its original material" in failed["Reason"]
    assert "into a new key" in failed["Reason"]
    assert "rotation_on_material_change" not in failed["Reason"]

    rollback = invoke("Update", first, physical_id=key_id, old_properties=second)
    assert rollback["Status"] == "SUCCESS", rollback["Reason"]
    assert (
        kms.generate_mac(KeyId=key_id, Message=b"proof", MacAlgorithm="HMAC_SHA_256")["Mac"] == mac
    )


def test_rotation_to_new_material_keeps_old_ciphertexts(
    invoke: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    shim_clock: Callable[[datetime], None],
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    key_id = external_key(kms)
    created = secretsmanager.create_secret(
        Name=f"rotate/{uuid.uuid4()}", SecretString=materials_document(old)
    )
    rotating = {contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true"}
    first = version(import_properties(key_id, created["ARN"], **rotating), created["VersionId"])
    response = invoke("Create", first)
    assert response["Status"] == "SUCCESS", response["Reason"]
    first_material_id = response["Data"][contract.ATTR_KEY_MATERIAL_ID]
    assert len(first_material_id) == 64
    before = kms.encrypt(KeyId=key_id, Plaintext=b"written with the old material")

    second_version = secretsmanager.put_secret_value(
        SecretId=created["ARN"], SecretString=materials_document(old, new)
    )["VersionId"]
    second = version(first, second_version)
    rotated = invoke("Update", second, physical_id=key_id, old_properties=first)
    assert rotated["Status"] == "SUCCESS", rotated["Reason"]
    new_material_id = rotated["Data"][contract.ATTR_KEY_MATERIAL_ID]
    assert new_material_id not in ("", first_material_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled"
    assert metadata["CurrentKeyMaterialId"] == new_material_id

    old_plaintext = kms.decrypt(CiphertextBlob=before["CiphertextBlob"])["Plaintext"]
    assert old_plaintext == b"written with the old material"
    after = kms.encrypt(KeyId=key_id, Plaintext=b"written with the new material")
    assert decrypt_localstack_ciphertext(after["CiphertextBlob"], new) == (
        b"written with the new material"
    )
    with pytest.raises(Exception):  # noqa: B017 - any failure: it is not the old key
        decrypt_localstack_ciphertext(after["CiphertextBlob"], old)
    assert_key_holds(kms, key_id, new)
    rotations = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    states = {r["KeyMaterialId"]: r.get("KeyMaterialState") for r in rotations["Rotations"]}
    assert states == {first_material_id: "NON_CURRENT", new_material_id: "CURRENT"}

    # Deploying the same version again is idempotent: nothing new, no second rotation.
    again = invoke("Update", second, physical_id=key_id, old_properties=second)
    assert again["Status"] == "SUCCESS"
    assert again["Data"][contract.ATTR_KEY_MATERIAL_ID] == new_material_id

    # A rollback to the version from before the rotation succeeds; the rotation stays.
    rollback = invoke("Update", first, physical_id=key_id, old_properties=second)
    assert rollback["Status"] == "SUCCESS", rollback["Reason"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == (
        new_material_id
    )

    # Renewal keeps every material alive, and refuses a version that lacks the current one.
    # KMS's clock moves with the renewal's: ValidTo stays within 365 days of its request.
    later = datetime.now(UTC) + timedelta(days=350)
    renewal = RenewalRequest(ImportRequest.from_properties(second), timedelta(days=30), "schedule")
    shim_clock(later)
    result = renew_if_due(kms, secretsmanager, renewal, now=later)
    assert result.renewed
    rotations = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert all(r["ValidTo"] > later + timedelta(days=300) for r in rotations["Rotations"])
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"] == min(
        r["ValidTo"] for r in rotations["Rotations"]
    )
    stale = RenewalRequest(ImportRequest.from_properties(first), timedelta(days=30), "schedule")
    shim_clock(later + timedelta(days=340))
    with pytest.raises(ImportFailure, match="does not list"):
        renew_if_due(kms, secretsmanager, stale, now=later + timedelta(days=340))
