"""Read key material from Secrets Manager and check it before any KMS call.

The material is returned to the caller and never stored, logged or put in a message: errors
name the secret and the length, never the bytes.
"""

import base64
import binascii
import json
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from . import protocol
from .errors import ImportFailure

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_SECRET_ERRORS = {
    "ResourceNotFoundException": (
        "Secret {arn} was not found (or has no AWSCURRENT version): create it with the key "
        "material as SecretBinary, or as base64 in SecretString."
    ),
    "AccessDeniedException": (
        "The handler may not read secret {arn}: allow secretsmanager:GetSecretValue, and "
        "kms:Decrypt on the secret's KMS key if it is a customer managed key."
    ),
    "DecryptionFailure": (
        "Secrets Manager could not decrypt secret {arn}: let the handler's role use the "
        "secret's KMS key (kms:Decrypt), and check that key is enabled."
    ),
    "InvalidRequestException": (
        "Secret {arn} cannot be read (it may be scheduled for deletion): restore it with "
        "RestoreSecret, or point key_material_secret at another secret."
    ),
}


def read_materials(
    secrets: "SecretsManagerClient", secret_arn: str, version_id: str | None = None
) -> list[bytes]:
    """Every material in the secret, oldest first; the last is the current one.

    SecretBinary holds one material as raw bytes; SecretString holds one as base64 text, or a
    JSON object ``{"materials": ["<base64>", ...]}`` for a key that rotates.
    """
    request: dict[str, str] = {"SecretId": secret_arn}
    if version_id:
        request["VersionId"] = version_id
    try:
        response = secrets.get_secret_value(**request)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        template = _SECRET_ERRORS.get(
            code, "Reading secret {arn} failed with {code}: retry, or check the secret."
        )
        raise ImportFailure(template.format(arn=secret_arn, code=code or "an error")) from None
    if "SecretBinary" in response:
        return [response["SecretBinary"]]
    text = response.get("SecretString", "")
    if text.lstrip().startswith("{"):
        return _materials_document(text, secret_arn)
    return [_base64(text, secret_arn)]


def read_material(
    secrets: "SecretsManagerClient", secret_arn: str, version_id: str | None = None
) -> bytes:
    """The one material of a secret that holds one (the common case)."""
    materials = read_materials(secrets, secret_arn, version_id)
    if len(materials) != 1:
        raise ImportFailure(
            f"Secret {secret_arn} holds {len(materials)} materials; only a key with "
            "rotation_on_material_change=True takes several."
        )
    return materials[0]


def _base64(text: str, secret_arn: str) -> bytes:
    # Tolerate the line breaks that `base64` and editors add; nothing else.
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ImportFailure(
            f"SecretString of {secret_arn} is not base64: store the material base64-encoded, "
            "or as raw bytes in SecretBinary."
        ) from None


def _materials_document(text: str, secret_arn: str) -> list[bytes]:
    field = protocol.MATERIALS_FIELD
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    entries = document.get(field) if isinstance(document, dict) else None
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(entry, str) for entry in entries)
    ):
        raise ImportFailure(
            f'SecretString of {secret_arn} is JSON but not {{"{field}": ["<base64>", ...]}}'
            ": store that, plain base64, or raw bytes in SecretBinary."
        )
    return [_base64(entry, secret_arn) for entry in entries]


def validate_material(material: bytes, key_spec: str, secret_arn: str) -> None:
    """Refuse material KMS would refuse, with a reason that says what to store instead."""
    expected = protocol.SYMMETRIC_MATERIAL_BYTES
    if key_spec == protocol.SYMMETRIC_DEFAULT and len(material) != expected:
        raise ImportFailure(
            f"Secret {secret_arn} holds {len(material)} bytes; a SYMMETRIC_DEFAULT key takes "
            f"exactly {expected} (e.g. `openssl rand 32`)."
        )


def validate_materials(materials: list[bytes], key_spec: str, secret_arn: str) -> None:
    """Each material must be valid, and no material may appear twice."""
    for material in materials:
        validate_material(material, key_spec, secret_arn)
    if len(set(materials)) != len(materials):
        raise ImportFailure(
            f"Secret {secret_arn} lists the same material twice: list each material once, "
            "oldest first."
        )
    if len(materials) > protocol.MAX_ON_DEMAND_ROTATIONS + 1:
        raise ImportFailure(
            f"Secret {secret_arn} lists {len(materials)} materials; KMS allows a key "
            f"{protocol.MAX_ON_DEMAND_ROTATIONS} on-demand rotations."
        )
