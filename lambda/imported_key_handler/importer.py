"""Import key material into an EXTERNAL KMS key and confirm KMS holds it as asked.

Every KMS call takes the client as an argument, so tests hand in a Stubber-backed client or
a client for the local emulator. Fresh import parameters are fetched for every import: an
import token is tied to its public key and expires after 24 hours.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import protocol
from .errors import ImportFailure
from .material import read_material, validate_material
from .request import ImportRequest
from .wrapping import wrap_key_material

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import KeyMetadataTypeDef
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = logging.getLogger(__name__)

# States in which KMS accepts ImportKeyMaterial for a key that holds (or awaits) its material.
_IMPORTABLE_STATES = ("PendingImport", "Enabled", "Disabled")
# A token can expire or be invalidated between GetParametersForImport and the import (a
# concurrent import, a slow retry). One fresh set of parameters is enough to tell a race
# from a real fault.
_TOKEN_ERRORS = ("ExpiredImportTokenException", "InvalidImportTokenException")


@dataclass(frozen=True)
class ImportResult:
    key_id: str
    key_arn: str
    valid_to: datetime | None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def kms_failure(error: ClientError, operation: str, key_id: str) -> ImportFailure:
    code = _code(error)
    reasons = {
        "NotFoundException": (
            f"KMS key {key_id} does not exist in this account and Region: check the KeyId "
            "and the Region the stack deploys to."
        ),
        "AccessDeniedException": (
            f"The handler may not call kms:{operation} on key {key_id}: check its role and "
            "the key policy."
        ),
        "UnsupportedOperationException": (
            f"Key {key_id} does not take imported material: only Origin=EXTERNAL keys do."
        ),
        "KMSInvalidStateException": (
            f"Key {key_id} is in a state that refuses {operation} (pending deletion or "
            "unavailable): cancel its deletion or use another key."
        ),
        "IncorrectKeyMaterialException": (
            f"The secret's material differs from the material key {key_id} was first given; a "
            "key only ever accepts its original material: restore it in the secret."
        ),
        "InvalidCiphertextException": (
            f"KMS could not unwrap the material for key {key_id}: the wrapping did not match "
            "the import parameters. Retry; report it if it persists."
        ),
        "ThrottlingException": (
            f"KMS throttled {operation} for key {key_id} after retries (GetParametersForImport "
            "allows 1 request/s): retry the deployment."
        ),
        "LimitExceededException": (
            f"KMS throttled {operation} for key {key_id} after retries: retry the deployment."
        ),
    }
    reason = reasons.get(
        code,
        f"kms:{operation} on key {key_id} failed with {code or 'an unknown error'}: retry "
        "the deployment; if it persists, check the key in the KMS console.",
    )
    return ImportFailure(reason)


def describe_importable_key(kms: "KMSClient", key_id: str, key_spec: str) -> "KeyMetadataTypeDef":
    """Check the key can take ``key_spec`` material before anything else touches it."""
    try:
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError as error:
        raise kms_failure(error, "DescribeKey", key_id) from None
    if metadata.get("Origin") != "EXTERNAL":
        raise ImportFailure(
            f"Key {key_id} has Origin={metadata.get('Origin')}: material can only be imported "
            "into a key created with Origin=EXTERNAL."
        )
    state = metadata.get("KeyState", "")
    if state not in _IMPORTABLE_STATES:
        raise ImportFailure(
            f"Key {key_id} is {state}: it cannot take material. Cancel a scheduled deletion "
            "(CancelKeyDeletion) or point the stack at another key."
        )
    if metadata.get("KeySpec") != key_spec:
        raise ImportFailure(
            f"Key {key_id} is {metadata.get('KeySpec')} but the material is declared "
            f"{key_spec}: use a key of the same spec."
        )
    return metadata


def valid_to_for(request: ImportRequest, now: datetime) -> datetime | None:
    """The ValidTo to ask for: whole seconds, so the DescribeKey check can compare exactly."""
    if request.expiration_model != protocol.KEY_MATERIAL_EXPIRES or request.validity_days is None:
        return None
    return (now + timedelta(days=request.validity_days)).replace(microsecond=0)


def _import_once(
    kms: "KMSClient", request: ImportRequest, material: bytes, valid_to: datetime | None
) -> None:
    try:
        params = kms.get_parameters_for_import(
            KeyId=request.key_id,
            WrappingAlgorithm=request.wrapping_algorithm,  # type: ignore[arg-type]
            WrappingKeySpec=request.wrapping_key_spec,  # type: ignore[arg-type]
        )
    except ClientError as error:
        raise kms_failure(error, "GetParametersForImport", request.key_id) from None
    encrypted = wrap_key_material(material, params["PublicKey"], request.wrapping_algorithm)
    kwargs: dict[str, Any] = {
        "KeyId": request.key_id,
        "ImportToken": params["ImportToken"],
        "EncryptedKeyMaterial": encrypted,
        "ExpirationModel": request.expiration_model,
    }
    if valid_to is not None:
        kwargs["ValidTo"] = valid_to
    kms.import_key_material(**kwargs)


def import_key_material(
    kms: "KMSClient", request: ImportRequest, material: bytes, *, now: datetime | None = None
) -> ImportResult:
    """Wrap and import ``material`` (already validated), then confirm it with DescribeKey.

    Importing the same material again is accepted by KMS, which makes Create and Update
    idempotent and lets CloudFormation retries and rollbacks succeed.
    """
    valid_to = valid_to_for(request, now or datetime.now(UTC))
    for attempt in (1, 2):
        try:
            _import_once(kms, request, material, valid_to)
            break
        except ClientError as error:
            if _code(error) in _TOKEN_ERRORS and attempt == 1:
                logger.warning(
                    "Import token rejected (%s); fetching fresh import parameters once",
                    _code(error),
                )
                continue
            raise kms_failure(error, "ImportKeyMaterial", request.key_id) from None
    return confirm_import(kms, request, valid_to)


def confirm_import(
    kms: "KMSClient", request: ImportRequest, valid_to: datetime | None
) -> ImportResult:
    """Read the key back: Enabled, with the expiration model and ValidTo that were asked."""
    try:
        metadata = kms.describe_key(KeyId=request.key_id)["KeyMetadata"]
    except ClientError as error:
        raise kms_failure(error, "DescribeKey", request.key_id) from None
    key_id = metadata["KeyId"]
    if metadata.get("KeyState") != "Enabled":
        raise ImportFailure(
            f"Material was imported but key {key_id} is {metadata.get('KeyState')}, not "
            "Enabled: enable it (EnableKey) if it was disabled on purpose, then retry."
        )
    if metadata.get("ExpirationModel") != request.expiration_model:
        raise ImportFailure(
            f"Key {key_id} reports ExpirationModel={metadata.get('ExpirationModel')} after "
            f"importing with {request.expiration_model}: retry the deployment."
        )
    reported = metadata.get("ValidTo")
    if valid_to is not None and (
        reported is None or abs((reported - valid_to).total_seconds()) >= 1
    ):
        raise ImportFailure(
            f"Key {key_id} reports ValidTo={reported.isoformat() if reported else 'none'} "
            f"after importing with ValidTo={valid_to.isoformat()}: retry the deployment."
        )
    return ImportResult(key_id=key_id, key_arn=metadata["Arn"], valid_to=valid_to)


def import_from_secret(
    kms: "KMSClient",
    secrets: "SecretsManagerClient",
    request: ImportRequest,
    *,
    now: datetime | None = None,
) -> ImportResult:
    """The whole import: read and check the material, check the key, import, confirm."""
    material = read_material(secrets, request.secret_arn)
    validate_material(material, request.key_spec, request.secret_arn)
    describe_importable_key(kms, request.key_id, request.key_spec)
    result = import_key_material(kms, request, material, now=now)
    del material  # drop our reference as soon as KMS has it
    return result
