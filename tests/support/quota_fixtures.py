"""The session's LocalStack behind a ``KmsQuotaProxy``, with KMS clients that go through it.

A test module uses the fixture with ``pytest_plugins = ["support.quota_fixtures"]``; a conftest
(where ``pytest_plugins`` is not allowed below the root) imports ``quota_kms`` instead.
"""

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from imported_key_handler import clients
from support.kms_quota_proxy import KmsQuotaProxy
from support.localstack import REGION, LocalStack

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

# Unlike botocore's default, an empty mapping keeps HTTP(S)_PROXY from the environment out.
_DIRECT = Config(proxies={})
# One attempt: every throttle, 5xx or reset reaches the test as it happened.
_NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
# One session keeps the service models it has loaded: a client then takes milliseconds, not a
# tenth of a second. Sessions are not safe to build clients from in several threads at once.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


def kms_client(endpoint: str, *, retries: bool = True) -> "KMSClient":
    """A KMS client for ``endpoint`` configured as the handler's (``clients.CLIENT_CONFIG``:
    standard retry mode, 5 attempts, its timeouts), or with a single attempt."""
    config = clients.CLIENT_CONFIG.merge(_DIRECT)
    if not retries:
        config = config.merge(_NO_RETRIES)
    with _SESSION_LOCK:
        client: KMSClient = _SESSION.client(
            "kms",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=config,
        )
    return client


@dataclass(frozen=True)
class QuotaKms:
    """A started proxy; ``kms`` retries as the handler does, ``kms_once`` makes one attempt."""

    proxy: KmsQuotaProxy
    kms: "KMSClient"
    kms_once: "KMSClient"


@contextmanager
def kms_behind_quota_proxy(
    upstream: str, *, quotas: Mapping[str, float] | None = None
) -> Iterator[QuotaKms]:
    """A ``KmsQuotaProxy`` in front of ``upstream`` (default quotas: KMS's), and its clients."""
    with KmsQuotaProxy(upstream, quotas=quotas) as proxy:
        yield QuotaKms(proxy, kms_client(proxy.endpoint), kms_client(proxy.endpoint, retries=False))


@pytest.fixture
def quota_kms(localstack: LocalStack) -> Iterator[QuotaKms]:
    """The session's LocalStack behind a fresh proxy with KMS's default quotas (full buckets,
    no faults, zero counts); stopped after the test."""
    with kms_behind_quota_proxy(localstack.endpoint) as behind:
        yield behind
