"""One deployment per Region, as the construct makes for a multi-Region key: that Region's
handler with its own clients, due index and stack, run as Lambda would run it there.

On LocalStack the multi-Region suites play each Region's stack against the one emulator, which
serves every Region from its own store (and the shim relates a primary to its replicas), with
us-east-1 as the primary's Region and ``EMULATOR_REPLICA_REGIONS``. Against a real account
(``make test-aws``) the primary is in the account's Region and the replicas in the Regions
``IMPORTED_KEY_CDK_REAL_AWS_REPLICA_REGIONS`` lists; there KMS and Secrets Manager replicate in
the background, so what a test asserts right after a replicating call is read again until it
holds, for a bounded time (``settle``). The emulator is read once, as before.
"""

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from botocore.exceptions import ClientError

from imported_key_handler import contract
from imported_key_handler.cfn import run_import
from imported_key_handler.importer import ImportResult
from imported_key_handler.renewal import FleetClients
from support.binding import TEST_HANDLER_ROLE_ID, PlayedStacks, bind_key
from support.events import ACCOUNT_ID, LOGICAL_ID
from support.localstack import REGION as EMULATOR_PRIMARY_REGION
from support.real_aws import RealAws

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

T = TypeVar("T")

REPLICA_REGIONS_ENVIRONMENT = "IMPORTED_KEY_CDK_REAL_AWS_REPLICA_REGIONS"
EMULATOR_REPLICA_REGIONS = ("eu-west-1", "ap-southeast-2", "eu-central-1")
# A real account's default replica Regions: the first three that are not its own.
DEFAULT_REPLICA_CANDIDATES = (*EMULATOR_REPLICA_REGIONS, EMULATOR_PRIMARY_REGION)
# No documented bound: ReplicateKey's replica leaves Creating "after a few seconds", the KMS API
# "follows an eventual consistency model", and secret replication is asynchronous.
SETTLE_TIMEOUT_S = 60.0
SETTLE_PAUSE_S = 2.0


def stack_id_in(region: str, name: str = "keys") -> str:
    """The stack of ``region``: one per Region, as CDK requires, with the same name in each
    (see the README's secrets per Region)."""
    return (
        f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{name}/"
        f"{uuid.uuid5(uuid.NAMESPACE_URL, region)}"
    )


def replica_regions(primary: str, environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """A real account's replica Regions: those ``REPLICA_REGIONS_ENVIRONMENT`` lists (comma
    separated), else the first three of ``DEFAULT_REPLICA_CANDIDATES``; never the primary's own
    Region (KMS keeps one key of a family per Region), never one twice."""
    listed = environ.get(REPLICA_REGIONS_ENVIRONMENT)
    names = DEFAULT_REPLICA_CANDIDATES if listed is None else listed.split(",")
    regions = [name.strip() for name in names if name.strip() and name.strip() != primary]
    unique = tuple(dict.fromkeys(regions))
    return unique[:3] if listed is None else unique


@dataclass(frozen=True)
class RegionPlan:
    """The primary key's Region and the replicas' Regions, in the order the suites take them."""

    primary: str
    replicas: tuple[str, ...]


def plan_regions(backend: Any, needed: int, environ: Mapping[str, str] = os.environ) -> RegionPlan:
    """The Regions on ``backend``; skips the test when a real account is given fewer than the
    ``needed`` replica Regions."""
    if not isinstance(backend, RealAws):
        return RegionPlan(EMULATOR_PRIMARY_REGION, EMULATOR_REPLICA_REGIONS)
    replicas = replica_regions(backend.region, environ)
    if len(replicas) < needed:
        plural = "s" if needed > 1 else ""
        pytest.skip(
            f"real AWS: this test needs {needed} replica Region{plural} besides "
            f"{backend.region}; {REPLICA_REGIONS_ENVIRONMENT} gives {len(replicas)} "
            f"({', '.join(replicas) or 'none'})"
        )
    return RegionPlan(backend.region, replicas)


@dataclass
class Regional:
    """One Region's deployment: the handler's clients (its due index among them) and stack.
    ``real``: a real account, where replication takes a while (see ``settle``)."""

    region: str
    clients: FleetClients
    stack_id: str
    real: bool = False

    @property
    def kms(self) -> "KMSClient":
        return self.clients.kms


def deploy_region(backend: Any, stacks: PlayedStacks, region: str) -> Regional:
    """The Region's handler clients on ``backend`` (anything with ``client(service, region)``),
    with a due index bucket of its own; CloudFormation is the played record, ``stacks``.
    On a real account ``RealAws`` removes the bucket at the end of the run."""
    s3 = backend.client("s3", region)
    bucket = f"index-{region}-{uuid.uuid4()}"
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    clients = FleetClients(
        backend.client("kms", region),
        backend.client("secretsmanager", region),
        stacks.client(),
        s3,
        bucket,
    )
    return Regional(region, clients, stack_id_in(region), isinstance(backend, RealAws))


@contextmanager
def handler_of(regional: Regional, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment the Region's handler runs in: its own stack, and its own clients for
    the code paths that build them (the custom resource's ``FleetClients.build``)."""
    with monkeypatch.context() as patch:
        patch.setenv(contract.ENV_HANDLER_ROLE_ID, TEST_HANDLER_ROLE_ID)
        patch.setenv(contract.ENV_HANDLER_STACK_ID, regional.stack_id)
        patch.setattr(FleetClients, "build", lambda: regional.clients)
        yield


def settle(
    real: bool,
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float = SETTLE_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``read()``: once on the emulator, which answers at once; on a real account again, every
    ``SETTLE_PAUSE_S``, until ``done`` accepts it or ``timeout`` passes. Returns the last
    value read, for the caller to assert on (a timeout shows as that assertion failing)."""
    value = read()
    if not real:
        return value
    deadline = clock() + timeout
    while not done(value) and clock() < deadline:
        sleep(SETTLE_PAUSE_S)
        value = read()
    return value


def eventually(real: bool, read: Callable[[], T], expected: T) -> T:
    """``settle`` until ``read()`` returns ``expected``."""
    return settle(real, read, lambda value: value == expected)


def key_state(regional: Regional, key_id: str) -> str:
    return str(regional.kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


def await_replica(regional: Regional, key_id: str) -> None:
    """ReplicateKey (KMS API reference): "the new replica key has a transient key state of
    Creating. This key state changes to Enabled (or PendingImport) after a few seconds"; it
    cannot be used before. The emulator's replica is PendingImport at once: nothing to wait."""
    if regional.real:
        state = settle(True, lambda: key_state(regional, key_id), lambda now: now != "Creating")
        assert state != "Creating", f"the replica in {regional.region} is still Creating"


def replica_secret_arn(arn: str, region: str) -> str:
    """The ARN of a secret's replica in ``region``: "the same as the primary secret except for
    the Region" (Secrets Manager User Guide, Replicate secrets across Regions)."""
    parts = arn.split(":")
    parts[3] = region
    return ":".join(parts)


def replicated_version(regional: Regional, arn: str, value: str | bytes) -> str:
    """The VersionId of the secret's current version in ``regional``'s Region once it holds
    ``value`` (replication copies the primary's writes there after a while); an
    AssertionError if it does not within ``SETTLE_TIMEOUT_S``. A real account only."""

    def current() -> str | None:
        try:
            response = regional.clients.secrets.get_secret_value(SecretId=arn)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None  # the replica is not there yet
            raise
        held = response.get("SecretBinary" if isinstance(value, bytes) else "SecretString")
        return str(response["VersionId"]) if held == value else None

    version = settle(True, current, lambda found: found is not None)
    if version is None:
        raise AssertionError(
            f"secret {arn} did not hold the value written to its primary within "
            f"{SETTLE_TIMEOUT_S:g} s"
        )
    return version


def import_in(
    regional: Regional,
    properties: Mapping[str, str],
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
    action: str = "Create",
    renew_before: timedelta = timedelta(days=10),
) -> ImportResult:
    """A deployment of the key in the Region's stack, as CloudFormation makes it: the key's
    binding tags first, then the import's Create or Update to the Region's handler."""
    bind_key(
        regional.kms,
        properties,
        stack_id=regional.stack_id,
        logical_id=LOGICAL_ID,
        renew_before_s=int(renew_before.total_seconds()),
        stacks=stacks,
    )
    with handler_of(regional, monkeypatch):
        return run_import(properties, action, (regional.stack_id, LOGICAL_ID))
