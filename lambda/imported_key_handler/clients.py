"""boto3 clients with bounded timeouts and botocore's standard retry mode.

Created per invocation by the entry point and passed down, never held as module globals, so
tests can hand in their own. ``AWS_ENDPOINT_URL`` (read by botocore itself) points them at
a local emulator in tests.
"""

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Standard mode retries throttling and transient errors with jittered exponential backoff;
# GetParametersForImport's quota is 1 request/s per account and Region, so throttling under
# a fleet deployment is expected. The totals stay well inside the function timeout.
CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=15,
    retries={"mode": "standard", "max_attempts": 6},
)


def kms_client() -> "KMSClient":
    return boto3.client("kms", config=CLIENT_CONFIG)


def secretsmanager_client() -> "SecretsManagerClient":
    return boto3.client("secretsmanager", config=CLIENT_CONFIG)
