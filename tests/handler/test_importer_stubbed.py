"""The import flow against Stubber-backed real KMS and Secrets Manager clients.

Each test queues the exact requests the handler must make (botocore validates them against the
service model too), hands out a real RSA wrapping public key from GetParametersForImport, and
unwraps the EncryptedKeyMaterial the handler sent with the private half.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import key_types_support as kts
import pytest
import stubbing
from botocore.exceptions import ClientError
from botocore.stub import ANY

from imported_key_handler.contract import KEY_SPECS
from imported_key_handler.errors import ImportFailure
from imported_key_handler.importer import (
    ImportResult,
    confirm_import,
    describe_importable_key,
    import_from_secret,
    import_key_material,
)
from imported_key_handler.kms_errors import kms_failure
from imported_key_handler.request import ImportRequest

SENTINEL: Final = stubbing.SENTINEL_MATERIAL
EXPIRES: Final = "KEY_MATERIAL_EXPIRES"
DOES_NOT_EXPIRE: Final = "KEY_MATERIAL_DOES_NOT_EXPIRE"
OAEP_256: Final = "RSAES_OAEP_SHA_256"
# A fixed clock with a fraction of a second: ValidTo must come out in whole seconds, rounded
# down (rounding up could put a 365-day ValidTo past KMS's limit).
NOW: Final = datetime(2026, 11, 28, 12, 30, 15, 750_000, tzinfo=UTC)
NOW_WHOLE: Final = datetime(2026, 11, 28, 12, 30, 15, tzinfo=UTC)
TOKEN_1: Final = b"import-token-1"
TOKEN_2: Final = b"import-token-2"
TOKEN_3: Final = b"import-token-3"
DESCRIBE: Final = "DescribeKey"
PARAMETERS: Final = "GetParametersForImport"
IMPORT: Final = "ImportKeyMaterial"


def make_request(
    *,
    key_id: str = stubbing.KEY_ID,
    secret_arn: str = stubbing.SECRET_ARN,
    wrapping_algorithm: str = OAEP_256,
    wrapping_key_spec: str = "RSA_2048",
    expiration_model: str = EXPIRES,
    validity_days: int | None = 30,
) -> ImportRequest:
    return ImportRequest(
        key_id=key_id,
        secret_arn=secret_arn,
        key_spec="SYMMETRIC_DEFAULT",
        wrapping_algorithm=wrapping_algorithm,
        wrapping_key_spec=wrapping_key_spec,
        expiration_model=expiration_model,
        validity_days=validity_days if expiration_model == EXPIRES else None,
    )


REQUEST: Final = make_request()
VALID_TO: Final = NOW_WHOLE + timedelta(days=30)

pytestmark = pytest.mark.usefixtures("no_material_in_logs")


def queue_check(
    kms: stubbing.KmsStub,
    request: ImportRequest = REQUEST,
    *,
    state: str = "PendingImport",
    expiration_model: str | None = None,
    valid_to: datetime | None = None,
) -> None:
    """The DescribeKey that checks the key before anything else."""
    kms.add_describe(
        stubbing.key_metadata(state=state, expiration_model=expiration_model, valid_to=valid_to),
        key_id=request.key_id,
    )


def queue_attempt(
    kms: stubbing.KmsStub,
    request: ImportRequest = REQUEST,
    *,
    token: bytes = TOKEN_1,
    key_index: int = 0,
    valid_to: datetime | None = VALID_TO,
    error_code: str | None = None,
) -> stubbing.WrappingKey:
    """GetParametersForImport then ImportKeyMaterial, with their exact parameters."""
    key = stubbing.wrapping_key(request.wrapping_key_spec, key_index)
    kms.add_parameters(
        key=key,
        token=token,
        wrapping_algorithm=request.wrapping_algorithm,
        wrapping_key_spec=request.wrapping_key_spec,
        key_id=request.key_id,
    )
    kms.add_import(
        token=token,
        expiration_model=request.expiration_model,
        valid_to=valid_to,
        key_id=request.key_id,
        error_code=error_code,
    )
    return key


def queue_confirm(
    kms: stubbing.KmsStub,
    request: ImportRequest = REQUEST,
    *,
    valid_to: datetime | None = VALID_TO,
    state: str = "Enabled",
    expiration_model: str | None = None,
    current_material_id: str | None = None,
) -> None:
    kms.add_describe(
        stubbing.key_metadata(
            state=state,
            expiration_model=expiration_model or request.expiration_model,
            valid_to=valid_to,
            current_material_id=current_material_id,
        ),
        key_id=request.key_id,
    )


def assert_unwraps_to(
    encrypted: bytes, key: stubbing.WrappingKey, algorithm: str, material: bytes = SENTINEL
) -> None:
    assert key.unwrap(encrypted, algorithm) == material


def import_failure(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    request: ImportRequest = REQUEST,
) -> str:
    """Run the whole import expecting an ImportFailure; return its checked reason."""
    return stubbing.failure_reason(
        lambda: import_from_secret(kms.client, secrets.client, request, now=NOW), kms, secrets
    )


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
@pytest.mark.parametrize(
    ("expiration_model", "days"),
    [(EXPIRES, 1), (EXPIRES, 30), (EXPIRES, 365), (DOES_NOT_EXPIRE, None)],
)
def test_import_from_secret_makes_the_exact_calls_and_sends_the_material_wrapped(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    algorithm: str,
    expiration_model: str,
    days: int | None,
) -> None:
    request = make_request(
        wrapping_algorithm=algorithm, expiration_model=expiration_model, validity_days=days
    )
    valid_to = None if days is None else NOW_WHOLE + timedelta(days=days)
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms, request)
    key = queue_attempt(kms, request, valid_to=valid_to)
    # KMS reports the KeyMaterialId that ImportKeyMaterial answered with as the current one.
    queue_confirm(kms, request, valid_to=valid_to, current_material_id=stubbing.KEY_MATERIAL_ID)

    result = import_from_secret(kms.client, secrets.client, request, now=NOW)

    assert result == ImportResult(
        key_id=stubbing.KEY_ID,
        key_arn=stubbing.KEY_ARN,
        valid_to=valid_to,
        key_material_id=stubbing.KEY_MATERIAL_ID,
        verified="KeyMaterialId",
    )
    assert kms.recorder.operations == [DESCRIBE, PARAMETERS, IMPORT, DESCRIBE]
    stubbing.assert_all_answered(kms, secrets)
    (sent,) = kms.recorder.params_of(IMPORT)
    if days is None:
        assert "ValidTo" not in sent
    else:
        assert sent["ValidTo"].microsecond == 0
        assert sent["ValidTo"].utcoffset() == timedelta(0)
    (encrypted,) = kms.encrypted_materials()
    assert_unwraps_to(encrypted, key, algorithm)


def test_without_a_reported_material_id_the_import_is_proven_by_describe_key_only(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms)
    queue_attempt(kms)
    queue_confirm(kms)  # no CurrentKeyMaterialId (KMS before material ids, or an emulator)

    result = import_from_secret(kms.client, secrets.client, REQUEST, now=NOW)

    assert result.key_material_id is None
    assert result.verified == "DescribeKey"
    stubbing.assert_all_answered(kms, secrets)


def test_a_current_material_id_other_than_the_imported_one_fails_the_import(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    other = "cd" * 32
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms)
    queue_attempt(kms)  # ImportKeyMaterial answers stubbing.KEY_MATERIAL_ID
    queue_confirm(kms, current_material_id=other)

    reason = import_failure(kms, secrets)

    assert stubbing.KEY_ID in reason
    assert f"reports material {other[:24]}" in reason
    assert stubbing.KEY_MATERIAL_ID in reason
    assert kms.recorder.operations == [DESCRIBE, PARAMETERS, IMPORT, DESCRIBE]


@pytest.mark.parametrize("spec", ["RSA_2048", "RSA_3072", "RSA_4096"])
def test_the_requested_wrapping_key_spec_is_asked_for_and_its_key_used(
    kms: stubbing.KmsStub, spec: str
) -> None:
    request = make_request(wrapping_key_spec=spec)
    key = queue_attempt(kms, request)
    queue_confirm(kms, request)
    import_key_material(kms.client, request, SENTINEL, now=NOW)
    (encrypted,) = kms.encrypted_materials()
    assert len(encrypted) == key.private_key.key_size // 8
    assert_unwraps_to(encrypted, key, OAEP_256)


def test_a_key_arn_as_key_id_is_passed_through_and_the_key_id_reported(
    kms: stubbing.KmsStub,
) -> None:
    request = make_request(key_id=stubbing.KEY_ARN)
    queue_check(kms, request)
    queue_attempt(kms, request)
    queue_confirm(kms, request)
    describe_importable_key(kms.client, request.key_id, request.key_spec)
    result = import_key_material(kms.client, request, SENTINEL, now=NOW)
    assert (result.key_id, result.key_arn) == (stubbing.KEY_ID, stubbing.KEY_ARN)


def test_without_now_the_valid_to_is_computed_from_the_current_time(
    kms: stubbing.KmsStub,
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    kms.add_parameters(
        key=stubbing.wrapping_key(),
        token=TOKEN_1,
        wrapping_algorithm=OAEP_256,
        wrapping_key_spec="RSA_2048",
    )
    kms.stub.add_response(
        "import_key_material",
        {"KeyId": stubbing.KEY_ARN},
        {
            "KeyId": stubbing.KEY_ID,
            "ImportToken": TOKEN_1,
            "EncryptedKeyMaterial": ANY,
            "ExpirationModel": EXPIRES,
            "ValidTo": ANY,
        },
    )
    # The exact ValidTo is unknown in advance: the confirmation is stubbed to fail, this test
    # is about what was sent.
    kms.add_error("describe_key", "KMSInternalException", {"KeyId": stubbing.KEY_ID})
    with pytest.raises(ImportFailure):
        import_key_material(kms.client, REQUEST, SENTINEL)
    sent = kms.recorder.params_of(IMPORT)[0]["ValidTo"]
    assert sent.microsecond == 0
    assert timedelta(days=30) <= sent - before <= timedelta(days=30, seconds=5)


def test_reimporting_the_same_material_into_an_enabled_key_succeeds(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    """Create, then an Update (or a CloudFormation retry): same material, fresh parameters."""
    later = NOW + timedelta(days=10)
    later_valid_to = later.replace(microsecond=0) + timedelta(days=30)
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms)
    first_key = queue_attempt(kms, token=TOKEN_1, key_index=0)
    queue_confirm(kms)
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms, state="Enabled", expiration_model=EXPIRES, valid_to=VALID_TO)
    second_key = queue_attempt(kms, token=TOKEN_2, key_index=1, valid_to=later_valid_to)
    queue_confirm(kms, valid_to=later_valid_to)

    first = import_from_secret(kms.client, secrets.client, REQUEST, now=NOW)
    second = import_from_secret(kms.client, secrets.client, REQUEST, now=later)

    assert first.valid_to == VALID_TO
    assert second.valid_to == later_valid_to
    assert kms.recorder.operations == [DESCRIBE, PARAMETERS, IMPORT, DESCRIBE] * 2
    first_sent, second_sent = kms.encrypted_materials()
    assert_unwraps_to(first_sent, first_key, OAEP_256)
    assert_unwraps_to(second_sent, second_key, OAEP_256)
    kms.stub.assert_no_pending_responses()


def test_a_disabled_key_takes_the_material_but_the_confirmation_asks_to_enable_it(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms, state="Disabled", expiration_model=EXPIRES, valid_to=VALID_TO)
    queue_attempt(kms)
    queue_confirm(kms, state="Disabled")
    reason = import_failure(kms, secrets)
    assert "is Disabled, not Enabled" in reason
    assert "EnableKey" in reason
    assert kms.recorder.operations == [DESCRIBE, PARAMETERS, IMPORT, DESCRIBE]


# --- import tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["ExpiredImportTokenException", "InvalidImportTokenException"])
def test_a_rejected_token_gets_fresh_parameters_and_one_retry(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    caplog: pytest.LogCaptureFixture,
    code: str,
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms)
    first_key = queue_attempt(kms, token=TOKEN_1, key_index=0, error_code=code)
    second_key = queue_attempt(kms, token=TOKEN_2, key_index=1)
    queue_confirm(kms)

    result = import_from_secret(kms.client, secrets.client, REQUEST, now=NOW)

    assert result.valid_to == VALID_TO
    assert kms.recorder.operations == [DESCRIBE, PARAMETERS, IMPORT, PARAMETERS, IMPORT, DESCRIBE]
    kms.stub.assert_no_pending_responses()
    first_sent, second_sent = kms.encrypted_materials()
    assert_unwraps_to(first_sent, first_key, OAEP_256)
    # The retry was wrapped under the fresh public key, not the old one.
    assert_unwraps_to(second_sent, second_key, OAEP_256)
    with pytest.raises(ValueError):
        first_key.unwrap(second_sent, OAEP_256)
    assert any(code in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ExpiredImportTokenException", "ExpiredImportTokenException"),
        ("InvalidImportTokenException", "InvalidImportTokenException"),
        ("ExpiredImportTokenException", "InvalidImportTokenException"),
    ],
)
def test_a_token_rejected_twice_fails_after_exactly_one_retry(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, first: str, second: str
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms)
    queue_attempt(kms, token=TOKEN_1, key_index=0, error_code=first)
    queue_attempt(kms, token=TOKEN_2, key_index=1, error_code=second)
    reason = import_failure(kms, secrets)
    assert kms.recorder.operations == [DESCRIBE, PARAMETERS, IMPORT, PARAMETERS, IMPORT]
    assert second in reason
    assert stubbing.KEY_ID in reason
    assert "retry the deployment" in reason


def test_a_different_error_after_a_token_retry_is_reported_as_itself(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms)
    queue_attempt(kms, token=TOKEN_1, error_code="ExpiredImportTokenException")
    queue_attempt(kms, token=TOKEN_2, key_index=1, error_code="IncorrectKeyMaterialException")
    reason = import_failure(kms, secrets)
    assert "original material" in reason
    assert "ExpiredImportToken" not in reason


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "HMAC_256"])
def test_other_material_for_a_key_that_cannot_rotate_is_not_told_to_rotate(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, spec: str
) -> None:
    # KMS refuses other material for every key spec; only SYMMETRIC_DEFAULT keys can rotate,
    # and the construct refuses rotation_on_material_change for the others.
    request = kts.request_for(spec)
    hmac = KEY_SPECS[spec].family == "hmac"
    material = SENTINEL if hmac else kts.pkcs8_der(kts.key_for(spec))
    secrets.add_secret(SecretBinary=material)
    kms.add_describe(kts.metadata_for(spec))
    kms.add_parameters(
        key=stubbing.wrapping_key(request.wrapping_key_spec),
        token=TOKEN_1,
        wrapping_algorithm=request.wrapping_algorithm,
        wrapping_key_spec=request.wrapping_key_spec,
    )
    kms.add_import(
        token=TOKEN_1,
        expiration_model=DOES_NOT_EXPIRE,
        valid_to=None,
        error_code="IncorrectKeyMaterialException",
    )
    reason = stubbing.failure_reason(
        lambda: import_from_secret(kms.client, secrets.client, request, now=NOW),
        kms,
        secrets,
        materials=(material,),
    )
    assert kms.recorder.operations == [DESCRIBE, PARAMETERS, IMPORT]
    assert f"a {spec} key only ever accepts its original material" in reason
    assert "restore it in the secret" in reason
    assert reason.endswith("import the new material into a new key.")  # whole, not cut
    assert "rotation_on_material_change" not in reason
    assert stubbing.KEY_ID in reason


def test_the_reason_for_a_key_that_cannot_rotate_fits_whole_with_a_long_arn() -> None:
    error = ClientError(
        {"Error": {"Code": "IncorrectKeyMaterialException", "Message": ""}}, "ImportKeyMaterial"
    )
    longest = max((spec for spec in KEY_SPECS if spec != "SYMMETRIC_DEFAULT"), key=len)
    reason = kms_failure(error, IMPORT, stubbing.LONG_KEY_ID, key_spec=longest).reason
    assert reason.endswith("into a new key.")
    assert f"a {longest} key" in reason


def test_other_material_for_a_symmetric_key_points_at_rotation(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms)
    queue_attempt(kms, error_code="IncorrectKeyMaterialException")
    reason = import_failure(kms, secrets)
    assert "rotation_on_material_change=True" in reason


# --- KMS errors -------------------------------------------------------------------------------

# (code, operation that fails, fragments naming the problem and the fix). The key id is checked
# for every reason too.
KMS_ERRORS: Final = [
    ("NotFoundException", DESCRIBE, ("does not exist",)),
    ("AccessDeniedException", DESCRIBE, ("kms:DescribeKey", "role and the key policy")),
    ("DependencyTimeoutException", DESCRIBE, ("DependencyTimeoutException", "retry")),
    ("KMSInternalException", DESCRIBE, ("KMSInternalException", "retry")),
    ("AccessDeniedException", PARAMETERS, ("kms:GetParametersForImport", "key policy")),
    ("UnsupportedOperationException", PARAMETERS, ("does not take imported", "Origin=EXTERNAL")),
    ("KMSInvalidStateException", PARAMETERS, ("pending deletion", "cancel its deletion")),
    ("ThrottlingException", PARAMETERS, ("throttled", "1 request/s", "retry the deployment")),
    ("NotFoundException", PARAMETERS, ("does not exist",)),
    ("DependencyTimeoutException", PARAMETERS, ("DependencyTimeoutException", "retry")),
    ("KMSInternalException", PARAMETERS, ("KMSInternalException", "retry")),
    ("InvalidCiphertextException", IMPORT, ("could not unwrap", "Retry")),
    ("IncorrectKeyMaterialException", IMPORT, ("only ever accepts its original", "restore it")),
    ("AccessDeniedException", IMPORT, ("kms:ImportKeyMaterial", "key policy")),
    ("UnsupportedOperationException", IMPORT, ("Origin=EXTERNAL",)),
    ("KMSInvalidStateException", IMPORT, ("ImportKeyMaterial", "cancel its deletion")),
    ("DependencyTimeoutException", IMPORT, ("DependencyTimeoutException", "retry")),
    ("KMSInternalException", IMPORT, ("KMSInternalException", "retry")),
]


def queue_failure(kms: stubbing.KmsStub, code: str, operation: str, request: ImportRequest) -> None:
    """Queue the flow up to ``operation``, which answers with ``code``."""
    if operation == DESCRIBE:
        kms.add_error("describe_key", code, {"KeyId": request.key_id})
        return
    queue_check(kms, request)
    if operation == PARAMETERS:
        kms.add_error(
            "get_parameters_for_import",
            code,
            {
                "KeyId": request.key_id,
                "WrappingAlgorithm": request.wrapping_algorithm,
                "WrappingKeySpec": request.wrapping_key_spec,
            },
        )
        return
    queue_attempt(kms, request, error_code=code)


def expected_operations(operation: str) -> list[str]:
    return {
        DESCRIBE: [DESCRIBE],
        PARAMETERS: [DESCRIBE, PARAMETERS],
        IMPORT: [DESCRIBE, PARAMETERS, IMPORT],
    }[operation]


@pytest.mark.parametrize(("code", "operation", "fragments"), KMS_ERRORS)
def test_a_kms_error_becomes_a_reason_with_the_problem_and_the_fix(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    code: str,
    operation: str,
    fragments: tuple[str, ...],
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_failure(kms, code, operation, REQUEST)
    reason = import_failure(kms, secrets)
    assert stubbing.KEY_ID in reason
    for fragment in fragments:
        assert fragment in reason
    # No retry for anything but a rejected token, no confirmation after a failure, and
    # nothing imported when an earlier step failed.
    assert kms.recorder.operations == expected_operations(operation)


@pytest.mark.parametrize(("code", "operation", "fragments"), KMS_ERRORS)
def test_kms_error_reasons_fit_whole_with_a_multi_region_key_arn(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    code: str,
    operation: str,
    fragments: tuple[str, ...],
) -> None:
    request = make_request(key_id=stubbing.LONG_KEY_ID, secret_arn=stubbing.LONG_SECRET_ARN)
    secrets.add_secret(stubbing.LONG_SECRET_ARN, SecretBinary=SENTINEL)
    queue_failure(kms, code, operation, request)
    reason = import_failure(kms, secrets, request)
    assert stubbing.LONG_KEY_ID in reason
    assert not reason.endswith("..."), "the fix at the end was cut off"
    assert fragments[-1] in reason


def test_a_missing_key_reason_says_what_to_do(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    kms.add_error("describe_key", "NotFoundException", {"KeyId": stubbing.KEY_ID})
    reason = import_failure(kms, secrets)
    assert any(verb in reason.lower() for verb in ("check", "use ", "point", "create"))


# --- checks before the import ------------------------------------------------------------------


def refusal_at_the_check(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, **metadata: Any
) -> str:
    """The whole import of a key DescribeKey reports with ``metadata``: the checked reason of
    its refusal, made before any call after that DescribeKey."""
    secrets.add_secret(SecretBinary=SENTINEL)
    kms.add_describe(stubbing.key_metadata(**metadata))
    reason = import_failure(kms, secrets)
    assert kms.recorder.operations == [DESCRIBE]
    return reason


@pytest.mark.parametrize("origin", ["AWS_KMS", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE", None])
def test_a_key_that_is_not_external_is_refused_before_any_import_call(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, origin: str | None
) -> None:
    reason = refusal_at_the_check(kms, secrets, origin=origin, state="Enabled")
    assert f"has Origin={origin}" in reason
    assert "created with Origin=EXTERNAL" in reason


@pytest.mark.parametrize("state", ["PendingDeletion", "Unavailable", "PendingReplicaDeletion"])
def test_a_key_in_a_state_that_refuses_material_is_refused_with_the_fix(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, state: str
) -> None:
    reason = refusal_at_the_check(kms, secrets, state=state)
    assert f"Key {stubbing.KEY_ID} is {state}" in reason
    assert "CancelKeyDeletion" in reason


@pytest.mark.parametrize("key_spec", ["HMAC_256", "RSA_2048", "ECC_NIST_P256"])
def test_a_key_of_another_spec_is_refused_before_any_import_call(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, key_spec: str
) -> None:
    reason = refusal_at_the_check(kms, secrets, key_spec=key_spec)
    assert f"is {key_spec} but the material is declared SYMMETRIC_DEFAULT" in reason
    assert "same spec" in reason


@pytest.mark.parametrize("state", ["PendingImport", "Enabled", "Disabled"])
def test_an_external_key_awaiting_or_holding_material_passes_the_check(
    kms: stubbing.KmsStub, state: str
) -> None:
    kms.add_describe(stubbing.key_metadata(state=state))
    metadata = describe_importable_key(kms.client, stubbing.KEY_ID, "SYMMETRIC_DEFAULT")
    assert metadata["KeyState"] == state


# --- nothing reaches KMS with bad material ------------------------------------------------------


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_material_of_the_wrong_length_never_reaches_kms(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, length: int
) -> None:
    secrets.add_secret(SecretBinary=stubbing.sentinel_of_length(length))
    reason = import_failure(kms, secrets)  # no KMS response queued: any call would raise
    assert ("is empty" if length == 0 else f"holds {length} bytes") in reason
    assert kms.recorder.operations == []


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "AccessDeniedException"])
def test_an_unreadable_secret_never_reaches_kms(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, code: str
) -> None:
    secrets.add_secret_error(code)
    reason = import_failure(kms, secrets)
    assert stubbing.SECRET_ARN in reason
    assert kms.recorder.operations == []


def test_a_secret_string_that_is_not_base64_never_reaches_kms(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretString=SENTINEL.decode("ascii"))
    reason = import_failure(kms, secrets)
    assert "not base64" in reason
    assert kms.recorder.operations == []


# --- confirmation ----------------------------------------------------------------------------


def confirm_failure(
    kms: stubbing.KmsStub, request: ImportRequest, valid_to: datetime | None
) -> str:
    return stubbing.failure_reason(lambda: confirm_import(kms.client, request, valid_to), kms)


@pytest.mark.parametrize("state", ["Disabled", "PendingImport", "PendingDeletion"])
def test_a_key_that_is_not_enabled_after_the_import_fails_the_confirmation(
    kms: stubbing.KmsStub, state: str
) -> None:
    queue_confirm(kms, state=state)
    reason = confirm_failure(kms, REQUEST, VALID_TO)
    assert f"key {stubbing.KEY_ID} is {state}, not Enabled" in reason


@pytest.mark.parametrize(
    "reported",
    [
        VALID_TO + timedelta(seconds=2),
        VALID_TO - timedelta(seconds=2),
        VALID_TO + timedelta(days=1),
        NOW_WHOLE + timedelta(days=365),
    ],
    ids=["plus-2s", "minus-2s", "plus-1d", "other-validity"],
)
def test_a_valid_to_that_differs_from_the_one_asked_fails_the_confirmation(
    kms: stubbing.KmsStub, reported: datetime
) -> None:
    queue_confirm(kms, valid_to=reported)
    reason = confirm_failure(kms, REQUEST, VALID_TO)
    assert f"reports ValidTo={reported.isoformat()}" in reason
    assert f"with ValidTo={VALID_TO.isoformat()}" in reason
    assert "retry the deployment" in reason


def test_a_missing_valid_to_fails_the_confirmation_of_expiring_material(
    kms: stubbing.KmsStub,
) -> None:
    queue_confirm(kms, valid_to=None)
    reason = confirm_failure(kms, REQUEST, VALID_TO)
    assert "reports ValidTo=none" in reason


@pytest.mark.parametrize(
    ("requested", "reported", "reported_valid_to"),
    [(EXPIRES, DOES_NOT_EXPIRE, None), (DOES_NOT_EXPIRE, EXPIRES, VALID_TO)],
)
def test_a_different_expiration_model_fails_the_confirmation(
    kms: stubbing.KmsStub, requested: str, reported: str, reported_valid_to: datetime | None
) -> None:
    request = make_request(expiration_model=requested)
    queue_confirm(kms, request, valid_to=reported_valid_to, expiration_model=reported)
    asked = VALID_TO if requested == EXPIRES else None
    reason = confirm_failure(kms, request, asked)
    assert f"reports ExpirationModel={reported} after importing with {requested}" in reason


@pytest.mark.parametrize("offset_ms", [400, -400, 0])
def test_a_valid_to_within_a_second_is_accepted(kms: stubbing.KmsStub, offset_ms: int) -> None:
    queue_confirm(kms, valid_to=VALID_TO + timedelta(milliseconds=offset_ms))
    result = confirm_import(kms.client, REQUEST, VALID_TO)
    assert result == ImportResult(
        key_id=stubbing.KEY_ID, key_arn=stubbing.KEY_ARN, valid_to=VALID_TO
    )
    kms.stub.assert_no_pending_responses()


def test_a_failed_confirmation_in_the_full_flow_comes_after_the_import(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    queue_check(kms)
    queue_attempt(kms)
    queue_confirm(kms, state="PendingImport")
    reason = import_failure(kms, secrets)
    assert "is PendingImport, not Enabled" in reason
    assert kms.recorder.operations == [DESCRIBE, PARAMETERS, IMPORT, DESCRIBE]


@pytest.mark.parametrize("code", ["NotFoundException", "KMSInternalException"])
def test_an_error_on_the_confirming_describe_is_reported(kms: stubbing.KmsStub, code: str) -> None:
    kms.add_error("describe_key", code, {"KeyId": stubbing.KEY_ID})
    reason = confirm_failure(kms, REQUEST, VALID_TO)
    assert stubbing.KEY_ID in reason
