"""The handler's proof on demand (``{"ImportedKeyVerify": {"KeyId": ...}}``, what
``imported-keys verify`` sends), through the real entry point against LocalStack: it proves the
key holds its secret's material by KMS's own answers, and changes nothing."""

import base64
import os
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from support.events import import_properties
from support.keys import external_key, materials_document, new_secret
from support.lambda_context import FakeLambdaContext
from support.localstack import LocalStack

from imported_key_handler import clients, contract, entry
from imported_key_handler.errors import ImportFailure
from imported_key_handler.verification import VERIFIED_MAC, VERIFIED_MATERIAL_ID

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = pytest.mark.localstack


@pytest.fixture
def verify(invoke: Any, localstack: LocalStack) -> Any:
    """Send a verify event to the real entry point (played as Lambda by ``invoke``)."""

    def run(key_id: str) -> Any:
        with clients.endpoint_for_tests(localstack.endpoint):
            return entry.handler(
                {contract.VERIFY_EVENT: {contract.RENEWAL_KEY_ID: key_id}}, FakeLambdaContext(120)
            )

    return run


def unchanged(kms: "KMSClient", key_id: str) -> dict[str, Any]:
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    rotations = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    return {
        "ValidTo": metadata.get("ValidTo"),
        "State": metadata["KeyState"],
        "Current": metadata.get("CurrentKeyMaterialId"),
        "Materials": sorted(
            (r["KeyMaterialId"], r.get("ValidTo"), r["KeyMaterialState"])
            for r in rotations["Rotations"]
        ),
    }


def test_a_symmetric_key_is_proven_by_kms_taking_its_material_again_unchanged(
    invoke: Any, verify: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id = external_key(kms)
    secret = new_secret(secretsmanager, SecretBinary=os.urandom(32))
    properties = import_properties(key_id, secret, **{contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048"})
    assert invoke("Create", properties)["Status"] == "SUCCESS"
    before = unchanged(kms, key_id)
    assert verify(key_id) == {"KeyId": key_id, "Verified": VERIFIED_MATERIAL_ID, "Materials": 1}
    assert unchanged(kms, key_id) == before

    # The secret now holds other bytes (rewritten in place, no version pinned): refused.
    secretsmanager.put_secret_value(
        SecretId=secret, SecretString=base64.b64encode(os.urandom(32)).decode()
    )
    with pytest.raises(ImportFailure, match="original material"):
        verify(key_id)
    assert unchanged(kms, key_id) == before


def test_every_material_of_a_rotated_key_is_proven(
    invoke: Any, verify: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    key_id = external_key(kms)
    created = secretsmanager.create_secret(
        Name=f"verify/{uuid.uuid4()}", SecretString=materials_document(old)
    )
    rotating = {
        contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true",
        contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
    }
    first = import_properties(
        key_id,
        created["ARN"],
        **rotating,
        **{contract.PROP_MATERIAL_VERSION_ID: created["VersionId"]},
    )
    assert invoke("Create", first)["Status"] == "SUCCESS"
    version = secretsmanager.put_secret_value(
        SecretId=created["ARN"], SecretString=materials_document(old, new)
    )["VersionId"]
    second = {**first, contract.PROP_MATERIAL_VERSION_ID: version}
    assert invoke("Update", second, physical_id=key_id, old_properties=first)["Status"] == (
        "SUCCESS"
    )
    before = unchanged(kms, key_id)
    assert verify(key_id)["Materials"] == 2
    assert unchanged(kms, key_id) == before


def test_an_hmac_key_is_proven_by_its_mac_and_a_revoked_key_is_not(
    invoke: Any, verify: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key_id = kms.create_key(Origin="EXTERNAL", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")[
        "KeyMetadata"
    ]["KeyId"]
    secret = new_secret(secretsmanager, SecretBinary=os.urandom(32))
    properties = import_properties(
        key_id,
        secret,
        **{
            contract.PROP_KEY_SPEC: "HMAC_256",
            contract.PROP_KEY_USAGE: "GENERATE_VERIFY_MAC",
            contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
        },
    )
    assert invoke("Create", properties)["Status"] == "SUCCESS"
    assert verify(key_id)["Verified"] == VERIFIED_MAC
    kms.delete_imported_key_material(KeyId=key_id)
    with pytest.raises(ImportFailure, match="holds no material"):
        verify(key_id)


def test_a_key_that_is_not_the_handlers_is_refused_before_any_secret_is_read(
    invoke: Any, verify: Any, kms: "KMSClient"
) -> None:
    key_id = external_key(kms)
    with pytest.raises(ImportFailure, match="Refused"):
        verify(key_id)
