"""Read key material from Secrets Manager and check it before any KMS call.

The material is returned to the caller and never stored, logged or put in a message: errors
name the secret and the length, never the bytes.
"""

import base64
import binascii
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


def read_material(secrets: "SecretsManagerClient", secret_arn: str) -> bytes:
    """Return the material in the secret's current version: SecretBinary raw, or base64 text."""
    try:
        response = secrets.get_secret_value(SecretId=secret_arn)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        template = _SECRET_ERRORS.get(
            code, "Reading secret {arn} failed with {code}: retry, or check the secret."
        )
        raise ImportFailure(template.format(arn=secret_arn, code=code or "an error")) from None
    if "SecretBinary" in response:
        return response["SecretBinary"]
    text = response.get("SecretString", "")
    # Tolerate the line breaks that `base64` and editors add; nothing else.
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ImportFailure(
            f"SecretString of {secret_arn} is not base64: store the material base64-encoded, "
            "or as raw bytes in SecretBinary."
        ) from None


def validate_material(material: bytes, key_spec: str, secret_arn: str) -> None:
    """Refuse material KMS would refuse, with a reason that says what to store instead."""
    expected = protocol.SYMMETRIC_MATERIAL_BYTES
    if key_spec == protocol.SYMMETRIC_DEFAULT and len(material) != expected:
        raise ImportFailure(
            f"Secret {secret_arn} holds {len(material)} bytes; a SYMMETRIC_DEFAULT key takes "
            f"exactly {expected} (e.g. `openssl rand 32`)."
        )
