"""The renewal flow against Stubber-backed real KMS and Secrets Manager clients.

A renewal reads the key once; only when the material is inside the renewal window (or already
gone) does it read the secret and import the same material again with fresh import parameters
and a new ValidTo, then confirm it. Every request is queued with its exact parameters, one
call recorder shared by both clients keeps their calls in the order they were made, and the
EncryptedKeyMaterial is unwrapped with the private half of the stubbed wrapping key.

Botocore's retries are tested separately against a throttling HTTP server on 127.0.0.1: the
Stubber answers before the retry machinery, so a stubbed error is never retried.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Final

import boto3
import pytest
import stubbing
from support.binding import TEST_HANDLER_ROLE_ID

from imported_key_handler import clients, contract, entry, renewal
from imported_key_handler.errors import ImportFailure
from imported_key_handler.importer import import_from_secret
from imported_key_handler.renewal import (
    RenewalRequest,
    RenewalResult,
    due_reason,
    is_renewal_event,
    renew_if_due,
    renewal_key_id,
    run_renewal,
)
from imported_key_handler.request import ImportRequest

SENTINEL: Final = stubbing.SENTINEL_MATERIAL
EXPIRES: Final = contract.KEY_MATERIAL_EXPIRES
DOES_NOT_EXPIRE: Final = contract.KEY_MATERIAL_DOES_NOT_EXPIRE
OAEP_256: Final = contract.RSAES_OAEP_SHA_256
WRAPPING_SPEC: Final = "RSA_2048"
# A fixed clock with a fraction of a second: the new ValidTo must come out in whole seconds.
NOW: Final = datetime(2026, 11, 28, 12, 30, 15, 750_000, tzinfo=UTC)
NOW_WHOLE: Final = datetime(2026, 11, 28, 12, 30, 15, tzinfo=UTC)
VALIDITY_DAYS: Final = 30
WINDOW_SECONDS: Final = 14 * 24 * 3600
WINDOW: Final = timedelta(seconds=WINDOW_SECONDS)
NEW_VALID_TO: Final = NOW_WHOLE + timedelta(days=VALIDITY_DAYS)
TOKEN_1: Final = b"renewal-token-1"
TOKEN_2: Final = b"renewal-token-2"
DESCRIBE: Final = "DescribeKey"
SECRET: Final = "GetSecretValue"
PARAMETERS: Final = "GetParametersForImport"
IMPORT: Final = "ImportKeyMaterial"
FULL_RENEWAL: Final = [DESCRIBE, SECRET, DESCRIBE, PARAMETERS, IMPORT, DESCRIBE]
AUDIT_LOGGER: Final = "imported_key_handler.audit"

# The custom resource's own properties, as the construct puts them into the rule's input.
PROPERTIES: Final[Mapping[str, str]] = {
    contract.PROP_KEY_ID: stubbing.KEY_ID,
    contract.PROP_SECRET_ARN: stubbing.SECRET_ARN,
    contract.PROP_KEY_SPEC: contract.SYMMETRIC_DEFAULT,
    contract.PROP_WRAPPING_ALGORITHM: OAEP_256,
    contract.PROP_WRAPPING_KEY_SPEC: WRAPPING_SPEC,
    contract.PROP_EXPIRATION_MODEL: EXPIRES,
    contract.PROP_VALIDITY_DAYS: str(VALIDITY_DAYS),
}
NEVER_EXPIRES_PROPERTIES: Final[Mapping[str, str]] = {
    k: v for k, v in PROPERTIES.items() if k != contract.PROP_VALIDITY_DAYS
} | {contract.PROP_EXPIRATION_MODEL: DOES_NOT_EXPIRE}


class _Missing:
    """Marks a field the event leaves out."""


MISSING: Final = _Missing()


def renewal_request(
    *,
    trigger: str = contract.TRIGGER_SCHEDULE,
    renew_before: int = WINDOW_SECONDS,
    properties: dict[str, str] = PROPERTIES,
) -> RenewalRequest:
    """What a renewal reads from the key's declared tags (see binding.declared_request)."""
    return RenewalRequest(
        ImportRequest.from_properties(properties), timedelta(seconds=renew_before), trigger
    )


def renewal_event(
    *, trigger: object = contract.TRIGGER_SCHEDULE, key_id: object = stubbing.KEY_ID
) -> dict[str, Any]:
    """A renewal event for one key; MISSING leaves a field out."""
    body = {contract.RENEWAL_TRIGGER: trigger, contract.RENEWAL_KEY_ID: key_id}
    return {contract.RENEWAL_EVENT: {k: v for k, v in body.items() if v is not MISSING}}


RENEWAL: Final = renewal_request()


# --- fixtures -----------------------------------------------------------------------------------


# kms, secrets, timeline and the logger-level reset come from conftest.py.
pytestmark = pytest.mark.usefixtures("no_material_in_logs")


class _FrozenDatetime(datetime):
    """``renewal.datetime`` with ``now()`` fixed at NOW, for the entry points without ``now``."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _FrozenDatetime:
        return NOW.astimezone(tz) if tz is not None else NOW.replace(tzinfo=None)  # type: ignore[return-value]


@pytest.fixture
def stubbed_entry(
    monkeypatch: pytest.MonkeyPatch, kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    """``run_renewal`` and ``entry.handler`` get the stubbed clients, the fixed clock, no
    crhelper (a tripwire stands in for ``imported_key_handler.cfn``) and the default level."""
    monkeypatch.setattr(clients, "kms_client", lambda: kms.client)
    monkeypatch.setattr(clients, "secretsmanager_client", lambda: secrets.client)
    monkeypatch.setattr(renewal, "datetime", _FrozenDatetime)
    monkeypatch.setattr(entry, "_helper", None)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.setenv(contract.ENV_HANDLER_ROLE_ID, TEST_HANDLER_ROLE_ID)
    tripwire = types.ModuleType("imported_key_handler.cfn")
    tripwire.build_helper = _reached_crhelper  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "imported_key_handler.cfn", tripwire)


def _reached_crhelper() -> Any:
    raise AssertionError("a renewal event reached crhelper")


# --- queueing -----------------------------------------------------------------------------------


def queue_first_read(
    kms: stubbing.KmsStub,
    *,
    state: str = "Enabled",
    expiration_model: str | None = EXPIRES,
    valid_to: datetime | None = None,
) -> None:
    """The renewal's own DescribeKey, which decides whether anything else happens."""
    kms.add_describe(
        stubbing.key_metadata(state=state, expiration_model=expiration_model, valid_to=valid_to)
    )


def queue_reimport(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    *,
    check_state: str = "Enabled",
    check_valid_to: datetime | None = None,
) -> None:
    """GetSecretValue, then the importer's own DescribeKey check of the key."""
    secrets.add_secret(SecretBinary=SENTINEL)
    kms.add_describe(
        stubbing.key_metadata(state=check_state, expiration_model=EXPIRES, valid_to=check_valid_to)
    )


def queue_attempt(
    kms: stubbing.KmsStub,
    *,
    token: bytes = TOKEN_1,
    key_index: int = 0,
    error_code: str | None = None,
) -> stubbing.WrappingKey:
    """GetParametersForImport and ImportKeyMaterial with the new ValidTo, exact parameters."""
    key = stubbing.wrapping_key(WRAPPING_SPEC, key_index)
    kms.add_parameters(
        key=key, token=token, wrapping_algorithm=OAEP_256, wrapping_key_spec=WRAPPING_SPEC
    )
    kms.add_import(
        token=token, expiration_model=EXPIRES, valid_to=NEW_VALID_TO, error_code=error_code
    )
    return key


def queue_confirm(kms: stubbing.KmsStub, *, valid_to: datetime | None = NEW_VALID_TO) -> None:
    kms.add_describe(
        stubbing.key_metadata(state="Enabled", expiration_model=EXPIRES, valid_to=valid_to)
    )


def queue_due_renewal(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    *,
    valid_to: datetime = NOW + timedelta(days=1),
    error_code: str | None = None,
) -> stubbing.WrappingKey:
    """A key inside the window, renewed in full (confirmed unless the import fails)."""
    queue_first_read(kms, valid_to=valid_to)
    queue_reimport(kms, secrets, check_valid_to=valid_to)
    key = queue_attempt(kms, error_code=error_code)
    if error_code is None:
        queue_confirm(kms)
    return key


def renewal_failure(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    request: RenewalRequest = RENEWAL,
) -> str:
    """Run the renewal expecting an ImportFailure; return its checked reason."""
    return stubbing.failure_reason(
        lambda: renew_if_due(kms.client, secrets.client, request, now=NOW), kms, secrets
    )


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The structured fields of every audit line."""
    return [vars(r) for r in caplog.records if r.name == AUDIT_LOGGER]


# --- renewal_key_id --------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", contract.RENEWAL_TRIGGERS)
def test_a_renewal_event_names_its_key_and_trigger(trigger: str) -> None:
    assert renewal_key_id(renewal_event(trigger=trigger)) == (stubbing.KEY_ID, trigger)


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        pytest.param({contract.RENEWAL_EVENT: None}, "Not a renewal event", id="null-body"),
        pytest.param(renewal_event(trigger="bogus"), "has Trigger='bogus'", id="bad-trigger"),
        pytest.param(renewal_event(key_id=MISSING), "no KeyId string", id="no-key"),
        pytest.param(renewal_event(key_id=7), "no KeyId string", id="key-not-a-string"),
        pytest.param(renewal_event(key_id="k" * 3000), "no KeyId string", id="key-too-long"),
    ],
)
def test_a_malformed_renewal_event_is_refused(event: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ImportFailure) as caught:
        renewal_key_id(event)
    assert fragment in caught.value.reason


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(renewal_event(), True, id="renewal"),
        pytest.param(renewal_event(trigger="bogus"), True, id="renewal-with-bad-trigger"),
        pytest.param({contract.RENEWAL_EVENT: "x"}, False, id="body-not-a-mapping"),
        pytest.param({"detail-type": "Scheduled Event", "detail": {}}, False, id="scheduled"),
        pytest.param({"RequestType": "Create"}, False, id="cloudformation"),
        pytest.param([renewal_event()], False, id="list"),
        pytest.param(None, False, id="none"),
    ],
)
def test_is_renewal_event_looks_for_the_body_only(event: object, expected: bool) -> None:
    assert is_renewal_event(event) is expected


# --- due_reason ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"KeyState": "Enabled", "ExpirationModel": EXPIRES, "ValidTo": NOW + WINDOW}, "inside"),
        ({"KeyState": "Enabled", "ExpirationModel": EXPIRES}, "no ValidTo"),
        ({"KeyState": "PendingImport"}, "PendingImport"),
        (
            {"KeyState": "PendingImport", "ExpirationModel": DOES_NOT_EXPIRE},
            "PendingImport",
        ),
        (None, None),
    ],
    ids=["window-edge", "no-valid-to", "pending-import", "pending-import-never-expires", "far"],
)
def test_due_reason(metadata: dict[str, Any] | None, fragment: str | None) -> None:
    if metadata is None:  # far from the window
        metadata = {
            "KeyState": "Enabled",
            "ExpirationModel": EXPIRES,
            "ValidTo": NOW + WINDOW + timedelta(microseconds=1),
        }
    why = due_reason(metadata, WINDOW, NOW)
    if fragment is None:
        assert why is None
    else:
        assert why is not None
        assert fragment in why


# --- not due: one read, nothing else -----------------------------------------------------------


@pytest.mark.parametrize(
    "valid_to",
    [NOW + WINDOW + timedelta(seconds=1), NOW + timedelta(days=300)],
    ids=["one-second-past-the-window", "far-beyond-the-window"],
)
def test_material_outside_the_window_is_left_alone_after_one_describe(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    timeline: stubbing.CallRecorder,
    valid_to: datetime,
) -> None:
    queue_first_read(kms, valid_to=valid_to)
    # No Secrets Manager response is queued: reading the secret would raise.
    result = renew_if_due(kms.client, secrets.client, RENEWAL, now=NOW)
    assert result == RenewalResult(stubbing.KEY_ID, False, "not due", valid_to)
    assert timeline.calls == [(DESCRIBE, {"KeyId": stubbing.KEY_ID})]
    stubbing.assert_all_answered(kms, secrets)


@pytest.mark.parametrize("state", ["Enabled", "Disabled"])
def test_material_that_never_expires_is_left_alone_after_one_describe(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    timeline: stubbing.CallRecorder,
    state: str,
) -> None:
    request = renewal_request(properties=NEVER_EXPIRES_PROPERTIES)
    queue_first_read(kms, state=state, expiration_model=DOES_NOT_EXPIRE)
    result = renew_if_due(kms.client, secrets.client, request, now=NOW)
    assert result == RenewalResult(stubbing.KEY_ID, False, "not due", None)
    assert timeline.operations == [DESCRIBE]
    stubbing.assert_all_answered(kms, secrets)


# --- due: the whole re-import ------------------------------------------------------------------


@pytest.mark.parametrize(
    "valid_to",
    [NOW + timedelta(days=1), NOW + WINDOW, NOW - timedelta(minutes=5)],
    ids=["inside-the-window", "exactly-at-the-window-edge", "just-passed-still-enabled"],
)
def test_material_inside_the_window_is_reimported_with_a_new_valid_to(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    timeline: stubbing.CallRecorder,
    valid_to: datetime,
) -> None:
    key = queue_due_renewal(kms, secrets, valid_to=valid_to)

    result = renew_if_due(kms.client, secrets.client, RENEWAL, now=NOW)

    assert result.renewed is True
    assert result.key_id == stubbing.KEY_ID
    assert result.valid_to == NEW_VALID_TO
    assert result.why == f"material expires {valid_to.isoformat()}, inside the renewal window"
    assert timeline.operations == FULL_RENEWAL
    assert timeline.calls[1] == (SECRET, {"SecretId": stubbing.SECRET_ARN})
    (sent,) = kms.recorder.params_of(IMPORT)
    assert sent["ValidTo"] == NOW_WHOLE + timedelta(days=VALIDITY_DAYS)
    assert sent["ValidTo"].microsecond == 0
    (encrypted,) = kms.encrypted_materials()
    assert key.unwrap(encrypted, OAEP_256) == SENTINEL
    stubbing.assert_all_answered(kms, secrets)


@pytest.mark.parametrize("trigger", [contract.TRIGGER_MATERIAL_EXPIRED, contract.TRIGGER_SCHEDULE])
def test_a_key_whose_material_expired_is_restored(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    timeline: stubbing.CallRecorder,
    trigger: str,
) -> None:
    request = renewal_request(trigger=trigger)
    # KMS deleted the expired material: PendingImport, no ValidTo any more.
    queue_first_read(kms, state="PendingImport", valid_to=None)
    queue_reimport(kms, secrets, check_state="PendingImport")
    key = queue_attempt(kms)
    queue_confirm(kms)

    result = renew_if_due(kms.client, secrets.client, request, now=NOW)

    assert result == RenewalResult(
        stubbing.KEY_ID, True, "key is PendingImport (material expired or deleted)", NEW_VALID_TO
    )
    assert timeline.operations == FULL_RENEWAL
    (encrypted,) = kms.encrypted_materials()
    assert key.unwrap(encrypted, OAEP_256) == SENTINEL
    stubbing.assert_all_answered(kms, secrets)


def test_an_expiring_key_without_a_reported_valid_to_is_renewed(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, timeline: stubbing.CallRecorder
) -> None:
    queue_first_read(kms, valid_to=None)
    queue_reimport(kms, secrets)
    queue_attempt(kms)
    queue_confirm(kms)

    result = renew_if_due(kms.client, secrets.client, RENEWAL, now=NOW)

    assert result == RenewalResult(
        stubbing.KEY_ID, True, "KMS reports no ValidTo for expiring material", NEW_VALID_TO
    )
    assert timeline.operations == FULL_RENEWAL
    stubbing.assert_all_answered(kms, secrets)


def test_material_stored_as_base64_text_is_renewed_without_leaking(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    queue_first_read(kms, valid_to=NOW + timedelta(days=1))
    secrets.add_secret(SecretString=base64.b64encode(SENTINEL).decode("ascii"))
    kms.add_describe(stubbing.key_metadata(state="Enabled", expiration_model=EXPIRES))
    key = queue_attempt(kms)
    queue_confirm(kms)
    result = renew_if_due(kms.client, secrets.client, RENEWAL, now=NOW)
    assert result.renewed is True
    (encrypted,) = kms.encrypted_materials()
    assert key.unwrap(encrypted, OAEP_256) == SENTINEL
    stubbing.assert_no_material(repr(result))


def test_a_renewal_that_kms_does_not_extend_fails_the_confirmation(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    """KMS kept the old ValidTo (the API text that says delete-then-reimport): say so."""
    old = NOW + timedelta(days=1)
    queue_first_read(kms, valid_to=old)
    queue_reimport(kms, secrets, check_valid_to=old)
    queue_attempt(kms)
    queue_confirm(kms, valid_to=old)
    reason = renewal_failure(kms, secrets)
    assert f"reports ValidTo={old.isoformat()}" in reason
    assert f"with ValidTo={NEW_VALID_TO.isoformat()}" in reason


# --- keys a renewal cannot help -------------------------------------------------------------------


@pytest.mark.parametrize(
    "state", ["PendingDeletion", "Unavailable", "PendingReplicaDeletion", "Creating"]
)
def test_a_stuck_key_is_refused_after_one_describe(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    timeline: stubbing.CallRecorder,
    state: str,
) -> None:
    queue_first_read(kms, state=state, valid_to=NOW + timedelta(days=1))
    reason = renewal_failure(kms, secrets)
    assert f"Key {stubbing.KEY_ID} is {state}: renewal cannot import into it" in reason
    assert "CancelKeyDeletion" in reason
    assert timeline.operations == [DESCRIBE]


def test_a_stuck_multi_region_key_reason_fits_whole(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    properties = {**PROPERTIES, contract.PROP_KEY_ID: stubbing.LONG_KEY_ID}
    request = renewal_request(properties=properties)
    kms.add_describe(
        stubbing.key_metadata(state="PendingReplicaDeletion"), key_id=stubbing.LONG_KEY_ID
    )
    reason = renewal_failure(kms, secrets, request)
    assert stubbing.LONG_KEY_ID in reason
    assert reason.endswith("remove the key from the stack.")


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("NotFoundException", "does not exist in this account and Region"),
        ("AccessDeniedException", "may not call kms:DescribeKey"),
        ("KMSInternalException", "kms:DescribeKey on key"),
    ],
)
def test_an_error_on_the_first_describe_is_reported_before_the_secret_is_read(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    timeline: stubbing.CallRecorder,
    code: str,
    fragment: str,
) -> None:
    kms.add_error("describe_key", code, {"KeyId": stubbing.KEY_ID})
    reason = renewal_failure(kms, secrets)
    assert fragment in reason
    assert stubbing.KEY_ID in reason
    assert timeline.operations == [DESCRIBE]


def test_secret_material_of_the_wrong_length_never_reaches_the_import(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, timeline: stubbing.CallRecorder
) -> None:
    queue_first_read(kms, valid_to=NOW + timedelta(days=1))
    secrets.add_secret(SecretBinary=stubbing.sentinel_of_length(33))
    reason = renewal_failure(kms, secrets)
    assert "holds 33 bytes" in reason
    assert timeline.operations == [DESCRIBE, SECRET]


# --- throttling -----------------------------------------------------------------------------------


def test_throttled_import_parameters_fail_with_the_quota_in_the_reason(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, timeline: stubbing.CallRecorder
) -> None:
    # The Stubber answers in ``before-call``, ahead of botocore's retry handler, so this error
    # is final at once: it stands for throttling that outlasted every retry. The retries
    # themselves are tested against a real HTTP server below.
    queue_first_read(kms, valid_to=NOW + timedelta(days=1))
    queue_reimport(kms, secrets)
    kms.add_error(
        "get_parameters_for_import",
        "ThrottlingException",
        {
            "KeyId": stubbing.KEY_ID,
            "WrappingAlgorithm": OAEP_256,
            "WrappingKeySpec": WRAPPING_SPEC,
        },
    )
    reason = renewal_failure(kms, secrets)
    assert "throttled GetParametersForImport" in reason
    assert "1 request/s" in reason
    assert stubbing.KEY_ID in reason
    assert timeline.operations == [DESCRIBE, SECRET, DESCRIBE, PARAMETERS]


@dataclass
class SeenRequest:
    at: float
    target: str
    sdk_request: str
    body: dict[str, Any]


@dataclass
class FakeKms:
    """What the throttling server answered, and what it saw."""

    port: int
    throttles: int
    success: dict[str, Any]
    seen: list[SeenRequest] = field(default_factory=list)


def _kms_handler(fake: FakeKms) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a stuck client cannot hold the server thread

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.seen.append(
                SeenRequest(
                    at=time.monotonic(),
                    target=self.headers.get("X-Amz-Target", ""),
                    sdk_request=self.headers.get("amz-sdk-request", ""),
                    body=body,
                )
            )
            if len(fake.seen) <= fake.throttles:
                status = 400
                payload: dict[str, Any] = {
                    "__type": "ThrottlingException",
                    "message": "Rate exceeded",
                }
            else:
                status, payload = 200, fake.success
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", f"00000000-0000-4000-8000-{len(fake.seen):012d}")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


PARAMETERS_VALID_TO: Final = 1_795_000_000  # epoch seconds, as KMS's JSON carries timestamps
HTTP_TOKEN: Final = b"import-token-over-http"


@pytest.fixture
def throttling_kms() -> Iterator[FakeKms]:
    """KMS on 127.0.0.1 that throttles GetParametersForImport twice, then answers."""
    fake = FakeKms(
        port=0,
        throttles=2,
        success={
            "KeyId": stubbing.KEY_ARN,
            "ImportToken": base64.b64encode(HTTP_TOKEN).decode("ascii"),
            "PublicKey": base64.b64encode(stubbing.wrapping_key().public_der).decode("ascii"),
            "ParametersValidTo": PARAMETERS_VALID_TO,
        },
    )
    server = HTTPServer(("127.0.0.1", 0), _kms_handler(fake))
    fake.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_handler_client_config_backs_off_and_retries_a_throttled_call(
    throttling_kms: FakeKms, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Only the local server: no proxy, no shared config that could change the retry mode.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    # Record botocore's backoff pauses (endpoint.py sleeps between attempts), still sleeping.
    real_sleep: Callable[[float], None] = time.sleep
    pauses: list[float] = []

    def recording_sleep(seconds: float) -> None:
        pauses.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    session = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name=stubbing.REGION
    )
    client = session.client(
        "kms",
        endpoint_url=f"http://127.0.0.1:{throttling_kms.port}",
        config=clients.CLIENT_CONFIG,
    )

    response = client.get_parameters_for_import(
        KeyId=stubbing.KEY_ID, WrappingAlgorithm=OAEP_256, WrappingKeySpec="RSA_2048"
    )

    assert response["ImportToken"] == HTTP_TOKEN
    assert response["PublicKey"] == stubbing.wrapping_key().public_der
    assert response["ParametersValidTo"] == datetime.fromtimestamp(PARAMETERS_VALID_TO, UTC)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    seen = throttling_kms.seen
    assert len(seen) == 3
    assert {r.target for r in seen} == {"TrentService.GetParametersForImport"}
    assert all(
        r.body
        == {"KeyId": stubbing.KEY_ID, "WrappingAlgorithm": OAEP_256, "WrappingKeySpec": "RSA_2048"}
        for r in seen
    )
    # Standard mode, attempt by attempt; CLIENT_CONFIG allows 5 attempts in all.
    sdk_requests = [dict(p.split("=", 1) for p in r.sdk_request.split("; ")) for r in seen]
    assert [h.get("attempt") for h in sdk_requests] == ["1", "2", "3"]
    assert {h.get("max") for h in sdk_requests} == {"5"}
    # Two pauses, jittered exponential backoff for throttling: rand(0,1) * 1 s, then * 2 s.
    assert len(pauses) == 2
    assert 0 < pauses[0] <= 1
    assert 0 < pauses[1] <= 2
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(seen)]
    assert all(gap > 0 for gap in gaps)
    assert all(gap >= pause for gap, pause in zip(gaps, pauses, strict=True))


# --- import tokens --------------------------------------------------------------------------------


def test_an_expired_token_on_renewal_gets_fresh_parameters_and_one_retry(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, timeline: stubbing.CallRecorder
) -> None:
    valid_to = NOW + timedelta(days=2)
    queue_first_read(kms, valid_to=valid_to)
    queue_reimport(kms, secrets, check_valid_to=valid_to)
    first_key = queue_attempt(
        kms, token=TOKEN_1, key_index=0, error_code="ExpiredImportTokenException"
    )
    second_key = queue_attempt(kms, token=TOKEN_2, key_index=1)
    queue_confirm(kms)

    result = renew_if_due(kms.client, secrets.client, RENEWAL, now=NOW)

    assert (result.renewed, result.valid_to) == (True, NEW_VALID_TO)
    assert timeline.operations == [
        DESCRIBE,
        SECRET,
        DESCRIBE,
        PARAMETERS,
        IMPORT,
        PARAMETERS,
        IMPORT,
        DESCRIBE,
    ]
    assert [p["ImportToken"] for p in kms.recorder.params_of(IMPORT)] == [TOKEN_1, TOKEN_2]
    first_sent, second_sent = kms.encrypted_materials()
    assert first_key.unwrap(first_sent, OAEP_256) == SENTINEL
    # The retry was wrapped under the fresh public key, not the old one.
    assert second_key.unwrap(second_sent, OAEP_256) == SENTINEL
    with pytest.raises(ValueError):
        first_key.unwrap(second_sent, OAEP_256)
    stubbing.assert_all_answered(kms, secrets)


# --- material the key does not hold: the alarm path ------------------------------------------

INCORRECT: Final = "IncorrectKeyMaterialException"


def test_other_material_in_the_secret_fails_the_renewal_with_the_fix(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, timeline: stubbing.CallRecorder
) -> None:
    queue_due_renewal(kms, secrets, error_code=INCORRECT)
    reason = renewal_failure(kms, secrets)
    assert "only ever accepts its original material" in reason
    assert "restore it in the secret" in reason
    assert stubbing.KEY_ID in reason
    # No retry for anything but a rejected token, and no confirmation after a failure.
    assert timeline.operations == [DESCRIBE, SECRET, DESCRIBE, PARAMETERS, IMPORT]


@pytest.mark.usefixtures("stubbed_entry")
@pytest.mark.parametrize("entry_point", ["run_renewal", "entry.handler"])
def test_a_failed_renewal_raises_out_of_the_entry_points_and_is_audited(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    caplog: pytest.LogCaptureFixture,
    entry_point: str,
) -> None:
    kms.add_binding(PROPERTIES)
    queue_due_renewal(kms, secrets, error_code=INCORRECT)
    event = renewal_event()
    invoke: Callable[[], object] = (
        (lambda: run_renewal(stubbing.KEY_ID, contract.TRIGGER_SCHEDULE))
        if entry_point == "run_renewal"
        else (lambda: entry.handler(event, None))
    )

    # Raising (not returning) is what makes Lambda count an error, retry the event and
    # finally dead-letter it: the alarms watch exactly that.
    reason = stubbing.failure_reason(invoke, kms, secrets)

    assert "original material" in reason
    (audit,) = audit_records(caplog)
    assert audit["levelno"] == logging.INFO
    assert audit["msg"] % audit["args"] == "Renew(schedule) FAILED"
    assert audit["action"] == "Renew(schedule)"
    assert audit["key_id"] == stubbing.KEY_ID
    assert audit["outcome"] == "FAILED"
    assert audit["reason"] == reason
    stubbing.assert_no_material(repr(audit))
    assert entry._helper is None


# --- entry.handler with renewal events -----------------------------------------------------------


@pytest.mark.usefixtures("stubbed_entry")
def test_the_handler_renews_a_due_key_and_returns_the_summary(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, caplog: pytest.LogCaptureFixture
) -> None:
    valid_to = NOW + timedelta(days=3)
    kms.add_binding(PROPERTIES)
    key = queue_due_renewal(kms, secrets, valid_to=valid_to)
    kms.add_record(NEW_VALID_TO)

    summary = entry.handler(renewal_event(trigger=contract.TRIGGER_MATERIAL_EXPIRED), None)

    assert summary == {
        "KeyId": stubbing.KEY_ID,
        "Renewed": True,
        "Why": f"material expires {valid_to.isoformat()}, inside the renewal window",
        "ValidTo": "2026-12-28T12:30:15+00:00",
    }
    assert entry._helper is None
    (encrypted,) = kms.encrypted_materials()
    assert key.unwrap(encrypted, OAEP_256) == SENTINEL
    stubbing.assert_all_answered(kms, secrets)
    (audit,) = audit_records(caplog)
    assert (audit["action"], audit["key_id"], audit["outcome"], audit["valid_to"]) == (
        "Renew(material-expired)",
        stubbing.KEY_ID,
        "RENEWED",
        NEW_VALID_TO.isoformat(),
    )
    assert "reason" not in audit
    stubbing.assert_no_material(repr(summary))


@pytest.mark.usefixtures("stubbed_entry")
def test_the_handler_leaves_a_key_that_is_not_due_and_logs_not_due(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, caplog: pytest.LogCaptureFixture
) -> None:
    valid_to = datetime(2027, 6, 1, 0, 0, tzinfo=UTC)
    kms.add_binding(PROPERTIES)
    queue_first_read(kms, valid_to=valid_to)

    summary = entry.handler(renewal_event(), None)

    assert summary == {
        "KeyId": stubbing.KEY_ID,
        "Renewed": False,
        "Why": "not due",
        "ValidTo": "2027-06-01T00:00:00+00:00",
    }
    assert entry._helper is None
    assert kms.recorder.operations == ["ListResourceTags", DESCRIBE]
    assert secrets.recorder.operations == []
    (audit,) = audit_records(caplog)
    assert (audit["action"], audit["outcome"], audit["valid_to"]) == (
        "Renew(schedule)",
        "NOT_DUE",
        valid_to.isoformat(),
    )
    assert audit["msg"] % audit["args"] == "Renew(schedule) NOT_DUE"


@pytest.mark.usefixtures("stubbed_entry")
def test_the_handler_raises_for_a_malformed_renewal_event_without_any_call(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    with pytest.raises(ImportFailure) as caught:
        entry.handler(renewal_event(key_id=""), None)
    assert contract.RENEWAL_KEY_ID in caught.value.reason
    assert kms.recorder.operations == []
    assert secrets.recorder.operations == []
    assert entry._helper is None


def test_a_disabled_key_is_renewed_and_left_disabled_without_failing(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, timeline: stubbing.CallRecorder
) -> None:
    """DisableKey is the reversible kill switch: the material must still be there when the key
    is enabled again, and a disabled key must not fail (and page) every renewal."""
    valid_to = NOW + timedelta(days=1)
    queue_first_read(kms, state="Disabled", valid_to=valid_to)
    queue_reimport(kms, secrets, check_state="Disabled", check_valid_to=valid_to)
    queue_attempt(kms)
    kms.add_describe(
        stubbing.key_metadata(state="Disabled", expiration_model=EXPIRES, valid_to=NEW_VALID_TO)
    )
    result = renew_if_due(kms.client, secrets.client, RENEWAL, now=NOW)
    assert result.renewed
    assert result.valid_to == NEW_VALID_TO
    assert timeline.operations == FULL_RENEWAL
    stubbing.assert_all_answered(kms, secrets)


def test_a_deployment_into_a_disabled_key_still_fails_naming_enable_key(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    valid_to = NOW + timedelta(days=1)
    queue_reimport(kms, secrets, check_state="Disabled", check_valid_to=valid_to)
    queue_attempt(kms)
    kms.add_describe(
        stubbing.key_metadata(state="Disabled", expiration_model=EXPIRES, valid_to=NEW_VALID_TO)
    )
    reason = stubbing.failure_reason(
        lambda: import_from_secret(kms.client, secrets.client, RENEWAL.import_request, now=NOW),
        kms,
        secrets,
    )
    assert "EnableKey" in reason
