"""Self-checks of the KMS shim's multi-Region keys with imported key material.

Plain boto3 against the shim-patched LocalStack, one client per Region (LocalStack serves every
Region on its one endpoint and keeps each Region's keys apart by the Region a request is signed
for). Each test names the documented behaviour it checks; the shim's docstring quotes the
sources (``tests/localstack_shim/sitecustomize.py``, "Multi-Region keys").
"""

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import pytest
from botocore.exceptions import ClientError
from support.keys import (
    assert_key_holds,
    days_ahead,
    error_code,
    import_material,
    materials_by_id,
    same_time,
)
from support.kms_blob import decrypt_localstack_ciphertext, make_localstack_ciphertext
from support.localstack import REGION, LocalStack

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

pytestmark = pytest.mark.localstack

REPLICA_REGION: Final = "eu-west-1"
THIRD_REGION: Final = "ap-southeast-2"
CONTEXT: Final = {"purpose": "selfcheck", "app": "imported-key-cdk"}
PENDING_MULTI_REGION: Final = "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"


@pytest.fixture
def kms(localstack: LocalStack) -> "KMSClient":
    """KMS in the primary keys' Region."""
    return localstack.kms()


@pytest.fixture
def kms_b(localstack: LocalStack) -> "KMSClient":
    """KMS in the replicas' Region."""
    return localstack.kms(REPLICA_REGION)


@pytest.fixture
def kms_c(localstack: LocalStack) -> "KMSClient":
    """KMS in a third Region, for a second replica."""
    return localstack.kms(THIRD_REGION)


def _primary(kms: "KMSClient", key_spec: str = "SYMMETRIC_DEFAULT") -> str:
    request: dict[str, Any] = {
        "Origin": "EXTERNAL",
        "KeySpec": key_spec,
        "KeyUsage": "GENERATE_VERIFY_MAC" if key_spec.startswith("HMAC") else "ENCRYPT_DECRYPT",
        "MultiRegion": True,
    }
    metadata = kms.create_key(**request)["KeyMetadata"]
    assert metadata["KeyId"].startswith("mrk-")
    assert metadata["KeyState"] == "PendingImport"
    return metadata["KeyId"]


def _replicate(kms: "KMSClient", key_id: str, region: str = REPLICA_REGION) -> dict[str, Any]:
    return dict(kms.replicate_key(KeyId=key_id, ReplicaRegion=region)["ReplicaKeyMetadata"])


def _describe(kms: "KMSClient", key_id: str) -> dict[str, Any]:
    return dict(kms.describe_key(KeyId=key_id)["KeyMetadata"])


def _states(kms: "KMSClient", key_id: str) -> dict[str, tuple[str, str]]:
    """(KeyMaterialState, ImportState) by KeyMaterialId."""
    return {
        material_id: (entry["KeyMaterialState"], entry["ImportState"])
        for material_id, entry in materials_by_id(kms, key_id).items()
    }


def _encrypt(kms: "KMSClient", key_id: str, plaintext: bytes) -> bytes:
    return kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=CONTEXT)[
        "CiphertextBlob"
    ]


def _decrypt(kms: "KMSClient", blob: bytes) -> bytes:
    return kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)["Plaintext"]


def _assert_awaits_import(kms: "KMSClient", key_id: str) -> None:
    metadata = _describe(kms, key_id)
    assert metadata["KeyState"] == "PendingImport"
    assert metadata["Enabled"] is False
    assert "ValidTo" not in metadata
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        _encrypt(kms, key_id, b"no material here")


# --- ReplicateKey --------------------------------------------------------------------------------


def _never_imported(kms: "KMSClient", key_id: str, material: bytes) -> None:
    pass


def _imported(kms: "KMSClient", key_id: str, material: bytes) -> None:
    import_material(kms, key_id, material, days_ahead(30))


def _imported_then_deleted(kms: "KMSClient", key_id: str, material: bytes) -> None:
    import_material(kms, key_id, material, days_ahead(30))
    kms.delete_imported_key_material(KeyId=key_id)


@pytest.mark.parametrize(
    "prepare_primary",
    [_never_imported, _imported, _imported_then_deleted],
    ids=["primary-never-imported", "primary-enabled", "primary-material-deleted"],
)
def test_replica_of_an_external_primary_has_no_material(
    kms: "KMSClient",
    kms_b: "KMSClient",
    prepare_primary: Callable[["KMSClient", str, bytes], None],
) -> None:
    """API, ReplicateKey: "If you replicate a multi-Region primary key with imported key
    material, the replica key is created with no key material." """
    key_id = _primary(kms)
    prepare_primary(kms, key_id, os.urandom(32))
    primary_before = _describe(kms, key_id)

    replica = _replicate(kms, key_id)

    assert replica["KeyId"] == key_id
    assert replica["Arn"].split(":")[3] == REPLICA_REGION
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert replica["KeyState"] == "PendingImport"
    assert replica["Enabled"] is False
    assert "ValidTo" not in replica
    assert "ExpirationModel" not in replica
    _assert_awaits_import(kms_b, key_id)
    # The replica knows the primary's material by ID only (Assumption, see the shim), each
    # awaiting its import into this Region.
    materials = _states(kms, key_id) if "CurrentKeyMaterialId" in primary_before else {}
    assert {material_id: ("CURRENT", "PENDING_IMPORT") for material_id in materials} == _states(
        kms_b, key_id
    )
    assert _describe(kms_b, key_id).get("CurrentKeyMaterialId") == primary_before.get(
        "CurrentKeyMaterialId"
    )
    # The primary is as it was, apart from its new replica.
    primary_after = _describe(kms, key_id)
    replicas = primary_after.pop("MultiRegionConfiguration")["ReplicaKeys"]
    assert [entry["Region"] for entry in replicas] == [REPLICA_REGION]
    assert primary_after["Arn"].split(":")[3] == REGION
    primary_before.pop("MultiRegionConfiguration")
    assert primary_after == primary_before


# --- importing into a replica --------------------------------------------------------------------


def test_replica_takes_the_primarys_material_only_with_its_own_valid_to(
    kms: "KMSClient", kms_b: "KMSClient"
) -> None:
    """DG, importing key material into multi-Region keys: KMS "does not copy or synchronize the
    key material"; "You must import the same key material into related primary and replica
    keys"; "You set the expiration model and expiration dates for each key independently"."""
    in_30_days, in_60_days = days_ahead(30), days_ahead(60)
    key_id = _primary(kms)
    material, other = os.urandom(32), os.urandom(32)
    material_id = import_material(kms, key_id, material, in_30_days)["KeyMaterialId"]
    replica_arn = _replicate(kms, key_id)["Arn"]

    with pytest.raises(kms_b.exceptions.IncorrectKeyMaterialException):
        import_material(kms_b, key_id, other, in_60_days)
    with pytest.raises(kms_b.exceptions.UnsupportedOperationException):  # no new material here
        import_material(kms_b, key_id, material, in_60_days, ImportType="NEW_KEY_MATERIAL")
    with pytest.raises(ClientError) as error:  # the 365-day limit holds in every Region
        import_material(kms_b, key_id, material, days_ahead(366))
    assert error_code(error) == "ValidationException"
    # None of the refusals touched the replica.
    _assert_awaits_import(kms_b, key_id)
    assert _states(kms_b, key_id) == {material_id: ("CURRENT", "PENDING_IMPORT")}

    response = import_material(
        kms_b,
        key_id,
        material,
        in_60_days,
        ImportType="EXISTING_KEY_MATERIAL",
        KeyMaterialId=material_id,
    )

    assert response == {"KeyId": replica_arn, "KeyMaterialId": material_id} | {
        "ResponseMetadata": response["ResponseMetadata"]
    }
    replica = _describe(kms_b, key_id)
    assert replica["KeyState"] == "Enabled"
    assert replica["Enabled"] is True
    assert replica["CurrentKeyMaterialId"] == material_id
    assert replica["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert same_time(replica["ValidTo"], in_60_days)
    assert same_time(materials_by_id(kms_b, key_id)[material_id]["ValidTo"], in_60_days)
    primary = _describe(kms, key_id)
    assert same_time(primary["ValidTo"], in_30_days)
    assert same_time(materials_by_id(kms, key_id)[material_id]["ValidTo"], in_30_days)
    assert_key_holds(kms_b, key_id, material, CONTEXT)

    # Interoperable: what one Region encrypts, the other decrypts.
    from_a = _encrypt(kms, key_id, b"written in the primary's Region")
    assert _decrypt(kms_b, from_a) == b"written in the primary's Region"
    from_b = _encrypt(kms_b, key_id, b"written in the replica's Region")
    assert _decrypt(kms, from_b) == b"written in the replica's Region"

    # Other material is refused after the import too, and changes nothing.
    with pytest.raises(kms_b.exceptions.IncorrectKeyMaterialException):
        import_material(kms_b, key_id, other)
    assert _describe(kms_b, key_id) == replica
    assert_key_holds(kms_b, key_id, material, CONTEXT)


def test_replica_takes_nothing_before_its_primary_has_material(
    kms: "KMSClient", kms_b: "KMSClient"
) -> None:
    """API, ImportKeyMaterial: "You cannot directly import new key material into the replica
    Region keys." """
    key_id = _primary(kms)
    _replicate(kms, key_id)
    material = os.urandom(32)

    with pytest.raises(kms_b.exceptions.IncorrectKeyMaterialException):
        import_material(kms_b, key_id, material)
    _assert_awaits_import(kms_b, key_id)
    assert _states(kms_b, key_id) == {}

    material_id = import_material(kms, key_id, material)["KeyMaterialId"]
    # The replica now knows the material, which still awaits its import there.
    assert _describe(kms_b, key_id)["CurrentKeyMaterialId"] == material_id
    _assert_awaits_import(kms_b, key_id)

    assert import_material(kms_b, key_id, material)["KeyMaterialId"] == material_id
    replica = _describe(kms_b, key_id)
    assert replica["KeyState"] == "Enabled"
    assert replica["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in replica
    assert_key_holds(kms_b, key_id, material, CONTEXT)


def test_replica_of_a_rotated_primary_needs_every_material(
    kms: "KMSClient", kms_b: "KMSClient"
) -> None:
    """API, ImportKeyMaterial: "For symmetric encryption keys, you will need to import all of
    the key materials associated with the KMS key to change its state to Enabled." """
    in_10_days = days_ahead(10)  # fixed once: KMS dates are whole seconds
    key_id = _primary(kms)
    old, new = os.urandom(32), os.urandom(32)
    old_id = import_material(kms, key_id, old)["KeyMaterialId"]
    old_blob = _encrypt(kms, key_id, b"written before")
    new_id = import_material(kms, key_id, new, ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=key_id)
    _replicate(kms, key_id)
    assert _states(kms_b, key_id) == {
        old_id: ("NON_CURRENT", "PENDING_IMPORT"),
        new_id: ("CURRENT", "PENDING_IMPORT"),
    }
    rotation_date = materials_by_id(kms, key_id)[new_id]["RotationDate"]
    assert materials_by_id(kms_b, key_id)[new_id]["RotationDate"] == rotation_date

    import_material(kms_b, key_id, new)
    _assert_awaits_import(kms_b, key_id)  # the old material is still missing
    import_material(kms_b, key_id, old, in_10_days)

    replica = _describe(kms_b, key_id)
    assert replica["KeyState"] == "Enabled"
    assert replica["CurrentKeyMaterialId"] == new_id
    assert same_time(replica["ValidTo"], in_10_days)  # the old material's, also non-current
    assert_key_holds(kms_b, key_id, new, CONTEXT)
    assert _decrypt(kms_b, old_blob) == b"written before"


def test_replica_valid_to_is_judged_on_the_moved_clock(
    kms: "KMSClient", kms_b: "KMSClient", shim_clock: Callable[[datetime], None]
) -> None:
    key_id = _primary(kms)
    material = os.urandom(32)
    import_material(kms, key_id, material)
    _replicate(kms, key_id)
    shim_clock(datetime.now(UTC) + timedelta(days=200))
    with pytest.raises(ClientError) as error:  # in the past on the moved clock
        import_material(kms_b, key_id, material, days_ahead(100))
    assert error_code(error) == "ValidationException"
    in_500_days = days_ahead(500)
    import_material(kms_b, key_id, material, in_500_days)
    assert same_time(_describe(kms_b, key_id)["ValidTo"], in_500_days)


def test_hmac_replica_takes_the_primarys_material_only(
    kms: "KMSClient", kms_b: "KMSClient"
) -> None:
    """API, ImportKeyMaterial: "For asymmetric and HMAC keys, you cannot change the key
    material after the initial import."; a replica takes the primary's (API, ReplicateKey)."""
    key_id = _primary(kms, "HMAC_256")
    material, other = os.urandom(32), os.urandom(32)
    _replicate(kms, key_id)
    with pytest.raises(kms_b.exceptions.IncorrectKeyMaterialException):  # primary has none
        import_material(kms_b, key_id, material)
    import_material(kms, key_id, material)
    with pytest.raises(kms_b.exceptions.IncorrectKeyMaterialException):
        import_material(kms_b, key_id, other)
    assert _describe(kms_b, key_id)["KeyState"] == "PendingImport"

    in_20_days = days_ahead(20)
    import_material(kms_b, key_id, material, in_20_days)

    replica = _describe(kms_b, key_id)
    assert replica["KeyState"] == "Enabled"
    assert same_time(replica["ValidTo"], in_20_days)
    assert "ValidTo" not in _describe(kms, key_id)
    mac = kms.generate_mac(KeyId=key_id, Message=b"message", MacAlgorithm="HMAC_SHA_256")["Mac"]
    verified = kms_b.verify_mac(
        KeyId=key_id, Message=b"message", MacAlgorithm="HMAC_SHA_256", Mac=mac
    )
    assert verified["MacValid"] is True


# --- one Region's key material -------------------------------------------------------------------


def test_deleting_material_affects_only_that_regions_key(
    kms: "KMSClient", kms_b: "KMSClient"
) -> None:
    """DG, importing key material into multi-Region keys: "The key states of related
    multi-Region keys are independent of each other. For example, if the key material in the
    primary key expires, its replica keys are unaffected." API, DeleteImportedKeyMaterial: "If
    you delete any key material of a replica Region key, the primary Region key and other
    replica Region keys remain unchanged." """
    in_30_days, in_60_days = days_ahead(30), days_ahead(60)
    key_id = _primary(kms)
    material = os.urandom(32)
    material_id = import_material(kms, key_id, material, in_30_days)["KeyMaterialId"]
    _replicate(kms, key_id)
    import_material(kms_b, key_id, material, in_60_days)
    primary = _describe(kms, key_id)

    deleted = kms_b.delete_imported_key_material(KeyId=key_id)

    assert deleted["KeyMaterialId"] == material_id
    _assert_awaits_import(kms_b, key_id)
    assert _states(kms_b, key_id) == {material_id: ("CURRENT", "PENDING_IMPORT")}
    assert _describe(kms, key_id) == primary
    assert_key_holds(kms, key_id, material, CONTEXT)

    import_material(kms_b, key_id, material, in_60_days)
    assert _describe(kms_b, key_id)["KeyState"] == "Enabled"
    kms.delete_imported_key_material(KeyId=key_id)

    _assert_awaits_import(kms, key_id)
    replica = _describe(kms_b, key_id)
    assert replica["KeyState"] == "Enabled"
    assert same_time(replica["ValidTo"], in_60_days)
    assert_key_holds(kms_b, key_id, material, CONTEXT)


# --- on-demand rotation of a multi-Region key ----------------------------------------------------


def _replicated_pair(kms: "KMSClient", *replica_clients: "KMSClient") -> tuple[str, bytes, str]:
    """A primary with imported material and a replica, material imported, per client."""
    key_id = _primary(kms)
    material = os.urandom(32)
    material_id = import_material(kms, key_id, material, days_ahead(30))["KeyMaterialId"]
    for client in replica_clients:
        _replicate(kms, key_id, client.meta.region_name)
        import_material(client, key_id, material, days_ahead(30))
    return key_id, material, material_id


def test_new_material_waits_in_the_primary_until_every_replica_has_it(
    kms: "KMSClient", kms_b: "KMSClient", kms_c: "KMSClient"
) -> None:
    """Phases 1 and 2. API, ImportKeyMaterial: "Call ImportKeyMaterial on the primary Region key
    with the ImportTypeset to NEW_KEY_MATERIAL. Call ImportKeyMaterial on the replica Region key
    with the ImportType set to EXISTING_KEY_MATERIAL using the same key material imported to the
    primary Region key. You must do this for every replica Region key before you can perform
    the RotateKeyOnDemand operation on the primary Region key." API, KeyMaterialState (quoted in
    the shim) for PENDING_MULTI_REGION_IMPORT_AND_ROTATION."""
    key_id, old, old_id = _replicated_pair(kms, kms_b, kms_c)
    new = os.urandom(32)

    new_id = import_material(kms, key_id, new, days_ahead(60), ImportType="NEW_KEY_MATERIAL")[
        "KeyMaterialId"
    ]

    assert _states(kms, key_id) == {
        old_id: ("CURRENT", "IMPORTED"),
        new_id: (PENDING_MULTI_REGION, "IMPORTED"),
    }
    assert _describe(kms, key_id)["CurrentKeyMaterialId"] == old_id
    assert_key_holds(kms, key_id, old, CONTEXT)
    with pytest.raises(kms.exceptions.UnsupportedOperationException):
        kms.rotate_key_on_demand(KeyId=key_id)
    with pytest.raises(kms.exceptions.KMSInvalidStateException):  # one pending at a time
        import_material(kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    assert _states(kms_b, key_id) == {old_id: ("CURRENT", "IMPORTED")}  # not imported there
    with pytest.raises(kms_b.exceptions.UnsupportedOperationException):
        import_material(kms_b, key_id, new, ImportType="NEW_KEY_MATERIAL")

    valid_to = _describe(kms_b, key_id)["ValidTo"]
    import_material(kms_b, key_id, new, days_ahead(90), ImportType="EXISTING_KEY_MATERIAL")

    assert _states(kms_b, key_id) == {
        old_id: ("CURRENT", "IMPORTED"),
        new_id: ("PENDING_ROTATION", "IMPORTED"),
    }
    replica = _describe(kms_b, key_id)
    assert replica["CurrentKeyMaterialId"] == old_id
    assert replica["ValidTo"] == valid_to  # pending material is not permanently associated
    assert_key_holds(kms_b, key_id, old, CONTEXT)
    assert _states(kms, key_id)[new_id][0] == PENDING_MULTI_REGION  # the third Region lacks it
    with pytest.raises(kms.exceptions.UnsupportedOperationException):
        kms.rotate_key_on_demand(KeyId=key_id)

    import_material(kms_c, key_id, new, ImportType="EXISTING_KEY_MATERIAL")

    assert _states(kms, key_id)[new_id] == ("PENDING_ROTATION", "IMPORTED")
    assert _states(kms_c, key_id)[new_id] == ("PENDING_ROTATION", "IMPORTED")
    assert _describe(kms, key_id)["CurrentKeyMaterialId"] == old_id
    # A replica added now has not imported it: the primary waits again.
    kms.replicate_key(KeyId=key_id, ReplicaRegion="us-west-2")
    assert _states(kms, key_id)[new_id][0] == PENDING_MULTI_REGION


def test_rotating_the_primary_rotates_every_replica(
    kms: "KMSClient", kms_b: "KMSClient", kms_c: "KMSClient"
) -> None:
    """Phase 3. API, RotateKeyOnDemand: "To perform on-demand rotation of a set of related
    multi-Region keys, import new key material in the primary Region key, import the same key
    material in each replica Region key, and invoke the on-demand rotation on the primary Region
    key." """
    key_id, old, old_id = _replicated_pair(kms, kms_b, kms_c)
    blobs = {client: _encrypt(client, key_id, b"written before") for client in (kms, kms_b, kms_c)}
    new = os.urandom(32)
    new_id = import_material(kms, key_id, new, ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    for client in (kms_b, kms_c):
        import_material(client, key_id, new, ImportType="EXISTING_KEY_MATERIAL")
    with pytest.raises(kms_b.exceptions.UnsupportedOperationException):  # only the primary
        kms_b.rotate_key_on_demand(KeyId=key_id)

    kms.rotate_key_on_demand(KeyId=key_id)

    rotation_date = materials_by_id(kms, key_id)[new_id]["RotationDate"]
    for client in (kms, kms_b, kms_c):
        assert _states(client, key_id) == {
            old_id: ("NON_CURRENT", "IMPORTED"),
            new_id: ("CURRENT", "IMPORTED"),
        }
        entry = materials_by_id(client, key_id)[new_id]
        assert entry["RotationDate"] == rotation_date
        assert entry["RotationType"] == "ON_DEMAND"
        metadata = _describe(client, key_id)
        assert metadata["CurrentKeyMaterialId"] == new_id
        assert metadata["KeyState"] == "Enabled"
        assert_key_holds(client, key_id, new, CONTEXT)
        for blob in blobs.values():  # old ciphertexts of every Region still decrypt
            assert _decrypt(client, blob) == b"written before"
        # ...because each Region keeps the old material as NON_CURRENT, for decryption only.
        local = make_localstack_ciphertext(key_id, old, b"old material", CONTEXT)
        assert _decrypt(client, local) == b"old material"
    from_c = _encrypt(kms_c, key_id, b"written after")
    assert decrypt_localstack_ciphertext(from_c, new, CONTEXT) == b"written after"
    assert _decrypt(kms, from_c) == b"written after"


def test_deleting_pending_material_of_the_primary_deletes_the_replicas_copies(
    kms: "KMSClient", kms_b: "KMSClient", kms_c: "KMSClient"
) -> None:
    """API, DeleteImportedKeyMaterial: "When you delete the key material of a primary Region key
    that is in PENDING_ROTATION or PENDING_MULTI_REGION_IMPORT_AND_ROTATION state, you'll also
    be deleting the key materials for the replica Region keys." """
    key_id, old, old_id = _replicated_pair(kms, kms_b, kms_c)
    new = os.urandom(32)
    new_id = import_material(kms, key_id, new, ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    for client in (kms_b, kms_c):
        import_material(client, key_id, new, ImportType="EXISTING_KEY_MATERIAL")
    assert _states(kms, key_id)[new_id][0] == "PENDING_ROTATION"

    # A replica's own copy: only that Region's goes; the primary waits for it again.
    kms_c.delete_imported_key_material(KeyId=key_id, KeyMaterialId=new_id)
    assert new_id not in _states(kms_c, key_id)
    assert _states(kms_b, key_id)[new_id] == ("PENDING_ROTATION", "IMPORTED")
    assert _states(kms, key_id)[new_id] == (PENDING_MULTI_REGION, "IMPORTED")

    kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=new_id)

    for client in (kms, kms_b, kms_c):
        assert _states(client, key_id) == {old_id: ("CURRENT", "IMPORTED")}
        assert _describe(client, key_id)["KeyState"] == "Enabled"
        assert_key_holds(client, key_id, old, CONTEXT)
    with pytest.raises(kms_b.exceptions.IncorrectKeyMaterialException):  # no longer the key's
        import_material(kms_b, key_id, new, ImportType="EXISTING_KEY_MATERIAL")


def test_single_region_keys_are_unchanged(kms: "KMSClient") -> None:
    """Replicas are only for multi-Region keys (LocalStack's own refusal), and a single-Region
    key's new material goes straight to PENDING_ROTATION."""
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    import_material(kms, key_id, os.urandom(32))
    with pytest.raises(kms.exceptions.UnsupportedOperationException):
        kms.replicate_key(KeyId=key_id, ReplicaRegion=REPLICA_REGION)
    new_id = import_material(kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL")[
        "KeyMaterialId"
    ]
    assert _states(kms, key_id)[new_id][0] == "PENDING_ROTATION"


def test_replicas_of_kms_generated_keys_are_localstacks_own(
    kms: "KMSClient", kms_b: "KMSClient"
) -> None:
    """The shim leaves AWS_KMS multi-Region keys to LocalStack: KMS itself shares their
    material with the replica (API, ReplicateKey: related keys "have the same key ID and key
    material")."""
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    blob = _encrypt(kms, key_id, b"written in the primary's Region")
    replica = _replicate(kms, key_id)
    assert replica["KeyState"] == "Enabled"
    assert _decrypt(kms_b, blob) == b"written in the primary's Region"


def test_replica_takes_the_requests_tags_not_the_primarys(
    kms: "KMSClient", kms_b: "KMSClient"
) -> None:
    """API, ReplicateKey, Tags: "Tags are not a shared property of multi-Region keys.\""""
    key_id = _primary(kms)
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "primary-only", "TagValue": "x"}])
    kms.replicate_key(
        KeyId=key_id,
        ReplicaRegion=REPLICA_REGION,
        Tags=[{"TagKey": "replica", "TagValue": "y"}],
    )
    tags = kms_b.list_resource_tags(KeyId=key_id)["Tags"]
    assert tags == [{"TagKey": "replica", "TagValue": "y"}]
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [
        {"TagKey": "primary-only", "TagValue": "x"}
    ]
