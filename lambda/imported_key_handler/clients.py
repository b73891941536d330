"""boto3 clients with bounded timeouts and botocore's standard retry mode.

Created per invocation by the entry point and passed down, never held as module globals, so
tests can hand in their own. ``AWS_ENDPOINT_URL`` (read by botocore itself) points them at
a local emulator in tests.
"""

import os
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
    # Five attempts in all: backoff of at most 1 + 2 + 4 + 8 s (jittered) per call.
    retries={"mode": "standard", "total_max_attempts": 5},
)


def _region() -> str | None:
    # Lambda sets both; botocore itself reads only AWS_DEFAULT_REGION.
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def kms_client() -> "KMSClient":
    return boto3.client("kms", region_name=_region(), config=CLIENT_CONFIG)


def secretsmanager_client() -> "SecretsManagerClient":
    return boto3.client("secretsmanager", region_name=_region(), config=CLIENT_CONFIG)
