"""Opt-in: the end-to-end tests marked ``aws`` against a real AWS account (``make test-aws``).

Never by default, never in CI: only with ``IMPORTED_KEY_CDK_REAL_AWS=1``, credentials and a
Region, and ``CI`` unset. Every key, secret and bucket the tests' clients create, in any Region,
is remembered (botocore hooks on each client ``RealAws.client`` makes, whichever helper made the
call) and removed at the end of the session: keys are scheduled for deletion after KMS's minimum
waiting period, secrets are deleted without a recovery window, buckets emptied and deleted.
"""

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

ENVIRONMENT = "IMPORTED_KEY_CDK_REAL_AWS"
PENDING_WINDOW_DAYS = 7  # the shortest waiting period ScheduleKeyDeletion accepts
# States in which a key's deletion is already scheduled (a test scheduled it itself).
SCHEDULED_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})
# The Secrets Manager documentation says the replicas must be deleted before their primary, not
# whether RemoveRegionsFromReplication has finished when it returns: a DeleteSecret that is still
# refused is tried again, for at most SECRET_DELETE_ATTEMPTS * SECRET_DELETE_PAUSE_S seconds.
SECRET_DELETE_ATTEMPTS = 10
SECRET_DELETE_PAUSE_S = 3.0

# What the tests' clients create and close() removes, by botocore service id and operation.
_REMEMBERED = {
    "kms": ("CreateKey", "ReplicateKey"),
    "secrets-manager": ("CreateSecret", "ReplicateSecretToRegions"),
    "s3": ("CreateBucket",),
}
# Where before-parameter-build leaves a call's parameters for after-call, in botocore's
# per-call context dict: some answers do not say what was created, or where (CreateBucket,
# ReplicateKey's Region).
_REQUEST = "imported_key_cdk_request"


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


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _keep_request(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[_REQUEST] = dict(params)


@dataclass(frozen=True)
class CreatedKey:
    """A key the run made, in ``region``: ReplicateKey's replicas share their primary's id."""

    region: str
    key_id: str
    replica: bool = False


@dataclass(frozen=True)
class CreatedBucket:
    region: str
    name: str


class RealAws:
    """Clients for a real account that remember what they create; ``close()`` removes it."""

    endpoint = None  # botocore's own endpoint for the Region

    def __init__(
        self, session: boto3.session.Session, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        region = session.region_name
        if not region:
            raise ValueError("RealAws needs a session with a Region")
        self.region: str = region
        self._session = session
        self._sleep = sleep
        self.created_keys: list[CreatedKey] = []
        self.created_secrets: list[str] = []  # ARNs, each naming its Region
        self.replicated_secrets: set[str] = set()  # of those, the ones given replicas
        self.created_buckets: list[CreatedBucket] = []
        self._index_bucket: str | None = None

    def client(self, service: str, region: str | None = None) -> Any:
        """A client for ``service`` in ``region`` (default: the session's) whose creations are
        remembered for ``close()``."""
        where = region or self.region
        client = self._session.client(service, region_name=where)  # type: ignore[call-overload]
        service_id = client.meta.service_model.service_id.hyphenize()

        def remember(
            http_response: Any,
            parsed: dict[str, Any],
            model: Any,
            context: dict[str, Any],
            **_: Any,
        ) -> None:
            if http_response.status_code < 300:
                self._remember(where, model.name, context.get(_REQUEST, {}), parsed)

        for operation in _REMEMBERED.get(service_id, ()):
            # unique_id: a client asked for twice (a test's fake session hands out one object
            # per Region) is hooked once, so nothing is remembered twice.
            events = client.meta.events
            events.register(
                f"before-parameter-build.{service_id}.{operation}",
                _keep_request,
                unique_id=f"imported-key-cdk-params-{operation}",
            )
            events.register(
                f"after-call.{service_id}.{operation}",
                remember,
                unique_id=f"imported-key-cdk-remember-{id(self)}-{operation}",
            )
        return client

    def kms(self) -> "KMSClient":
        client: KMSClient = self.client("kms")
        return client

    def secretsmanager(self) -> "SecretsManagerClient":
        client: SecretsManagerClient = self.client("secretsmanager")
        return client

    def index_bucket(self) -> str:
        """The handler's due index for this run: a bucket of its own, removed by ``close()``."""
        if self._index_bucket is None:
            name = f"imported-key-cdk-e2e-{uuid.uuid4().hex[:16]}"
            s3 = self.client("s3")
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(
                    Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region}
                )
            self._index_bucket = name
        return self._index_bucket

    def _remember(
        self, region: str, operation: str, request: dict[str, Any], parsed: dict[str, Any]
    ) -> None:
        if operation == "CreateKey":
            key_id = parsed.get("KeyMetadata", {}).get("KeyId")
            if key_id:
                self.created_keys.append(CreatedKey(region, key_id))
        elif operation == "ReplicateKey":
            key_id = parsed.get("ReplicaKeyMetadata", {}).get("KeyId")
            if key_id and request.get("ReplicaRegion"):
                self.created_keys.append(CreatedKey(request["ReplicaRegion"], key_id, True))
        elif operation == "CreateSecret":
            arn = parsed.get("ARN")
            if arn:
                self.created_secrets.append(arn)
                if request.get("AddReplicaRegions"):
                    self.replicated_secrets.add(arn)
        elif operation == "ReplicateSecretToRegions":
            arn = parsed.get("ARN")
            if arn:
                self.replicated_secrets.add(arn)
        elif operation == "CreateBucket" and request.get("Bucket"):
            self.created_buckets.append(CreatedBucket(region, request["Bucket"]))

    def close(self) -> list[str]:
        """Schedule every created key for deletion, delete every created secret and bucket;
        returns what could not be removed."""
        problems: list[str] = []
        clients: dict[tuple[str, str], Any] = {}

        def plain(service: str, region: str) -> Any:
            if (service, region) not in clients:
                clients[service, region] = self._session.client(service, region_name=region)  # type: ignore[call-overload]
            return clients[service, region]

        # ScheduleKeyDeletion (KMS API reference): "KMS will not delete a multi-Region primary
        # key with existing replica keys. If you schedule the deletion of a primary key with
        # replicas, its key state changes to PendingReplicaDeletion ... When the last of its
        # replicas keys is deleted (not just scheduled), the key state of the primary key
        # changes to PendingDeletion and its waiting period (PendingWindowInDays) begins."
        # So the replicas first, each in its own Region (a key id names a key in one Region
        # only), then the primaries: all are gone after about twice the waiting period. A
        # primary is scheduled even if one of its replicas was not: it then waits for that
        # replica, which the problems name, instead of staying usable.
        for key in sorted(self.created_keys, key=lambda created: not created.replica):
            self._schedule_deletion(plain("kms", key.region), key, problems)
        for arn in self.created_secrets:
            self._delete_secret(plain("secretsmanager", region_of(arn)), arn, problems)
        for bucket in self.created_buckets:
            self._delete_bucket(plain("s3", bucket.region), bucket, problems)
        self.created_keys.clear()
        self.created_secrets.clear()
        self.replicated_secrets.clear()
        self.created_buckets.clear()
        self._index_bucket = None
        return problems

    def _schedule_deletion(self, kms: Any, key: CreatedKey, problems: list[str]) -> None:
        where = f"key {key.key_id} in {key.region}"
        try:
            kms.schedule_key_deletion(KeyId=key.key_id, PendingWindowInDays=PENDING_WINDOW_DAYS)
            return
        except ClientError as error:
            if _error_code(error) != "KMSInvalidStateException":
                problems.append(f"{where}: {error}")
                return
            refused = error
        # Refused for its state: fine if a test scheduled it already, but a replica still
        # Creating (say) would be left behind, and that is worth saying.
        try:
            state = kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"]
        except ClientError as error:
            problems.append(f"{where}: {refused}; DescribeKey: {error}")
            return
        if state not in SCHEDULED_STATES:
            problems.append(f"{where} is {state}, not scheduled for deletion: {refused}")

    def _delete_secret(self, secrets: Any, arn: str, problems: list[str]) -> None:
        replicated = arn in self.replicated_secrets
        try:
            if replicated:
                # DeleteSecret (Secrets Manager API reference): "You can't delete a primary
                # secret that is replicated to other Regions. You must first delete the
                # replicas using RemoveRegionsFromReplication". The Regions it has now, not
                # those it was given: a test may have removed some.
                status = secrets.describe_secret(SecretId=arn).get("ReplicationStatus", [])
                regions = [replica["Region"] for replica in status]
                if regions:
                    secrets.remove_regions_from_replication(
                        SecretId=arn, RemoveReplicaRegions=regions
                    )
            for attempt in range(1, SECRET_DELETE_ATTEMPTS + 1):
                try:
                    secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
                    return
                except ClientError as error:
                    still_replicated = (
                        replicated and _error_code(error) == "InvalidRequestException"
                    )
                    if not still_replicated or attempt == SECRET_DELETE_ATTEMPTS:
                        raise
                self._sleep(SECRET_DELETE_PAUSE_S)
        except ClientError as error:
            problems.append(f"secret {arn}: {error}")

    def _delete_bucket(self, s3: Any, bucket: CreatedBucket, problems: list[str]) -> None:
        try:
            listed = s3.list_objects_v2(Bucket=bucket.name).get("Contents", [])
            for item in listed:
                s3.delete_object(Bucket=bucket.name, Key=item["Key"])
            s3.delete_bucket(Bucket=bucket.name)
        except ClientError as error:
            problems.append(f"bucket {bucket.name} in {bucket.region}: {error}")
