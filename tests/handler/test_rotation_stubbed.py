"""Rotating imported material, against Stubber-backed real KMS and Secrets Manager clients.

A key with ``RotateOnMaterialChange`` takes a secret listing every material tied to it, oldest
first. Each one is re-imported as ``EXISTING_KEY_MATERIAL`` (which renews its ValidTo); only the
last may be unknown to the key: KMS refuses it with IncorrectKeyMaterialException, the handler
imports it as ``NEW_KEY_MATERIAL`` (PENDING_ROTATION), calls RotateKeyOnDemand and reads the key
back until DescribeKey reports it as the CurrentKeyMaterialId.

Every request is queued with its exact parameters (only EncryptedKeyMaterial is ANY), the
Stubber raises on any call nobody queued, and each EncryptedKeyMaterial is unwrapped with the
private half of the wrapping key its own GetParametersForImport handed out, to tell which
material was sent. ``importer.time`` is a fake clock: nothing here really sleeps.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
import stubbing
from support.binding import TEST_HANDLER_ROLE_ID

from imported_key_handler import cfn, clients, contract, importer
from imported_key_handler.importer import ImportResult, import_from_secret
from imported_key_handler.renewal import RenewalRequest, RenewalResult, renew_if_due
from imported_key_handler.request import ImportRequest

EXPIRES: Final = contract.KEY_MATERIAL_EXPIRES
DOES_NOT_EXPIRE: Final = contract.KEY_MATERIAL_DOES_NOT_EXPIRE
OAEP_256: Final = contract.RSAES_OAEP_SHA_256
WRAPPING_SPEC: Final = "RSA_2048"
# The handler leaves ImportType out for material the key knows: KMS's default, EXISTING.
EXISTING: Final = None
NEW_KEY: Final = "NEW_KEY_MATERIAL"
INCORRECT: Final = "IncorrectKeyMaterialException"

# A fixed clock with a fraction of a second: ValidTo comes out in whole seconds.
NOW: Final = datetime(2026, 11, 28, 12, 30, 15, 750_000, tzinfo=UTC)
NOW_WHOLE: Final = datetime(2026, 11, 28, 12, 30, 15, tzinfo=UTC)
VALIDITY_DAYS: Final = 30
VALID_TO: Final = NOW_WHOLE + timedelta(days=VALIDITY_DAYS)
# What the key reported before this run: the ValidTo of an earlier import.
EARLIER_VALID_TO: Final = NOW_WHOLE + timedelta(days=20)
FAR: Final = NOW_WHOLE + timedelta(days=100)
WINDOW: Final = timedelta(days=14)

# Three recognisable 32-byte materials, oldest first.
OLD: Final = stubbing.SENTINEL_MATERIAL
MIDDLE: Final = b"SENTINEL-MID-MATERIAL-5555555555"
NEW: Final = b"SENTINEL-NEW-MATERIAL-9876543210"
MATERIALS: Final = (OLD, MIDDLE, NEW)
assert all(len(m) == contract.SYMMETRIC_MATERIAL_BYTES for m in MATERIALS)
# KeyMaterialIds as KMS reports them: 64 lowercase hex characters.
OLD_ID: Final = "a1" * 32
MIDDLE_ID: Final = "c3" * 32
NEW_ID: Final = "b2" * 32
VERSION_ID: Final = "6f1a2b3c-0000-4000-8000-00000000beef"
# A service message carrying every material: the leak checks fail if it is forwarded.
LEAKY_MESSAGE: Final = "stubbed error for " + " ".join(
    form for m in MATERIALS for form in (m.hex(), base64.b64encode(m).decode("ascii"))
)

DESCRIBE: Final = "DescribeKey"
PARAMETERS: Final = "GetParametersForImport"
IMPORT: Final = "ImportKeyMaterial"
ROTATE: Final = "RotateKeyOnDemand"
LIST: Final = "ListKeyRotations"
SECRET: Final = "GetSecretValue"
ATTEMPT: Final = [PARAMETERS, IMPORT]

PROPERTIES: Final[Mapping[str, str]] = {
    contract.PROP_KEY_ID: stubbing.KEY_ID,
    contract.PROP_SECRET_ARN: stubbing.SECRET_ARN,
    contract.PROP_KEY_SPEC: contract.SYMMETRIC_DEFAULT,
    contract.PROP_WRAPPING_ALGORITHM: OAEP_256,
    contract.PROP_WRAPPING_KEY_SPEC: WRAPPING_SPEC,
    contract.PROP_EXPIRATION_MODEL: EXPIRES,
    contract.PROP_VALIDITY_DAYS: str(VALIDITY_DAYS),
    contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true",
}


def make_request(
    *,
    rotate: bool = True,
    expiration_model: str = EXPIRES,
    version_id: str | None = None,
) -> ImportRequest:
    return ImportRequest(
        key_id=stubbing.KEY_ID,
        secret_arn=stubbing.SECRET_ARN,
        key_spec=contract.SYMMETRIC_DEFAULT,
        wrapping_algorithm=OAEP_256,
        wrapping_key_spec=WRAPPING_SPEC,
        expiration_model=expiration_model,
        validity_days=VALIDITY_DAYS if expiration_model == EXPIRES else None,
        material_version_id=version_id,
        rotate_on_material_change=rotate,
        key_usage="ENCRYPT_DECRYPT",
    )


ROTATING: Final = make_request()
SINGLE: Final = make_request(rotate=False)
RENEWAL: Final = RenewalRequest(import_request=ROTATING, renew_before=WINDOW, trigger="schedule")


def expected_valid_to(request: ImportRequest) -> datetime | None:
    return VALID_TO if request.expiration_model == EXPIRES else None


def materials_document(*materials: bytes) -> str:
    return json.dumps(
        {contract.MATERIALS_FIELD: [base64.b64encode(m).decode("ascii") for m in materials]}
    )


# --- fixtures -----------------------------------------------------------------------------------


# kms, secrets, timeline and the logger-level reset come from conftest.py.
pytestmark = pytest.mark.usefixtures("no_material_in_logs")


@pytest.fixture
def logged_materials() -> tuple[bytes, ...]:
    """No log record may carry any of the three materials."""
    return MATERIALS


@dataclass
class FakeClock:
    """Stands in for ``importer.time``: sleeping records the pause and moves the clock."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(importer, "time", fake)
    return fake


@dataclass
class Imports:
    """Queues GetParametersForImport + ImportKeyMaterial pairs, each with its own wrapping key
    and token, and reads back which material each ImportKeyMaterial carried."""

    kms: stubbing.KmsStub
    keys: list[stubbing.WrappingKey] = field(default_factory=list)

    def add(
        self,
        *,
        import_type: str | None,
        material_id: str = stubbing.KEY_MATERIAL_ID,
        error_code: str | None = None,
        request: ImportRequest = ROTATING,
    ) -> None:
        index = len(self.keys)
        key = stubbing.wrapping_key(WRAPPING_SPEC, index)
        token = f"import-token-{index}".encode()
        self.kms.add_parameters(
            key=key, token=token, wrapping_algorithm=OAEP_256, wrapping_key_spec=WRAPPING_SPEC
        )
        self.kms.add_import(
            token=token,
            expiration_model=request.expiration_model,
            valid_to=expected_valid_to(request),
            error_code=error_code,
            error_message=LEAKY_MESSAGE,
            import_type=import_type,
            key_material_id=material_id,
        )
        self.keys.append(key)

    def sent(self) -> list[bytes]:
        """The material inside every EncryptedKeyMaterial, in order (ValueError if one was
        wrapped for another call's public key)."""
        encrypted = self.kms.encrypted_materials()
        assert len(encrypted) == len(self.keys)
        return [key.unwrap(e, OAEP_256) for key, e in zip(self.keys, encrypted, strict=True)]

    def types(self) -> list[str | None]:
        return [p.get("ImportType") for p in self.kms.recorder.params_of(IMPORT)]


@pytest.fixture
def imports(kms: stubbing.KmsStub) -> Imports:
    return Imports(kms)


def queue_describe(
    kms: stubbing.KmsStub,
    *,
    current: str | None,
    state: str = "Enabled",
    request: ImportRequest = ROTATING,
    valid_to: datetime | None = VALID_TO,
) -> None:
    kms.add_describe(
        stubbing.key_metadata(
            state=state,
            expiration_model=request.expiration_model,
            valid_to=valid_to if request.expiration_model == EXPIRES else None,
            current_material_id=current,
        )
    )


def queue_check_of_fresh_key(kms: stubbing.KmsStub) -> None:
    """A key CreateKey(Origin=EXTERNAL) just made: PendingImport, no material at all."""
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))


def queue_check(kms: stubbing.KmsStub, *, current: str, request: ImportRequest = ROTATING) -> None:
    """The importer's first DescribeKey of a key that has material (an Update)."""
    queue_describe(kms, current=current, request=request, valid_to=EARLIER_VALID_TO)


def run(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, request: ImportRequest = ROTATING
) -> ImportResult:
    result = import_from_secret(kms.client, secrets.client, request, now=NOW)
    stubbing.assert_all_answered(kms, secrets)
    return result


def assert_clean(reason: str) -> None:
    for material in MATERIALS:
        stubbing.assert_clean_reason(reason, material)


def failure(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, request: ImportRequest = ROTATING
) -> str:
    """Run the import expecting an ImportFailure; every queued call made; its clean reason."""
    return stubbing.failure_reason(
        lambda: import_from_secret(kms.client, secrets.client, request, now=NOW),
        kms,
        secrets,
        materials=MATERIALS,
    )


def result_with(
    material_id: str | None, request: ImportRequest = ROTATING, *, proven: bool = True
) -> ImportResult:
    """The expected result; ``proven``: the id KMS returned for the newest import is current."""
    return ImportResult(
        key_id=stubbing.KEY_ID,
        key_arn=stubbing.KEY_ARN,
        valid_to=expected_valid_to(request),
        key_material_id=material_id,
        verified="KeyMaterialId" if proven and material_id else "DescribeKey",
    )


# --- Create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret_value",
    [
        pytest.param({"SecretString": materials_document(OLD)}, id="materials-document"),
        pytest.param({"SecretString": base64.b64encode(OLD).decode("ascii")}, id="base64"),
        pytest.param({"SecretBinary": OLD}, id="secret-binary"),
    ],
)
def test_create_imports_the_only_material_as_existing_and_does_not_rotate(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    clock: FakeClock,
    secret_value: dict[str, Any],
) -> None:
    secrets.add_secret(**secret_value)
    queue_check_of_fresh_key(kms)
    imports.add(import_type=EXISTING, material_id=OLD_ID)
    queue_describe(kms, current=OLD_ID)  # is the newest material current?
    queue_describe(kms, current=OLD_ID)  # the confirmation

    result = run(kms, secrets)

    assert result == result_with(OLD_ID)
    assert kms.recorder.operations == [DESCRIBE, *ATTEMPT, DESCRIBE, DESCRIBE]
    assert imports.sent() == [OLD]
    assert imports.types() == [EXISTING]
    assert clock.sleeps == []


# --- Update to new material -----------------------------------------------------------------------


def queue_new_material(kms: stubbing.KmsStub, imports: Imports) -> None:
    """[OLD, NEW] into a key whose only material is OLD, up to the NEW import."""
    queue_check(kms, current=OLD_ID)
    imports.add(import_type=EXISTING, material_id=OLD_ID)
    imports.add(import_type=EXISTING, error_code=INCORRECT)
    queue_describe(kms, current=OLD_ID)  # before new material: the secret lists the current one
    imports.add(import_type=NEW_KEY, material_id=NEW_ID)
    queue_describe(kms, current=OLD_ID)


@pytest.mark.parametrize("stale_reads", [0, 1, 2])
def test_update_imports_new_material_rotates_to_it_and_waits_until_it_is_current(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    clock: FakeClock,
    stale_reads: int,
) -> None:
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_new_material(kms, imports)
    kms.add_rotate()
    for _ in range(stale_reads):  # the rotation has not taken effect yet
        queue_describe(kms, current=OLD_ID)
    queue_describe(kms, current=NEW_ID)

    result = run(kms, secrets)

    assert result == result_with(NEW_ID)
    assert result.key_material_id == NEW_ID
    assert kms.recorder.operations == [
        DESCRIBE,
        *ATTEMPT,  # OLD, EXISTING: renews its ValidTo
        *ATTEMPT,  # NEW, EXISTING: refused, the key does not know it
        DESCRIBE,  # the current material is OLD, which the secret lists: NEW may go in
        *ATTEMPT,  # NEW, NEW_KEY_MATERIAL
        DESCRIBE,
        ROTATE,
        *[DESCRIBE] * (stale_reads + 1),
    ]
    assert imports.sent() == [OLD, NEW, NEW]
    assert imports.types() == [EXISTING, EXISTING, NEW_KEY]
    assert clock.sleeps == [1] * stale_reads


def test_a_rotation_that_never_takes_effect_fails_naming_both_materials(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importer, "_ROTATION_WAIT_S", 3)
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_new_material(kms, imports)
    kms.add_rotate()
    for _ in range(4):  # read at 0, 1, 2 and 3 seconds: still the old material
        queue_describe(kms, current=OLD_ID)

    reason = failure(kms, secrets)

    assert OLD_ID in reason
    assert NEW_ID in reason
    assert stubbing.KEY_ID in reason
    assert clock.sleeps == [1, 1, 1]
    assert kms.recorder.operations[-5:] == [ROTATE, DESCRIBE, DESCRIBE, DESCRIBE, DESCRIBE]


def test_an_expired_token_on_the_new_import_is_retried_once_still_as_new_material(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports
) -> None:
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_check(kms, current=OLD_ID)
    imports.add(import_type=EXISTING, material_id=OLD_ID)
    imports.add(import_type=EXISTING, error_code=INCORRECT)
    queue_describe(kms, current=OLD_ID)
    imports.add(import_type=NEW_KEY, error_code="ExpiredImportTokenException")
    imports.add(import_type=NEW_KEY, material_id=NEW_ID)
    queue_describe(kms, current=OLD_ID)
    kms.add_rotate()
    queue_describe(kms, current=NEW_ID)

    assert run(kms, secrets) == result_with(NEW_ID)
    assert imports.sent() == [OLD, NEW, NEW, NEW]
    assert imports.types() == [EXISTING, EXISTING, NEW_KEY, NEW_KEY]


def test_a_rerun_after_a_crash_before_the_rotation_rotates_once(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports, clock: FakeClock
) -> None:
    """NEW was imported as NEW_KEY_MATERIAL (PENDING_ROTATION) but never rotated to."""
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_check(kms, current=OLD_ID)
    imports.add(import_type=EXISTING, material_id=OLD_ID)
    imports.add(import_type=EXISTING, material_id=NEW_ID)  # already tied to the key
    queue_describe(kms, current=OLD_ID)
    kms.add_rotate()
    queue_describe(kms, current=NEW_ID)

    assert run(kms, secrets) == result_with(NEW_ID)
    assert kms.recorder.operations == [
        DESCRIBE,
        *ATTEMPT,
        *ATTEMPT,
        DESCRIBE,
        ROTATE,
        DESCRIBE,
    ]
    assert kms.recorder.params_of(ROTATE) == [{"KeyId": stubbing.KEY_ID}]
    assert imports.sent() == [OLD, NEW]
    assert imports.types() == [EXISTING, EXISTING]
    assert clock.sleeps == []


def test_a_rerun_after_the_rotation_reimports_everything_and_does_not_rotate_again(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports, clock: FakeClock
) -> None:
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_check(kms, current=NEW_ID)
    imports.add(import_type=EXISTING, material_id=OLD_ID)
    imports.add(import_type=EXISTING, material_id=NEW_ID)
    queue_describe(kms, current=NEW_ID)
    queue_describe(kms, current=NEW_ID)

    assert run(kms, secrets) == result_with(NEW_ID)
    assert kms.recorder.operations == [DESCRIBE, *ATTEMPT, *ATTEMPT, DESCRIBE, DESCRIBE]
    assert imports.sent() == [OLD, NEW]
    assert imports.types() == [EXISTING, EXISTING]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("listed", "known_before"),
    [
        pytest.param((OLD, NEW), 0, id="oldest-of-two"),
        pytest.param((OLD, MIDDLE, NEW), 1, id="middle-of-three"),
    ],
)
def test_an_older_material_the_key_does_not_know_fails_without_new_import_or_rotation(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    listed: tuple[bytes, ...],
    known_before: int,
) -> None:
    secrets.add_secret(SecretString=materials_document(*listed))
    queue_check(kms, current=OLD_ID)
    for _ in range(known_before):
        imports.add(import_type=EXISTING, material_id=OLD_ID)
    imports.add(import_type=EXISTING, error_code=INCORRECT)

    reason = failure(kms, secrets)

    assert "rotation_on_material_change" in reason
    assert stubbing.KEY_ID in reason
    assert kms.recorder.operations == [DESCRIBE, *ATTEMPT * (known_before + 1)]
    assert imports.sent() == list(listed[: known_before + 1])
    assert imports.types() == [EXISTING] * (known_before + 1)


def queue_rollback(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports, *, first_read: bool
) -> None:
    """A secret version from before the rotation lists [OLD]; the key already uses NEW."""
    if first_read:  # the renewal's own read: NEW expires soon
        queue_describe(kms, current=NEW_ID, valid_to=NOW_WHOLE + timedelta(days=2))
    secrets.add_secret(version_id=VERSION_ID, SecretString=materials_document(OLD))
    queue_check(kms, current=NEW_ID)
    imports.add(import_type=EXISTING, material_id=OLD_ID)
    queue_describe(kms, current=NEW_ID)


def test_a_rollback_to_a_version_before_the_rotation_keeps_the_key_and_does_not_rotate(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CloudFormation's rollback sends the old MaterialVersionId back. A rotation cannot be
    undone (KMS only rotates to PENDING_ROTATION material): the key stays on NEW, whole."""
    request = make_request(version_id=VERSION_ID)
    queue_rollback(kms, secrets, imports, first_read=False)
    queue_describe(kms, current=NEW_ID)  # the confirmation

    result = run(kms, secrets, request)

    # Only OLD was imported: the current NEW is reported, but nothing proves it this time.
    assert result == result_with(NEW_ID, proven=False)
    assert kms.recorder.operations == [DESCRIBE, *ATTEMPT, DESCRIBE, DESCRIBE]
    assert imports.sent() == [OLD]
    assert imports.types() == [EXISTING]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert stubbing.KEY_ID in warning.getMessage()
    assert NEW_ID[:12] in warning.getMessage()
    assert "material_version_id" in warning.getMessage()


def test_a_renewal_from_a_version_that_lacks_the_current_material_fails(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports
) -> None:
    """The renewal cannot keep NEW imported from a version that does not list it: an error
    (alarm, retries, dead-letter queue), not a silent success."""
    renewal = RenewalRequest(
        import_request=make_request(version_id=VERSION_ID), renew_before=WINDOW, trigger="schedule"
    )
    queue_rollback(kms, secrets, imports, first_read=True)

    reason = renewal_failure(kms, secrets, renewal)

    assert NEW_ID[:12] in reason
    assert "material_version_id" in reason
    assert kms.recorder.operations == [DESCRIBE, DESCRIBE, *ATTEMPT, DESCRIBE]
    assert ROTATE not in kms.recorder.operations


# --- without rotation -----------------------------------------------------------------------------


def test_without_rotation_a_document_with_two_materials_fails_before_any_kms_call(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretString=materials_document(OLD, NEW))

    reason = failure(kms, secrets, SINGLE)

    assert "holds 2 materials" in reason
    assert "rotation_on_material_change" in reason
    assert kms.recorder.operations == []
    assert secrets.recorder.operations == [SECRET]


@dataclass
class Answers:
    """Stands in for ``cfn.send_response``: keeps every body sent to CloudFormation."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, _url: str, body: dict[str, Any]) -> bool:
        self.bodies.append(body)
        return True


class FakeContext:
    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def answers(
    monkeypatch: pytest.MonkeyPatch, kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> Answers:
    """The real crhelper wiring with the stubbed clients and a captured response upload."""
    monkeypatch.setenv("AWS_REGION", stubbing.REGION)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv(contract.ENV_HANDLER_ROLE_ID, TEST_HANDLER_ROLE_ID)
    monkeypatch.setattr(clients, "kms_client", lambda: kms.client)
    monkeypatch.setattr(clients, "secretsmanager_client", lambda: secrets.client)
    sent = Answers()
    monkeypatch.setattr(cfn, "send_response", sent)
    return sent


def cfn_update(properties: Mapping[str, str]) -> dict[str, Any]:
    token = f"arn:aws:lambda:{stubbing.REGION}:{stubbing.ACCOUNT}:function:importer"
    return {
        "RequestType": "Update",
        "ServiceToken": token,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/response",
        "StackId": f"arn:aws:cloudformation:{stubbing.REGION}:{stubbing.ACCOUNT}:stack/app/0",
        "RequestId": "11111111-2222-3333-4444-555555555555",
        "LogicalResourceId": "KeyMaterial",
        "ResourceType": contract.RESOURCE_TYPE,
        "PhysicalResourceId": stubbing.KEY_ID,
        "ResourceProperties": {"ServiceToken": token, **properties},
        "OldResourceProperties": {"ServiceToken": token, **properties},
    }


NEVER_EXPIRES: Final[Mapping[str, str]] = {
    k: v for k, v in PROPERTIES.items() if k != contract.PROP_VALIDITY_DAYS
} | {contract.PROP_EXPIRATION_MODEL: DOES_NOT_EXPIRE}


def test_without_rotation_new_material_is_a_failed_update_with_no_new_import_or_rotation(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports, answers: Answers
) -> None:
    properties = dict(NEVER_EXPIRES) | {contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "false"}
    request = make_request(rotate=False, expiration_model=DOES_NOT_EXPIRE)
    kms.add_binding(properties)
    queue_check(kms, current=OLD_ID, request=request)  # is the key revoked?
    secrets.add_secret(SecretBinary=NEW)
    queue_check(kms, current=OLD_ID, request=request)
    imports.add(import_type=None, error_code=INCORRECT, request=request)

    cfn.build_helper()(cfn_update(properties), FakeContext())

    stubbing.assert_all_answered(kms, secrets)
    (body,) = answers.bodies
    assert body["Status"] == "FAILED"
    assert_clean(body["Reason"])
    assert stubbing.KEY_ID in body["Reason"]
    assert "never given" in body["Reason"]
    assert "rotation_on_material_change=True" in body["Reason"]
    assert kms.recorder.operations == ["ListResourceTags", DESCRIBE, DESCRIBE, *ATTEMPT]
    assert "ImportType" not in kms.recorder.params_of(IMPORT)[0]
    assert imports.sent() == [NEW]


def test_a_rotating_update_answers_success_with_the_new_key_material_id(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports, answers: Answers
) -> None:
    request = make_request(expiration_model=DOES_NOT_EXPIRE)
    kms.add_binding(NEVER_EXPIRES)
    queue_check(kms, current=OLD_ID, request=request)  # is the key revoked?
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_check(kms, current=OLD_ID, request=request)
    imports.add(import_type=EXISTING, material_id=OLD_ID, request=request)
    imports.add(import_type=EXISTING, error_code=INCORRECT, request=request)
    queue_describe(kms, current=OLD_ID, request=request)
    imports.add(import_type=NEW_KEY, material_id=NEW_ID, request=request)
    queue_describe(kms, current=OLD_ID, request=request)
    kms.add_rotate()
    queue_describe(kms, current=NEW_ID, request=request)
    kms.add_record(None)

    cfn.build_helper()(cfn_update(NEVER_EXPIRES), FakeContext())

    kms.stub.assert_no_pending_responses()
    (body,) = answers.bodies
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == stubbing.KEY_ID
    assert body["Data"] == {
        contract.ATTR_KEY_ARN: stubbing.KEY_ARN,
        contract.ATTR_KEY_ID: stubbing.KEY_ID,
        contract.ATTR_VALID_TO: "",
        contract.ATTR_KEY_MATERIAL_ID: NEW_ID,
        # The id KMS returned for the new material is the one DescribeKey reports as current.
        contract.ATTR_VERIFIED: "KeyMaterialId",
    }
    assert imports.sent() == [OLD, NEW, NEW]


# --- RotateKeyOnDemand refused --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("LimitExceededException", "RotateKeyOnDemand"),
        ("AccessDeniedException", "may not call kms:RotateKeyOnDemand"),
        ("KMSInternalException", "kms:RotateKeyOnDemand"),
    ],
)
def test_a_refused_rotation_fails_naming_rotate_key_on_demand(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    code: str,
    fragment: str,
) -> None:
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_new_material(kms, imports)
    kms.add_rotate(error_code=code, error_message=LEAKY_MESSAGE)

    reason = failure(kms, secrets)

    assert fragment in reason
    assert stubbing.KEY_ID in reason
    assert kms.recorder.operations[-2:] == [DESCRIBE, ROTATE]  # no confirmation after it


def test_the_rotation_quota_is_named_as_such_not_as_throttling(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports
) -> None:
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_new_material(kms, imports)
    kms.add_rotate(error_code="LimitExceededException", error_message=LEAKY_MESSAGE)

    reason = failure(kms, secrets)

    assert "RotateKeyOnDemand" in reason
    assert re.search(rf"\b{contract.MAX_ON_DEMAND_ROTATIONS}\b", reason)
    assert "throttled" not in reason


# --- MaterialVersionId ----------------------------------------------------------------------------


@pytest.mark.parametrize("rotate", [True, False])
def test_the_material_version_property_selects_the_secret_version(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports, rotate: bool
) -> None:
    request = ImportRequest.from_properties(
        dict(PROPERTIES)
        | {
            contract.PROP_MATERIAL_VERSION_ID: VERSION_ID,
            contract.PROP_ROTATE_ON_MATERIAL_CHANGE: str(rotate).lower(),
        }
    )
    assert request == make_request(rotate=rotate, version_id=VERSION_ID)
    if rotate:
        secrets.add_secret(version_id=VERSION_ID, SecretString=materials_document(OLD))
    else:
        secrets.add_secret(version_id=VERSION_ID, SecretBinary=OLD)
    queue_check(kms, current=OLD_ID, request=request)
    imports.add(import_type=EXISTING if rotate else None, material_id=OLD_ID, request=request)
    if rotate:
        queue_describe(kms, current=OLD_ID, request=request)
    queue_describe(kms, current=OLD_ID, request=request)

    # A single material is proven by its KeyMaterialId; a rotating import reports no proof.
    expected = result_with(OLD_ID, request)
    assert run(kms, secrets, request) == expected
    assert secrets.recorder.params_of(SECRET) == [
        {"SecretId": stubbing.SECRET_ARN, "VersionId": VERSION_ID}
    ]
    assert imports.sent() == [OLD]


# --- renewal of a rotating key --------------------------------------------------------------------


def entry(
    material_id: str,
    material_state: str,
    *,
    valid_to: datetime | None = FAR,
    import_state: str = "IMPORTED",
) -> dict[str, Any]:
    return stubbing.rotation_entry(
        material_id,
        material_state=material_state,
        import_state=import_state,
        expiration_model=EXPIRES,
        valid_to=valid_to,
    )


def queue_first_read(kms: stubbing.KmsStub, *, valid_to: datetime = FAR) -> None:
    """The renewal's own DescribeKey: the current material (NEW) and its ValidTo."""
    queue_describe(kms, current=NEW_ID, valid_to=valid_to)


def queue_full_reimport(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    *,
    unknown: bytes | None = None,
    left_behind: Sequence[dict[str, Any]] = (),
) -> None:
    """Every listed material again as EXISTING, with the new ValidTo, and no rotation.

    The secret lists OLD and NEW, then ``unknown`` if given: material the key does not know,
    which KMS refuses as EXISTING. ``left_behind`` are the entries the final listing still
    shows next to the renewed OLD and NEW.
    """
    listed = (OLD, NEW) if unknown is None else (OLD, NEW, unknown)
    secrets.add_secret(SecretString=materials_document(*listed))
    queue_describe(kms, current=NEW_ID, valid_to=FAR)
    imports.add(import_type=EXISTING, material_id=OLD_ID)
    imports.add(import_type=EXISTING, material_id=NEW_ID)
    if unknown is not None:
        imports.add(import_type=EXISTING, error_code=INCORRECT)
    queue_describe(kms, current=NEW_ID)
    queue_describe(kms, current=NEW_ID)
    # The renewal then checks that every material tied to the key was renewed.
    kms.add_list_rotations(
        [
            *left_behind,
            entry(OLD_ID, "NON_CURRENT", valid_to=VALID_TO),
            entry(NEW_ID, "CURRENT", valid_to=VALID_TO),
        ]
    )


FULL_REIMPORT: Final = [SECRET, DESCRIBE, *ATTEMPT, *ATTEMPT, DESCRIBE, DESCRIBE, LIST]


def renew(kms: stubbing.KmsStub, secrets: stubbing.SecretsStub) -> RenewalResult:
    result = renew_if_due(kms.client, secrets.client, RENEWAL, now=NOW)
    stubbing.assert_all_answered(kms, secrets)
    return result


def renewal_failure(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, renewal: RenewalRequest = RENEWAL
) -> str:
    """Run the renewal expecting an ImportFailure; every queued call made; its clean reason."""
    return stubbing.failure_reason(
        lambda: renew_if_due(kms.client, secrets.client, renewal, now=NOW),
        kms,
        secrets,
        materials=MATERIALS,
    )


def test_a_rotating_key_with_every_material_far_from_expiry_is_only_read(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, timeline: stubbing.CallRecorder
) -> None:
    queue_first_read(kms)
    kms.add_list_rotations([entry(OLD_ID, "NON_CURRENT"), entry(NEW_ID, "CURRENT")])

    result = renew(kms, secrets)

    assert result == RenewalResult(stubbing.KEY_ID, False, "not due", FAR)
    assert timeline.calls == [
        (DESCRIBE, {"KeyId": stubbing.KEY_ID}),
        (LIST, {"KeyId": stubbing.KEY_ID, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"}),
    ]


@pytest.mark.parametrize(
    ("old_entry", "why"),
    [
        pytest.param(
            entry(OLD_ID, "NON_CURRENT", valid_to=NOW_WHOLE + timedelta(days=3)),
            f"material {OLD_ID[:12]}... expires inside the renewal window",
            id="non-current-inside-window",
        ),
        pytest.param(
            entry(OLD_ID, "NON_CURRENT", valid_to=NOW + WINDOW),
            f"material {OLD_ID[:12]}... expires inside the renewal window",
            id="non-current-at-window-edge",
        ),
        pytest.param(
            entry(OLD_ID, "NON_CURRENT", valid_to=None, import_state="PENDING_IMPORT"),
            f"material {OLD_ID[:12]}... is not imported (expired or deleted)",
            id="pending-import",
        ),
    ],
)
def test_an_older_material_due_renews_every_listed_material_without_rotating(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    timeline: stubbing.CallRecorder,
    old_entry: dict[str, Any],
    why: str,
) -> None:
    queue_first_read(kms)
    kms.add_list_rotations([old_entry, entry(NEW_ID, "CURRENT")])
    queue_full_reimport(kms, secrets, imports)

    result = renew(kms, secrets)

    assert result == RenewalResult(stubbing.KEY_ID, True, why, VALID_TO)
    assert timeline.operations == [DESCRIBE, LIST, *FULL_REIMPORT]
    assert imports.sent() == [OLD, NEW]
    assert imports.types() == [EXISTING, EXISTING]
    assert [p["ValidTo"] for p in kms.recorder.params_of(IMPORT)] == [VALID_TO, VALID_TO]


def test_a_current_material_due_renews_without_listing_the_others(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    imports: Imports,
    timeline: stubbing.CallRecorder,
) -> None:
    soon = NOW_WHOLE + timedelta(days=2)
    queue_first_read(kms, valid_to=soon)
    queue_full_reimport(kms, secrets, imports)

    result = renew(kms, secrets)

    assert result.renewed
    assert result.why == f"material expires {soon.isoformat()}, inside the renewal window"
    assert timeline.operations == [DESCRIBE, *FULL_REIMPORT]
    assert imports.sent() == [OLD, NEW]


def test_a_truncated_listing_is_followed_to_the_last_page(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    queue_first_read(kms)
    kms.add_list_rotations([entry(OLD_ID, "NON_CURRENT")], next_marker="page-2")
    kms.add_list_rotations([entry(MIDDLE_ID, "NON_CURRENT")], marker="page-2", next_marker="p3")
    kms.add_list_rotations([entry(NEW_ID, "CURRENT")], marker="p3")

    assert not renew(kms, secrets).renewed
    assert kms.recorder.operations == [DESCRIBE, LIST, LIST, LIST]
    assert [p.get("Marker") for p in kms.recorder.params_of(LIST)] == [None, "page-2", "p3"]
    assert secrets.recorder.operations == []


def test_a_due_material_on_a_later_page_is_found(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports
) -> None:
    queue_first_read(kms)
    kms.add_list_rotations([entry(NEW_ID, "CURRENT")], next_marker="page-2")
    kms.add_list_rotations(
        [entry(OLD_ID, "NON_CURRENT", valid_to=None, import_state="PENDING_IMPORT")],
        marker="page-2",
    )
    queue_full_reimport(kms, secrets, imports)

    result = renew(kms, secrets)

    assert result.renewed
    assert OLD_ID[:12] in result.why
    assert kms.recorder.params_of(LIST)[1]["Marker"] == "page-2"
    assert ROTATE not in kms.recorder.operations


def test_a_refused_listing_fails_naming_list_key_rotations(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    queue_first_read(kms)
    kms.add_error(
        "list_key_rotations",
        "AccessDeniedException",
        {"KeyId": stubbing.KEY_ID, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"},
        message=LEAKY_MESSAGE,
    )

    reason = renewal_failure(kms, secrets)

    assert "kms:ListKeyRotations" in reason
    assert stubbing.KEY_ID in reason
    assert kms.recorder.operations == [DESCRIBE, LIST]
    assert secrets.recorder.operations == []


# --- response data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("material_id", "verified", "reported_id", "reported_verified"),
    [
        (NEW_ID, "KeyMaterialId", NEW_ID, "KeyMaterialId"),
        (None, "DescribeKey", "", "DescribeKey"),
        (NEW_ID, None, NEW_ID, ""),
        (None, None, "", ""),
    ],
)
def test_the_response_data_carries_the_key_material_id_and_how_it_was_verified(
    material_id: str | None, verified: str | None, reported_id: str, reported_verified: str
) -> None:
    result = replace(result_with(material_id), verified=verified)
    assert cfn.data_for(result) == {
        contract.ATTR_KEY_ARN: stubbing.KEY_ARN,
        contract.ATTR_KEY_ID: stubbing.KEY_ID,
        contract.ATTR_VALID_TO: VALID_TO.isoformat(),
        contract.ATTR_KEY_MATERIAL_ID: reported_id,
        contract.ATTR_VERIFIED: reported_verified,
    }


# --- the leak checks themselves -------------------------------------------------------------------


@pytest.mark.parametrize("material", MATERIALS)
@pytest.mark.parametrize("encode", [bytes.hex, lambda m: base64.b64encode(m).decode("ascii")])
def test_the_log_check_catches_each_material(
    material: bytes, encode: Callable[[bytes], str]
) -> None:
    """The log check would see any of the three materials in a log record."""
    leak = encode(material)
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "sent %s", (leak,), None)
    with pytest.raises(AssertionError, match="key material appears"):
        stubbing.assert_records_clean([record], material)


def test_a_material_the_secret_no_longer_lists_fails_the_renewal_loudly(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports
) -> None:
    forgotten = entry(MIDDLE_ID, "NON_CURRENT", valid_to=NOW_WHOLE + timedelta(days=3))
    queue_first_read(kms)
    kms.add_list_rotations([forgotten, entry(OLD_ID, "NON_CURRENT"), entry(NEW_ID, "CURRENT")])
    queue_full_reimport(kms, secrets, imports, left_behind=[forgotten])

    reason = renewal_failure(kms, secrets)

    assert f"material {MIDDLE_ID[:12]}... that the secret does not list" in reason
    assert "add it back" in reason


def test_a_renewal_never_imports_new_material_or_rotates(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports
) -> None:
    """New material appended to an unpinned secret waits for a deployment."""
    queue_first_read(kms)
    kms.add_list_rotations(
        [
            entry(OLD_ID, "NON_CURRENT", valid_to=NOW_WHOLE + timedelta(days=3)),
            entry(NEW_ID, "CURRENT"),
        ]
    )
    queue_full_reimport(kms, secrets, imports, unknown=MIDDLE)  # MIDDLE: new to the key

    result = renew(kms, secrets)

    assert result.renewed
    assert imports.types() == [EXISTING, EXISTING, EXISTING]
    assert imports.sent() == [OLD, NEW, MIDDLE]
    assert ROTATE not in kms.recorder.operations


def test_new_material_is_refused_before_any_import_when_the_secret_lacks_the_current_one(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, imports: Imports
) -> None:
    """A version listing [OLD, NEW] for a key whose current material is neither (another key's
    history, a secret rewritten by hand): NEW is never imported and nothing rotates."""
    other_id = "cd" * 32
    secrets.add_secret(SecretString=materials_document(OLD, NEW))
    queue_check(kms, current=other_id)
    imports.add(import_type=EXISTING, material_id=OLD_ID)
    imports.add(import_type=EXISTING, error_code=INCORRECT)
    queue_describe(kms, current=other_id)

    reason = failure(kms, secrets)

    assert "its new material was not imported" in reason
    assert other_id[:12] in reason
    assert NEW_KEY not in imports.types()
    assert ROTATE not in kms.recorder.operations
    assert kms.recorder.operations[-1] == DESCRIBE
