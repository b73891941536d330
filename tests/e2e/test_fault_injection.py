"""The real entry point against LocalStack behind a fault-injecting proxy.

Each scenario breaks the path to KMS and Secrets Manager in one way (unreachable, stopped in
the middle of an import, slow, HTTP 500/503, throttled, ImportKeyMaterial failing) and checks
that the handler answers CloudFormation exactly once, inside its (short) Lambda timeout, with a
reason that names what happened; that a failure leaves the key (state, ValidTo, material) and
the secret as they were; and that once the fault clears a new Create/Update event succeeds and
the key holds the secret's material.

The handler's boto3 clients use ``clients.CLIENT_CONFIG`` unchanged (connect 5 s, read 15 s,
standard retries, 5 attempts) and botocore's real, jittered backoff. Nothing is patched, except
in the one timer test marked as such. Run with ``-s`` to see the table of outcomes.
"""

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
from support.binding import bind_key
from support.cfn_server import CfnResponseServer
from support.events import REGION, cfn_event, import_properties
from support.fault_proxy import Fault, FaultProxy, Rule
from support.keys import assert_key_holds, external_key, new_secret
from support.lambda_context import FakeLambdaContext, play_lambda
from support.localstack import LocalStack, free_port

from imported_key_handler import cfn, clients, contract, entry, response

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = pytest.mark.localstack

# Long enough that the timer (which answers WORST_CASE_S before the end) never fires in the
# scenarios that are not about it: 30 s of work, more than any of them needs.
CONTEXT_S = response.WORST_CASE_S + 30
_CONFIG: Any = clients.CLIENT_CONFIG  # botocore-stubs do not declare Config's attributes
READ_TIMEOUT_S = float(_CONFIG.read_timeout)
CONNECT_TIMEOUT_S = float(_CONFIG.connect_timeout)
SDK_ATTEMPTS = int(_CONFIG.retries["total_max_attempts"])
# botocore's standard mode: rand(0, 1) * 2**i seconds before retry i+1 for throttling errors,
# 50 ms * 2**i for transient ones (connection errors, HTTP 5xx).
THROTTLE_BACKOFF_MAX_S = sum(2.0**i for i in range(SDK_ATTEMPTS - 1))
TRANSIENT_BACKOFF_MAX_S = 0.05 * THROTTLE_BACKOFF_MAX_S
SLACK_S = 3.0

GET_SECRET = "GetSecretValue"
DESCRIBE = "DescribeKey"
PARAMETERS = "GetParametersForImport"
IMPORT = "ImportKeyMaterial"
LIST_TAGS = "ListResourceTags"
TAG = "TagResource"
# What an import of a symmetric key sends when nothing goes wrong: the binding (the key's tags)
# and its state (revoked?) first, then the import, and the ValidTo recorded last.
HAPPY_PATH = {LIST_TAGS: 1, GET_SECRET: 1, DESCRIBE: 3, PARAMETERS: 1, IMPORT: 1, TAG: 1}

ENCRYPTION_CONTEXT = {"suite": "fault-injection"}


class HandlerMisbehaved(AssertionError):
    """A known handler bug showed itself; only this exception satisfies the xfail markers."""


# --- the scenario table ----------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    outcome: str
    answer_s: float
    requests: int
    operations: dict[str, int]
    note: str = ""


REPORT: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def _print_report() -> Iterator[None]:
    yield
    if not REPORT:
        return
    width = max(len(row.scenario) for row in REPORT)
    print("\n\nfault injection: scenario, outcome, answer time, requests seen by the proxy")
    for row in REPORT:
        operations = ", ".join(f"{name} {n}" for name, n in sorted(row.operations.items()))
        print(
            f"  {row.scenario:<{width}}  {row.outcome:<34} {row.answer_s:6.2f} s  "
            f"{row.requests:3d} ({operations or '-'}){'  ' + row.note if row.note else ''}"
        )


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def proxy(localstack: LocalStack) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(localstack.port)
    try:
        yield fault_proxy
    finally:
        fault_proxy.close()
    assert fault_proxy.threads_alive == 0, "the proxy did not stop cleanly"


@pytest.fixture
def handler_env(
    proxy: FaultProxy, cfn_server: CfnResponseServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The handler's environment as in Lambda, with AWS behind the proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    play_lambda(monkeypatch, REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setattr(entry, "_helper", None)
    # Lambda's invocation threads read it too: the setting is the module's, not the thread's.
    with clients.endpoint_for_tests(proxy.endpoint):
        yield


@dataclass
class Running:
    """One invocation of ``entry.handler`` in a thread, as Lambda would run it."""

    url: str
    context: FakeLambdaContext
    context_s: float
    started: float
    worker: threading.Thread
    server: CfnResponseServer
    answered_at: float = field(default=0.0)

    def first_answer(self) -> dict[str, Any]:
        """The first answer; it must arrive before the function's deadline."""
        answer = self.server.wait_for(self.url, timeout=self.context_s + 1)
        self.answered_at = time.monotonic()
        assert self.answer_s < self.context_s, "answered after the function's deadline"
        return answer

    def remaining_s(self) -> float:
        return self.context.get_remaining_time_in_millis() / 1000

    @property
    def answer_s(self) -> float:
        return self.answered_at - self.started

    def finish(self, timeout: float) -> list[dict[str, Any]]:
        """Wait for the handler to return; every answer it sent."""
        self.worker.join(timeout=timeout)
        assert not self.worker.is_alive(), f"the handler did not return within {timeout} s"
        return self.server.all_responses(self.url)


@dataclass
class Harness:
    proxy: FaultProxy
    server: CfnResponseServer
    kms: "KMSClient"
    secrets: "SecretsManagerClient"

    def start(
        self,
        request_type: str,
        properties: dict[str, str],
        *,
        context_s: float = CONTEXT_S,
        old_properties: dict[str, str] | None = None,
        physical_id: str | None = None,
    ) -> Running:
        self.proxy.reset_counts()
        url = self.server.response_url(request_type.lower())
        event = cfn_event(
            request_type,
            properties,
            url,
            physical_id=physical_id,
            old_properties=old_properties,
        )
        # CloudFormation's tags, written past the proxy: the faults are for the handler's calls.
        bind_key(
            self.kms, properties, stack_id=event["StackId"], logical_id=event["LogicalResourceId"]
        )
        context = FakeLambdaContext(context_s)
        worker = threading.Thread(
            target=entry.handler, args=(event, context), name="lambda-invocation", daemon=True
        )
        running = Running(url, context, context_s, time.monotonic(), worker, self.server)
        worker.start()
        return running

    def invoke(
        self,
        request_type: str,
        properties: dict[str, str],
        *,
        context_s: float = CONTEXT_S,
        old_properties: dict[str, str] | None = None,
        physical_id: str | None = None,
    ) -> tuple[dict[str, Any], Running]:
        """Run one event to its end; its single answer, checked to be the only one."""
        running = self.start(
            request_type,
            properties,
            context_s=context_s,
            old_properties=old_properties,
            physical_id=physical_id,
        )
        answer = running.first_answer()
        # The handler returns before the deadline (a moment's grace for the thread to end).
        answers = running.finish(timeout=running.remaining_s() + 0.5)
        assert len(answers) == 1, f"answered {len(answers)} times: {statuses(answers)}"
        return answer, running


def statuses(answers: list[dict[str, Any]]) -> list[str]:
    return [f"{answer['Status']}: {answer['Reason'][:60]}" for answer in answers]


@pytest.fixture
def harness(
    handler_env: None,
    proxy: FaultProxy,
    cfn_server: CfnResponseServer,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
) -> Harness:
    return Harness(proxy, cfn_server, kms, secretsmanager)


def record(
    scenario: str, answer: dict[str, Any], running: Running, proxy: FaultProxy, note: str = ""
) -> None:
    outcome = answer["Status"]
    if answer["Status"] == "FAILED":
        outcome += f" ({answer['Reason'][:24]}...)"
    REPORT.append(
        Row(scenario, outcome, running.answer_s, proxy.count(), proxy.by_operation(), note)
    )
    print(f"\n[{scenario}] {outcome} in {running.answer_s:.2f} s; proxy: {proxy.by_operation()}")


@dataclass
class KeyUnderTest:
    """A key, its secret and the properties of the stack that imported (or will import) it."""

    key_id: str
    secret_arn: str
    material: bytes
    properties: dict[str, str]
    ciphertext: bytes | None = None

    def updated(self, validity_days: str) -> dict[str, str]:
        return {**self.properties, contract.PROP_VALIDITY_DAYS: validity_days}


def properties_for(key_id: str, secret_arn: str, validity_days: str) -> dict[str, str]:
    # RSA_2048 wrapping keys: LocalStack makes them faster than RSA_4096; the path is the same.
    return import_properties(
        key_id,
        secret_arn,
        **{
            contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
            contract.PROP_VALIDITY_DAYS: validity_days,
        },
    )


def pending_key(harness: Harness) -> KeyUnderTest:
    """A key waiting for its first import."""
    material = os.urandom(32)
    key_id = external_key(harness.kms)
    secret_arn = new_secret(harness.secrets, SecretBinary=material)
    return KeyUnderTest(key_id, secret_arn, material, properties_for(key_id, secret_arn, "365"))


def imported_key(harness: Harness) -> KeyUnderTest:
    """A key whose stack was created (ValidTo in 365 days), with a ciphertext made since."""
    key = pending_key(harness)
    answer, _ = harness.invoke("Create", key.properties)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    key.ciphertext = harness.kms.encrypt(
        KeyId=key.key_id,
        Plaintext=b"written before the fault",
        EncryptionContext=ENCRYPTION_CONTEXT,
    )["CiphertextBlob"]
    return key


def snapshot(harness: Harness, key: KeyUnderTest) -> dict[str, Any]:
    """What a failed import must not change: the key's state, dates and material, the secret."""
    metadata = harness.kms.describe_key(KeyId=key.key_id)["KeyMetadata"]
    secret = harness.secrets.get_secret_value(SecretId=key.secret_arn)
    versions = harness.secrets.list_secret_version_ids(SecretId=key.secret_arn)["Versions"]
    return {
        "key": {
            name: metadata.get(name)
            for name in (
                "KeyState",
                "Enabled",
                "ValidTo",
                "ExpirationModel",
                "CurrentKeyMaterialId",
                "Origin",
                "KeySpec",
            )
        },
        "secret": {
            "SecretBinary": secret.get("SecretBinary"),
            "VersionId": secret["VersionId"],
            "VersionStages": secret["VersionStages"],
            "Versions": sorted(
                (version["VersionId"], tuple(sorted(version.get("VersionStages", []))))
                for version in versions
            ),
        },
    }


def assert_unchanged(harness: Harness, key: KeyUnderTest, before: dict[str, Any]) -> None:
    assert snapshot(harness, key) == before
    if key.ciphertext is not None:
        opened = harness.kms.decrypt(
            CiphertextBlob=key.ciphertext, EncryptionContext=ENCRYPTION_CONTEXT
        )
        assert opened["Plaintext"] == b"written before the fault"
        assert_key_holds(harness.kms, key.key_id, key.material, ENCRYPTION_CONTEXT)


def retry_succeeds(
    harness: Harness,
    key: KeyUnderTest,
    request_type: str,
    properties: dict[str, str],
    old_properties: dict[str, str] | None = None,
) -> datetime:
    """After the fault: a new event of the same type succeeds and the key holds the material."""
    harness.proxy.pass_through()
    answer, running = harness.invoke(
        request_type,
        properties,
        old_properties=old_properties,
        physical_id=key.key_id if request_type != "Create" else None,
    )
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert running.answer_s < 10
    assert harness.proxy.by_operation() == HAPPY_PATH
    metadata = harness.kms.describe_key(KeyId=key.key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled"
    assert answer["Data"][contract.ATTR_VALID_TO] == metadata["ValidTo"].isoformat()
    assert_key_holds(harness.kms, key.key_id, key.material, ENCRYPTION_CONTEXT)
    valid_to: datetime = metadata["ValidTo"]
    return valid_to


def sdk_failure_reason(key_id: str, error: str) -> str:
    return (
        f"The AWS SDK failed ({error}) for key {key_id}: check the function's network access "
        "to KMS and Secrets Manager, then retry."
    )


# --- 1. unreachable before the import --------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "error"),
    [("refused", "EndpointConnectionError"), ("upstream-closed", "ConnectionClosedError")],
)
def test_unreachable_before_the_import_fails_in_bounded_time(
    harness: Harness, localstack: LocalStack, how: str, error: str
) -> None:
    """Nothing listens (the proxy's port refuses), or the proxy reaches no emulator (its
    upstream is a closed port and it resets every connection): the first call fails."""
    key = pending_key(harness)
    before = snapshot(harness, key)
    if how == "refused":
        harness.proxy.go_offline()
    else:
        harness.proxy.set_upstream(free_port())

    answer, running = harness.invoke("Create", key.properties)
    record(f"1 unreachable ({how})", answer, running, harness.proxy)

    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == sdk_failure_reason(key.key_id, error)
    # The key's binding (its tags) is read first; a connection failure is retried with a short
    # backoff.
    assert running.answer_s < SDK_ATTEMPTS * 0.5 + TRANSIENT_BACKOFF_MAX_S + SLACK_S
    if how == "refused":
        assert harness.proxy.count() == 0
    else:
        assert harness.proxy.by_operation() == {LIST_TAGS: SDK_ATTEMPTS}
    assert_unchanged(harness, key, before)
    assert before["key"]["KeyState"] == "PendingImport"

    if how == "refused":
        harness.proxy.go_online()
    else:
        harness.proxy.set_upstream(localstack.port)
    retry_succeeds(harness, key, "Create", key.properties)


# --- 2. stopped in the middle of an import ---------------------------------------------------


def test_emulator_stopped_after_the_import_parameters(harness: Harness) -> None:
    """Every request after GetParametersForImport is dropped: ImportKeyMaterial never lands."""
    key = imported_key(harness)
    before = snapshot(harness, key)
    shorter = key.updated("30")
    harness.proxy.drop(after=PARAMETERS)

    answer, running = harness.invoke(
        "Update", shorter, old_properties=key.properties, physical_id=key.key_id
    )
    record("2 stopped after GetParametersForImport", answer, running, harness.proxy)

    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == sdk_failure_reason(key.key_id, "ConnectionClosedError")
    assert running.answer_s < SDK_ATTEMPTS * 0.5 + TRANSIENT_BACKOFF_MAX_S + SLACK_S
    assert harness.proxy.by_operation() == {
        LIST_TAGS: 1,
        GET_SECRET: 1,
        DESCRIBE: 2,
        PARAMETERS: 1,
        IMPORT: SDK_ATTEMPTS,
    }
    assert harness.proxy.count(IMPORT, "drop") == SDK_ATTEMPTS
    assert_unchanged(harness, key, before)

    valid_to = retry_succeeds(harness, key, "Update", shorter, old_properties=key.properties)
    assert valid_to < before["key"]["ValidTo"]


# --- 3. slow answers -------------------------------------------------------------------------


def test_delays_below_the_read_timeout_pass(harness: Harness) -> None:
    """GetParametersForImport takes longer than the connect timeout but less than the read
    timeout, everything else a little: one attempt each, SUCCESS."""
    slow_s = CONNECT_TIMEOUT_S + 1
    assert slow_s < READ_TIMEOUT_S
    key = imported_key(harness)
    shorter = key.updated("30")
    harness.proxy.set_rules(
        Rule(Fault.DELAY, target=PARAMETERS, delay_s=slow_s),
        Rule(Fault.DELAY, delay_s=0.2),
    )

    answer, running = harness.invoke(
        "Update", shorter, old_properties=key.properties, physical_id=key.key_id
    )
    record("3a delay < read timeout", answer, running, harness.proxy, f"{slow_s:g} s + 0.2 s")

    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert slow_s + 4 * 0.2 <= running.answer_s < slow_s + SLACK_S + 2
    assert harness.proxy.by_operation() == HAPPY_PATH  # no retry
    assert_key_holds(harness.kms, key.key_id, key.material, ENCRYPTION_CONTEXT)


def test_a_timeout_answer_is_the_only_answer_while_the_fault_lasts(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GetParametersForImport never answers (held far beyond the read timeout): the timer
    answers FAILED before the deadline and nothing else is sent until the deadline.

    Patched to keep this in seconds: the upload timeout (CloudFormation here answers at once)
    and, consistently with it, the margin the timer keeps (``WORST_CASE_S``, as response.py
    computes it). The timer mechanism itself is the handler's; the test of the unpatched
    margin is the next one.
    """
    monkeypatch.setattr(response, "TIMEOUT_S", 1.0)
    margin_s = response.ATTEMPTS * response.TIMEOUT_S + 3.0
    monkeypatch.setattr(cfn, "WORST_CASE_S", margin_s)
    work_s = 2.0
    key = imported_key(harness)
    before = snapshot(harness, key)
    shorter = key.updated("30")
    harness.proxy.delay(10 * READ_TIMEOUT_S, target=PARAMETERS)

    running = harness.start(
        "Update",
        shorter,
        context_s=margin_s + work_s,
        old_properties=key.properties,
        physical_id=key.key_id,
    )
    answer = running.first_answer()
    record("3b delay > read timeout: timer", answer, running, harness.proxy, "fault lasts")

    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == cfn.TIMEOUT_REASON
    assert work_s - 0.5 < running.answer_s < work_s + 1.0
    # Until Lambda would stop the function, nothing else goes out and nothing changes.
    time.sleep(running.remaining_s())
    assert len(harness.server.all_responses(running.url)) == 1
    assert harness.proxy.count(PARAMETERS, "pass") == 0
    assert_unchanged(harness, key, before)
    # The function is past its deadline: a real Lambda froze it. A thread cannot be stopped,
    # so let its stuck call fail (what it answers now, no Lambda would send).
    harness.proxy.drop()
    running.finish(timeout=10)

    retry_succeeds(harness, key, "Update", shorter, old_properties=key.properties)


def test_a_read_timeout_retry_after_the_timeout_answer_changes_nothing(
    harness: Harness,
) -> None:
    """Unpatched: GetParametersForImport is held beyond the read timeout once; the timer
    answers FAILED 3 s in; botocore's retry then succeeds, still before the deadline."""
    work_s = 3.0
    context_s = response.WORST_CASE_S + work_s
    # GetParametersForImport goes out within 1 s, times out READ_TIMEOUT_S later, and the
    # retry and the rest of the import take about 1 s: all before the deadline.
    assert context_s > 1.0 + READ_TIMEOUT_S + 2.0
    key = imported_key(harness)
    before = snapshot(harness, key)
    shorter = key.updated("30")
    harness.proxy.delay(READ_TIMEOUT_S + 15, target=PARAMETERS, count=1)

    running = harness.start(
        "Update",
        shorter,
        context_s=context_s,
        old_properties=key.properties,
        physical_id=key.key_id,
    )
    answer = running.first_answer()
    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == cfn.TIMEOUT_REASON
    assert work_s - 0.5 < running.answer_s < work_s + 1.0
    answers = running.finish(timeout=running.remaining_s())
    finished_s = time.monotonic() - running.started
    assert finished_s < context_s  # all of it happened while Lambda would still run it
    after = snapshot(harness, key)
    changed = [name for name, value in before["key"].items() if after["key"][name] != value]
    later = " / ".join(later["Status"] for later in answers[1:]) or "nothing"
    record(
        "3c delay > read timeout once: timer",
        answer,
        running,
        harness.proxy,
        f"then {later} at {finished_s:.1f} s; key changed: {', '.join(changed) or 'nothing'}",
    )
    assert harness.proxy.count(PARAMETERS) == 2  # the held one timed out, the retry passed

    problems = []
    if len(answers) != 1:
        problems.append(f"{len(answers)} answers: {statuses(answers)}")
    if after != before:
        problems.append(f"key changed after FAILED: {before['key']} -> {after['key']}")

    retry_succeeds(harness, key, "Update", shorter, old_properties=key.properties)
    if problems:
        raise HandlerMisbehaved("; ".join(problems))


# --- 4. HTTP 500/503, then recovery ----------------------------------------------------------


def test_server_errors_absorbed_by_retries(harness: Harness) -> None:
    """500s and 503s on several calls, each fewer than the attempts botocore makes: SUCCESS."""
    key = imported_key(harness)
    shorter = key.updated("30")
    injected = {GET_SECRET: 2, DESCRIBE: 1, PARAMETERS: SDK_ATTEMPTS - 1, IMPORT: 1}
    harness.proxy.set_rules(
        Rule(Fault.HTTP_500, target=GET_SECRET, count=injected[GET_SECRET]),
        Rule(Fault.HTTP_503, target=DESCRIBE, count=injected[DESCRIBE]),
        Rule(Fault.HTTP_503, target=PARAMETERS, count=injected[PARAMETERS]),
        Rule(Fault.HTTP_500, target=IMPORT, count=injected[IMPORT]),
    )

    answer, running = harness.invoke(
        "Update", shorter, old_properties=key.properties, physical_id=key.key_id
    )
    record("4 500/503 then recovery", answer, running, harness.proxy)

    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert running.answer_s < 4 * TRANSIENT_BACKOFF_MAX_S + SLACK_S
    assert harness.proxy.by_operation() == {
        name: HAPPY_PATH[name] + injected.get(name, 0) for name in HAPPY_PATH
    }
    metadata = harness.kms.describe_key(KeyId=key.key_id)["KeyMetadata"]
    assert answer["Data"][contract.ATTR_VALID_TO] == metadata["ValidTo"].isoformat()
    assert_key_holds(harness.kms, key.key_id, key.material, ENCRYPTION_CONTEXT)


# --- 5. throttling ---------------------------------------------------------------------------


def test_throttled_twice_then_passes(harness: Harness) -> None:
    key = imported_key(harness)
    shorter = key.updated("30")
    harness.proxy.throttle(target=PARAMETERS, count=2)

    answer, running = harness.invoke(
        "Update", shorter, old_properties=key.properties, physical_id=key.key_id
    )
    record("5a throttled x2 then pass", answer, running, harness.proxy)

    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert running.answer_s < 1 + 2 + SLACK_S
    assert harness.proxy.count(PARAMETERS, "throttle") == 2
    assert harness.proxy.by_operation() == {**HAPPY_PATH, PARAMETERS: 3}
    assert_key_holds(harness.kms, key.key_id, key.material, ENCRYPTION_CONTEXT)


def test_throttled_throughout_fails_naming_throttling(harness: Harness) -> None:
    key = imported_key(harness)
    before = snapshot(harness, key)
    shorter = key.updated("30")
    harness.proxy.throttle(target=PARAMETERS)

    answer, running = harness.invoke(
        "Update", shorter, old_properties=key.properties, physical_id=key.key_id
    )
    record("5b throttled throughout", answer, running, harness.proxy)

    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == (
        f"KMS throttled GetParametersForImport for key {key.key_id} after retries "
        "(GetParametersForImport allows 1 request/s): retry the deployment."
    )
    assert running.answer_s < THROTTLE_BACKOFF_MAX_S + SLACK_S
    assert harness.proxy.by_operation() == {
        LIST_TAGS: 1,
        GET_SECRET: 1,
        DESCRIBE: 2,
        PARAMETERS: SDK_ATTEMPTS,
    }
    assert_unchanged(harness, key, before)

    retry_succeeds(harness, key, "Update", shorter, old_properties=key.properties)


# --- 6. ImportKeyMaterial fails --------------------------------------------------------------


def test_import_key_material_unavailable_changes_nothing(harness: Harness) -> None:
    key = imported_key(harness)
    before = snapshot(harness, key)
    shorter = key.updated("30")
    harness.proxy.http_error(503, target=IMPORT)

    answer, running = harness.invoke(
        "Update", shorter, old_properties=key.properties, physical_id=key.key_id
    )
    record("6 ImportKeyMaterial 503 throughout", answer, running, harness.proxy)

    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == (
        f"kms:ImportKeyMaterial on key {key.key_id} failed with ServiceUnavailable: retry the "
        "deployment; if it persists, check the key in the KMS console."
    )
    assert running.answer_s < TRANSIENT_BACKOFF_MAX_S + SLACK_S
    assert harness.proxy.by_operation() == {
        LIST_TAGS: 1,
        GET_SECRET: 1,
        DESCRIBE: 2,
        PARAMETERS: 1,
        IMPORT: SDK_ATTEMPTS,
    }
    assert harness.proxy.count(IMPORT, "http-503") == SDK_ATTEMPTS
    assert_unchanged(harness, key, before)

    valid_to = retry_succeeds(harness, key, "Update", shorter, old_properties=key.properties)
    assert valid_to < before["key"]["ValidTo"]
