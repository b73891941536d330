"""Self-checks of the end-to-end support code: each piece works, and each can fail.

If these fail, the end-to-end tests built on them prove nothing, so they check the emulator
too: that KMS really holds the imported bytes, and that the KMS shim is active, needed, and
keeps to documented KMS. The tests marked ``aws`` also run against real KMS (``make test-aws``),
which checks the shim's model of KMS against the real thing.
"""

import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support import localstack as localstack_support
from support.cfn_server import CfnResponseServer
from support.events import SERVICE_TOKEN, cfn_event
from support.keys import (
    assert_key_holds,
    days_ahead,
    error_code,
    import_material,
    materials_by_id,
    same_time,
)
from support.kms_blob import (
    decrypt_localstack_ciphertext,
    make_localstack_ciphertext,
    parse_localstack_ciphertext,
)
from support.lambda_context import FakeLambdaContext
from support.localstack import (
    SHIM_DIR,
    SHIM_MARKER,
    LocalStack,
    LocalStackError,
    free_port,
    localstack_python,
    start_localstack,
)

from imported_key_handler.wrapping import wrap_key_material

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

WRAPPING_ALGORITHM: Final = "RSAES_OAEP_SHA_256"
CONTEXT = {"purpose": "selfcheck", "app": "imported-key-cdk"}


def _pending_key(kms: "KMSClient") -> str:
    metadata = kms.create_key(
        Origin="EXTERNAL", KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT"
    )["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport"
    assert metadata["Enabled"] is False
    return metadata["KeyId"]


def _import(
    kms: "KMSClient", key_id: str, material: bytes, valid_to: datetime | None
) -> dict[str, Any]:
    parameters = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm=WRAPPING_ALGORITHM, WrappingKeySpec="RSA_4096"
    )
    encrypted = wrap_key_material(material, parameters["PublicKey"], WRAPPING_ALGORITHM)
    if valid_to is None:
        response = kms.import_key_material(
            KeyId=key_id,
            ImportToken=parameters["ImportToken"],
            EncryptedKeyMaterial=encrypted,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    else:
        response = kms.import_key_material(
            KeyId=key_id,
            ImportToken=parameters["ImportToken"],
            EncryptedKeyMaterial=encrypted,
            ExpirationModel="KEY_MATERIAL_EXPIRES",
            ValidTo=valid_to,
        )
    return dict(response)


# --- LocalStack -------------------------------------------------------------------------------


@pytest.mark.localstack
def test_localstack_serves_kms_and_secretsmanager_on_loopback(
    localstack: LocalStack, secretsmanager: "SecretsManagerClient"
) -> None:
    assert localstack.endpoint.startswith("http://127.0.0.1:")
    services = localstack.health()["services"]
    assert services["kms"] == "running"
    assert services["secretsmanager"] == "running"
    assert SHIM_MARKER in localstack.log_file.read_text()

    material = os.urandom(32)
    name = f"selfcheck/{uuid.uuid4()}"
    arn = secretsmanager.create_secret(Name=name, SecretBinary=material)["ARN"]
    assert secretsmanager.get_secret_value(SecretId=arn)["SecretBinary"] == material

    print(  # figures for the report, shown with -s
        f"\nLocalStack ready in {localstack.startup_seconds:.1f} s, "
        f"RSS {localstack.rss_bytes() / 2**20:.0f} MiB"
    )


@pytest.mark.localstack
def test_imported_material_is_exactly_what_kms_uses(kms: "KMSClient") -> None:
    key_id = _pending_key(kms)
    key_arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    material = os.urandom(32)
    valid_to = datetime.now(UTC) + timedelta(days=30)

    response = _import(kms, key_id, material, valid_to)

    assert response.get("KeyId") == key_arn  # the shim's addition, as real KMS answers
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled"
    assert metadata["Enabled"] is True
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    # KMS takes whole seconds on the wire, so allow the fraction botocore drops.
    assert abs((metadata["ValidTo"] - valid_to).total_seconds()) < 1

    # KMS -> local: KMS encrypted with exactly the imported bytes.
    plaintext = os.urandom(45)
    blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=CONTEXT)[
        "CiphertextBlob"
    ]
    assert parse_localstack_ciphertext(blob).key_id == key_id
    assert decrypt_localstack_ciphertext(blob, material, CONTEXT) == plaintext
    with pytest.raises(InvalidTag):
        decrypt_localstack_ciphertext(blob, os.urandom(32), CONTEXT)
    with pytest.raises(InvalidTag):
        decrypt_localstack_ciphertext(blob, material)  # the context is bound in

    # local -> KMS: KMS decrypts what the material alone produced.
    mine = make_localstack_ciphertext(key_id, material, b"made locally", CONTEXT)
    decrypted = kms.decrypt(CiphertextBlob=mine, EncryptionContext=CONTEXT)
    assert decrypted["Plaintext"] == b"made locally"
    assert decrypted["KeyId"] == key_arn
    forged = make_localstack_ciphertext(key_id, os.urandom(32), b"made locally", CONTEXT)
    with pytest.raises(ClientError) as error:
        kms.decrypt(CiphertextBlob=forged, EncryptionContext=CONTEXT)
    assert error.value.response["Error"]["Code"] == "InvalidCiphertextException"


@pytest.mark.localstack
def test_every_wrapping_key_is_new_and_of_its_size(kms: "KMSClient") -> None:
    """The shim builds LocalStack's RSA keys from primes of earlier ones (see its docstring):
    each GetParametersForImport must still answer with a public key of its own."""
    key_id = _pending_key(kms)
    seen: set[int] = set()
    for bits, spec in [(2048, "RSA_2048"), (4096, "RSA_4096")] * 4 + [(3072, "RSA_3072")] * 2:
        parameters = kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm=WRAPPING_ALGORITHM, WrappingKeySpec=spec
        )
        public_key = serialization.load_der_public_key(parameters["PublicKey"])
        assert isinstance(public_key, rsa.RSAPublicKey)
        modulus = public_key.public_numbers().n
        assert modulus.bit_length() == bits
        assert modulus not in seen
        seen.add(modulus)

    # Material wrapped for one answer's key is not imported with the next answer's token.
    first, second = (
        kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm=WRAPPING_ALGORITHM, WrappingKeySpec="RSA_4096"
        )
        for _ in range(2)
    )
    wrapped = wrap_key_material(os.urandom(32), first["PublicKey"], WRAPPING_ALGORITHM)
    with pytest.raises(ClientError) as error:
        kms.import_key_material(
            KeyId=key_id,
            ImportToken=second["ImportToken"],
            EncryptedKeyMaterial=wrapped,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    # LocalStack's answer to an unwrap that fails (KMS's would be InvalidCiphertextException).
    assert "Decryption failed" in error.value.response["Error"]["Message"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


@pytest.mark.localstack
def test_shim_follows_the_expiration_model_and_material_deletion(kms: "KMSClient") -> None:
    key_id = _pending_key(kms)
    material = os.urandom(32)

    _import(kms, key_id, material, datetime.now(UTC) + timedelta(days=2))
    assert "ValidTo" in kms.describe_key(KeyId=key_id)["KeyMetadata"]

    _import(kms, key_id, material, valid_to=None)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in metadata

    _import(kms, key_id, material, datetime.now(UTC) + timedelta(days=3))
    kms.delete_imported_key_material(KeyId=key_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport"
    assert "ValidTo" not in metadata


# --- the shim's key materials (EXTERNAL symmetric keys) ----------------------------------------

MATERIAL_ID = re.compile(r"[0-9a-f]{64}")


@pytest.mark.localstack
def test_shim_names_key_material_and_refuses_other_material(kms: "KMSClient") -> None:
    # Fixed once: KMS dates are whole seconds, and a test may cross a second.
    in_30_days, in_40_days = days_ahead(30), days_ahead(40)
    key_id = _pending_key(kms)
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    material, other = os.urandom(32), os.urandom(32)

    response = import_material(kms, key_id, material, in_30_days)
    material_id = response["KeyMaterialId"]
    assert MATERIAL_ID.fullmatch(material_id)
    assert response["KeyId"] == arn
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == material_id
    assert metadata["KeyState"] == "Enabled"

    # The same material again, by default or named by its ID: the same ID, a new ValidTo.
    again = import_material(
        kms,
        key_id,
        material,
        in_40_days,
        ImportType="EXISTING_KEY_MATERIAL",
        KeyMaterialId=material_id,
    )
    assert again["KeyMaterialId"] == material_id
    assert same_time(kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"], in_40_days)
    assert import_material(kms, key_id, material)["KeyMaterialId"] == material_id

    # The ID depends on the key as well as on the material.
    elsewhere = import_material(kms, _pending_key(kms), material)["KeyMaterialId"]
    assert MATERIAL_ID.fullmatch(elsewhere)
    assert elsewhere != material_id

    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        import_material(kms, key_id, other)  # unknown material, EXISTING by default
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        import_material(kms, key_id, material, KeyMaterialId=elsewhere)  # ID of other material
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        import_material(kms, key_id, material, ImportType="NEW_KEY_MATERIAL")  # not new
    with pytest.raises(ClientError) as error:
        import_material(
            kms, key_id, other, ImportType="NEW_KEY_MATERIAL", KeyMaterialId=material_id
        )
    assert error_code(error) == "ValidationException"

    # None of the refusals touched the key.
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == material_id
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in metadata
    assert list(materials_by_id(kms, key_id)) == [material_id]
    assert_key_holds(kms, key_id, material, CONTEXT)


@pytest.mark.localstack
def test_shim_rotates_to_new_material_and_keeps_the_old_one(kms: "KMSClient") -> None:
    # Fixed once: KMS dates are whole seconds, and a test may cross a second.
    in_30_days, in_60_days, in_90_days = days_ahead(30), days_ahead(60), days_ahead(90)
    key_id = _pending_key(kms)
    old, new = os.urandom(32), os.urandom(32)
    old_id = import_material(kms, key_id, old, in_30_days)["KeyMaterialId"]
    old_blob = kms.encrypt(KeyId=key_id, Plaintext=b"written before", EncryptionContext=CONTEXT)[
        "CiphertextBlob"
    ]

    new_id = import_material(kms, key_id, new, in_60_days, ImportType="NEW_KEY_MATERIAL")[
        "KeyMaterialId"
    ]
    assert MATERIAL_ID.fullmatch(new_id)
    assert new_id != old_id
    # Pending material is not used yet: the key still encrypts with, and reports, the old one.
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == old_id
    assert same_time(metadata["ValidTo"], in_30_days)
    assert_key_holds(kms, key_id, old, CONTEXT)
    rotations = materials_by_id(kms, key_id)
    assert rotations[old_id]["KeyMaterialState"] == "CURRENT"
    assert rotations[new_id]["KeyMaterialState"] == "PENDING_ROTATION"
    assert rotations[new_id]["ImportState"] == "IMPORTED"
    assert materials_by_id(kms, key_id, include=None) == {}  # ROTATIONS_ONLY: nothing rotated yet
    with pytest.raises(kms.exceptions.KMSInvalidStateException):  # one pending at a time
        import_material(kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL")

    before = datetime.now(UTC) - timedelta(seconds=5)
    kms.rotate_key_on_demand(KeyId=key_id)

    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == new_id
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    # The earliest ValidTo of the key's materials: the old one's, not the current one's.
    assert same_time(metadata["ValidTo"], in_30_days)
    decrypted = kms.decrypt(CiphertextBlob=old_blob, EncryptionContext=CONTEXT)
    assert decrypted["Plaintext"] == b"written before"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"written after", EncryptionContext=CONTEXT)[
        "CiphertextBlob"
    ]
    assert decrypt_localstack_ciphertext(blob, new, CONTEXT) == b"written after"
    with pytest.raises(InvalidTag):
        decrypt_localstack_ciphertext(blob, old, CONTEXT)
    rotations = materials_by_id(kms, key_id)
    assert set(rotations) == {old_id, new_id}
    assert rotations[old_id]["KeyMaterialState"] == "NON_CURRENT"
    assert rotations[old_id]["ImportState"] == "IMPORTED"
    assert same_time(rotations[old_id]["ValidTo"], in_30_days)
    assert "RotationDate" not in rotations[old_id]
    assert rotations[new_id]["KeyMaterialState"] == "CURRENT"
    assert rotations[new_id]["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert same_time(rotations[new_id]["ValidTo"], in_60_days)
    assert rotations[new_id]["RotationType"] == "ON_DEMAND"
    assert before <= rotations[new_id]["RotationDate"] <= datetime.now(UTC) + timedelta(seconds=5)
    assert set(materials_by_id(kms, key_id, include="ROTATIONS_ONLY")) == {new_id}
    assert set(materials_by_id(kms, key_id, include=None)) == {new_id}
    with pytest.raises(kms.exceptions.UnsupportedOperationException):  # nothing pending
        kms.rotate_key_on_demand(KeyId=key_id)

    # Re-importing the old material renews its ValidTo and nothing else.
    assert import_material(kms, key_id, old, in_90_days)["KeyMaterialId"] == old_id
    rotations = materials_by_id(kms, key_id)
    assert rotations[old_id]["KeyMaterialState"] == "NON_CURRENT"
    assert same_time(rotations[old_id]["ValidTo"], in_90_days)
    assert same_time(rotations[new_id]["ValidTo"], in_60_days)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == new_id
    assert same_time(metadata["ValidTo"], in_60_days)
    assert_key_holds(kms, key_id, new, CONTEXT)


@pytest.mark.localstack
def test_shim_deletes_one_material_at_a_time(kms: "KMSClient") -> None:
    # Fixed once: KMS dates are whole seconds, and a test may cross a second.
    in_10_days, in_30_days, in_45_days = days_ahead(10), days_ahead(30), days_ahead(45)
    key_id = _pending_key(kms)
    old, new = os.urandom(32), os.urandom(32)
    old_id = import_material(kms, key_id, old, in_30_days)["KeyMaterialId"]
    old_blob = kms.encrypt(KeyId=key_id, Plaintext=b"old", EncryptionContext=CONTEXT)[
        "CiphertextBlob"
    ]
    new_id = import_material(kms, key_id, new, ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=key_id)

    # A non-current material: the key waits for it, the current material stays reported.
    deleted = kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=old_id)
    assert deleted["KeyMaterialId"] == old_id
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport"
    assert metadata["CurrentKeyMaterialId"] == new_id
    assert materials_by_id(kms, key_id)[old_id]["ImportState"] == "PENDING_IMPORT"
    assert "ValidTo" not in materials_by_id(kms, key_id)[old_id]
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.decrypt(CiphertextBlob=old_blob, EncryptionContext=CONTEXT)
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        import_material(kms, key_id, os.urandom(32), in_30_days)  # still only known material
    assert import_material(kms, key_id, old, in_45_days)["KeyMaterialId"] == old_id
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled"
    assert metadata["CurrentKeyMaterialId"] == new_id
    assert kms.decrypt(CiphertextBlob=old_blob, EncryptionContext=CONTEXT)["Plaintext"] == b"old"
    assert_key_holds(kms, key_id, new, CONTEXT)

    # Without an ID: the current material. The old one is still imported and still expires.
    assert kms.delete_imported_key_material(KeyId=key_id)["KeyMaterialId"] == new_id
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport"
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert same_time(metadata["ValidTo"], in_45_days)
    assert materials_by_id(kms, key_id)[new_id]["ImportState"] == "PENDING_IMPORT"
    assert import_material(kms, key_id, new, in_10_days)["KeyMaterialId"] == new_id
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled"
    assert same_time(metadata["ValidTo"], in_10_days)
    assert kms.decrypt(CiphertextBlob=old_blob, EncryptionContext=CONTEXT)["Plaintext"] == b"old"
    assert_key_holds(kms, key_id, new, CONTEXT)

    # Pending material is not part of the key yet: deleting it drops it, the key stays usable.
    pending_id = import_material(kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL")[
        "KeyMaterialId"
    ]
    kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=pending_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert set(materials_by_id(kms, key_id)) == {old_id, new_id}
    import_material(kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL")  # room again
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId="0" * 64)


@pytest.mark.localstack
def test_shim_reports_the_earliest_valid_to_of_the_permanent_materials(kms: "KMSClient") -> None:
    # Fixed once: KMS dates are whole seconds, and a test may cross a second.
    in_5_days, in_10_days, in_30_days = days_ahead(5), days_ahead(10), days_ahead(30)
    key_id = _pending_key(kms)
    first = os.urandom(32)
    import_material(kms, key_id, first, in_30_days)

    # Pending material is not permanently associated with the key: its ValidTo does not count.
    pending_id = import_material(
        kms, key_id, os.urandom(32), in_10_days, ImportType="NEW_KEY_MATERIAL"
    )["KeyMaterialId"]
    assert same_time(kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"], in_30_days)

    # Once rotated in it is: now it is the earliest, and current.
    kms.rotate_key_on_demand(KeyId=key_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == pending_id
    assert same_time(metadata["ValidTo"], in_10_days)

    # Renewing the first material for less time makes it the earliest, though not current.
    import_material(kms, key_id, first, in_5_days)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == pending_id
    assert same_time(metadata["ValidTo"], in_5_days)

    # A material that does not expire does not hide one that does.
    import_material(kms, key_id, first)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert same_time(metadata["ValidTo"], in_10_days)


def _external_key(kms: "KMSClient", key_spec: str) -> str:
    usage = "ENCRYPT_DECRYPT" if key_spec == "SYMMETRIC_DEFAULT" else "GENERATE_VERIFY_MAC"
    return kms.create_key(
        Origin="EXTERNAL",
        KeySpec=key_spec,  # type: ignore[arg-type]
        KeyUsage=usage,  # type: ignore[arg-type]
    )["KeyMetadata"]["KeyId"]


# Also run against real KMS by `make test-aws`: documented KMS behaviour the shim models.
@pytest.mark.localstack
@pytest.mark.aws
@pytest.mark.parametrize("key_spec", ["SYMMETRIC_DEFAULT", "HMAC_256"])
def test_valid_to_more_than_365_days_ahead_is_refused(kms: "KMSClient", key_spec: str) -> None:
    key_id = _external_key(kms, key_spec)
    material = os.urandom(32)
    now = datetime.now(UTC).replace(microsecond=0)
    refused = (
        now + timedelta(days=366),
        now + timedelta(days=365, minutes=5),
        now - timedelta(minutes=1),  # "must be a future date and time"
    )
    for valid_to in refused:
        with pytest.raises(ClientError) as error:
            import_material(kms, key_id, material, valid_to)
        assert error_code(error) == "ValidationException"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"

    import_material(kms, key_id, material, now + timedelta(days=365) - timedelta(minutes=5))
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


@pytest.mark.localstack
def test_shim_judges_valid_to_on_the_moved_clock(kms: "KMSClient", shim_clock: Any) -> None:
    key_id = _external_key(kms, "SYMMETRIC_DEFAULT")
    material = os.urandom(32)
    now = datetime.now(UTC).replace(microsecond=0)
    with pytest.raises(ClientError) as error:
        import_material(kms, key_id, material, now + timedelta(days=366))
    assert "at most 365 days from the request date" in error.value.response["Error"]["Message"]

    # With the clock moved, the limit moves with it: a year after the moved day, not today.
    later = now + timedelta(days=400)
    shim_clock(later)
    import_material(kms, key_id, material, later + timedelta(days=365))
    with pytest.raises(ClientError) as error:
        import_material(kms, key_id, material, later + timedelta(days=365, seconds=1))
    assert error_code(error) == "ValidationException"
    with pytest.raises(ClientError) as error:
        import_material(kms, key_id, material, now + timedelta(days=30))  # past, moved clock
    assert error_code(error) == "ValidationException"
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert same_time(metadata["ValidTo"], later + timedelta(days=365))


@pytest.mark.localstack
def test_shim_allows_25_on_demand_rotations_of_a_key(kms: "KMSClient") -> None:
    key_id = _pending_key(kms)
    import_material(kms, key_id, os.urandom(32))
    for _ in range(25):
        import_material(kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL")
        kms.rotate_key_on_demand(KeyId=key_id)
    last = import_material(kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    with pytest.raises(kms.exceptions.LimitExceededException):
        kms.rotate_key_on_demand(KeyId=key_id)
    rotations = materials_by_id(kms, key_id)
    assert len(rotations) == 27
    assert rotations[last["KeyMaterialId"]]["KeyMaterialState"] == "PENDING_ROTATION"
    assert len(materials_by_id(kms, key_id, include=None)) == 25

    # LocalStack's own keys (material it made) get KMS's limit too, not LocalStack's 10.
    own = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(25):
        kms.rotate_key_on_demand(KeyId=own)
    with pytest.raises(kms.exceptions.LimitExceededException):
        kms.rotate_key_on_demand(KeyId=own)


def _private_key_der(key_spec: str) -> bytes:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if key_spec == "RSA_2048"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _import_one(
    kms: "KMSClient", key_id: str, material: bytes, algorithm: str, **extra: Any
) -> None:
    parameters = kms.get_parameters_for_import(
        KeyId=key_id,
        WrappingAlgorithm=algorithm,  # type: ignore[arg-type]
        WrappingKeySpec="RSA_2048",
    )
    kms.import_key_material(
        KeyId=key_id,
        ImportToken=parameters["ImportToken"],
        EncryptedKeyMaterial=wrap_key_material(material, parameters["PublicKey"], algorithm),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        **extra,
    )


# Also run against real KMS by `make test-aws`: documented KMS behaviour the shim models.
@pytest.mark.localstack
@pytest.mark.aws
@pytest.mark.parametrize(
    ("key_spec", "key_usage"),
    [
        ("RSA_2048", "SIGN_VERIFY"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
    ],
)
def test_shim_refuses_other_material_for_every_key_spec(
    kms: "KMSClient", key_spec: str, key_usage: str
) -> None:
    hmac_key = key_spec.startswith("HMAC")
    algorithm = WRAPPING_ALGORITHM if hmac_key else "RSA_AES_KEY_WRAP_SHA_256"
    make: Any = (lambda: os.urandom(32)) if hmac_key else (lambda: _private_key_der(key_spec))
    key_id = kms.create_key(
        Origin="EXTERNAL",
        KeySpec=key_spec,  # type: ignore[arg-type]
        KeyUsage=key_usage,  # type: ignore[arg-type]
    )["KeyMetadata"]["KeyId"]
    material, other = make(), make()

    _import_one(kms, key_id, material, algorithm)
    proof = _proof(kms, key_id, key_spec)
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        _import_one(kms, key_id, other, algorithm)
    _import_one(kms, key_id, material, algorithm)  # the same material: accepted again
    kms.delete_imported_key_material(KeyId=key_id)
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        _import_one(kms, key_id, other, algorithm)  # not after a deletion either
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    _import_one(kms, key_id, material, algorithm)
    assert _proof(kms, key_id, key_spec) == proof
    # One material only: no ImportType, no KeyMaterialId for these keys.
    for extra in ({"ImportType": "EXISTING_KEY_MATERIAL"}, {"KeyMaterialId": "0" * 64}):
        with pytest.raises(ClientError) as error:
            _import_one(kms, key_id, material, algorithm, **extra)
        assert error_code(error) == "ValidationException"


def _proof(kms: "KMSClient", key_id: str, key_spec: str) -> bytes:
    """What only this key's material gives: its public key, or its MAC of a fixed message."""
    if key_spec.startswith("HMAC"):
        return kms.generate_mac(KeyId=key_id, Message=b"proof", MacAlgorithm="HMAC_SHA_256")["Mac"]
    return kms.get_public_key(KeyId=key_id)["PublicKey"]


@pytest.mark.localstack
def test_localstack_as_shipped_lacks_valid_to_and_stops_cleanly(tmp_path: Path) -> None:
    # Fails when a LocalStack upgrade stores ValidTo itself: then the shim should go.
    with start_localstack(tmp_path, shim=False) as plain:
        kms = plain.kms()
        key_id = _pending_key(kms)
        response = _import(kms, key_id, os.urandom(32), datetime.now(UTC) + timedelta(days=30))
        assert "KeyId" not in response
        assert "KeyMaterialId" not in response
        _import(kms, key_id, os.urandom(32), valid_to=None)  # other material: real KMS refuses
        _import(kms, key_id, os.urandom(32), datetime.now(UTC) + timedelta(days=400))  # too far
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert metadata["KeyState"] == "Enabled"
        assert "ValidTo" not in metadata
        assert SHIM_MARKER not in plain.log_file.read_text()
    assert plain.process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(plain.pid, 0)  # nothing of its process group is left
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", plain.port), timeout=2).close()


@pytest.mark.localstack
def test_start_moves_on_when_the_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LocalStack does not exit when its port is taken: it prints "Ready." and serves nothing,
    # while whoever holds the port answers. The support code must notice and pick another.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, free_port()])
        monkeypatch.setattr(localstack_support, "free_port", lambda: next(ports))
        with start_localstack(tmp_path) as stack:
            assert stack.port != taken
            assert stack.health()["services"]["kms"] == "running"
    assert "Address already in use" in (tmp_path / f"localstack-{taken}.log").read_text()


def _fake_localstack(root: Path, provider_source: str | None) -> Path:
    package = root / "localstack" / "services" / "kms"
    package.mkdir(parents=True)
    for directory in (package, package.parent, package.parent.parent):
        (directory / "__init__.py").write_text("")
    if provider_source is not None:
        (package / "provider.py").write_text(provider_source)
    return root


# Everything the shim checks for, except LocalStack's private unwrap of the key material.
_PROVIDER_WITHOUT_UNWRAP = """
class KmsProvider:
    def import_key_material(
        self, context, key_id, import_token, encrypted_key_material, valid_to=None,
        expiration_model=None, import_type=None, key_material_description=None,
        key_material_id=None, **kwargs): ...
    def delete_imported_key_material(self, context, key_id, key_material_id=None, **kwargs): ...
    def rotate_key_on_demand(self, context, request): ...
    def replicate_key(self, context, request): ...
    def list_key_rotations(
        self, context, key_id, include_key_material=None, limit=None, marker=None, **kwargs): ...
    @staticmethod
    def _get_kms_key(account_id, region_name, any_type_of_key_id, any_key_state_allowed=False,
                     enabled_key_allowed=True, disabled_key_allowed=False): ...
    @staticmethod
    def _get_store(account_id, region_name): ...
    @staticmethod
    def _parse_key_id(key_id_or_arn, context): ...
"""


def _run_with_shim(pythonpath: list[Path], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(localstack_python()), "-c", code],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(map(str, pythonpath))},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=pythonpath[0],
    )


def test_shim_patches_the_installed_localstack(tmp_path: Path) -> None:
    result = _run_with_shim(
        [SHIM_DIR],
        "from localstack.services.kms.provider import KmsProvider as P; "
        "print(P.import_key_material.__wrapped__.__qualname__)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "KmsProvider.import_key_material"
    assert SHIM_MARKER in result.stderr


@pytest.mark.parametrize(
    ("provider_source", "complaint"),
    [
        (None, "cannot import localstack.services.kms.provider"),
        ("class Other: pass\n", "KmsProvider is missing"),
        (_PROVIDER_WITHOUT_UNWRAP, "KmsProvider._decrypt_wrapped_key_material is missing"),
        (
            "class KmsProvider:\n"
            "    def import_key_material(self, context, key_id, **kwargs): ...\n",
            "KmsProvider.import_key_material has no parameter(s) valid_to",
        ),
    ],
)
def test_shim_stops_the_interpreter_when_its_target_moved(
    tmp_path: Path, provider_source: str | None, complaint: str
) -> None:
    fake = _fake_localstack(tmp_path, provider_source)
    result = _run_with_shim([fake, SHIM_DIR], "print('LocalStack would start here')")
    assert result.returncode != 0
    assert "LocalStack would start here" not in result.stdout
    assert complaint in result.stderr


def _fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_start_reports_the_log_tail_when_localstack_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "LOCALSTACK_PYTHON", str(_fake_python(tmp_path, "echo 'boom: no runtime'; exit 3"))
    )
    with pytest.raises(LocalStackError, match=r"exited with code 3(.|\n)*boom: no runtime"):
        start_localstack(tmp_path / "logs", timeout=30)


def test_start_gives_up_after_its_timeout_and_kills_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    monkeypatch.setenv(
        "LOCALSTACK_PYTHON",
        str(_fake_python(tmp_path, f"echo $$ > {pid_file}; echo 'still booting'; exec sleep 60")),
    )
    started = time.monotonic()
    with pytest.raises(LocalStackError, match=r"not ready within 1 s(.|\n)*still booting"):
        start_localstack(tmp_path / "logs", timeout=1)
    assert time.monotonic() - started < 30
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_start_names_a_missing_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALSTACK_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(LocalStackError, match="LOCALSTACK_PYTHON"):
        start_localstack(tmp_path / "logs")


# --- ciphertext format (offline) --------------------------------------------------------------


def test_local_ciphertext_round_trips_and_binds_material_and_context() -> None:
    key_id, material = str(uuid.uuid4()), os.urandom(32)
    for plaintext in (b"", b"x" * 15, b"y" * 16, os.urandom(100)):
        blob = make_localstack_ciphertext(key_id, material, plaintext, CONTEXT)
        assert len(blob) == 68 + (len(plaintext) // 16 + 1) * 16
        assert decrypt_localstack_ciphertext(blob, material, dict(reversed(CONTEXT.items()))) == (
            plaintext
        )
    with pytest.raises(InvalidTag):
        decrypt_localstack_ciphertext(blob, material, {**CONTEXT, "purpose": "other"})
    with pytest.raises(ValueError, match="cannot be a LocalStack ciphertext"):
        decrypt_localstack_ciphertext(blob[:-1], material, CONTEXT)
    arn = f"arn:aws:kms:us-east-1:000000000000:key/{key_id}"
    assert parse_localstack_ciphertext(make_localstack_ciphertext(arn, material, b"")).key_id == (
        key_id
    )
    with pytest.raises(ValueError, match="not 36 bytes"):
        make_localstack_ciphertext("alias/short", material, b"")


# --- CloudFormation response server ------------------------------------------------------------


def test_response_server_receives_a_verified_https_put(cfn_server: CfnResponseServer) -> None:
    url = cfn_server.response_url("create")
    assert url != cfn_server.response_url("create")
    parts = urlsplit(url)
    body = json.dumps({"Status": "SUCCESS", "PhysicalResourceId": "abc"})

    context = ssl.create_default_context(cafile=str(cfn_server.ca_file))
    connection = http.client.HTTPSConnection(parts.netloc, context=context, timeout=10)
    try:
        connection.request("PUT", f"{parts.path}?{parts.query}", body=body)
        assert connection.getresponse().status == 200
    finally:
        connection.close()

    assert cfn_server.wait_for(url, timeout=5) == json.loads(body)
    assert cfn_server.responses == {url: json.loads(body)}
    assert len(cfn_server.all_responses(url)) == 1


def test_response_server_is_untrusted_without_its_ca_and_waits_are_bounded(
    cfn_server: CfnResponseServer,
) -> None:
    url = cfn_server.response_url("untrusted")
    parts = urlsplit(url)
    # A client that trusts nothing, so not the server's private CA either.
    connection = http.client.HTTPSConnection(
        parts.netloc, context=ssl.create_default_context(capath="/nonexistent"), timeout=10
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("PUT", parts.path, body="{}")
    connection.close()

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no response PUT"):
        cfn_server.wait_for(url, timeout=0.3)
    assert time.monotonic() - started < 5
    assert cfn_server.errors  # the rejected handshake was seen by the server


def test_crhelper_reaches_the_server_through_ssl_cert_file(
    cfn_server: CfnResponseServer,
) -> None:
    # crhelper retries a failed PUT forever, so it runs in a child process with a deadline.
    url = cfn_server.response_url("crhelper")
    code = (
        "import sys; from crhelper.utils import _send_response; "
        "_send_response(sys.argv[1], {'Status': 'SUCCESS', 'Reason': 'ok'})"
    )
    subprocess.run(
        [sys.executable, "-c", code, url],
        env={**os.environ, "AWS_REGION": "us-east-1"},  # SSL_CERT_FILE comes from the fixture
        timeout=30,
        check=True,
        capture_output=True,
    )
    assert cfn_server.wait_for(url, timeout=5) == {"Status": "SUCCESS", "Reason": "ok"}


# --- fakes and builders -----------------------------------------------------------------------


def test_fake_context_counts_down_to_zero() -> None:
    now = [100.0]
    context = FakeLambdaContext(timeout_s=2, clock=lambda: now[0])
    assert context.get_remaining_time_in_millis() == 2000
    now[0] += 1.5
    assert context.get_remaining_time_in_millis() == 500
    now[0] += 5
    assert context.get_remaining_time_in_millis() == 0
    assert context.invoked_function_arn.endswith(f":function:{context.function_name}")
    assert context.log_group_name == f"/aws/lambda/{context.function_name}"
    assert "[$LATEST]" in context.log_stream_name
    assert uuid.UUID(context.aws_request_id)
    real_clock = FakeLambdaContext(timeout_s=60)
    assert 59_000 < real_clock.get_remaining_time_in_millis() <= 60_000


def test_cfn_event_has_the_shape_cloudformation_sends() -> None:
    url = "https://127.0.0.1:1/x"
    create = cfn_event("Create", {"SecretArn": "arn:s", "ValidityDays": 30, "Flag": True}, url)
    assert create["ResourceProperties"] == {
        "ServiceToken": SERVICE_TOKEN,
        "SecretArn": "arn:s",
        "ValidityDays": "30",
        "Flag": "true",
    }
    assert create["ResourceType"] == "Custom::ImportedKeyMaterial"
    assert create["StackId"].startswith("arn:aws:cloudformation:us-east-1:000000000000:stack/demo/")
    assert "PhysicalResourceId" not in create
    assert "OldResourceProperties" not in create

    update = cfn_event("Update", {"A": "2"}, url, physical_id="p", old_properties={"A": "1"})
    assert update["PhysicalResourceId"] == "p"
    assert update["OldResourceProperties"] == {"ServiceToken": SERVICE_TOKEN, "A": "1"}
    assert update["RequestId"] != create["RequestId"]
    assert cfn_event("Delete", {}, url, physical_id="p")["PhysicalResourceId"] == "p"

    with pytest.raises(ValueError, match="needs physical_id"):
        cfn_event("Delete", {}, url)
    with pytest.raises(ValueError, match="old_properties"):
        cfn_event("Update", {}, url, physical_id="p")
    with pytest.raises(ValueError, match="request_type"):
        cfn_event("create", {}, url)


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses listening on ``port``, read from /proc/net/tcp (state 0A)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            addresses.add(socket.inet_ntoa(bytes.fromhex(address_hex)[::-1]))
    return addresses


@pytest.mark.localstack
def test_localstack_listens_on_loopback_only(localstack: LocalStack) -> None:
    assert _listening_addresses(localstack.port) == {"127.0.0.1"}
