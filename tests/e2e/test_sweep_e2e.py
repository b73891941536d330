"""The sweep against LocalStack: one schedule renews a fleet from its due index.

A small fleet is imported through the renewal path (a fresh key is PendingImport, so due), then
the clock moves: an idle sweep must call KMS for nothing, a sweep past the keys' due times must
renew every one of them and move its index entry, a key whose secret is gone must fail alone,
and a sweep out of time must leave the rest due for the next one. The emulated KMS's clock moves
with the handler's, so every ValidTo asked for is checked against KMS's 365-day limit.
"""

import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from support.binding import TEST_HANDLER_ROLE_ID, TEST_STACK_ID, PlayedStacks, bind_key
from support.calls import CallCounter
from support.events import LOGICAL_ID, frozen_at, import_properties, kms_expiration_event
from support.keys import assert_key_holds, external_key, new_secret
from support.localstack import LocalStack

from imported_key_handler import contract, entry, registry, renewal
from imported_key_handler.errors import ImportFailure
from imported_key_handler.renewal import FleetClients, renew_key
from imported_key_handler.sweep import RESERVE_S, publish, sweep

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

pytestmark = pytest.mark.localstack

START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
VALIDITY_DAYS = 30
WINDOW = timedelta(days=10)
FLEET = 3


@dataclass
class Fleet:
    clients: FleetClients
    keys: dict[str, bytes]  # key id -> material
    secrets: dict[str, str]  # key id -> secret ARN
    kms_calls: CallCounter
    s3_calls: CallCounter


@pytest.fixture
def fleet(
    localstack: LocalStack,
    stacks: PlayedStacks,
    shim_clock: Callable[[datetime], None],
    monkeypatch: pytest.MonkeyPatch,
) -> Fleet:
    """FLEET keys declared in the handler's stack, first imported at START by the renewal
    path, each indexed in a bucket of this test's own."""
    monkeypatch.setenv(contract.ENV_HANDLER_ROLE_ID, TEST_HANDLER_ROLE_ID)
    monkeypatch.setenv(contract.ENV_HANDLER_STACK_ID, TEST_STACK_ID)
    bucket = f"sweep-{uuid.uuid4()}"
    s3 = localstack.s3()
    s3.create_bucket(Bucket=bucket)
    kms = localstack.kms()
    clients = FleetClients(kms, localstack.secretsmanager(), stacks.client(), s3, bucket)
    shim_clock(START)
    keys: dict[str, bytes] = {}
    secrets: dict[str, str] = {}
    for _ in range(FLEET):
        material = os.urandom(32)
        key_id = external_key(kms)
        secrets[key_id] = new_secret(clients.secrets, SecretBinary=material)
        properties = import_properties(
            key_id,
            secrets[key_id],
            **{
                contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
                contract.PROP_VALIDITY_DAYS: str(VALIDITY_DAYS),
            },
        )
        bind_key(
            kms,
            properties,
            stack_id=TEST_STACK_ID,
            logical_id=LOGICAL_ID,
            renew_before_s=int(WINDOW.total_seconds()),
            stacks=stacks,
        )
        assert renew_key(clients, key_id, contract.TRIGGER_SCHEDULE, now=START).renewed
        keys[key_id] = material
    return Fleet(clients, keys, secrets, CallCounter(kms), CallCounter(s3))


def index(fleet: Fleet) -> dict[str, registry.Entry]:
    return {e.key_id: e for e in registry.entries(fleet.clients.s3, fleet.clients.bucket)}


def run_sweep(
    fleet: Fleet, shim_clock: Callable[[datetime], None], at: datetime, remaining_s: float = 900
) -> Any:
    shim_clock(at)
    return sweep(fleet.clients, remaining_s=lambda: remaining_s, now=lambda: at, per_second=1.0)


def test_each_key_is_indexed_once_due_inside_the_first_quarter_of_its_window(
    fleet: Fleet,
) -> None:
    entries = index(fleet)
    assert set(entries) == set(fleet.keys)
    assert len(list(registry.entries(fleet.clients.s3, fleet.clients.bucket))) == FLEET
    for indexed in entries.values():
        assert indexed.valid_to == START + timedelta(days=VALIDITY_DAYS)
        start_of_window = indexed.valid_to - WINDOW
        assert start_of_window <= indexed.due < start_of_window + WINDOW / registry.JITTER_SHARE
    # Keys imported together fall due at different times.
    assert len({indexed.due for indexed in entries.values()}) == FLEET


def test_an_idle_sweep_calls_kms_for_nothing(
    fleet: Fleet, shim_clock: Callable[[datetime], None]
) -> None:
    fleet.kms_calls.take()
    fleet.s3_calls.take()
    report = run_sweep(fleet, shim_clock, START + timedelta(days=1))
    assert (report.keys, report.due, report.renewed, report.failed) == (FLEET, 0, 0, [])
    assert fleet.kms_calls.take() == Counter()
    # One page of the index per thousand keys, and nothing else.
    assert fleet.s3_calls.take() == Counter(ListObjectsV2=1)
    assert report.earliest_valid_to == START + timedelta(days=VALIDITY_DAYS)


def test_a_sweep_past_the_due_times_renews_every_key_and_moves_its_entry(
    fleet: Fleet, shim_clock: Callable[[datetime], None]
) -> None:
    at = START + timedelta(days=VALIDITY_DAYS) - WINDOW + WINDOW / registry.JITTER_SHARE
    fleet.kms_calls.take()
    report = run_sweep(fleet, shim_clock, at)
    assert (report.due, report.renewed, report.failed, report.left_for_next) == (
        FLEET,
        FLEET,
        [],
        0,
    )
    calls = fleet.kms_calls.take()
    # Per key: the binding (tags), the key, the import and its confirmation, the record.
    per_key = Counter(
        ListResourceTags=1,
        DescribeKey=3,
        GetParametersForImport=1,
        ImportKeyMaterial=1,
        TagResource=1,
    )
    assert calls == Counter({name: count * FLEET for name, count in per_key.items()})
    entries = index(fleet)
    assert len(list(registry.entries(fleet.clients.s3, fleet.clients.bucket))) == FLEET
    for key_id, material in fleet.keys.items():
        assert entries[key_id].valid_to == at.replace(microsecond=0) + timedelta(days=VALIDITY_DAYS)
        assert_key_holds(fleet.clients.kms, key_id, material)
    # Right after, nothing is due: the next sweep is idle again.
    assert run_sweep(fleet, shim_clock, at + timedelta(hours=1)).due == 0


def test_a_key_whose_secret_is_gone_fails_alone_and_stays_due(
    fleet: Fleet, shim_clock: Callable[[datetime], None]
) -> None:
    lost = next(iter(fleet.keys))
    fleet.clients.secrets.delete_secret(
        SecretId=fleet.secrets[lost], ForceDeleteWithoutRecovery=True
    )
    at = START + timedelta(days=VALIDITY_DAYS) - WINDOW / 2
    report = run_sweep(fleet, shim_clock, at)
    assert report.failed == [lost]
    assert report.renewed == FLEET - 1
    entries = index(fleet)
    assert entries[lost].valid_to == START + timedelta(days=VALIDITY_DAYS)  # still due
    assert all(e.valid_to > at + WINDOW for k, e in entries.items() if k != lost)
    # The fleet's earliest expiry is the lost key's: the fleet alarm sees it coming.
    assert report.earliest_valid_to == START + timedelta(days=VALIDITY_DAYS)
    assert_key_holds(fleet.clients.kms, lost, fleet.keys[lost])  # untouched, still usable


def test_a_sweep_out_of_time_leaves_the_due_keys_for_the_next(
    fleet: Fleet, shim_clock: Callable[[datetime], None]
) -> None:
    at = START + timedelta(days=VALIDITY_DAYS) - WINDOW / 2
    fleet.kms_calls.take()
    report = run_sweep(fleet, shim_clock, at, remaining_s=RESERVE_S - 1)
    assert (report.due, report.renewed, report.left_for_next) == (FLEET, 0, FLEET)
    assert fleet.kms_calls.take() == Counter()
    report = run_sweep(fleet, shim_clock, at + timedelta(hours=1))
    assert (report.due, report.renewed, report.left_for_next) == (FLEET, FLEET, 0)


def test_the_sweep_event_runs_through_the_entry_point_and_publishes_the_figures(
    fleet: Fleet,
    localstack: LocalStack,
    shim_clock: Callable[[datetime], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.lambda_context import FakeLambdaContext

    from imported_key_handler import clients

    monkeypatch.setenv(contract.ENV_REGISTRY_BUCKET, fleet.clients.bucket)
    monkeypatch.setenv(contract.ENV_FLEET_NAME, f"fleet-{uuid.uuid4()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    shim_clock(START + timedelta(days=1))
    with clients.endpoint_for_tests(localstack.endpoint):
        summary = entry.handler({contract.SWEEP_EVENT: {}}, FakeLambdaContext(900))
    assert summary["Keys"] == FLEET
    assert summary["Due"] == 0
    cloudwatch = localstack.client("cloudwatch")
    listed = cloudwatch.list_metrics(
        Namespace=contract.FLEET_METRIC_NAMESPACE,
        Dimensions=[
            {"Name": contract.METRIC_DIMENSION, "Value": os.environ[contract.ENV_FLEET_NAME]}
        ],
    )["Metrics"]
    names = {metric["MetricName"] for metric in listed}
    assert contract.METRIC_MIN_SECONDS_TO_EXPIRY in names
    assert {contract.METRIC_KEYS, contract.METRIC_DUE, contract.METRIC_FAILED} <= names


def test_kms_expiration_events_restore_the_fleets_keys_and_ignore_others(
    fleet: Fleet,
    localstack: LocalStack,
    shim_clock: Callable[[datetime], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.lambda_context import FakeLambdaContext

    from imported_key_handler import clients

    kms: KMSClient = fleet.clients.kms
    expired = next(iter(fleet.keys))
    foreign = external_key(kms)  # not this handler's: no binding
    at = START + timedelta(days=VALIDITY_DAYS, minutes=5)
    shim_clock(at)
    # What KMS does at ValidTo: deletes the material, the key goes back to PendingImport.
    kms.delete_imported_key_material(KeyId=expired)
    monkeypatch.setenv(contract.ENV_REGISTRY_BUCKET, fleet.clients.bucket)
    monkeypatch.setattr(renewal, "datetime", frozen_at(at))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def expiration(key_id: str) -> dict[str, Any]:
        return kms_expiration_event(kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])

    with clients.endpoint_for_tests(localstack.endpoint):
        ignored = entry.handler(expiration(foreign), FakeLambdaContext(900))
        restored = entry.handler(expiration(expired), FakeLambdaContext(900))
    assert ignored["Status"] == "IGNORED"
    assert restored["Renewed"] is True
    assert kms.describe_key(KeyId=expired)["KeyMetadata"]["KeyState"] == "Enabled"
    assert_key_holds(kms, expired, fleet.keys[expired])
    assert index(fleet)[expired].valid_to > at


def test_a_key_copied_into_another_stack_is_refused_before_its_secret_is_read(
    fleet: Fleet, localstack: LocalStack, stacks: PlayedStacks
) -> None:
    """Anyone who may create and tag a key can copy a binding onto it: CloudFormation must
    also say the handler's stack (or one nested in it) declared that very key."""
    kms = fleet.clients.kms
    victim = next(iter(fleet.keys))
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=victim)["Tags"]}
    copy = external_key(kms)
    del tags[contract.TAG_VALID_TO]
    kms.tag_resource(KeyId=copy, Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()])
    reads = CallCounter(fleet.clients.secrets)
    with pytest.raises(ImportFailure, match="CloudFormation does not confirm"):
        renew_key(fleet.clients, copy, contract.TRIGGER_MATERIAL_EXPIRED, now=START)
    # Declared in another stack of the account, not nested in the handler's.
    other = TEST_STACK_ID.replace("/demo/", "/other/")
    stacks.record(other, "Copy", copy, resource_type="AWS::KMS::Key")
    kms.tag_resource(
        KeyId=copy,
        Tags=[
            {"TagKey": contract.TAG_STACK, "TagValue": other},
            {"TagKey": contract.TAG_KEY_RESOURCE, "TagValue": "Copy"},
        ],
    )
    with pytest.raises(ImportFailure, match="another stack"):
        renew_key(fleet.clients, copy, contract.TRIGGER_MATERIAL_EXPIRED, now=START)
    # Nested in the handler's stack: served.
    stacks.nest(other, TEST_STACK_ID)
    assert renew_key(fleet.clients, copy, contract.TRIGGER_MATERIAL_EXPIRED, now=START).renewed
    assert reads.take() == Counter(GetSecretValue=1)
    assert kms.describe_key(KeyId=copy)["KeyMetadata"]["KeyState"] == "Enabled"


def test_publish_reports_the_earliest_expiry_of_the_fleet(localstack: LocalStack) -> None:
    from imported_key_handler.sweep import SweepReport

    cloudwatch = localstack.client("cloudwatch")
    name = f"fleet-{uuid.uuid4()}"
    publish(cloudwatch, name, SweepReport(keys=3, due=1, renewed=1))
    listed = cloudwatch.list_metrics(
        Namespace=contract.FLEET_METRIC_NAMESPACE,
        Dimensions=[{"Name": contract.METRIC_DIMENSION, "Value": name}],
    )["Metrics"]
    # Nothing indexed: no expiry datapoint, so the fleet alarm (missing = breaching) fires.
    assert contract.METRIC_MIN_SECONDS_TO_EXPIRY not in {m["MetricName"] for m in listed}
    assert contract.METRIC_KEYS in {m["MetricName"] for m in listed}


def test_a_key_that_left_its_stack_leaves_the_index_without_failing_the_sweep(
    fleet: Fleet, shim_clock: Callable[[datetime], None], stacks: PlayedStacks
) -> None:
    """A replacement: CloudFormation now names another key for the old one's resource. The
    old key is no longer the fleet's, so the sweep drops its entry rather than fail daily."""
    replaced = next(iter(fleet.keys))
    tags = {
        t["TagKey"]: t["TagValue"]
        for t in fleet.clients.kms.list_resource_tags(KeyId=replaced)["Tags"]
    }
    stacks.record(
        TEST_STACK_ID, tags[contract.TAG_KEY_RESOURCE], "new-key-id", resource_type="AWS::KMS::Key"
    )
    at = START + timedelta(days=VALIDITY_DAYS) - WINDOW / 2
    report = run_sweep(fleet, shim_clock, at)
    assert (report.dropped, report.failed, report.renewed) == (1, [], FLEET - 1)
    assert replaced not in index(fleet)
    # Left alone in KMS: the deployment that replaced it decides what happens to it.
    assert_key_holds(fleet.clients.kms, replaced, fleet.keys[replaced])
