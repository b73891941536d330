"""Fixtures for end-to-end tests: one LocalStack per session, clients, a CloudFormation stand-in.

``kms``, ``secretsmanager`` and ``invoke`` talk to the session's ``backend``: LocalStack, or,
with ``IMPORTED_KEY_CDK_REAL_AWS=1`` (``make test-aws``), a real AWS account. In that mode only
tests marked ``aws`` run (the others rely on the emulator: its ciphertext format, the shim's
clock, its own limits) and everything is skipped when no credentials or Region are configured,
or when ``CI`` is set.
"""

import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError
from support import binding as binding_support
from support import real_aws
from support.binding import (
    INDEX_BUCKET,
    TEST_HANDLER_ROLE_ID,
    TEST_STACK_ID,
    PlayedStacks,
    bind_key,
    key_logical_id,
)
from support.cfn_server import CfnResponseServer
from support.events import REGION, cfn_event
from support.lambda_context import FakeLambdaContext, play_lambda
from support.localstack import LocalStack, start_localstack
from support.real_aws import RealAws

from imported_key_handler import clients, contract, entry

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """LocalStack with KMS and Secrets Manager, started once per session; its log is kept."""
    stack = start_localstack(tmp_path_factory.mktemp("localstack-logs"))
    # The handler's due index (ENV_REGISTRY_BUCKET, which play_lambda sets).
    stack.s3().create_bucket(Bucket=INDEX_BUCKET)
    try:
        yield stack
    finally:
        stack.stop()


E2E_DIR = Path(__file__).parent
UNTAGGABLE = ("NotFoundException", "KMSInvalidStateException")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not real_aws.requested():
        return
    refused = real_aws.refusal(real_aws.session_for())
    for item in items:
        if not item.path.is_relative_to(E2E_DIR):
            continue
        if refused is not None:
            item.add_marker(pytest.mark.skip(reason=f"real AWS: {refused}"))
        elif item.get_closest_marker("aws") is None:
            item.add_marker(pytest.mark.skip(reason="real AWS: this test needs the emulator"))


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Iterator[LocalStack | RealAws]:
    """Where the end-to-end tests' KMS and Secrets Manager are: LocalStack or a real account."""
    if not real_aws.requested():
        yield request.getfixturevalue("localstack")
        return
    account = RealAws(real_aws.session_for())
    try:
        yield account
    finally:
        problems = account.close()
        if problems:
            warnings.warn("real AWS clean-up left: " + "; ".join(problems), stacklevel=1)


@pytest.fixture
def kms(backend: LocalStack | RealAws) -> "KMSClient":
    return backend.kms()


@pytest.fixture
def secretsmanager(backend: LocalStack | RealAws) -> "SecretsManagerClient":
    return backend.secretsmanager()


@pytest.fixture
def shim_clock(localstack: LocalStack) -> Iterator[Callable[[datetime], None]]:
    """Move the emulated KMS's clock (see ``LocalStack.set_clock``); back to real time after."""
    yield localstack.set_clock
    localstack.set_clock(None)


@pytest.fixture
def cfn_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CfnResponseServer]:
    """A CloudFormation response endpoint, trusted by this process's default SSL contexts.

    ``SSL_CERT_FILE`` replaces the system trust store for the test, which is what makes
    crhelper's ``ssl.create_default_context()`` accept the server; LocalStack is plain HTTP
    and unaffected.
    """
    with CfnResponseServer() as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server


@pytest.fixture
def stacks(monkeypatch: pytest.MonkeyPatch) -> PlayedStacks:
    """CloudFormation's record of the played stacks (what the handler asks it), empty at the
    start of each test."""
    played = PlayedStacks()
    monkeypatch.setattr(binding_support, "PLAYED", played)
    monkeypatch.setattr(clients, "cloudformation_client", played.client)
    return played


@pytest.fixture(autouse=True)
def _played_stacks(stacks: PlayedStacks) -> PlayedStacks:
    return stacks


@pytest.fixture
def invoke(
    backend: LocalStack | RealAws,
    cfn_server: CfnResponseServer,
    monkeypatch: pytest.MonkeyPatch,
    stacks: PlayedStacks,
) -> Any:
    """Run the real entry point as Lambda would, against the backend; return the response.

    As in Lambda, no endpoint override is in the environment: the emulator's endpoint is set
    through ``clients.endpoint_for_tests``.
    """
    if isinstance(backend, RealAws):
        # The account's own credentials (environment or profile), botocore's endpoints. A
        # profile may live in AWS_CONFIG_FILE, which the handler refuses in Lambda, so this
        # mode does not play Lambda.
        monkeypatch.setenv("AWS_REGION", backend.region)
        monkeypatch.setenv("AWS_DEFAULT_REGION", backend.region)
        monkeypatch.setenv(contract.ENV_HANDLER_ROLE_ID, TEST_HANDLER_ROLE_ID)
        monkeypatch.setenv(contract.ENV_HANDLER_STACK_ID, TEST_STACK_ID)
        monkeypatch.setenv(contract.ENV_REGISTRY_BUCKET, backend.index_bucket())
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        endpoint = None
    else:
        play_lambda(monkeypatch, REGION)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        endpoint = backend.endpoint
    monkeypatch.setattr(entry, "_helper", None)

    def run(
        request_type: str,
        properties: dict[str, str],
        *,
        forged: bool = False,
        adopted: bool = False,
        reported_physical_id: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Play CloudFormation: bind the key to ``properties`` first (it tags the key before
        the import that depends on it) and confirm a Delete. ``forged=True`` sends the event
        alone, as someone who may only invoke the function would, to a stack that is not
        removing the resource, whose physical id CloudFormation reports as
        ``reported_physical_id`` (default: the event's). ``adopted=True``: the key is not the
        stack's (``support.binding.adopt_key`` played its adoption), so nothing tags it."""
        url = cfn_server.response_url(request_type.lower())
        event = cfn_event(request_type, properties, url, **kwargs)
        key_id = str(properties.get(contract.PROP_KEY_ID, ""))
        if not forged and not adopted:
            # CloudFormation's record: the key resource is the key, and a Delete is underway.
            stacks.record(
                event["StackId"], key_logical_id(key_id), key_id, resource_type="AWS::KMS::Key"
            )
        stacks.record(
            event["StackId"],
            event["LogicalResourceId"],
            reported_physical_id or str(event.get("PhysicalResourceId", "")),
            status="DELETE_IN_PROGRESS"
            if request_type == "Delete" and not forged
            else "UPDATE_COMPLETE",
        )
        with clients.endpoint_for_tests(endpoint):
            if not forged and not adopted and request_type != "Delete":
                try:
                    bind_key(
                        backend.kms(),
                        properties,
                        stack_id=event["StackId"],
                        logical_id=event["LogicalResourceId"],
                    )
                except ClientError as error:
                    # A key that is gone or pending deletion takes no tags; the handler's
                    # answer about it is what such a test checks.
                    if error.response["Error"]["Code"] not in UNTAGGABLE:
                        raise
            result = entry.handler(event, FakeLambdaContext(120))
        assert result is None  # crhelper answered through the response URL
        response: dict[str, Any] = cfn_server.wait_for(url, timeout=60)
        assert len(cfn_server.all_responses(url)) == 1
        return response

    return run


@pytest.fixture
def renew(invoke: Any, backend: LocalStack | RealAws) -> Any:
    """Send a renewal event for one key, as an operator or the sweep would, to the real entry
    point (played as Lambda by ``invoke``); returns its summary, or raises what Lambda would
    count as an error. ``renew_before_days`` plays a deployment that declared that window
    (the key's declared-settings tag) first."""
    endpoint = None if isinstance(backend, RealAws) else backend.endpoint

    def run(
        properties: dict[str, str],
        *,
        trigger: str = contract.TRIGGER_SCHEDULE,
        renew_before_days: int | None = None,
    ) -> Any:
        key_id = str(properties[contract.PROP_KEY_ID])
        with clients.endpoint_for_tests(endpoint):
            if renew_before_days is not None:
                backend.kms().tag_resource(
                    KeyId=key_id,
                    Tags=[
                        {
                            "TagKey": contract.TAG_DECLARED,
                            "TagValue": contract.declared_settings(
                                properties, renew_before_days * 86400
                            ),
                        }
                    ],
                )
            event = {
                contract.RENEWAL_EVENT: {
                    contract.RENEWAL_TRIGGER: trigger,
                    contract.RENEWAL_KEY_ID: key_id,
                }
            }
            return entry.handler(event, FakeLambdaContext(120))

    return run
