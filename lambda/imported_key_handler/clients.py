"""boto3 clients with bounded timeouts and botocore's standard retry mode.

Created per invocation by the entry point and passed down, never held as module globals, so
tests can hand in their own.

In Lambda the clients talk to AWS's own endpoints and nothing else. Anyone allowed
``lambda:UpdateFunctionConfiguration`` can add environment variables, and botocore would
follow ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_KMS``, ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` or
an ``endpoint_url`` in the config file named by ``AWS_CONFIG_FILE``: a stand-in "KMS" would
then hand out its own wrapping public key and receive the material wrapped for it, a stand-in
"Secrets Manager" would choose the material. So in Lambda any such setting is refused before
a client exists (nothing is read, nothing is sent), and the clients are built with
``ignore_configured_endpoint_urls`` so that a source not named here cannot move them either.

"In Lambda" means ``AWS_LAMBDA_FUNCTION_NAME`` is set: Lambda sets it in every runtime and it is
one of the reserved variables a function's configuration cannot set, change or remove.
Outside Lambda (scripts, the benchmark) botocore's usual configuration applies. Tests that
play Lambda point the clients at the emulator with ``endpoint_for_tests``, never through
the environment.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from .errors import ImportFailure

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
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
# botocore-stubs does not declare the option (botocore has had it since 1.31).
_LAMBDA_CONFIG = CLIENT_CONFIG.merge(Config(ignore_configured_endpoint_urls=True))  # type: ignore[call-arg]

LAMBDA_MARKER = "AWS_LAMBDA_FUNCTION_NAME"
# botocore 1.44 reads AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE ID> (KMS, SECRETS_MANAGER);
# the prefix also covers services this handler may call one day.
ENDPOINT_VARIABLE_PREFIX = "AWS_ENDPOINT_URL"
CONFIG_FILE_VARIABLE = "AWS_CONFIG_FILE"

_test_endpoint: str | None = None


def in_lambda(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(environ.get(LAMBDA_MARKER))


def endpoint_overrides(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The names (never the values) of the variables that could move the clients' endpoints."""
    names = sorted(name for name in environ if name.startswith(ENDPOINT_VARIABLE_PREFIX))
    if environ.get(CONFIG_FILE_VARIABLE):
        # The file can hold endpoint_url for a profile or a services section; a function that
        # only talks to AWS needs no config file at all, so its presence is enough to refuse.
        names.append(CONFIG_FILE_VARIABLE)
    return names


def refuse_endpoint_overrides(environ: Mapping[str, str] = os.environ) -> None:
    """In Lambda, refuse to build any client while an endpoint override is configured."""
    if not in_lambda(environ):
        return
    names = endpoint_overrides(environ)
    if names:
        # The names come last: a Reason cut to CloudFormation's length keeps the sentence.
        raise ImportFailure(
            "Refused: the function's environment could send KMS or Secrets Manager calls "
            "away from AWS; nothing was read or changed. Remove from the function's "
            f"environment: {', '.join(names)}."
        )


@contextmanager
def endpoint_for_tests(url: str | None) -> Iterator[None]:
    """Point every client built inside the block at ``url`` (an emulator; None: AWS itself).

    Tests only: nothing in the handler calls it, and only code running in the function's
    process could, so a function's configuration cannot reach it.
    """
    global _test_endpoint
    previous, _test_endpoint = _test_endpoint, url
    try:
        yield
    finally:
        _test_endpoint = previous


def _region() -> str | None:
    # Lambda sets both; botocore itself reads only AWS_DEFAULT_REGION.
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def _config() -> Config:
    refuse_endpoint_overrides()
    return _LAMBDA_CONFIG if in_lambda() else CLIENT_CONFIG


def kms_client() -> "KMSClient":
    return boto3.client("kms", region_name=_region(), config=_config(), endpoint_url=_test_endpoint)


def secretsmanager_client() -> "SecretsManagerClient":
    return boto3.client(
        "secretsmanager", region_name=_region(), config=_config(), endpoint_url=_test_endpoint
    )


def cloudformation_client() -> "CloudFormationClient":
    """Only to ask CloudFormation whether it is removing a resource (see binding)."""
    return boto3.client(
        "cloudformation", region_name=_region(), config=_config(), endpoint_url=_test_endpoint
    )


def s3_client() -> "S3Client":
    """Only for the due index (see registry)."""
    return boto3.client("s3", region_name=_region(), config=_config(), endpoint_url=_test_endpoint)


def cloudwatch_client() -> "CloudWatchClient":
    """Only for the fleet's figures (see sweep)."""
    return boto3.client(
        "cloudwatch", region_name=_region(), config=_config(), endpoint_url=_test_endpoint
    )
