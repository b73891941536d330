"""Fixtures for end-to-end tests: one LocalStack per session, clients, a CloudFormation stand-in."""

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from support.cfn_server import CfnResponseServer
from support.events import REGION, cfn_event
from support.lambda_context import FakeLambdaContext
from support.localstack import LocalStack, start_localstack

from imported_key_handler import entry

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """LocalStack with KMS and Secrets Manager, started once per session; its log is kept."""
    stack = start_localstack(tmp_path_factory.mktemp("localstack-logs"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def kms(localstack: LocalStack) -> "KMSClient":
    return localstack.kms()


@pytest.fixture
def secretsmanager(localstack: LocalStack) -> "SecretsManagerClient":
    return localstack.secretsmanager()


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
def invoke(
    localstack: LocalStack, cfn_server: CfnResponseServer, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Run the real entry point as Lambda would, against LocalStack; return the response."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_ENDPOINT_URL", localstack.endpoint)
    monkeypatch.setattr(entry, "_helper", None)

    def run(request_type: str, properties: dict[str, str], **kwargs: Any) -> dict[str, Any]:
        url = cfn_server.response_url(request_type.lower())
        result = entry.handler(
            cfn_event(request_type, properties, url, **kwargs), FakeLambdaContext(120)
        )
        assert result is None  # crhelper answered through the response URL
        response: dict[str, Any] = cfn_server.wait_for(url, timeout=60)
        assert len(cfn_server.all_responses(url)) == 1
        return response

    return run
