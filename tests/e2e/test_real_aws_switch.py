"""The opt-in real-AWS run (``make test-aws``): when it may run, what it runs, in which
Regions, and what it removes.

No account is used here: credentials are fake or absent, the instance metadata service is
switched off, and the clients are Stubber-backed, so nothing leaves the machine.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from botocore.stub import ANY, Stubber
from support import real_aws, regions
from support.real_aws import CreatedBucket, CreatedKey, RealAws
from support.regions import (
    EMULATOR_REPLICA_REGIONS,
    REPLICA_REGIONS_ENVIRONMENT,
    RegionPlan,
    plan_regions,
    replica_regions,
    replica_secret_arn,
    settle,
)
from support.synth import REPO

from imported_key_handler.renewal import FleetClients

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MULTI_REGION_KEY_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:test/x-AbCdEf"
HOME, SYDNEY, FRANKFURT = "eu-west-1", "ap-southeast-2", "eu-central-1"
MULTI_REGION_FILES = (
    "tests/e2e/test_multi_region_e2e.py",
    "tests/e2e/test_multi_region_rotation_e2e.py",
)


def clean_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any AWS setting, CI flag or real config files."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key not in ("CI", real_aws.ENVIRONMENT)
    }
    environment.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",  # no credential lookup over the network
    )
    environment.update(extra)
    return environment


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Put the clean environment in place for boto3 sessions made in this process."""
    clean = clean_environment(tmp_path)
    for key in list(os.environ):
        if key not in clean:
            monkeypatch.delenv(key)
    for key, value in clean.items():
        monkeypatch.setenv(key, value)
    return clean


def test_only_an_explicit_request_switches_to_real_aws() -> None:
    assert real_aws.requested({real_aws.ENVIRONMENT: "1"})
    for value in ("", "0", "true", "yes"):
        assert not real_aws.requested({real_aws.ENVIRONMENT: value})
    assert not real_aws.requested({})


def test_no_credentials_no_run(environment: dict[str, str]) -> None:
    settings = {**environment, "AWS_REGION": "eu-west-1"}
    reason = real_aws.refusal(real_aws.session_for(settings), settings)
    assert reason == "no AWS credentials configured"


def test_no_region_no_run(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    reason = real_aws.refusal(real_aws.session_for(os.environ), os.environ)
    assert reason is not None
    assert reason.startswith("no AWS Region configured")


def test_never_in_ci(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("CI", "true")
    reason = real_aws.refusal(real_aws.session_for(os.environ), os.environ)
    assert reason is not None
    assert "CI" in reason


@pytest.mark.parametrize(
    ("setting", "region"),
    [
        ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "eu-central-1"}, "eu-central-1"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-central-1"}, "eu-west-1"),
        ({}, "ap-south-1"),  # the profile's region, from the config file
    ],
)
def test_credentials_and_region_are_found_where_the_cli_finds_them(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: dict[str, str],
    region: str,
) -> None:
    (tmp_path / "no-config").write_text("[default]\nregion = ap-south-1\n")
    (tmp_path / "no-credentials").write_text(
        "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = example\n"
    )
    for key, value in setting.items():
        monkeypatch.setenv(key, value)
    session = real_aws.session_for(os.environ)
    assert real_aws.refusal(session, os.environ) is None
    assert session.region_name == region
    assert RealAws(session).region == region


def stubbed(service: str, region: str = HOME) -> tuple[Any, Stubber]:
    client = boto3.client(
        service,  # type: ignore[call-overload]
        region_name=region,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    return client, Stubber(client)


class FakeSession:
    """What RealAws uses of a boto3 session: its Region and one client per service and
    Region (the same object each time it is asked for)."""

    region_name = HOME

    def __init__(self, clients: dict[tuple[str, str], Any]) -> None:
        self._clients = clients

    def client(self, service: str, region_name: str | None = None) -> Any:
        return self._clients[service, region_name or self.region_name]


def journal(calls: list[tuple[str, str]], kms: Any) -> None:
    """Note (Region, KeyId) of each ScheduleKeyDeletion the client makes, so the order of calls
    across Regions, which no single Stubber sees, can be checked."""
    region = str(kms.meta.region_name)

    def note(params: dict[str, Any], **_: Any) -> None:
        calls.append((region, str(params["KeyId"])))

    kms.meta.events.register("provide-client-params.kms.ScheduleKeyDeletion", note)


def test_what_the_tests_create_is_removed_at_the_end() -> None:
    kms, kms_stub = stubbed("kms")
    secrets, secrets_stub = stubbed("secretsmanager")
    account = RealAws(FakeSession({("kms", HOME): kms, ("secretsmanager", HOME): secrets}))  # type: ignore[arg-type]
    other_key = "0b1c2d3e-1111-2222-3333-444455556666"
    gone_key = "9f8e7d6c-1111-2222-3333-444455556666"
    for key_id in (KEY_ID, other_key, gone_key):
        kms_stub.add_response("create_key", {"KeyMetadata": {"KeyId": key_id}})
    kms_stub.add_client_error("create_key", "LimitExceededException")  # nothing to remember
    secrets_stub.add_response("create_secret", {"ARN": SECRET_ARN}, {"Name": "test/x"})
    # The clean-up: every key scheduled for deletion after 7 days, every secret deleted now.
    kms_stub.add_response("schedule_key_deletion", {}, {"KeyId": KEY_ID, "PendingWindowInDays": 7})
    kms_stub.add_client_error(  # a test scheduled its deletion itself: fine
        "schedule_key_deletion",
        "KMSInvalidStateException",
        expected_params={"KeyId": other_key, "PendingWindowInDays": 7},
    )
    kms_stub.add_response(
        "describe_key",
        {"KeyMetadata": {"KeyId": other_key, "KeyState": "PendingDeletion"}},
        {"KeyId": other_key},
    )
    kms_stub.add_client_error(  # anything else is reported
        "schedule_key_deletion",
        "AccessDeniedException",
        expected_params={"KeyId": gone_key, "PendingWindowInDays": 7},
    )
    secrets_stub.add_response(
        "delete_secret", {}, {"SecretId": SECRET_ARN, "ForceDeleteWithoutRecovery": True}
    )
    with kms_stub, secrets_stub:
        client = account.kms()
        for _ in range(3):
            client.create_key(Origin="EXTERNAL")
        with pytest.raises(client.exceptions.LimitExceededException):
            client.create_key(Origin="EXTERNAL")
        account.secretsmanager().create_secret(Name="test/x")
        assert account.created_keys == [CreatedKey(HOME, k) for k in (KEY_ID, other_key, gone_key)]
        assert account.created_secrets == [SECRET_ARN]
        problems = account.close()
    kms_stub.assert_no_pending_responses()
    secrets_stub.assert_no_pending_responses()
    assert len(problems) == 1
    assert gone_key in problems[0]
    assert "AccessDeniedException" in problems[0]
    assert account.created_keys == []


def test_replicas_are_scheduled_for_deletion_first_each_in_its_region() -> None:
    """KMS deletes a multi-Region primary only after its replicas are deleted, so they go first;
    a replica's deletion must be asked of its own Region."""
    home, home_stub = stubbed("kms")
    sydney, sydney_stub = stubbed("kms", SYDNEY)
    frankfurt, frankfurt_stub = stubbed("kms", FRANKFURT)
    account = RealAws(
        FakeSession({("kms", HOME): home, ("kms", SYDNEY): sydney, ("kms", FRANKFURT): frankfurt})  # type: ignore[arg-type]
    )
    calls: list[tuple[str, str]] = []
    for client in (home, sydney, frankfurt):
        journal(calls, client)
    home_stub.add_response(
        "create_key",
        {"KeyMetadata": {"KeyId": MULTI_REGION_KEY_ID}},
        {"Origin": "EXTERNAL", "MultiRegion": True},
    )
    home_stub.add_response("create_key", {"KeyMetadata": {"KeyId": KEY_ID}})
    for region in (SYDNEY, FRANKFURT):
        home_stub.add_response(
            "replicate_key",
            {"ReplicaKeyMetadata": {"KeyId": MULTI_REGION_KEY_ID}},
            {"KeyId": MULTI_REGION_KEY_ID, "ReplicaRegion": region},
        )
    home_stub.add_client_error(  # a Region the account may not use: nothing was created
        "replicate_key",
        "UnsupportedOperationException",
        expected_params={"KeyId": MULTI_REGION_KEY_ID, "ReplicaRegion": "ap-east-1"},
    )
    scheduled = {"KeyId": MULTI_REGION_KEY_ID, "PendingWindowInDays": 7}
    sydney_stub.add_response(
        "schedule_key_deletion", {"KeyState": "PendingDeletion"}, dict(scheduled)
    )
    # A replica still Creating when the run ends is refused, and said to be left behind.
    frankfurt_stub.add_client_error(
        "schedule_key_deletion", "KMSInvalidStateException", expected_params=dict(scheduled)
    )
    frankfurt_stub.add_response(
        "describe_key",
        {"KeyMetadata": {"KeyId": MULTI_REGION_KEY_ID, "KeyState": "Creating"}},
        {"KeyId": MULTI_REGION_KEY_ID},
    )
    home_stub.add_response(
        "schedule_key_deletion", {"KeyState": "PendingReplicaDeletion"}, dict(scheduled)
    )
    home_stub.add_response("schedule_key_deletion", {}, {"KeyId": KEY_ID, "PendingWindowInDays": 7})
    with home_stub, sydney_stub, frankfurt_stub:
        client = account.kms()
        client.create_key(Origin="EXTERNAL", MultiRegion=True)
        client.create_key(Origin="EXTERNAL")
        for region in (SYDNEY, FRANKFURT):
            client.replicate_key(KeyId=MULTI_REGION_KEY_ID, ReplicaRegion=region)
        with pytest.raises(client.exceptions.UnsupportedOperationException):
            client.replicate_key(KeyId=MULTI_REGION_KEY_ID, ReplicaRegion="ap-east-1")
        assert account.created_keys == [
            CreatedKey(HOME, MULTI_REGION_KEY_ID),
            CreatedKey(HOME, KEY_ID),
            CreatedKey(SYDNEY, MULTI_REGION_KEY_ID, replica=True),
            CreatedKey(FRANKFURT, MULTI_REGION_KEY_ID, replica=True),
        ]
        problems = account.close()
    for stub in (home_stub, sydney_stub, frankfurt_stub):
        stub.assert_no_pending_responses()
    assert calls == [
        (SYDNEY, MULTI_REGION_KEY_ID),
        (FRANKFURT, MULTI_REGION_KEY_ID),
        (HOME, MULTI_REGION_KEY_ID),
        (HOME, KEY_ID),
    ]
    assert len(problems) == 1
    assert f"key {MULTI_REGION_KEY_ID} in {FRANKFURT} is Creating" in problems[0]


def test_a_replicated_secret_loses_its_replicas_before_it_is_deleted() -> None:
    replicated = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:byok/a-AbCdEf"
    later = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:byok/b-GhIjKl"
    own = "arn:aws:secretsmanager:ap-southeast-2:111122223333:secret:byok/c-MnOpQr"
    home, home_stub = stubbed("secretsmanager")
    sydney, sydney_stub = stubbed("secretsmanager", SYDNEY)
    pauses: list[float] = []
    account = RealAws(
        FakeSession({("secretsmanager", HOME): home, ("secretsmanager", SYDNEY): sydney}),  # type: ignore[arg-type]
        sleep=pauses.append,
    )
    home_stub.add_response(
        "create_secret",
        {"ARN": replicated, "ReplicationStatus": [{"Region": SYDNEY, "Status": "InProgress"}]},
        {"Name": "byok/a", "SecretBinary": b"m" * 32, "AddReplicaRegions": [{"Region": SYDNEY}]},
    )
    home_stub.add_response("create_secret", {"ARN": later}, {"Name": "byok/b"})
    home_stub.add_response(
        "replicate_secret_to_regions",
        {"ARN": later},
        {"SecretId": later, "AddReplicaRegions": [{"Region": FRANKFURT}, {"Region": SYDNEY}]},
    )
    home_stub.add_response("create_secret", {"ARN": SECRET_ARN}, {"Name": "test/x"})
    sydney_stub.add_response("create_secret", {"ARN": own}, {"Name": "byok/c"})
    # Each replicated secret: its replicas removed (the Regions it has now), then the secret,
    # asked again while the removal is under way.
    home_stub.add_response(
        "describe_secret",
        {"ARN": replicated, "ReplicationStatus": [{"Region": SYDNEY, "Status": "InSync"}]},
        {"SecretId": replicated},
    )
    home_stub.add_response(
        "remove_regions_from_replication",
        {"ARN": replicated},
        {"SecretId": replicated, "RemoveReplicaRegions": [SYDNEY]},
    )
    forced = {"ForceDeleteWithoutRecovery": True}
    home_stub.add_client_error(
        "delete_secret",
        "InvalidRequestException",
        expected_params={"SecretId": replicated, **forced},
    )
    home_stub.add_response("delete_secret", {}, {"SecretId": replicated, **forced})
    home_stub.add_response(  # a test removed the Sydney replica itself
        "describe_secret",
        {"ARN": later, "ReplicationStatus": [{"Region": FRANKFURT, "Status": "InSync"}]},
        {"SecretId": later},
    )
    home_stub.add_response(
        "remove_regions_from_replication",
        {"ARN": later},
        {"SecretId": later, "RemoveReplicaRegions": [FRANKFURT]},
    )
    home_stub.add_response("delete_secret", {}, {"SecretId": later, **forced})
    # A secret that was never replicated is not asked twice: the refusal is reported.
    home_stub.add_client_error(
        "delete_secret",
        "InvalidRequestException",
        expected_params={"SecretId": SECRET_ARN, **forced},
    )
    sydney_stub.add_response("delete_secret", {}, {"SecretId": own, **forced})
    with home_stub, sydney_stub:
        client = account.secretsmanager()
        client.create_secret(
            Name="byok/a", SecretBinary=b"m" * 32, AddReplicaRegions=[{"Region": SYDNEY}]
        )
        client.create_secret(Name="byok/b")
        client.replicate_secret_to_regions(
            SecretId=later, AddReplicaRegions=[{"Region": FRANKFURT}, {"Region": SYDNEY}]
        )
        client.create_secret(Name="test/x")
        account.client("secretsmanager", SYDNEY).create_secret(Name="byok/c")
        assert account.created_secrets == [replicated, later, SECRET_ARN, own]
        assert account.replicated_secrets == {replicated, later}
        problems = account.close()
    home_stub.assert_no_pending_responses()
    sydney_stub.assert_no_pending_responses()
    assert pauses == [real_aws.SECRET_DELETE_PAUSE_S]
    assert len(problems) == 1
    assert SECRET_ARN in problems[0]
    assert "InvalidRequestException" in problems[0]


def test_every_bucket_the_run_made_is_emptied_and_deleted_in_its_region() -> None:
    home, home_stub = stubbed("s3")
    sydney, sydney_stub = stubbed("s3", SYDNEY)
    account = RealAws(FakeSession({("s3", HOME): home, ("s3", SYDNEY): sydney}))  # type: ignore[arg-type]
    in_sydney = {"LocationConstraint": SYDNEY}
    home_stub.add_response(
        "create_bucket",
        {"Location": "http://x.s3.amazonaws.com/"},
        {"Bucket": ANY, "CreateBucketConfiguration": {"LocationConstraint": HOME}},
    )
    sydney_stub.add_client_error(  # someone else's name: nothing was created
        "create_bucket",
        "BucketAlreadyExists",
        expected_params={"Bucket": "taken", "CreateBucketConfiguration": in_sydney},
    )
    sydney_stub.add_response(
        "create_bucket",
        {"Location": "http://index-sydney.s3.amazonaws.com/"},
        {"Bucket": "index-sydney", "CreateBucketConfiguration": in_sydney},
    )
    with home_stub, sydney_stub:
        index = account.index_bucket()
        assert account.index_bucket() == index  # one bucket for the run's invoke fixture
        regional = account.client("s3", SYDNEY)
        with pytest.raises(regional.exceptions.BucketAlreadyExists):
            regional.create_bucket(Bucket="taken", CreateBucketConfiguration=in_sydney)
        regional.create_bucket(Bucket="index-sydney", CreateBucketConfiguration=in_sydney)
        assert account.created_buckets == [
            CreatedBucket(HOME, index),
            CreatedBucket(SYDNEY, "index-sydney"),
        ]
        home_stub.add_response(
            "list_objects_v2", {"Contents": [{"Key": "due/k1"}]}, {"Bucket": index}
        )
        home_stub.add_response("delete_object", {}, {"Bucket": index, "Key": "due/k1"})
        home_stub.add_response("delete_bucket", {}, {"Bucket": index})
        sydney_stub.add_response("list_objects_v2", {}, {"Bucket": "index-sydney"})
        sydney_stub.add_response("delete_bucket", {}, {"Bucket": "index-sydney"})
        problems = account.close()
    home_stub.assert_no_pending_responses()
    sydney_stub.assert_no_pending_responses()
    assert problems == []
    assert account.created_buckets == []


def test_replica_regions_default_to_three_others_or_come_from_the_environment() -> None:
    assert replica_regions("us-east-1", {}) == EMULATOR_REPLICA_REGIONS
    assert replica_regions(HOME, {}) == (SYDNEY, FRANKFURT, "us-east-1")
    assert replica_regions("us-west-2", {}) == EMULATOR_REPLICA_REGIONS
    listed = {REPLICA_REGIONS_ENVIRONMENT: " us-west-2, eu-west-1,,us-west-2 ,sa-east-1"}
    assert replica_regions(HOME, listed) == ("us-west-2", "sa-east-1")
    assert replica_regions(HOME, {REPLICA_REGIONS_ENVIRONMENT: ""}) == ()


def test_a_real_account_given_too_few_replica_regions_skips_the_test() -> None:
    account = RealAws(FakeSession({}))  # type: ignore[arg-type]
    listed = {REPLICA_REGIONS_ENVIRONMENT: f"{HOME},us-west-2"}
    assert plan_regions(account, 1, listed) == RegionPlan(HOME, ("us-west-2",))
    with pytest.raises(pytest.skip.Exception) as skipped:
        plan_regions(account, 2, listed)
    assert str(skipped.value) == (
        f"real AWS: this test needs 2 replica Regions besides {HOME}; "
        f"{REPLICA_REGIONS_ENVIRONMENT} gives 1 (us-west-2)"
    )
    # The emulator's Regions are fixed: the setting is for a real account only.
    assert plan_regions(object(), 3, listed) == RegionPlan("us-east-1", EMULATOR_REPLICA_REGIONS)


def test_settle_reads_the_emulator_once_and_a_real_account_until_done_or_time_is_up() -> None:
    def created(state: str) -> bool:
        return state != "Creating"

    states = iter(["Creating", "Creating", "PendingImport", "Enabled"])
    assert settle(False, lambda: next(states), created) == "Creating"

    clock = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock[0] += seconds

    states = iter(["Creating", "Creating", "PendingImport", "Enabled"])
    assert settle(True, lambda: next(states), created, sleep=sleep, clock=lambda: clock[0]) == (
        "PendingImport"
    )
    assert pauses == [regions.SETTLE_PAUSE_S] * 2
    pauses.clear()
    stuck = settle(
        True, lambda: "Creating", created, timeout=5.0, sleep=sleep, clock=lambda: clock[0]
    )
    assert stuck == "Creating"  # returned for the caller's assertion to fail on
    assert pauses == [regions.SETTLE_PAUSE_S] * 3


def test_a_replica_secret_is_read_where_it_is_once_it_holds_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replica_arn = replica_secret_arn(SECRET_ARN, SYDNEY)
    assert replica_arn == "arn:aws:secretsmanager:ap-southeast-2:111122223333:secret:test/x-AbCdEf"
    monkeypatch.setattr(regions, "SETTLE_PAUSE_S", 0.0)
    secrets, stub = stubbed("secretsmanager", SYDNEY)
    regional = regions.Regional(
        SYDNEY,
        FleetClients(secrets, secrets, secrets, secrets, "index"),
        regions.stack_id_in(SYDNEY),
        real=True,
    )
    read = {"SecretId": replica_arn}
    version = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"
    stub.add_client_error("get_secret_value", "ResourceNotFoundException", expected_params=read)
    stub.add_response(
        "get_secret_value",
        {"VersionId": "EXAMPLE0-90ab-cdef-fedc-ba987EXAMPLE", "SecretString": "{}"},
        read,
    )
    stub.add_response("get_secret_value", {"VersionId": version, "SecretString": "new"}, read)
    with stub:
        assert regions.replicated_version(regional, replica_arn, "new") == version
    stub.assert_no_pending_responses()


def run_pytest(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *arguments],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_test_aws_without_credentials_skips_everything(tmp_path: Path) -> None:
    environment = clean_environment(
        tmp_path, **{real_aws.ENVIRONMENT: "1", "AWS_REGION": "eu-west-1"}
    )
    report = tmp_path / "report.xml"
    files = ("tests/e2e/test_revocation_e2e.py", *MULTI_REGION_FILES)
    result = run_pytest(environment, "-m", "aws", f"--junitxml={report}", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every aws-marked test of the files is skipped, however many they hold: the report counts
    # the selected tests, in the same run. Each file has some: the multi-Region suites too.
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    selected = int(suite.attrib["tests"])
    assert int(suite.attrib["skipped"]) == selected
    modules = {case.attrib["classname"] for case in suite.iter("testcase")}
    assert modules == {Path(file).with_suffix("").as_posix().replace("/", ".") for file in files}
    assert f"{selected} skipped" in result.stdout
    assert "real AWS: no AWS credentials configured" in result.stdout
    assert "passed" not in result.stdout


def test_real_aws_runs_no_emulator_only_test(tmp_path: Path) -> None:
    # Credentials that would be accepted (and must never be used: the test is skipped).
    environment = clean_environment(
        tmp_path,
        **{
            real_aws.ENVIRONMENT: "1",
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "example",
        },
    )
    # An emulator-only test whose module loads no aws_cdk: the run costs seconds less.
    result = run_pytest(
        environment, "tests/e2e/test_support_selfcheck.py::test_localstack_listens_on_loopback_only"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "real AWS: this test needs the emulator" in result.stdout


def test_multi_region_tests_given_too_few_replica_regions_skip_before_creating_anything(
    tmp_path: Path,
) -> None:
    """Credentials that would be accepted, and only the account's own Region as a replica: every
    multi-Region test is skipped with that reason before it creates anything (any call would
    go to a closed local port, not to AWS, and fail the run)."""
    environment = clean_environment(
        tmp_path,
        **{
            real_aws.ENVIRONMENT: "1",
            "AWS_REGION": HOME,
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "example",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            REPLICA_REGIONS_ENVIRONMENT: HOME,
        },
    )
    report = tmp_path / "report.xml"
    result = run_pytest(environment, "-m", "aws", f"--junitxml={report}", *MULTI_REGION_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    selected = int(suite.attrib["tests"])
    assert selected > 0
    assert int(suite.attrib["skipped"]) == selected
    assert f"{REPLICA_REGIONS_ENVIRONMENT} gives 0 (none)" in result.stdout
    assert "real AWS: clean-up left" not in result.stdout + result.stderr
