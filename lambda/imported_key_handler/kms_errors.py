"""KMS errors turned into reasons that name the problem and the fix."""

from botocore.exceptions import ClientError

from . import contract
from .errors import ImportFailure


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def kms_failure(
    error: ClientError, operation: str, key_id: str, *, key_spec: str | None = None
) -> ImportFailure:
    """The reason for a failed KMS call; ``key_spec`` (when known) tailors the advice."""
    code = error_code(error)
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
            f"The secret holds material key {key_id} was never given; a key only ever accepts "
            "its original material: restore it in the secret, or rotate to it with "
            "rotation_on_material_change=True."
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
    if (
        code == "IncorrectKeyMaterialException"
        and key_spec is not None
        and key_spec != contract.SYMMETRIC_DEFAULT
    ):
        # rotation_on_material_change is refused for these specs: KMS cannot rotate them.
        return ImportFailure(
            f"The secret holds material key {key_id} was never given; a {key_spec} key only "
            "ever accepts its original material: restore it in the secret, or import the new "
            "material into a new key."
        )
    if operation == "RotateKeyOnDemand" and code == "LimitExceededException":
        return ImportFailure(
            f"Key {key_id} has had the 25 on-demand rotations KMS allows (RotateKeyOnDemand "
            "refused): import new material into a new ImportedKey instead."
        )
    reason = reasons.get(
        code,
        f"kms:{operation} on key {key_id} failed with {code or 'an unknown error'}: retry "
        "the deployment; if it persists, check the key in the KMS console.",
    )
    return ImportFailure(reason)
