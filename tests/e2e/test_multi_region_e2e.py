"""A multi-Region key with imported material, imported by the handler of each Region.

KMS copies no imported material to a replica: each Region's handler imports the same bytes, from
that Region's replica of the secret, with that Region's own import parameters and its own
ValidTo (the shim models what LocalStack lacks: ``tests/e2e/test_shim_multi_region.py``). Here
the handler code runs once per Region, each with its own clients, stack and due index, as two
deployments of the construct would, and the proofs are KMS's own: the replica reports the
primary's key material id, and each Region decrypts what the other encrypted. The tests marked
``aws`` also run against a real account (``make test-aws``; Regions: ``support.regions``).
"""

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError
from support.binding import PlayedStacks, bind_key
from support.events import LOGICAL_ID, import_properties
from support.regions import (
    Regional,
    await_replica,
    deploy_region,
    handler_of,
    plan_regions,
    replica_secret_arn,
    replicated_version,
)

from imported_key_handler import contract, registry
from imported_key_handler.errors import ImportFailure
from imported_key_handler.renewal import renew_key

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

pytestmark = pytest.mark.localstack

CONTEXT = {"purpose": "multi-region-proof"}


@dataclass
class MultiRegionKey:
    key_id: str
    material: bytes
    primary: Regional
    replica: Regional
    secrets: dict[str, str]  # Region -> the secret's ARN there
    validity_days: dict[str, int]


@pytest.fixture
def regions(backend: Any, stacks: PlayedStacks) -> tuple[Regional, Regional]:
    """The primary's Region and one replica's."""
    plan = plan_regions(backend, needed=1)
    return (
        deploy_region(backend, stacks, plan.primary),
        deploy_region(backend, stacks, plan.replicas[0]),
    )


def deploy(
    regional: Regional,
    key: MultiRegionKey,
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
    now: datetime | None = None,
) -> datetime:
    """The Region's stack binds its key (CloudFormation's tags) and its handler imports the
    material; returns the ValidTo it imported."""
    properties = import_properties(
        key.key_id,
        key.secrets[regional.region],
        **{
            contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
            contract.PROP_VALIDITY_DAYS: str(key.validity_days[regional.region]),
        },
    )
    bind_key(
        regional.kms,
        properties,
        stack_id=regional.stack_id,
        logical_id=LOGICAL_ID,
        renew_before_s=int(timedelta(days=10).total_seconds()),
        stacks=stacks,
    )
    with handler_of(regional, monkeypatch):
        result = renew_key(regional.clients, key.key_id, contract.TRIGGER_SCHEDULE, now=now)
    assert result.renewed
    assert result.valid_to is not None
    return result.valid_to


@pytest.fixture
def key(
    regions: tuple[Regional, Regional], stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> MultiRegionKey:
    """A primary imported in its Region, then replicated: the replica waits for its import."""
    primary, replica = regions
    material = os.urandom(32)
    # The same bytes in a secret of each Region. On a real account Secrets Manager's replication
    # puts them there; LocalStack 4.10 answers GetSecretValue on a replica secret with
    # InternalError (a gap of the emulator, checked below), so there the replica's Region gets
    # a secret of its own.
    name = f"byok/{uuid.uuid4()}"
    if primary.real:
        created = primary.clients.secrets.create_secret(
            Name=name, SecretBinary=material, AddReplicaRegions=[{"Region": replica.region}]
        )
        replica_secret = replica_secret_arn(created["ARN"], replica.region)
        replicated_version(replica, replica_secret, material)
    else:
        created = primary.clients.secrets.create_secret(Name=name, SecretBinary=material)
        replica_secret = replica.clients.secrets.create_secret(Name=name, SecretBinary=material)[
            "ARN"
        ]
    key_id = primary.kms.create_key(Origin="EXTERNAL", MultiRegion=True)["KeyMetadata"]["KeyId"]
    key = MultiRegionKey(
        key_id,
        material,
        primary,
        replica,
        {primary.region: created["ARN"], replica.region: replica_secret},
        {primary.region: 60, replica.region: 30},
    )
    deploy(primary, key, stacks, monkeypatch)
    primary.kms.replicate_key(KeyId=key_id, ReplicaRegion=replica.region)
    await_replica(replica, key_id)
    return key


def material_id(kms: "KMSClient", key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"])


@pytest.mark.aws
def test_the_replica_holds_the_primarys_material_and_each_region_decrypts_the_others(
    key: MultiRegionKey, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica_kms, primary_kms = key.replica.kms, key.primary.kms
    assert replica_kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"] == (
        "PendingImport"
    )
    replica_valid_to = deploy(key.replica, key, stacks, monkeypatch)
    metadata = replica_kms.describe_key(KeyId=key.key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled"
    # KMS's own proof that the same bytes went in: the primary's key material id.
    assert metadata["CurrentKeyMaterialId"] == material_id(primary_kms, key.key_id)
    # Each Region's ValidTo is its own (30 days here, 60 in the primary's Region).
    primary_valid_to = primary_kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["ValidTo"]
    assert metadata["ValidTo"] == replica_valid_to
    assert primary_valid_to - replica_valid_to > timedelta(days=29)
    for encrypting, decrypting in ((primary_kms, replica_kms), (replica_kms, primary_kms)):
        plaintext = os.urandom(24)
        blob = encrypting.encrypt(KeyId=key.key_id, Plaintext=plaintext, EncryptionContext=CONTEXT)[
            "CiphertextBlob"
        ]
        assert (
            decrypting.decrypt(KeyId=key.key_id, CiphertextBlob=blob, EncryptionContext=CONTEXT)[
                "Plaintext"
            ]
            == plaintext
        )


@pytest.mark.aws
def test_other_material_in_the_replicas_secret_is_refused_and_changes_nothing(
    key: MultiRegionKey, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = key.replica.clients.secrets.create_secret(
        Name=f"byok/{uuid.uuid4()}", SecretBinary=os.urandom(32)
    )["ARN"]
    key.secrets[key.replica.region] = other
    with pytest.raises(ImportFailure, match="only ever accepts its original material"):
        deploy(key.replica, key, stacks, monkeypatch)
    assert key.replica.kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"] == (
        "PendingImport"
    )


def test_each_region_restores_its_own_key_and_one_regions_failure_blocks_no_other(
    key: MultiRegionKey,
    stacks: PlayedStacks,
    shim_clock: Callable[[datetime], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replica_valid_to = deploy(key.replica, key, stacks, monkeypatch)
    primary_before = key.primary.kms.describe_key(KeyId=key.key_id)["KeyMetadata"]
    # The replica's material expires (KMS deletes it at its ValidTo): only that Region's key
    # goes to PendingImport, and that Region's expiration event restores it.
    expired_at = replica_valid_to + timedelta(minutes=5)
    shim_clock(expired_at)
    key.replica.kms.delete_imported_key_material(KeyId=key.key_id)
    assert key.primary.kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    with handler_of(key.replica, monkeypatch):
        restored = renew_key(
            key.replica.clients, key.key_id, contract.TRIGGER_MATERIAL_EXPIRED, now=expired_at
        )
    assert restored.renewed
    assert key.replica.kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    # The primary's Region saw none of it.
    primary_after = key.primary.kms.describe_key(KeyId=key.key_id)["KeyMetadata"]
    assert primary_after["ValidTo"] == primary_before["ValidTo"]

    # The replica's secret is lost: its Region's renewal fails, the primary's still renews.
    key.replica.clients.secrets.delete_secret(
        SecretId=key.secrets[key.replica.region], ForceDeleteWithoutRecovery=True
    )
    due = primary_after["ValidTo"] - timedelta(days=5)
    shim_clock(due)
    with handler_of(key.replica, monkeypatch), pytest.raises(ImportFailure):
        renew_key(key.replica.clients, key.key_id, contract.TRIGGER_SCHEDULE, now=due)
    with handler_of(key.primary, monkeypatch):
        renewed = renew_key(key.primary.clients, key.key_id, contract.TRIGGER_SCHEDULE, now=due)
    assert renewed.renewed
    assert renewed.valid_to is not None
    assert renewed.valid_to > primary_after["ValidTo"]
    # Each Region indexes its own key, in its own due index.
    for regional in (key.primary, key.replica):
        entries = list(registry.entries(regional.clients.s3, regional.clients.bucket))
        assert [entry.key_id for entry in entries] == [key.key_id]


@pytest.mark.usefixtures("localstack")
def test_localstack_cannot_read_a_replicated_secret_yet(regions: tuple[Regional, Regional]) -> None:
    """Why the tests above give the replica's Region a secret of its own on LocalStack: if it
    starts serving replica secrets, this fails, and the fixture should use replication there
    too, as it does on a real account."""
    primary, replica = regions
    created = primary.clients.secrets.create_secret(
        Name=f"byok/{uuid.uuid4()}",
        SecretBinary=b"x" * 32,
        AddReplicaRegions=[{"Region": replica.region}],
    )
    with pytest.raises(ClientError) as failed:
        replica.clients.secrets.get_secret_value(
            SecretId=replica_secret_arn(created["ARN"], replica.region)
        )
    assert failed.value.response["Error"]["Code"] == "InternalError"
