"""Adopting a key that already exists: created outside the stack, declared by ARN, renewed.

A team arrives with an EXTERNAL key made by hand or by Terraform; replacing it would orphan its
ciphertexts. Here the key is created in LocalStack outside any stack, its owner tags it for the
stack, and CloudFormation's record of the import resource holds the construct's Metadata
(``support.binding.adopt_key``). The real entry point then imports on Create, the sweep renews
it when due, KMS's expiration event restores it, and a Delete takes it out of the index; every
refusal leaves the key as it was.
"""

import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from support.binding import TEST_STACK_ID, PlayedStacks, adopt_key
from support.events import LOGICAL_ID, frozen_at, import_properties, kms_expiration_event
from support.keys import assert_key_holds, external_key, new_secret
from support.lambda_context import FakeLambdaContext
from support.localstack import LocalStack

from imported_key_handler import clients, contract, entry, registry, renewal
from imported_key_handler.binding import stack_name
from imported_key_handler.renewal import FleetClients
from imported_key_handler.sweep import sweep

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = pytest.mark.localstack

VALIDITY_DAYS = 60
WINDOW = timedelta(days=10)


class Adopted:
    """One key made outside the stack, its material's secret and the import's properties."""

    def __init__(self, kms: "KMSClient", secrets: "SecretsManagerClient") -> None:
        self.material = os.urandom(32)
        self.key_id = external_key(kms)
        # Made by another tool: an alias and tags of its own, which adoption leaves alone.
        kms.create_alias(AliasName=f"alias/terraform-{uuid.uuid4()}", TargetKeyId=self.key_id)
        kms.tag_resource(KeyId=self.key_id, Tags=[{"TagKey": "owner", "TagValue": "payments"}])
        self.secret_arn = new_secret(secrets, SecretBinary=self.material)
        self.properties = import_properties(
            self.key_id,
            self.secret_arn,
            **{
                contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
                contract.PROP_VALIDITY_DAYS: str(VALIDITY_DAYS),
                contract.PROP_RENEW_BEFORE_SECONDS: str(int(WINDOW.total_seconds())),
            },
        )


@pytest.fixture
def index_bucket(localstack: LocalStack, invoke: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A due index of this test's own (after ``invoke`` has played Lambda's environment)."""
    bucket = f"adopt-{uuid.uuid4()}"
    localstack.s3().create_bucket(Bucket=bucket)
    monkeypatch.setenv(contract.ENV_REGISTRY_BUCKET, bucket)
    return bucket


@pytest.fixture
def key(kms: "KMSClient", secretsmanager: "SecretsManagerClient") -> Adopted:
    return Adopted(kms, secretsmanager)


def adopt(kms: "KMSClient", key: Adopted, stacks: PlayedStacks, **kwargs: Any) -> str:
    return adopt_key(
        kms,
        key.properties,
        stack_id=TEST_STACK_ID,
        logical_id=LOGICAL_ID,
        stacks=stacks,
        renew_before_s=int(WINDOW.total_seconds()),
        **kwargs,
    )


def owner_tags(kms: "KMSClient", key_id: str, stack_name: str) -> None:
    """The key's owner tags it for adoption by ``stack_name`` (nothing else is played)."""
    kms.tag_resource(
        KeyId=key_id, Tags=[{"TagKey": contract.TAG_ADOPTED_BY, "TagValue": stack_name}]
    )


def tags_of(kms: "KMSClient", key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


def index(localstack: LocalStack, bucket: str) -> dict[str, registry.Entry]:
    return {e.key_id: e for e in registry.entries(localstack.s3(), bucket)}


def assert_untouched(kms: "KMSClient", key: Adopted, tags_before: dict[str, str]) -> None:
    assert kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert tags_of(kms, key.key_id) == tags_before


def test_an_adopted_key_is_imported_renewed_by_the_sweep_and_restored_after_expiry(
    invoke: Any,
    kms: "KMSClient",
    localstack: LocalStack,
    stacks: PlayedStacks,
    index_bucket: str,
    key: Adopted,
    shim_clock: Callable[[datetime], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adopt(kms, key, stacks)
    response = invoke("Create", key.properties, adopted=True)
    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == key.key_id
    assert_key_holds(kms, key.key_id, key.material)
    tags = tags_of(kms, key.key_id)
    # The handler noted where the binding is recorded, and the ValidTo it imported; it wrote no
    # binding of its own, and the owner's tags stay.
    assert tags[contract.TAG_STACK] == TEST_STACK_ID
    assert tags[contract.TAG_RESOURCE] == LOGICAL_ID
    assert contract.TAG_VALID_TO in tags
    assert tags["owner"] == "payments"
    assert not {contract.TAG_HANDLER, contract.TAG_SETTINGS, contract.TAG_SECRET} & set(tags)
    indexed = index(localstack, index_bucket)[key.key_id]
    created_valid_to = indexed.valid_to

    # The sweep renews it once it is due, like any key of the stack.
    at = indexed.due + timedelta(hours=1)
    shim_clock(at)
    fleet = FleetClients(
        kms, localstack.secretsmanager(), stacks.client(), localstack.s3(), index_bucket
    )
    report = sweep(fleet, remaining_s=lambda: 900, now=lambda: at, per_second=1.0)
    assert (report.due, report.renewed, report.failed) == (1, 1, [])
    renewed = index(localstack, index_bucket)[key.key_id]
    assert renewed.valid_to > created_valid_to + timedelta(days=VALIDITY_DAYS / 2)
    assert_key_holds(kms, key.key_id, key.material)

    # KMS expires it anyway (the sweep was down): its expiration event restores it.
    expired_at = renewed.valid_to + timedelta(minutes=5)
    shim_clock(expired_at)
    kms.delete_imported_key_material(KeyId=key.key_id)
    monkeypatch.setattr(renewal, "datetime", frozen_at(expired_at))
    event = kms_expiration_event(kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["Arn"])
    with clients.endpoint_for_tests(localstack.endpoint):
        restored = entry.handler(event, FakeLambdaContext(900))
    assert restored["Renewed"] is True
    assert kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert_key_holds(kms, key.key_id, key.material)


def test_a_delete_takes_the_adopted_key_out_of_the_index_and_leaves_its_material(
    invoke: Any,
    kms: "KMSClient",
    localstack: LocalStack,
    stacks: PlayedStacks,
    index_bucket: str,
    key: Adopted,
) -> None:
    adopt(kms, key, stacks)
    assert invoke("Create", key.properties, adopted=True)["Status"] == "SUCCESS"
    assert key.key_id in index(localstack, index_bucket)
    response = invoke("Delete", key.properties, adopted=True, physical_id=key.key_id)
    assert response["Status"] == "SUCCESS", response["Reason"]
    assert key.key_id not in index(localstack, index_bucket)
    assert kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_without_the_owners_tag_the_adoption_is_refused_and_says_which_tag(
    invoke: Any, kms: "KMSClient", stacks: PlayedStacks, index_bucket: str, key: Adopted
) -> None:
    adopt(kms, key, stacks, owner_consents=False)
    before = tags_of(kms, key.key_id)
    response = invoke("Create", key.properties, adopted=True)
    assert response["Status"] == "FAILED"
    assert contract.TAG_ADOPTED_BY in response["Reason"]
    assert_untouched(kms, key, before)


def test_a_key_adopted_by_another_stack_is_refused(
    invoke: Any, kms: "KMSClient", stacks: PlayedStacks, index_bucket: str, key: Adopted
) -> None:
    adopt(kms, key, stacks, owner_consents=False)
    owner_tags(kms, key.key_id, "other-stack")
    before = tags_of(kms, key.key_id)
    response = invoke("Create", key.properties, adopted=True)
    assert response["Status"] == "FAILED"
    assert "not this handler's stack" in response["Reason"]
    assert_untouched(kms, key, before)


@pytest.mark.parametrize(
    "forged",
    [
        {contract.PROP_WRAPPING_KEY_SPEC: "RSA_3072"},
        {contract.PROP_VALIDITY_DAYS: "365"},
        {contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "true"},
    ],
    ids=["wrapping", "validity", "revocation"],
)
def test_an_event_asking_for_other_settings_than_the_stack_declared_is_refused(
    invoke: Any,
    kms: "KMSClient",
    stacks: PlayedStacks,
    index_bucket: str,
    key: Adopted,
    forged: dict[str, str],
) -> None:
    adopt(kms, key, stacks)
    before = tags_of(kms, key.key_id)
    response = invoke("Create", {**key.properties, **forged}, adopted=True)
    assert response["Status"] == "FAILED"
    assert "differ from those the stack declared" in response["Reason"]
    assert_untouched(kms, key, before)


def test_another_secret_than_the_declared_one_is_refused(
    invoke: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    stacks: PlayedStacks,
    index_bucket: str,
    key: Adopted,
) -> None:
    adopt(kms, key, stacks)
    before = tags_of(kms, key.key_id)
    other = new_secret(secretsmanager, SecretBinary=os.urandom(32))
    response = invoke("Create", {**key.properties, contract.PROP_SECRET_ARN: other}, adopted=True)
    assert response["Status"] == "FAILED"
    assert contract.PROP_SECRET_ARN in response["Reason"]
    assert_untouched(kms, key, before)


def test_a_resource_that_adopts_another_key_does_not_reach_this_one(
    invoke: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    stacks: PlayedStacks,
    index_bucket: str,
    key: Adopted,
) -> None:
    # The stack adopts another key; an event naming this one (tagged by its owner for the same
    # stack) is refused, since CloudFormation's record names the other.
    other = Adopted(kms, secretsmanager)
    adopt(kms, other, stacks)
    owner_tags(kms, key.key_id, stack_name(TEST_STACK_ID))
    before = tags_of(kms, key.key_id)
    forged = {**other.properties, contract.PROP_KEY_ID: key.key_id}
    response = invoke("Create", forged, adopted=True)
    assert response["Status"] == "FAILED"
    assert "adopts another key" in response["Reason"]
    assert_untouched(kms, key, before)


def test_a_stack_without_the_resource_is_refused(
    invoke: Any, kms: "KMSClient", stacks: PlayedStacks, index_bucket: str, key: Adopted
) -> None:
    # The owner consented, but no import resource of the stack declares the key.
    owner_tags(kms, key.key_id, stack_name(TEST_STACK_ID))
    before = tags_of(kms, key.key_id)
    response = invoke("Create", key.properties, adopted=True)
    assert response["Status"] == "FAILED"
    assert "declares no adopted key" in response["Reason"]
    assert_untouched(kms, key, before)


def test_a_key_retained_from_another_stack_is_adopted_despite_its_old_binding(
    invoke: Any,
    kms: "KMSClient",
    localstack: LocalStack,
    stacks: PlayedStacks,
    index_bucket: str,
    key: Adopted,
) -> None:
    # An ImportedKey of a stack that is gone (its key retained) still carries that stack's
    # binding: another handler, other settings. Adopted here, only this stack's record counts.
    stale = {
        contract.TAG_HANDLER: "AROAGONEHANDLER",
        contract.TAG_SETTINGS: "v2-stale",
        contract.TAG_SECRET: "arn:aws:secretsmanager:us-east-1:000000000000:secret:gone-AbCdEf",
    }
    kms.tag_resource(
        KeyId=key.key_id, Tags=[{"TagKey": k, "TagValue": v} for k, v in stale.items()]
    )
    adopt(kms, key, stacks)
    response = invoke("Create", key.properties, adopted=True)
    assert response["Status"] == "SUCCESS", response["Reason"]
    assert_key_holds(kms, key.key_id, key.material)
    assert key.key_id in index(localstack, index_bucket)
