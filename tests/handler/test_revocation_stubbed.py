"""Revocation on Delete, with botocore's Stubber: what is called, and what is tolerated."""

from typing import Any

import pytest
import stubbing

from imported_key_handler import contract, revocation
from imported_key_handler.errors import ImportFailure


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("false", False), ("", False), (None, False), ("yes", False)],
)
def test_revocation_is_asked_for_only_by_true(value: str | None, expected: bool) -> None:
    properties = {} if value is None else {contract.PROP_DELETE_MATERIAL_ON_REMOVAL: value}
    assert revocation.revocation_requested(properties) is expected


def material_id(n: int) -> str:
    return f"{n:02x}" * 32  # 64 hex characters, as KMS reports them


def entry(n: int, material_state: str, import_state: str = "IMPORTED") -> dict[str, Any]:
    return stubbing.rotation_entry(
        material_id(n), material_state=material_state, import_state=import_state
    )


def add_delete(kms: stubbing.KmsStub, key_material_id: str | None) -> None:
    expected = {"KeyId": stubbing.KEY_ID}
    response = {"KeyId": stubbing.KEY_ARN}
    if key_material_id is not None:
        expected["KeyMaterialId"] = key_material_id
        response["KeyMaterialId"] = key_material_id
    kms.stub.add_response("delete_imported_key_material", response, expected)


def deleted_ids(kms: stubbing.KmsStub) -> list[str | None]:
    return [p.get("KeyMaterialId") for p in kms.recorder.params_of("DeleteImportedKeyMaterial")]


def test_a_rotated_key_loses_every_material_current_first(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled", current_material_id=material_id(3)))
    # Two pages: the listing is followed to its end.
    kms.add_list_rotations([entry(1, "NON_CURRENT"), entry(2, "NON_CURRENT")], next_marker="m1")
    kms.add_list_rotations([entry(3, "CURRENT")], marker="m1")
    for n in (3, 1, 2):
        add_delete(kms, material_id(n))
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_list_rotations(
        [entry(n, s, "PENDING_IMPORT") for n, s in ((1, "NON_CURRENT"), (2, "NON_CURRENT"))]
        + [entry(3, "CURRENT", "PENDING_IMPORT")]
    )
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.REVOKED
    assert deleted_ids(kms) == [material_id(3), material_id(1), material_id(2)]
    assert kms.recorder.operations[-2:] == ["DescribeKey", "ListKeyRotations"]


def test_a_retry_after_a_partial_revocation_deletes_what_is_left(kms: stubbing.KmsStub) -> None:
    # The first Delete removed the current material, then ran out of time: the key is
    # PendingImport, but two older materials still decrypt once the current one is back.
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_list_rotations(
        [
            entry(1, "NON_CURRENT"),
            entry(2, "NON_CURRENT"),
            entry(3, "CURRENT", "PENDING_IMPORT"),
        ]
    )
    add_delete(kms, material_id(1))
    add_delete(kms, material_id(2))
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_list_rotations(
        [entry(n, "NON_CURRENT", "PENDING_IMPORT") for n in (1, 2)]
        + [entry(3, "CURRENT", "PENDING_IMPORT")]
    )
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.REVOKED
    assert deleted_ids(kms) == [material_id(1), material_id(2)]


def test_a_fully_revoked_rotated_key_needs_nothing_more(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_list_rotations(
        [entry(1, "NON_CURRENT", "PENDING_IMPORT"), entry(2, "CURRENT", "PENDING_IMPORT")]
    )
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.NO_MATERIAL
    assert kms.recorder.operations == ["DescribeKey", "ListKeyRotations"]


def test_a_never_rotated_key_loses_its_one_material(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled", current_material_id=material_id(1)))
    kms.add_list_rotations([entry(1, "CURRENT")])
    add_delete(kms, material_id(1))
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_list_rotations([entry(1, "CURRENT", "PENDING_IMPORT")])
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.REVOKED
    assert kms.recorder.operations == [
        "DescribeKey",
        "ListKeyRotations",
        "DeleteImportedKeyMaterial",
        "DescribeKey",
        "ListKeyRotations",
    ]


def test_material_pending_rotation_is_deleted_too(kms: stubbing.KmsStub) -> None:
    # Imported as NEW_KEY_MATERIAL but never rotated to: it would become current on a rotation.
    kms.add_describe(stubbing.key_metadata(state="Enabled", current_material_id=material_id(1)))
    kms.add_list_rotations([entry(1, "CURRENT"), entry(2, "PENDING_ROTATION")])
    add_delete(kms, material_id(1))
    add_delete(kms, material_id(2))
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_list_rotations([entry(1, "CURRENT", "PENDING_IMPORT")])
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.REVOKED
    assert deleted_ids(kms) == [material_id(1), material_id(2)]


@pytest.mark.parametrize("key_spec", ["RSA_2048", "HMAC_256"])
def test_an_asymmetric_or_hmac_key_loses_its_material_without_listing(
    kms: stubbing.KmsStub, key_spec: str
) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled", key_spec=key_spec))
    add_delete(kms, None)
    kms.add_describe(stubbing.key_metadata(state="PendingImport", key_spec=key_spec))
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.REVOKED
    assert kms.recorder.operations == [
        "DescribeKey",
        "DeleteImportedKeyMaterial",
        "DescribeKey",
    ]


def test_an_rsa_key_already_pending_import_is_left_alone(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="PendingImport", key_spec="RSA_3072"))
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.NO_MATERIAL
    assert kms.recorder.operations == ["DescribeKey"]


def test_a_material_still_imported_after_the_deletes_is_a_failure(
    kms: stubbing.KmsStub,
) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    kms.add_list_rotations([entry(1, "NON_CURRENT"), entry(2, "CURRENT")])
    add_delete(kms, material_id(2))
    add_delete(kms, material_id(1))
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_list_rotations([entry(1, "NON_CURRENT"), entry(2, "CURRENT", "PENDING_IMPORT")])
    reason = stubbing.failure_reason(
        lambda: revocation.revoke_material(kms.client, stubbing.KEY_ID), kms
    )
    assert "1 still show as imported" in reason
    assert "retry the stack deletion" in reason


def test_a_denied_listing_fails_naming_list_key_rotations(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    kms.add_error(
        "list_key_rotations",
        "AccessDeniedException",
        {"KeyId": stubbing.KEY_ID, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"},
    )
    reason = stubbing.failure_reason(
        lambda: revocation.revoke_material(kms.client, stubbing.KEY_ID), kms
    )
    assert "kms:ListKeyRotations" in reason
    assert kms.recorder.operations == ["DescribeKey", "ListKeyRotations"]


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("PendingDeletion", revocation.KEY_PENDING_DELETION),
        ("PendingImport", revocation.NO_MATERIAL),
    ],
)
def test_nothing_to_revoke_makes_no_delete_call(
    kms: stubbing.KmsStub, state: str, outcome: str
) -> None:
    kms.add_describe(stubbing.key_metadata(state=state))
    if state == "PendingImport":
        kms.add_list_rotations([])  # never imported: KMS lists no material
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == outcome
    assert "DeleteImportedKeyMaterial" not in kms.recorder.operations


def test_a_key_that_is_gone_needs_no_revocation(kms: stubbing.KmsStub) -> None:
    kms.add_error("describe_key", "NotFoundException", {"KeyId": stubbing.KEY_ID})
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.KEY_GONE


def test_a_denied_delete_fails_with_the_permission_named(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    kms.add_list_rotations([entry(1, "CURRENT")])
    kms.add_error(
        "delete_imported_key_material",
        "AccessDeniedException",
        {"KeyId": stubbing.KEY_ID, "KeyMaterialId": material_id(1)},
    )
    reason = stubbing.failure_reason(
        lambda: revocation.revoke_material(kms.client, stubbing.KEY_ID), kms
    )
    assert "kms:DeleteImportedKeyMaterial" in reason


def test_a_key_still_usable_after_the_delete_is_a_failure(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    kms.add_list_rotations([entry(1, "CURRENT")])
    add_delete(kms, material_id(1))
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    with pytest.raises(ImportFailure, match=r"is Enabled, not PendingImport"):
        revocation.revoke_material(kms.client, stubbing.KEY_ID)


def test_a_usable_key_listing_no_material_loses_its_current_one(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    kms.add_list_rotations([])
    add_delete(kms, None)  # KMS deletes the current material when no id is given
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_list_rotations([])
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.REVOKED
    assert deleted_ids(kms) == [None]
