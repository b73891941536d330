"""The real handler against LocalStack: CloudFormation events in, HTTPS answers out, and proof
that the key holds exactly the secret's material."""

import base64
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from support.binding import bind_key
from support.events import LOGICAL_ID, REGION, stack_id_for
from support.events import import_properties as props
from support.keys import assert_key_holds, external_key, new_secret

from imported_key_handler import contract

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = pytest.mark.localstack

CONTEXT = {"tenant": "e2e", "purpose": "proof"}


@pytest.mark.aws
def test_create_imports_the_secret_material(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    material = os.urandom(32)
    key_id = external_key(kms)
    secret_arn = new_secret(secretsmanager, SecretBinary=material)
    before = datetime.now(UTC)

    response = invoke("Create", props(key_id, secret_arn, **{contract.PROP_VALIDITY_DAYS: "30"}))

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == key_id
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert response["Data"] == {
        contract.ATTR_KEY_ARN: metadata["Arn"],
        contract.ATTR_KEY_ID: key_id,
        contract.ATTR_VALID_TO: metadata["ValidTo"].isoformat(),
        contract.ATTR_KEY_MATERIAL_ID: metadata["CurrentKeyMaterialId"],
        contract.ATTR_VERIFIED: "KeyMaterialId",
    }
    assert metadata["KeyState"] == "Enabled"
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    expected = before + timedelta(days=30)
    assert abs((metadata["ValidTo"] - expected).total_seconds()) < 60
    assert_key_holds(kms, key_id, material, CONTEXT)


@pytest.mark.aws
def test_secret_string_holds_base64(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    material = os.urandom(32)
    key_id = external_key(kms)
    text = base64.encodebytes(material).decode()  # with the line break `base64` adds
    secret_arn = new_secret(secretsmanager, SecretString=text)
    assert invoke("Create", props(key_id, secret_arn))["Status"] == "SUCCESS"
    assert_key_holds(kms, key_id, material, CONTEXT)


@pytest.mark.aws
def test_other_wrapping_settings(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    material = os.urandom(32)
    key_id = external_key(kms)
    secret_arn = new_secret(secretsmanager, SecretBinary=material)
    settings = {
        contract.PROP_WRAPPING_ALGORITHM: "RSAES_OAEP_SHA_1",
        contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
    }
    assert invoke("Create", props(key_id, secret_arn, **settings))["Status"] == "SUCCESS"
    assert_key_holds(kms, key_id, material, CONTEXT)


@pytest.mark.aws
def test_retry_update_rollback_and_delete_keep_the_key(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    material = os.urandom(32)
    key_id = external_key(kms)
    secret_arn = new_secret(secretsmanager, SecretBinary=material)
    original = props(key_id, secret_arn)
    assert invoke("Create", original)["Status"] == "SUCCESS"
    old_ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"written before")["CiphertextBlob"]

    # CloudFormation may send the same Create again: the same material is accepted.
    assert invoke("Create", original)["Status"] == "SUCCESS"

    shorter = props(key_id, secret_arn, **{contract.PROP_VALIDITY_DAYS: "7"})
    updated = invoke("Update", shorter, physical_id=key_id, old_properties=original)
    assert updated["Status"] == "SUCCESS"
    valid_to = kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"]
    assert valid_to.isoformat() == updated["Data"][contract.ATTR_VALID_TO]
    assert valid_to < datetime.now(UTC) + timedelta(days=8)

    forever = props(
        key_id,
        secret_arn,
        **{contract.PROP_EXPIRATION_MODEL: contract.KEY_MATERIAL_DOES_NOT_EXPIRE},
    )
    response = invoke("Update", forever, physical_id=key_id, old_properties=shorter)
    assert response["Status"] == "SUCCESS"
    assert response["Data"][contract.ATTR_VALID_TO] == ""
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in metadata

    # A failed update (the secret is gone) is rolled back with the old properties.
    broken = props(key_id, secret_arn + "-gone")
    failed = invoke("Update", broken, physical_id=key_id, old_properties=forever)
    assert failed["Status"] == "FAILED"
    rollback = invoke("Update", forever, physical_id=key_id, old_properties=broken)
    assert rollback["Status"] == "SUCCESS"

    deleted = invoke("Delete", forever, physical_id=key_id)
    assert deleted["Status"] == "SUCCESS"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=old_ciphertext)["Plaintext"] == b"written before"
    assert_key_holds(kms, key_id, material, CONTEXT)


@pytest.mark.aws
def test_delete_after_a_failed_create_succeeds(invoke: Any, kms: "KMSClient") -> None:
    key_id = external_key(kms)
    missing = f"arn:aws:secretsmanager:{REGION}:000000000000:secret:e2e/missing-AbCdEf"
    created = invoke("Create", props(key_id, missing))
    assert created["Status"] == "FAILED"
    assert created["PhysicalResourceId"]  # crhelper made one up; CloudFormation sends it back
    deleted = invoke("Delete", props(key_id, missing), physical_id=created["PhysicalResourceId"])
    assert deleted["Status"] == "SUCCESS"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


@pytest.mark.aws
@pytest.mark.parametrize(
    ("secret_value", "reason"),
    [
        (
            {"SecretBinary": os.urandom(16)},
            r"holds 16 bytes; a SYMMETRIC_DEFAULT key takes exactly 32",
        ),
        ({"SecretBinary": os.urandom(33)}, r"holds 33 bytes"),
        ({"SecretString": "this is not base64!"}, r"is not base64"),
        ({"SecretString": base64.b64encode(os.urandom(31)).decode()}, r"holds 31 bytes"),
    ],
    ids=["16-bytes", "33-bytes", "not-base64", "31-bytes-base64"],
)
def test_bad_material_fails_clearly_and_changes_nothing(
    invoke: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    secret_value: dict[str, Any],
    reason: str,
) -> None:
    key_id = external_key(kms)
    secret_arn = new_secret(secretsmanager, **secret_value)
    response = invoke("Create", props(key_id, secret_arn))
    assert response["Status"] == "FAILED"
    assert secret_arn in response["Reason"]
    assert re.search(reason, response["Reason"]), response["Reason"]
    assert response["Data"] == {}
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    stored = secretsmanager.get_secret_value(SecretId=secret_arn)
    assert {k: stored[k] for k in secret_value} == secret_value  # type: ignore[literal-required]


def test_missing_secret_fails_clearly(invoke: Any, kms: "KMSClient") -> None:
    key_id = external_key(kms)
    missing = f"arn:aws:secretsmanager:{REGION}:000000000000:secret:e2e/nothing-here-AbCdEf"
    response = invoke("Create", props(key_id, missing))
    assert response["Status"] == "FAILED"
    assert response["Reason"].startswith(f"Secret {missing} was not found")
    assert "SecretBinary" in response["Reason"]


@pytest.mark.aws
def test_key_that_is_not_external_is_refused(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    secret_arn = new_secret(secretsmanager, SecretBinary=os.urandom(32))
    response = invoke("Create", props(key_id, secret_arn))
    assert response["Status"] == "FAILED"
    assert "Origin=AWS_KMS" in response["Reason"]
    assert "Origin=EXTERNAL" in response["Reason"]


@pytest.mark.aws
def test_key_pending_deletion_is_refused_and_left_alone(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id = external_key(kms)
    secret_arn = new_secret(secretsmanager, SecretBinary=os.urandom(32))
    # Deployed (tagged) first, then scheduled for deletion behind the stack's back.
    bind_key(kms, props(key_id, secret_arn), stack_id=stack_id_for("demo"), logical_id=LOGICAL_ID)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    response = invoke("Create", props(key_id, secret_arn))
    assert response["Status"] == "FAILED"
    assert "PendingDeletion" in response["Reason"]
    assert "CancelKeyDeletion" in response["Reason"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"


@pytest.mark.aws
def test_missing_key_is_refused(invoke: Any, secretsmanager: "SecretsManagerClient") -> None:
    secret_arn = new_secret(secretsmanager, SecretBinary=os.urandom(32))
    ghost = str(uuid.uuid4())
    response = invoke("Create", props(ghost, secret_arn))
    assert response["Status"] == "FAILED"
    assert f"KMS key {ghost} does not exist" in response["Reason"]
