"""Fixtures for end-to-end tests: one LocalStack per session, clients, a CloudFormation stand-in."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from support.cfn_server import CfnResponseServer
from support.localstack import LocalStack, start_localstack

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
