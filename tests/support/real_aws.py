"""Opt-in: the end-to-end tests marked ``aws`` against a real AWS account (``make test-aws``).

Never by default, never in CI: only with ``IMPORTED_KEY_CDK_REAL_AWS=1``, credentials and a
Region, and ``CI`` unset. Every key and secret the tests' clients create is remembered (a
botocore ``after-call`` hook, whichever helper made the call) and removed at the end of the
session: keys are scheduled for deletion after KMS's minimum waiting period, secrets are
deleted without a recovery window.
"""

import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

ENVIRONMENT = "IMPORTED_KEY_CDK_REAL_AWS"
PENDING_WINDOW_DAYS = 7  # the shortest waiting period ScheduleKeyDeletion accepts


def requested(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENVIRONMENT) == "1"


def session_for(environ: Mapping[str, str] = os.environ) -> boto3.session.Session:
    # Lambda and most tools set AWS_REGION; botocore itself reads only AWS_DEFAULT_REGION.
    return boto3.session.Session(region_name=environ.get("AWS_REGION") or None)


def refusal(session: boto3.session.Session, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the tests must not run against this account, or ``None`` if they may."""
    if environ.get("CI"):
        return "CI is set: the real-AWS tests never run in CI"
    if not session.region_name:
        return "no AWS Region configured (AWS_REGION, AWS_DEFAULT_REGION or the profile's region)"
    try:
        credentials = session.get_credentials()
    except BotoCoreError as error:
        return f"AWS credentials could not be loaded: {error}"
    if credentials is None:
        return "no AWS credentials configured"
    return None


class RealAws:
    """Clients for a real account that remember what they create; ``close()`` removes it."""

    endpoint = None  # botocore's own endpoint for the Region

    def __init__(self, session: boto3.session.Session) -> None:
        region = session.region_name
        if not region:
            raise ValueError("RealAws needs a session with a Region")
        self.region: str = region
        self._session = session
        self.created_keys: list[str] = []
        self.created_secrets: list[str] = []
        self._index_bucket: str | None = None

    def index_bucket(self) -> str:
        """The handler's due index for this run: a bucket of its own, removed by ``close()``."""
        if self._index_bucket is None:
            name = f"imported-key-cdk-e2e-{uuid.uuid4().hex[:16]}"
            s3 = self._session.client("s3")
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(
                    Bucket=name,
                    CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
                )
            self._index_bucket = name
        return self._index_bucket

    def kms(self) -> "KMSClient":
        client: KMSClient = self._session.client("kms")
        client.meta.events.register("after-call.kms.CreateKey", self._remember_key)
        return client

    def secretsmanager(self) -> "SecretsManagerClient":
        client: SecretsManagerClient = self._session.client("secretsmanager")
        client.meta.events.register(
            "after-call.secrets-manager.CreateSecret", self._remember_secret
        )
        return client

    def _remember_key(self, parsed: dict[str, Any], **_: Any) -> None:
        key_id = parsed.get("KeyMetadata", {}).get("KeyId")
        if key_id:
            self.created_keys.append(key_id)

    def _remember_secret(self, parsed: dict[str, Any], **_: Any) -> None:
        arn = parsed.get("ARN")
        if arn:
            self.created_secrets.append(arn)

    def close(self) -> list[str]:
        """Schedule every created key for deletion, delete every created secret; the failures."""
        kms: KMSClient = self._session.client("kms")
        secrets: SecretsManagerClient = self._session.client("secretsmanager")
        problems = []
        for key_id in self.created_keys:
            try:
                kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=PENDING_WINDOW_DAYS)
            except ClientError as error:
                # KMSInvalidStateException: a test scheduled its deletion already.
                if error.response.get("Error", {}).get("Code") != "KMSInvalidStateException":
                    problems.append(f"key {key_id}: {error}")
        for arn in self.created_secrets:
            try:
                secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
            except ClientError as error:
                problems.append(f"secret {arn}: {error}")
        if self._index_bucket is not None:
            s3 = self._session.client("s3")
            try:
                listed = s3.list_objects_v2(Bucket=self._index_bucket).get("Contents", [])
                for item in listed:
                    s3.delete_object(Bucket=self._index_bucket, Key=item["Key"])
                s3.delete_bucket(Bucket=self._index_bucket)
            except ClientError as error:
                problems.append(f"bucket {self._index_bucket}: {error}")
            self._index_bucket = None
        self.created_keys.clear()
        self.created_secrets.clear()
        return problems
