"""Forged events, end to end: someone who may only invoke the handler sends it events.

Each case deploys a key genuinely (CloudFormation binds it, the handler imports), records
everything a forged event could change (the key's state, ValidTo and materials, its tags, the
secrets' versions and values) and a ciphertext, sends the forged event to the real entry
point, and checks that it was refused with a reason naming what is wrong, and never the
material, and that nothing changed.
"""

import json
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from support.binding import PlayedStacks, bind_key, key_logical_id
from support.events import LOGICAL_ID, import_properties, stack_id_for
from support.keys import assert_key_holds, external_key, materials_document, new_secret
from support.leaks import assert_no_leak

from imported_key_handler import contract
from imported_key_handler.errors import ImportFailure

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = [pytest.mark.localstack]

PLAINTEXT = b"made before the forged event"
# What the refusals say (imported_key_handler.binding).
WRONG_SECRET = "is not the secret the stack declared"
WRONG_SETTINGS = "settings for key"
NOT_OURS = "is not declared for this handler"
NOT_REMOVED = "not being removed"
ANOTHER_RESOURCE = "declared it for another resource"
OTHER_HANDLER_ROLE_ID = "AROAOTHERSTACKSHANDLER"


@dataclass(frozen=True)
class Deployed:
    key_id: str
    secret_arn: str
    material: bytes
    properties: dict[str, str]
    ciphertext: bytes


def deploy(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient", **overrides: str
) -> Deployed:
    """A key as a genuine deployment leaves it: bound, imported, and a ciphertext under it."""
    material = os.urandom(32)
    secret_arn = new_secret(secretsmanager, SecretBinary=material)
    key_id = external_key(kms)
    properties = import_properties(key_id, secret_arn, **overrides)
    response = invoke("Create", properties)
    assert response["Status"] == "SUCCESS", response["Reason"]
    ciphertext = kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"]
    return Deployed(key_id, secret_arn, material, properties, ciphertext)


def snapshot(
    kms: "KMSClient", secretsmanager: "SecretsManagerClient", key_id: str, *secret_arns: str
) -> dict[str, Any]:
    """All that a forged event could change about the key and the secrets."""
    rotations = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    return {
        "key": kms.describe_key(KeyId=key_id)["KeyMetadata"],
        "materials": rotations["Rotations"],
        "tags": {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]},
        "secrets": {arn: secret_versions(secretsmanager, arn) for arn in secret_arns},
    }


def secret_versions(secretsmanager: "SecretsManagerClient", arn: str) -> dict[str, Any]:
    # Not LastAccessedDate: reading the values below moves it.
    versions = secretsmanager.list_secret_version_ids(SecretId=arn, IncludeDeprecated=True)
    result: dict[str, Any] = {}
    for version in versions["Versions"]:
        value = secretsmanager.get_secret_value(SecretId=arn, VersionId=version["VersionId"])
        result[version["VersionId"]] = (
            sorted(version.get("VersionStages", [])),
            value.get("SecretBinary"),
            value.get("SecretString"),
        )
    return result


def assert_unchanged(
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    before: dict[str, Any],
    key: Deployed,
    *secret_arns: str,
) -> None:
    assert snapshot(kms, secretsmanager, key.key_id, *secret_arns) == before
    assert kms.decrypt(CiphertextBlob=key.ciphertext)["Plaintext"] == PLAINTEXT


def assert_refused(response: dict[str, Any], why: str, *materials: bytes) -> None:
    assert response["Status"] == "FAILED", response
    assert why in response["Reason"]
    assert "Nothing was" in response["Reason"]
    for material in materials:
        assert_no_leak(json.dumps(response), material)


def test_another_keys_secret_is_refused(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    a = deploy(invoke, kms, secretsmanager)
    b = deploy(invoke, kms, secretsmanager)
    before_a = snapshot(kms, secretsmanager, a.key_id, a.secret_arn)
    before_b = snapshot(kms, secretsmanager, b.key_id, a.secret_arn, b.secret_arn)
    forged = {**b.properties, contract.PROP_SECRET_ARN: a.secret_arn}

    create = invoke("Create", forged, forged=True)
    update = invoke(
        "Update", forged, forged=True, physical_id=b.key_id, old_properties=b.properties
    )

    for response in (create, update):
        assert_refused(response, WRONG_SECRET, a.material, b.material)
        assert b.key_id in response["Reason"]
    assert_unchanged(kms, secretsmanager, before_b, b, a.secret_arn, b.secret_arn)
    assert_unchanged(kms, secretsmanager, before_a, a, a.secret_arn)
    assert_key_holds(kms, b.key_id, b.material)


def test_a_key_never_deployed_is_refused(
    invoke: Any, renew: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    material = os.urandom(32)
    key_id = external_key(kms)  # created, but no stack declared it: no binding tags
    properties = import_properties(key_id, new_secret(secretsmanager, SecretBinary=material))
    before = snapshot(kms, secretsmanager, key_id, properties[contract.PROP_SECRET_ARN])

    response = invoke("Create", properties, forged=True)

    assert_refused(response, NOT_OURS, material)
    assert key_id in response["Reason"]
    # A PendingImport key is due for renewal: only the binding stands in the way.
    with pytest.raises(ImportFailure, match=NOT_OURS):
        renew(properties, trigger=contract.TRIGGER_MATERIAL_EXPIRED)
    assert snapshot(kms, secretsmanager, key_id, properties[contract.PROP_SECRET_ARN]) == before
    assert before["key"]["KeyState"] == "PendingImport"
    assert before["tags"] == {}


def test_a_key_of_another_handler_is_refused(
    invoke: Any, renew: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key = deploy(invoke, kms, secretsmanager, **{contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "true"})
    # The key now belongs to another stack's handler (its deployment wrote the tag); the event
    # carries the settings that stack declared, so only the handler tag is wrong.
    kms.tag_resource(
        KeyId=key.key_id, Tags=[{"TagKey": contract.TAG_HANDLER, "TagValue": OTHER_HANDLER_ROLE_ID}]
    )
    before = snapshot(kms, secretsmanager, key.key_id, key.secret_arn)
    props = key.properties

    responses = [
        invoke("Update", props, forged=True, physical_id=key.key_id, old_properties=props),
        # Even with CloudFormation reporting the resource as being removed.
        invoke("Delete", props, physical_id=key.key_id),
    ]

    for response in responses:
        assert_refused(response, NOT_OURS, key.material)
    with pytest.raises(ImportFailure, match=NOT_OURS):
        renew(props)
    assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)


def test_rotation_flag_flipped_stages_no_new_material(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key = deploy(invoke, kms, secretsmanager)
    foreign = os.urandom(32)
    # The attacker's precondition: the secret rewritten to the key's material plus their own as
    # the newest (as base64 text: LocalStack's PutSecretValue garbles SecretBinary).
    secretsmanager.put_secret_value(
        SecretId=key.secret_arn, SecretString=materials_document(key.material, foreign)
    )
    before = snapshot(kms, secretsmanager, key.key_id, key.secret_arn)
    assert [entry["ImportState"] for entry in before["materials"]] == ["IMPORTED"]
    forged = {**key.properties, contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true"}

    responses = [
        invoke("Create", forged, forged=True),
        invoke(
            "Update", forged, forged=True, physical_id=key.key_id, old_properties=key.properties
        ),
    ]

    for response in responses:
        assert_refused(response, WRONG_SETTINGS, key.material, foreign)
        assert contract.TAG_SETTINGS in response["Reason"]
    assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)
    assert_key_holds(kms, key.key_id, key.material)


def test_revocation_flag_flipped_on_a_forged_delete_is_refused(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key = deploy(invoke, kms, secretsmanager)  # declared DeleteMaterialOnRemoval=false
    before = snapshot(kms, secretsmanager, key.key_id, key.secret_arn)
    forged = {**key.properties, contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "true"}

    # Refused on the settings alone: even a stack that is removing the resource (the
    # fixture's CloudFormation reports DELETE_IN_PROGRESS) declared no revocation.
    response = invoke("Delete", forged, physical_id=key.key_id)

    assert_refused(response, WRONG_SETTINGS, key.material)
    assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)
    assert before["key"]["KeyState"] == "Enabled"


def test_changed_wrapping_or_expiry_is_refused(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key = deploy(invoke, kms, secretsmanager)
    before = snapshot(kms, secretsmanager, key.key_id, key.secret_arn)
    does_not_expire = {**key.properties}
    does_not_expire[contract.PROP_EXPIRATION_MODEL] = contract.KEY_MATERIAL_DOES_NOT_EXPIRE
    del does_not_expire[contract.PROP_VALIDITY_DAYS]
    changes = {
        "wrapping algorithm": {contract.PROP_WRAPPING_ALGORITHM: contract.RSAES_OAEP_SHA_1},
        "wrapping key spec": {contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048"},
        "validity": {contract.PROP_VALIDITY_DAYS: "1"},
        "expiration model": does_not_expire,
    }

    for change, overrides in changes.items():
        forged = {**key.properties, **overrides}
        response = invoke(
            "Update", forged, forged=True, physical_id=key.key_id, old_properties=key.properties
        )
        assert response["Status"] == "FAILED", change
        assert_refused(response, WRONG_SETTINGS, key.material)
        assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)


def test_forged_delete_of_a_revoking_key_revokes_nothing(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    key = deploy(invoke, kms, secretsmanager, **{contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "true"})
    before = snapshot(kms, secretsmanager, key.key_id, key.secret_arn)
    props = key.properties

    # The declared settings, but CloudFormation reports the resource in place.
    in_place = invoke("Delete", props, forged=True, physical_id=key.key_id)
    assert_refused(in_place, NOT_REMOVED, key.material)
    assert "UPDATE_COMPLETE" in in_place["Reason"]
    assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)

    # The same key named by its ARN, so that the event's physical id differs from the one
    # CloudFormation holds (the key's id): not a replacement, the resource is in place.
    key_arn = kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["Arn"]
    by_arn = invoke(
        "Delete",
        {**props, contract.PROP_KEY_ID: key_arn},
        forged=True,
        physical_id=key_arn,
        reported_physical_id=key.key_id,
    )
    assert_refused(by_arn, NOT_REMOVED, key.material)
    assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)

    # Another stack's resource with the same properties, genuinely being deleted: the key's
    # tags name the stack and resource that declared it.
    for other in ({"stack_name": "other-stack"}, {"logical_id": "OtherImportedKey"}):
        response = invoke("Delete", props, physical_id=key.key_id, **other)
        assert_refused(response, ANOTHER_RESOURCE, key.material)
        assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)

    # A Delete for another physical resource (a failed Create's) is answered SUCCESS, as
    # CloudFormation needs, and touches nothing.
    other_physical = invoke("Delete", props, forged=True, physical_id=f"failed-{uuid.uuid4()}")
    assert other_physical["Status"] == "SUCCESS", other_physical["Reason"]
    assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)
    assert before["key"]["KeyState"] == "Enabled"

    # The refusals were for the right reason: CloudFormation's Delete after replacing the
    # resource (it is UPDATE_COMPLETE and now names another key) revokes.
    replaced = invoke(
        "Delete", props, forged=True, physical_id=key.key_id, reported_physical_id=str(uuid.uuid4())
    )
    assert replaced["Status"] == "SUCCESS", replaced["Reason"]
    assert kms.describe_key(KeyId=key.key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


@pytest.mark.parametrize("trigger", contract.RENEWAL_TRIGGERS)
def test_forged_renewal_is_refused_and_a_declared_one_is_harmless(
    trigger: str,
    invoke: Any,
    renew: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
) -> None:
    """A renewal event names a key and nothing else: the settings come from the key's tags,
    whose clear copy is checked against the digest, so a changed copy (say, by someone
    allowed kms:TagResource but not the digest's preimage) is refused like a forged event."""
    key = deploy(invoke, kms, secretsmanager)
    before = snapshot(kms, secretsmanager, key.key_id, key.secret_arn)
    declared = before["tags"][contract.TAG_DECLARED]
    forged = {**key.properties, contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true"}

    with pytest.raises(ImportFailure) as refused:
        # A window as long as the validity: were it not refused, it would import.
        renew(forged, trigger=trigger, renew_before_days=contract.MAX_VALIDITY_DAYS)
    assert WRONG_SETTINGS in str(refused.value)
    assert_no_leak(str(refused.value), key.material)
    kms.tag_resource(
        KeyId=key.key_id, Tags=[{"TagKey": contract.TAG_DECLARED, "TagValue": declared}]
    )
    assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)

    # The declared settings of a key that is not due: accepted, and nothing to do; but an
    # operator's renewal (imported-keys renew) re-imports all the same: the declared material
    # again, the secrets untouched, only the ValidTo and its record move.
    summary = renew(key.properties, trigger=trigger)
    if trigger != contract.TRIGGER_OPERATOR:
        assert summary["Renewed"] is False, summary
        assert summary["Why"] == "not due"
        assert_unchanged(kms, secretsmanager, before, key, key.secret_arn)
        return
    assert summary["Renewed"] is True, summary
    after = snapshot(kms, secretsmanager, key.key_id, key.secret_arn)
    assert after["secrets"] == before["secrets"]
    assert after["key"]["CurrentKeyMaterialId"] == before["key"]["CurrentKeyMaterialId"]
    assert after["key"]["ValidTo"] >= before["key"]["ValidTo"]
    moved = {contract.TAG_VALID_TO}
    assert {k: v for k, v in after["tags"].items() if k not in moved} == {
        k: v for k, v in before["tags"].items() if k not in moved
    }
    assert kms.decrypt(CiphertextBlob=key.ciphertext)["Plaintext"] == PLAINTEXT


def test_first_import_race_is_lost_by_the_forger(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    material, foreign = os.urandom(32), os.urandom(32)
    key_id = external_key(kms)
    declared = import_properties(key_id, new_secret(secretsmanager, SecretBinary=material))
    foreign_secret = new_secret(secretsmanager, SecretBinary=foreign)
    # CloudFormation has created the key with its tags; the custom resource has not run yet.
    bind_key(kms, declared, stack_id=stack_id_for("demo"), logical_id=LOGICAL_ID)
    secrets = (declared[contract.PROP_SECRET_ARN], foreign_secret)
    before = snapshot(kms, secretsmanager, key_id, *secrets)
    assert before["key"]["KeyState"] == "PendingImport"
    forgeries = {
        WRONG_SECRET: {**declared, contract.PROP_SECRET_ARN: foreign_secret},
        WRONG_SETTINGS: {**declared, contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048"},
    }

    for why, forged in forgeries.items():
        assert_refused(invoke("Create", forged, forged=True), why, material, foreign)
        assert snapshot(kms, secretsmanager, key_id, *secrets) == before

    response = invoke("Create", declared)
    assert response["Status"] == "SUCCESS", response["Reason"]
    assert_key_holds(kms, key_id, material)


def test_a_rollback_to_the_key_a_replacement_left_answers_without_importing(
    invoke: Any, stacks: PlayedStacks, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> None:
    """Rolling back a replacement sends the old key back to the import before the key resource
    itself rolls back, while CloudFormation still names the new key: the old key keeps its
    material, so the answer is SUCCESS with nothing read or imported. A key that needs an import
    in that state is refused: the same answer is all a forged event gets."""
    old = deploy(invoke, kms, secretsmanager)
    replacement = external_key(kms)
    stacks.record(
        stack_id_for("demo"),
        key_logical_id(old.key_id),
        replacement,
        resource_type="AWS::KMS::Key",
    )
    before = snapshot(kms, secretsmanager, old.key_id, old.secret_arn)

    rollback = invoke(
        "Update", old.properties, forged=True, physical_id=old.key_id, old_properties=old.properties
    )

    assert rollback["Status"] == "SUCCESS", rollback
    assert rollback["Data"][contract.ATTR_KEY_ID] == old.key_id
    assert_unchanged(kms, secretsmanager, before, old, old.secret_arn)
    kms.delete_imported_key_material(KeyId=old.key_id)  # now it would need an import
    kms.untag_resource(KeyId=old.key_id, TagKeys=[contract.TAG_VALID_TO])
    refused = invoke(
        "Update", old.properties, forged=True, physical_id=old.key_id, old_properties=old.properties
    )
    assert_refused(refused, "is another key", old.material)
    assert kms.describe_key(KeyId=old.key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
