"""What the construct synthesizes for a multi-Region key, deployed on LocalStack as
CloudFormation would deploy it, and imported and rotated by each Region's real handler code.

The other multi-Region suites write the custom resource's properties and the keys' binding tags
themselves. Here they come from ``cdk synth`` of a primary's stack and a replica's stack: a small
player creates each template's key (``AWS::KMS::Key``, or ``AWS::KMS::ReplicaKey`` through
ReplicateKey in its Region), tags it with the template's tags, records the resources as
CloudFormation would, resolves the few intrinsics the templates use (``Ref``, ``Fn::GetAtt``,
CDK's cross-Region export of the primary's ARN) and sends the import's Create or Update to the
handler of the stack's Region. So the settings, tags and cross-Region wiring the construct
writes are the ones the handler accepts, end to end.
"""

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_secretsmanager as secretsmanager
from support.binding import PlayedStacks
from support.cfn_player import Player
from support.events import ACCOUNT_ID
from support.keys import materials_document
from support.localstack import REGION, LocalStack
from support.regions import deploy_region, handler_of
from support.synth import BUNDLING_STACKS

from imported_key_cdk import ImportedKey
from imported_key_handler.sweep import Pacer, sweep

pytestmark = pytest.mark.localstack

REPLICA_REGION = "eu-west-1"
CONTEXT = {"purpose": "construct-played"}


def synth(secrets: dict[str, str], versions: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The two Regions' templates, by Region, as ``cdk synth`` writes them (no bundling)."""
    app = cdk.App(context={BUNDLING_STACKS: []})
    stacks = {
        region: cdk.Stack(
            app,
            f"Keys-{region}",
            stack_name="byok-keys",
            env=cdk.Environment(account=ACCOUNT_ID, region=region),
            cross_region_references=True,
        )
        for region in (REGION, REPLICA_REGION)
    }

    def material(region: str) -> dict[str, Any]:
        stack = stacks[region]
        return {
            "key_material_secret": secretsmanager.Secret.from_secret_complete_arn(
                stack, "Material", secrets[region]
            ),
            "material_version_id": versions[region],
            "rotation_on_material_change": True,
        }

    primary = ImportedKey(stacks[REGION], "Key", multi_region=True, **material(REGION))
    replica = ImportedKey(
        stacks[REPLICA_REGION], "Key", replica_of=primary, **material(REPLICA_REGION)
    )
    replica.grant_decrypt(cdk.aws_iam.AccountRootPrincipal())
    assembly = app.synth()
    return {
        region: assembly.get_stack_artifact(stack.artifact_id).template
        for region, stack in stacks.items()
    }


def test_the_synthesized_primary_and_replica_import_and_rotate_across_regions(
    localstack: LocalStack, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    regions = {r: deploy_region(localstack, stacks, r) for r in (REGION, REPLICA_REGION)}
    player = Player(stacks, regions)
    old, new = os.urandom(32), os.urandom(32)
    name = f"byok/{uuid.uuid4()}"
    secrets, versions = {}, {}
    for region, regional in regions.items():
        created = regional.clients.secrets.create_secret(
            Name=name, SecretString=materials_document(old)
        )
        secrets[region], versions[region] = created["ARN"], created["VersionId"]

    templates = synth(secrets, versions)
    for region in (REGION, REPLICA_REGION):  # the replica's stack depends on the primary's
        player.deploy(templates[region], regions[region], monkeypatch)
    (key_id,) = {k for (stack, _), k in player.physical.items() if k.startswith("mrk-")}
    primary, replica = regions[REGION].kms, regions[REPLICA_REGION].kms
    described = {r: regions[r].kms.describe_key(KeyId=key_id)["KeyMetadata"] for r in regions}
    assert described[REPLICA_REGION]["KeyState"] == "Enabled"
    assert described[REPLICA_REGION]["MultiRegionConfiguration"]["MultiRegionKeyType"] == (
        "REPLICA"
    )
    old_id = described[REGION]["CurrentKeyMaterialId"]
    assert described[REPLICA_REGION]["CurrentKeyMaterialId"] == old_id
    before = primary.encrypt(KeyId=key_id, Plaintext=b"before", EncryptionContext=CONTEXT)
    opened = replica.decrypt(CiphertextBlob=before["CiphertextBlob"], EncryptionContext=CONTEXT)
    assert opened["Plaintext"] == b"before"

    # New material: a new version in each Region, declared by the next synth; the pipeline
    # deploys the primary's stack, then the replica's, and the primary's sweep rotates.
    for region, regional in regions.items():
        versions[region] = regional.clients.secrets.put_secret_value(
            SecretId=secrets[region], SecretString=materials_document(old, new)
        )["VersionId"]
    templates = synth(secrets, versions)
    for region in (REGION, REPLICA_REGION):
        player.deploy(templates[region], regions[region], monkeypatch)
    assert replica.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == old_id
    with handler_of(regions[REGION], monkeypatch):
        report = sweep(
            regions[REGION].clients,
            remaining_s=lambda: 900.0,
            now=lambda: datetime.now(UTC),
            pacer=Pacer(1.0, sleep=lambda _seconds: None),
        )
    assert (report.renewed, report.failed) == (1, [])
    current = {r: regions[r].kms.describe_key(KeyId=key_id)["KeyMetadata"] for r in regions}
    (new_id,) = {m["CurrentKeyMaterialId"] for m in current.values()}
    assert new_id != old_id
    after = replica.encrypt(KeyId=key_id, Plaintext=b"after", EncryptionContext=CONTEXT)
    for kms in (primary, replica):
        for blob, plaintext in ((before, b"before"), (after, b"after")):
            decrypted = kms.decrypt(
                CiphertextBlob=blob["CiphertextBlob"], EncryptionContext=CONTEXT
            )
            assert decrypted["Plaintext"] == plaintext
