"""Read key material from Secrets Manager and decode it (material_format checks it).

The material is returned to the caller and never stored, logged or put in a message: errors
name the secret and the length, never the bytes.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from . import contract
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


@dataclass(frozen=True)
class SecretValue:
    """One version of the secret, as Secrets Manager returned it. Holds material: keep it local."""

    binary: bytes | None
    text: str | None


def read_secret(
    secrets: "SecretsManagerClient", secret_arn: str, version_id: str | None = None
) -> SecretValue:
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
    return SecretValue(response.get("SecretBinary"), response.get("SecretString"))


def decode_materials(
    value: SecretValue, secret_arn: str, encoding: str = "auto", json_field: str | None = None
) -> list[bytes]:
    """The materials a secret version holds, oldest first (PEM stays PEM text for now).

    ``auto``: SecretBinary is the raw material; a SecretString is a ``{"materials": [...]}``
    document, a PEM private key, or base64. The explicit encodings say which one it is;
    ``json_field`` first picks one field of a JSON SecretString.
    """
    if encoding == "raw" or (encoding == "auto" and value.binary is not None and not json_field):
        if value.binary is None:
            raise ImportFailure(
                f"Secret {secret_arn} has no SecretBinary, but material_encoding is raw: store "
                "the raw bytes as SecretBinary, or choose the encoding of the SecretString."
            )
        return [value.binary]
    text = value.text
    if text is None:
        raise ImportFailure(
            f"Secret {secret_arn} has no SecretString, but material_encoding is {encoding}: "
            "store the material as text, or use material_encoding raw for SecretBinary."
        )
    if json_field:
        text = _json_field(text, json_field, secret_arn)
    if encoding == "auto":
        stripped = text.lstrip()
        if stripped.startswith("{") and not json_field:
            return _materials_document(text, secret_arn)
        encoding = "pem" if stripped.startswith("-----BEGIN") else "base64"
    if encoding == "pem":
        return [text.strip().encode("ascii", errors="replace")]
    if encoding == "hex":
        return [_hex(text, secret_arn)]
    return [_base64(text, secret_arn)]


def read_materials(
    secrets: "SecretsManagerClient",
    secret_arn: str,
    version_id: str | None = None,
    encoding: str = "auto",
    json_field: str | None = None,
) -> list[bytes]:
    """Every material in the secret, oldest first; the last is the current one."""
    return decode_materials(
        read_secret(secrets, secret_arn, version_id), secret_arn, encoding, json_field
    )


def read_material(
    secrets: "SecretsManagerClient",
    secret_arn: str,
    version_id: str | None = None,
    encoding: str = "auto",
    json_field: str | None = None,
) -> bytes:
    """The one material of a secret that holds one (the common case)."""
    materials = read_materials(secrets, secret_arn, version_id, encoding, json_field)
    if len(materials) != 1:
        raise ImportFailure(
            f"Secret {secret_arn} holds {len(materials)} materials; only a key with "
            "rotation_on_material_change=True takes several."
        )
    return materials[0]


def _json_field(text: str, field: str, secret_arn: str) -> str:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        document = None
    value = document.get(field) if isinstance(document, dict) else None
    if not isinstance(value, str) or not value:
        raise ImportFailure(
            f"SecretString of {secret_arn} is not a JSON object with a text field "
            f"{field[:40]!r}: store the material there, or fix json_field."
        )
    return value


def _hex(text: str, secret_arn: str) -> bytes:
    compact = "".join(text.split()).removeprefix("0x")
    try:
        return bytes.fromhex(compact)
    except ValueError:
        raise ImportFailure(
            f"SecretString of {secret_arn} is not hex: store the material as hex digits, or "
            "choose its real material_encoding."
        ) from None


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
    field = contract.MATERIALS_FIELD
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
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
