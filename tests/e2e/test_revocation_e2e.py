"""Delete with and without revocation, against LocalStack."""

import os
from typing import TYPE_CHECKING, Any

import pytest
from support.events import import_properties
from support.keys import assert_key_holds, external_key, new_secret

from imported_key_handler import contract

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
    assert invoke("Delete", gone, physical_id="gone")["Status"] == "SUCCESS"


def test_revoked_key_comes_back_when_the_stack_imports_again(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id, material, properties = imported(invoke, kms, secretsmanager, **REVOKE)
    assert invoke("Delete", properties, physical_id=key_id)["Status"] == "SUCCESS"
    # A rolled-back stack deletion sends Create again: the same material restores the key.
    assert invoke("Create", properties)["Status"] == "SUCCESS"
    assert_key_holds(kms, key_id, material)
