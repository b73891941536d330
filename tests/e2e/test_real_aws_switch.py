"""The opt-in real-AWS run (``make test-aws``): when it may run, what it runs, what it removes.

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
from botocore.stub import Stubber
from support import real_aws
from support.real_aws import RealAws
from support.synth import REPO

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:test/x-AbCdEf"


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


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(
        service,  # type: ignore[call-overload]
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    return client, Stubber(client)


class FakeSession:
    """What RealAws uses of a boto3 session: its Region and one client per service."""

    region_name = "eu-west-1"

    def __init__(self, clients: dict[str, Any]) -> None:
        self._clients = clients

    def client(self, service: str) -> Any:
        return self._clients[service]


def test_what_the_tests_create_is_removed_at_the_end() -> None:
    kms, kms_stub = stubbed("kms")
    secrets, secrets_stub = stubbed("secretsmanager")
    account = RealAws(FakeSession({"kms": kms, "secretsmanager": secrets}))  # type: ignore[arg-type]
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
        assert account.created_keys == [KEY_ID, other_key, gone_key]
        assert account.created_secrets == [SECRET_ARN]
        problems = account.close()
    kms_stub.assert_no_pending_responses()
    secrets_stub.assert_no_pending_responses()
    assert len(problems) == 1
    assert gone_key in problems[0]
    assert "AccessDeniedException" in problems[0]
    assert account.created_keys == []


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
    result = run_pytest(
        environment, "-m", "aws", f"--junitxml={report}", "tests/e2e/test_revocation_e2e.py"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every aws-marked test of the file is skipped, however many it holds: the report counts
    # the selected tests, in the same run.
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    selected = int(suite.attrib["tests"])
    assert selected > 0
    assert int(suite.attrib["skipped"]) == selected
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
