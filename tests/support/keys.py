"""Keys and secrets on the emulator, and the proof that a key holds exactly some material."""

import base64
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from support.kms_blob import decrypt_localstack_ciphertext, make_localstack_ciphertext

if TYPE_CHECKING:
    import pytest
    from botocore.exceptions import ClientError
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient


def external_key(kms: "KMSClient") -> str:
    """A new SYMMETRIC_DEFAULT key with Origin=EXTERNAL, waiting for its material."""
    metadata = kms.create_key(Origin="EXTERNAL", KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport"
    return metadata["KeyId"]


def import_material(
    kms: "KMSClient",
    key_id: str,
    material: bytes,
    valid_to: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Import as a client would, with a quick RSA_2048 wrapping key and the key's own Region's
    import parameters; ``extra``: ImportType, KeyMaterialId. The shim's self-checks use it."""
    from imported_key_handler.wrapping import wrap_key_material

    algorithm: Final = "RSAES_OAEP_SHA_256"
    parameters = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_2048"
    )
    expiry: dict[str, Any] = (
        {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
        if valid_to is None
        else {"ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": valid_to}
    )
    response = kms.import_key_material(
        KeyId=key_id,
        ImportToken=parameters["ImportToken"],
        EncryptedKeyMaterial=wrap_key_material(material, parameters["PublicKey"], algorithm),
        **expiry,
        **extra,
    )
    return dict(response)


ALL_KEY_MATERIAL: Final = "ALL_KEY_MATERIAL"


def materials_by_id(
    kms: "KMSClient", key_id: str, include: str | None = ALL_KEY_MATERIAL
) -> dict[str, dict[str, Any]]:
    """ListKeyRotations entries by KeyMaterialId (every material, unless ``include`` says)."""
    extra = {} if include is None else {"IncludeKeyMaterial": include}
    entries = kms.list_key_rotations(KeyId=key_id, **extra)["Rotations"]  # type: ignore[arg-type]
    return {str(entry["KeyMaterialId"]): dict(entry) for entry in entries}


def days_ahead(days: int) -> datetime:
    """A ValidTo ``days`` from now, in whole seconds as KMS keeps it."""
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def same_time(reported: Any, expected: datetime) -> bool:
    return isinstance(reported, datetime) and abs((reported - expected).total_seconds()) < 1


def error_code(error: "pytest.ExceptionInfo[ClientError]") -> str:
    return str(error.value.response["Error"]["Code"])


def materials_document(*materials: bytes) -> str:
    """A rotating key's secret: every material, oldest first, as the handler reads it."""
    return json.dumps({"materials": [base64.b64encode(m).decode() for m in materials]})


def new_secret(secrets: "SecretsManagerClient", **value: Any) -> str:
    """A new secret with ``SecretBinary=...`` or ``SecretString=...``; returns its ARN."""
    return secrets.create_secret(Name=f"test/{uuid.uuid4()}", **value)["ARN"]


def assert_key_holds(
    kms: "KMSClient",
    key_id: str,
    material: bytes,
    encryption_context: dict[str, str] | None = None,
) -> None:
    """KMS's ciphertext opens with the material; the material's ciphertext opens in KMS.

    That needs LocalStack's ciphertext format. Real KMS ciphertexts are opaque, so against a
    real account (``make test-aws``) this is an Encrypt/Decrypt round trip: it proves the key
    works, not which material it holds.
    """
    context = encryption_context or {}
    plaintext = os.urandom(48)
    blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)
    if urlsplit(kms.meta.endpoint_url).hostname != "127.0.0.1":  # not the local emulator
        decrypted = kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext=context)
        assert decrypted["Plaintext"] == plaintext
        assert decrypted["KeyId"] == blob["KeyId"]
        return
    assert decrypt_localstack_ciphertext(blob["CiphertextBlob"], material, context) == plaintext
    local = make_localstack_ciphertext(key_id, material, plaintext, context)
    assert kms.decrypt(CiphertextBlob=local, EncryptionContext=context)["Plaintext"] == plaintext
